//! [`Session`]: the plugin instances of one translation pass, and the calls into them.
//!
//! A session instantiates a plugin the first time the pass needs it and reuses that
//! instance for every later call, so a pass over 10,000 Upstreams pays for one
//! instantiation per plugin. A fresh session per pass means no state leaks from one pass
//! into the next. When a call fails inside the guest (trap, timeout, out of memory) the
//! instance is thrown away and the next call gets a fresh one; other plugins are not
//! affected.

use std::sync::Arc;

use prost::{Message, Name};
use wasmtime::{Store, Trap};

use super::bindings::{Any, ObjectRef, discovery, options, upstream};
use super::error::{CallError, PluginId};
use super::metadata::World;
use super::outputs::{self, HookLevel, HookResult, UpstreamResult};
use super::runtime::{LoadedPlugin, PluginRuntime, Pre};
use super::sandbox::{Sandbox, WaitRefused};

pub use discovery::exports::weir::plugin::discovery::{DiscoveryInput, Document};
pub use options::exports::weir::plugin::filters::{
    HookInput, HttpFilter, Stage, StageName, StagePosition,
};
pub use upstream::exports::weir::plugin::upstream::{Endpoint, UpstreamInput};
pub use upstream::weir::plugin::types::Function;

/// The plugin instances of one translation pass.
pub struct Session<'r> {
    runtime: &'r PluginRuntime,
    /// Instances by plugin index (the runtime's load order).
    live: Vec<Option<Live>>,
}

/// One instantiated plugin and its store.
struct Live {
    store: Store<Sandbox>,
    bound: Bound,
}

enum Bound {
    Upstream(upstream::UpstreamType),
    Options(options::Options),
    Discovery(discovery::FunctionDiscovery),
}

impl<'r> Session<'r> {
    pub(super) fn new(runtime: &'r PluginRuntime) -> Self {
        Session {
            runtime,
            live: Vec::new(),
        }
    }

    /// Asks the plugin claiming `key` in `world` whether `config` is valid.
    pub fn validate(&mut self, world: World, key: &str, config: &str) -> Result<(), CallError> {
        let (index, plugin) = self.find(world, key)?;
        let answer = self.call(index, |bound, store| match bound {
            Bound::Upstream(b) => b.weir_plugin_upstream().call_validate(store, key, config),
            Bound::Options(b) => b.weir_plugin_filters().call_validate(store, key, config),
            // Discovery plugins have no configuration of their own to check.
            Bound::Discovery(_) => Ok(Ok(())),
        })?;
        answer.map_err(|error| CallError::Declined {
            plugin: plugin.id.clone(),
            error,
        })
    }

    /// Translates one Upstream with the plugin claiming `input.key`, and checks that
    /// the cluster (and endpoints) it returns decode as Envoy types.
    pub fn translate_upstream(
        &mut self,
        input: &UpstreamInput,
    ) -> Result<UpstreamResult, CallError> {
        let (index, plugin) = self.find(World::UpstreamType, &input.key)?;
        let answer = self.call(index, |bound, store| match bound {
            Bound::Upstream(b) => b.weir_plugin_upstream().call_translate(store, input),
            _ => unreachable!("claims of the upstream-type world index upstream plugins"),
        })?;
        let output = answer.map_err(|error| CallError::Declined {
            plugin: plugin.id.clone(),
            error,
        })?;
        outputs::upstream(&plugin.id, output, self.runtime.config().output_limit)
    }

    /// Applies option `key` (with its JSON `config`, from option object `source`) to the
    /// Envoy message `target` at `level`, and checks what comes back.
    pub fn apply<M: Message + Name + Default>(
        &mut self,
        level: HookLevel,
        key: &str,
        config: &str,
        source: &ObjectRef,
        target: &M,
    ) -> Result<HookResult<M>, CallError> {
        debug_assert_eq!(
            M::type_url(),
            level.type_url(),
            "hook level and message type differ"
        );
        let (index, plugin) = self.find(World::Options, key)?;
        let input = HookInput {
            key: key.to_owned(),
            config: config.to_owned(),
            source: source.clone(),
            target: Any {
                type_url: M::type_url(),
                value: target.encode_to_vec(),
            },
        };
        let answer = self.call(index, |bound, store| {
            let Bound::Options(b) = bound else {
                unreachable!("claims of the options world index options plugins")
            };
            let hooks = b.weir_plugin_filters();
            match level {
                HookLevel::Listener => hooks.call_apply_listener(store, &input),
                HookLevel::HttpConnectionManager => {
                    hooks.call_apply_http_connection_manager(store, &input)
                }
                HookLevel::VirtualHost => hooks.call_apply_virtual_host(store, &input),
                HookLevel::Route => hooks.call_apply_route(store, &input),
            }
        })?;
        let output = answer.map_err(|error| CallError::Declined {
            plugin: plugin.id.clone(),
            error,
        })?;
        outputs::hook(&plugin.id, output, self.runtime.config().output_limit)
    }

    /// Lists the functions a fetched document describes, with the discovery plugin
    /// claiming `input.key`.
    pub fn discover(&mut self, input: &DiscoveryInput) -> Result<Vec<Function>, CallError> {
        let (index, plugin) = self.find(World::FunctionDiscovery, &input.key)?;
        let answer = self.call(index, |bound, store| match bound {
            Bound::Discovery(b) => b.weir_plugin_discovery().call_discover(store, input),
            _ => unreachable!("claims of the discovery world index discovery plugins"),
        })?;
        let functions = answer.map_err(|error| CallError::Declined {
            plugin: plugin.id.clone(),
            error,
        })?;
        outputs::functions(&plugin.id, &functions, self.runtime.config().output_limit)?;
        Ok(functions)
    }

    /// How many plugin instances this pass has created and still holds.
    pub fn instance_count(&self) -> usize {
        self.live.iter().flatten().count()
    }

    fn find(&self, world: World, key: &str) -> Result<(usize, &'r LoadedPlugin), CallError> {
        let runtime: &'r PluginRuntime = self.runtime;
        runtime
            .claimant(world, key)
            .map(|(index, plugin)| (index, &**plugin))
            .ok_or_else(|| CallError::UnknownKey {
                world,
                key: key.to_owned(),
            })
    }

    /// Runs `f` against the pass's instance of plugin `index` under the call deadline,
    /// creating the instance first if needed, and turns guest failures into
    /// [`CallError`]s. A failed instance is dropped.
    fn call<T>(
        &mut self,
        index: usize,
        f: impl FnOnce(&Bound, &mut Store<Sandbox>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        let plugin = &self.runtime.plugins()[index];
        let ticks = self.runtime.deadline_ticks();
        if self.live.len() <= index {
            self.live.resize_with(index + 1, || None);
        }
        let runtime = self.runtime;
        let live = match &mut self.live[index] {
            Some(live) => live,
            slot => slot.insert(instantiate(runtime, plugin, ticks)?),
        };
        live.store.set_epoch_deadline(ticks);
        live.store.data_mut().deadline.arm();
        match f(&live.bound, &mut live.store) {
            Ok(value) => Ok(value),
            Err(err) => {
                let error = classify(runtime, &plugin.id, err, &live.store);
                self.live[index] = None;
                Err(error)
            }
        }
    }
}

/// A fresh store and instance of `plugin`, with a deadline of `ticks` for instantiation.
fn instantiate(
    runtime: &PluginRuntime,
    plugin: &LoadedPlugin,
    ticks: u64,
) -> Result<Live, CallError> {
    let config = runtime.config();
    let mut store = Store::new(
        runtime.engine(),
        Sandbox::new(plugin.id.name.as_str().into(), config.memory_limit),
    );
    store.limiter(|sandbox| &mut sandbox.limits);
    runtime.count_cpu_time(&mut store);
    store.set_epoch_deadline(ticks);
    let bound = match &plugin.pre {
        Pre::Upstream(pre) => pre.instantiate(&mut store).map(Bound::Upstream),
        Pre::Options(pre) => pre.instantiate(&mut store).map(Bound::Options),
        Pre::Discovery(pre) => pre.instantiate(&mut store).map(Bound::Discovery),
    };
    match bound {
        Ok(bound) => Ok(Live { store, bound }),
        Err(err) => Err(classify(runtime, &plugin.id, err, &store)),
    }
}

/// Turns a failed call or instantiation into a [`CallError`]: hitting the memory cap is
/// out-of-memory, an epoch interrupt is a timeout, any other trap is a crash quoting the
/// guest's panic message when it left one.
fn classify(
    runtime: &PluginRuntime,
    plugin: &Arc<PluginId>,
    err: wasmtime::Error,
    store: &Store<Sandbox>,
) -> CallError {
    let plugin = plugin.clone();
    let config = runtime.config();
    if store.data().limits.exceeded {
        return CallError::OutOfMemory {
            plugin,
            limit: config.memory_limit,
        };
    }
    if err.downcast_ref::<WaitRefused>().is_some() {
        return CallError::Crash {
            message: WaitRefused.to_string(),
            plugin,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout {
            plugin,
            limit: config.call_timeout,
        },
        Some(trap) => CallError::Crash {
            message: store
                .data()
                .panic_message()
                .unwrap_or_else(|| format!("trap: {trap}")),
            plugin,
        },
        None => CallError::Host {
            plugin,
            reason: format!("{err:#}"),
        },
    }
}
