//! [`PluginRuntime`]: the one wasmtime engine, the loaded plugins and who claims which key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, ProfilingStrategy, Store};

use super::bindings::{discovery, options, upstream};
use super::cache::CompileCache;
use super::deadline::{FIRST_LOOK_TICKS, thread_cpu_time};
use super::error::{LoadError, PluginId};
use super::metadata::{self, PluginMetadata, World};
use super::sandbox::Sandbox;
use super::session::Session;

/// How often the engine's epoch advances; call deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Set (to anything) to write `/tmp/perf-PID.map`, which names the plugins' compiled
/// functions for `perf` and for the README's callgrind attribution of guest code.
pub const PERFMAP_ENV: &str = "WEIR_PLUGIN_PERFMAP";

/// Limits and locations for the plugin runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where precompiled plugins are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Longest a single call into a plugin may run.
    pub call_timeout: Duration,
    /// Most linear memory one plugin instance may use, in bytes.
    pub memory_limit: usize,
    /// Largest single output (an encoded proto, a list of functions) a plugin may return.
    pub output_limit: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: CompileCache::default_dir(),
            call_timeout: Duration::from_millis(100),
            memory_limit: 64 << 20,
            output_limit: 1 << 20,
        }
    }
}

/// A plugin that has been checked, compiled and linked, ready to instantiate.
pub struct LoadedPlugin {
    /// Name, version and digest, used in every message about the plugin.
    pub id: Arc<PluginId>,
    /// What the plugin says about itself.
    pub metadata: PluginMetadata,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    pub(super) pre: Pre,
}

/// A linked plugin of one world, ready to instantiate cheaply.
pub(super) enum Pre {
    Upstream(upstream::UpstreamTypePre<Sandbox>),
    Options(options::OptionsPre<Sandbox>),
    Discovery(discovery::FunctionDiscoveryPre<Sandbox>),
}

/// Loads plugins and hands out per-pass [`Session`]s that call them.
///
/// One runtime per process: it owns the only wasmtime [`Engine`] and the thread that
/// advances the engine's epoch (which is how call deadlines are enforced).
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<Sandbox>,
    config: RuntimeConfig,
    cache: Option<CompileCache>,
    plugins: Vec<Arc<LoadedPlugin>>,
    /// Plugin index by world and key (nested so a lookup needs no owned key).
    claims: BTreeMap<World, BTreeMap<String, usize>>,
    ticker_stop: Arc<AtomicBool>,
}

impl PluginRuntime {
    /// Builds the engine, the linker with the sandbox's imports and the epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(1 << 20);
        if std::env::var_os(PERFMAP_ENV).is_some() {
            // Names the plugins' compiled functions for profilers (`/tmp/perf-PID.map`).
            wasm.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&wasm)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        super::sandbox::forbid_waiting(&mut linker)?;
        upstream::weir::plugin::log::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone())?;

        let cache = config.cache_dir.clone().map(CompileCache::new);
        Ok(PluginRuntime {
            engine,
            linker,
            config,
            cache,
            plugins: Vec::new(),
            claims: BTreeMap::new(),
            ticker_stop,
        })
    }

    /// The limits in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Every loaded plugin, in load order.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// The plugin claiming `key` in `world`, if any.
    pub fn claimant(&self, world: World, key: &str) -> Option<(usize, &Arc<LoadedPlugin>)> {
        let index = *self.claims.get(&world)?.get(key)?;
        Some((index, &self.plugins[index]))
    }

    /// A runtime with the built-in plugins and, when given, every plugin of `dir`; the
    /// files of `dir` that could not be loaded, each with why (the others still load).
    pub fn with_plugins(
        config: RuntimeConfig,
        dir: Option<&Path>,
    ) -> anyhow::Result<(Self, Vec<LoadError>)> {
        let mut runtime = Self::new(config)?;
        super::builtin::load_all(&mut runtime)
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context("cannot load the built-in plugins"))?;
        let errors = match dir {
            Some(dir) => runtime.load_dir(dir).map_err(|e| {
                anyhow::anyhow!("cannot read plugin directory {}: {e}", dir.display())
            })?,
            None => Vec::new(),
        };
        Ok((runtime, errors))
    }

    /// Reads a plugin file and loads it (see [`PluginRuntime::load_bytes`]).
    pub fn load_file(&mut self, path: &Path) -> Result<Arc<LoadedPlugin>, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load_bytes(&bytes, &path.display().to_string())
    }

    /// Loads every `*.wasm` file of `dir`, in name order so load order is deterministic.
    /// A file that fails to load does not stop the others; its error is returned.
    pub fn load_dir(&mut self, dir: &Path) -> std::io::Result<Vec<LoadError>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files
            .iter()
            .filter_map(|path| self.load_file(path).err())
            .collect())
    }

    /// Checks, compiles (or loads from the cache) and links one plugin, then registers
    /// its keys. `origin` names the file in messages. Nothing is registered on error.
    pub fn load_bytes(
        &mut self,
        bytes: &[u8],
        origin: &str,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let plugin = Arc::new(self.prepare(bytes, origin)?);
        self.register(plugin.clone())?;
        Ok(plugin)
    }

    /// Checks, compiles and links a plugin without registering it (for `weir plugin check`).
    pub fn prepare(&self, bytes: &[u8], origin: &str) -> Result<LoadedPlugin, LoadError> {
        let metadata = metadata::read(bytes, origin)?;
        let id = Arc::new(PluginId {
            name: metadata.name.clone(),
            version: metadata.version.clone(),
            digest: hex(&Sha256::digest(bytes)),
        });
        // Refuse a key clash before spending time on compilation.
        self.check_claims(&id, &metadata)?;

        let compile_error = |err: wasmtime::Error| LoadError::Compile {
            plugin: id.clone(),
            reason: format!("{err:#}"),
        };
        let (component, from_cache) = match &self.cache {
            Some(cache) => cache
                .load_or_compile(&self.engine, &id.digest, bytes)
                .map_err(compile_error)?,
            None => (
                Component::new(&self.engine, bytes).map_err(compile_error)?,
                false,
            ),
        };

        let link_error = |err: wasmtime::Error| LoadError::Link {
            plugin: id.clone(),
            world: metadata.world,
            reason: format!("{err:#}"),
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let pre = match metadata.world {
            World::UpstreamType => {
                Pre::Upstream(upstream::UpstreamTypePre::new(instance_pre).map_err(link_error)?)
            }
            World::Options => {
                Pre::Options(options::OptionsPre::new(instance_pre).map_err(link_error)?)
            }
            World::FunctionDiscovery => Pre::Discovery(
                discovery::FunctionDiscoveryPre::new(instance_pre).map_err(link_error)?,
            ),
        };
        Ok(LoadedPlugin {
            id,
            metadata,
            from_cache,
            pre,
        })
    }

    /// Starts a translation pass: plugins are instantiated lazily, once each, and the
    /// instances live as long as the session.
    pub fn session(&self) -> Session<'_> {
        Session::new(self)
    }

    fn check_claims(&self, id: &Arc<PluginId>, metadata: &PluginMetadata) -> Result<(), LoadError> {
        if let Some(owner) = self.plugins.iter().find(|p| p.id.name == id.name) {
            return Err(LoadError::DuplicateName {
                plugin: id.clone(),
                owner: owner.id.clone(),
            });
        }
        for key in &metadata.keys {
            if let Some((_, owner)) = self.claimant(metadata.world, key) {
                return Err(LoadError::DuplicateKey {
                    plugin: id.clone(),
                    world: metadata.world,
                    key: key.clone(),
                    owner: owner.id.clone(),
                });
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(key) = metadata.keys.iter().find(|k| !seen.insert(*k)) {
            return Err(LoadError::Metadata(metadata::MetadataError::Inconsistent {
                name: id.name.clone(),
                problem: format!("it claims the key `{key}` twice"),
            }));
        }
        Ok(())
    }

    fn register(&mut self, plugin: Arc<LoadedPlugin>) -> Result<(), LoadError> {
        self.check_claims(&plugin.id, &plugin.metadata)?;
        let index = self.plugins.len();
        for key in &plugin.metadata.keys {
            self.claims
                .entry(plugin.metadata.world)
                .or_default()
                .insert(key.clone(), index);
        }
        tracing::info!(
            plugin = %plugin.id,
            world = %plugin.metadata.world,
            keys = ?plugin.metadata.keys,
            from_cache = plugin.from_cache,
            "loaded plugin"
        );
        self.plugins.push(plugin);
        Ok(())
    }

    /// Ticks of [`EPOCH_TICK`] a call first runs before its CPU time is looked at (the
    /// whole deadline when that is shorter).
    pub(super) fn deadline_ticks(&self) -> u64 {
        let ticks = self.config.call_timeout.as_micros() / EPOCH_TICK.as_micros();
        (ticks as u64).clamp(1, FIRST_LOOK_TICKS)
    }

    /// Makes `store` count each call's deadline in CPU time (see [`CpuDeadline`]): at
    /// each epoch deadline the call goes on while it has budget left.
    pub(super) fn count_cpu_time(&self, store: &mut Store<Sandbox>) {
        let budget = self.config.call_timeout;
        let first_window = EPOCH_TICK * self.deadline_ticks() as u32;
        store.epoch_deadline_callback(move |mut ctx| {
            Ok(ctx.data_mut().deadline.on_deadline(
                thread_cpu_time(),
                budget,
                EPOCH_TICK,
                first_window,
            ))
        });
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until `stop` is set.
fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("weir-plugin-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
