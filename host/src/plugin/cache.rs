//! The on-disk cache of precompiled plugins.
//!
//! Compiling a component with Cranelift takes hundreds of milliseconds; loading its
//! precompiled form takes a few. Entries are keyed by the component's SHA-256 and by the
//! engine's compatibility hash (wasmtime version, target, settings), so a new Weir build
//! or different engine settings never pick up a stale artifact. Any problem with the
//! cache (unwritable directory, corrupt or truncated entry) falls back to compiling:
//! the cache only ever makes loading faster.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    /// The default location: `$XDG_CACHE_HOME/weir/plugins` or `~/.cache/weir/plugins`.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("weir").join("plugins"))
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads `bytes` (whose SHA-256 is `digest`) from the cache, or compiles it and stores
    /// the result. Returns the component and whether it came from the cache.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.entry_path(engine, digest);
        if path.exists() {
            // SAFETY: the file was written by `Engine::precompile_component` of an engine
            // with the same compatibility hash (it is in the file name), into a directory
            // only Weir writes, via a rename so it is never seen half-written. Wasmtime
            // still checks the header and refuses an artifact of another engine.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, true)),
                Err(err) => {
                    tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {err:#}");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let compiled = engine.precompile_component(bytes)?;
        match write_atomically(&path, &compiled) {
            // Mapped from the file, as a cached load is, the code is page cache the kernel
            // can share and reclaim rather than ~10 MiB of the process's own memory per
            // plugin.
            // SAFETY: this engine wrote the file a moment ago, as above.
            Ok(()) => match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, false)),
                Err(err) => {
                    tracing::debug!(path = %path.display(), "cannot map the new cache entry: {err:#}")
                }
            },
            Err(err) => {
                tracing::debug!(path = %path.display(), "cannot write plugin cache entry: {err}")
            }
        }
        // SAFETY: `compiled` was produced by this very engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        Ok((component, false))
    }

    fn entry_path(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // Unique per process and per write, so concurrent loads never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
