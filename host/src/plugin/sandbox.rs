//! The per-store state a plugin runs with: an empty WASI context, a memory cap and a
//! captured stderr.
//!
//! A plugin gets no preopened directories, no sockets, no environment and no
//! arguments. Clocks and randomness are WASI's defaults. Its stderr goes to a small
//! in-memory pipe so that when the guest panics we can quote Rust's panic message in
//! the error; its stdout goes nowhere. It may not wait ([`forbid_waiting`]): a waiting
//! guest runs no code, so the call deadline could never stop it.

use std::sync::Arc;

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreContextMut};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{Level, upstream::weir::plugin::log};
use super::deadline::CpuDeadline;

/// How much of a plugin's stderr we keep (enough for a panic message and a backtrace line).
const STDERR_CAPACITY: usize = 16 * 1024;

/// Longest log line we forward from a plugin; longer ones are cut.
const MAX_LOG_LINE: usize = 4 * 1024;

/// Most log lines one store may write; further lines are dropped.
const MAX_LOG_LINES: u32 = 1_000;

/// The WASI interface whose functions wait (for clocks; a plugin has nothing else to
/// wait on), as `wasmtime_wasi` defines it.
const WASI_POLL: &str = "wasi:io/poll@0.2.12";

/// Why a call failed when its plugin tried to wait.
#[derive(Debug, thiserror::Error)]
#[error("the plugin tried to wait (`wasi:io/poll`, e.g. a sleep); plugins must not wait")]
pub struct WaitRefused;

/// Replaces WASI's two ways of waiting, `poll` and `pollable.block`, with functions that
/// fail the call with [`WaitRefused`]. The epoch deadline interrupts only running guest
/// code, so a guest blocked in the host (a `sleep`) would otherwise hold the
/// translation for as long as it liked. Non-blocking `pollable.ready` stays: a guest
/// polling in a loop runs code and meets the deadline.
pub fn forbid_waiting(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_POLL)?;
    poll.func_wrap(
        "poll",
        |_: StoreContextMut<'_, Sandbox>,
         _: (Vec<Resource<DynPollable>>,)|
         -> wasmtime::Result<(Vec<u32>,)> { Err(WaitRefused.into()) },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |_: StoreContextMut<'_, Sandbox>, _: (Resource<DynPollable>,)| -> wasmtime::Result<()> {
            Err(WaitRefused.into())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The data of one plugin store.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    /// Enforces the memory cap and remembers whether the guest hit it.
    pub limits: MemoryCap,
    stderr: MemoryOutputPipe,
    plugin: Arc<str>,
    log_lines: u32,
    /// The running call's CPU budget (see [`CpuDeadline`]).
    pub deadline: CpuDeadline,
}

impl Sandbox {
    /// Builds the state for one store of plugin `plugin`, capped at `memory_limit` bytes.
    pub fn new(plugin: Arc<str>, memory_limit: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryCap::new(memory_limit),
            stderr,
            plugin,
            log_lines: 0,
            deadline: CpuDeadline::default(),
        }
    }

    /// The guest's panic message, if it wrote one to stderr.
    pub fn panic_message(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.stderr.contents()).into_owned();
        let start = text.find("panicked at")?;
        // Rust writes "thread '<name>' panicked at FILE:LINE:COL:\nMESSAGE\nnote: ...".
        let rest = &text[start..];
        let mut lines = rest.lines();
        let location = lines.next().unwrap_or_default().trim_end_matches(':');
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
        Some(format!("{} ({location})", message.join("\n").trim()))
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for Sandbox {
    fn log(&mut self, level: Level, message: String) {
        if self.log_lines >= MAX_LOG_LINES {
            return;
        }
        self.log_lines += 1;
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let plugin = &*self.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl super::bindings::upstream::weir::plugin::types::Host for Sandbox {}

/// A [`ResourceLimiter`] that caps linear memory and records when a guest hit the cap,
/// so that the resulting trap can be reported as "out of memory" rather than a crash.
pub struct MemoryCap {
    limit: usize,
    /// Set once the guest asked for more memory than the cap allows.
    pub exceeded: bool,
}

impl MemoryCap {
    fn new(limit: usize) -> Self {
        MemoryCap {
            limit,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
