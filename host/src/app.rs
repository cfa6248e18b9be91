//! The `weir serve` runtime: builds every component, binds every port, then runs until
//! told to stop.
//!
//! ```text
//!  translation thread (std)                          tokio
//!  ┌────────────────────────────────┐
//!  │ notify watcher → debounce      │  publish_all   ┌──────────────┐
//!  │ → DirSource (changed files)    ├──────────────► │ SnapshotCache├──► AdsServer (xDS port)
//!  │ → Store → Translator           │                └──────────────┘        │ NACKs
//!  │   (warm memo, plugins)         ├── statuses ──► merge_nacks ◄───────────┘
//!  └────────────────────────────────┘                     │
//!                                                        ▼
//!                      admin HTTP (/healthz, /readyz, /metrics, /debug/config, /debug/status)
//! ```
//!
//! Start at [`bind`], which returns a [`Bound`] holding the addresses actually bound
//! (tests bind port 0 and read them) and [`Bound::wait_termination`], which runs until
//! shutdown and then drains: the admin server stops accepting, every ADS stream ends (so
//! proxies reconnect elsewhere) and the translation thread finishes its pass and exits.
//!
//! Translation runs on its own thread, not on the async runtime: it is CPU-bound and
//! calls WebAssembly plugins synchronously. It watches the directory with `notify`
//! (inotify on Linux, recursive). A burst of events is translated as soon as every file
//! it names is *settled* (closed after writing, renamed into place or removed: the usual
//! ways editors and tools finish a file), after taking whatever else is already queued;
//! while some file is still being written, events are collected until none has arrived
//! for [`AppConfig::debounce`] (at most [`MAX_BATCH_DELAY`] after the first). Then only
//! the files they name are re-read ([`DirSource::update`]) and translated. If the watcher
//! cannot be set up or fails (the directory moved away, the inotify limit), the thread
//! falls back to rescanning the directory every [`AppConfig::rescan_interval`] and
//! retries the watcher each time. A directory that cannot be read is logged once per
//! distinct error and the last good snapshots keep serving.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::Watcher;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{AdminState, Metrics, Statuses};
use crate::plugin::{ObservedSession, PluginRuntime};
use crate::source::dir::{DirSource, Refresh};
use crate::source::file;
use crate::store::Store;
use crate::translate::Translator;
use crate::xds::{AdsServer, NackMap, SnapshotCache, merge_nacks};

/// How long the directory must be quiet after a change before it is translated.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);
/// How often the directory is rescanned while it cannot be watched.
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_millis(500);
/// The longest a burst of changes can postpone a pass.
pub const MAX_BATCH_DELAY: Duration = Duration::from_secs(1);

/// Everything `weir serve` needs; built from the command line by the CLI, or directly by
/// tests.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The directory of manifests to serve (read recursively).
    pub source_dir: PathBuf,
    /// Where the ADS server listens.
    pub xds_addr: SocketAddr,
    /// Where the admin HTTP server listens.
    pub admin_addr: SocketAddr,
    /// How long the directory must be quiet after a change before it is translated.
    pub debounce: Duration,
    /// How often the directory is rescanned while the watcher is not working.
    pub rescan_interval: Duration,
    /// Kubernetes mode (`--source kubernetes`): when set, objects come from the API
    /// server instead of `source_dir` (see [`crate::source::kubernetes::serve`]).
    pub kubernetes: Option<crate::source::kubernetes::serve::KubeArgs>,
    /// The directory the extra plugins were loaded from (`--plugin-dir`): watched, and
    /// the plugins reloaded when a `*.wasm` file in it is added, replaced or removed.
    pub plugin_dir: Option<PathBuf>,
}

/// A built and bound control plane, not yet running its loops.
pub struct Bound {
    xds_addr: SocketAddr,
    admin_addr: SocketAddr,
    xds_listener: TcpListener,
    admin_listener: TcpListener,
    server: AdsServer,
    translation: Translation,
    admin: AdminState,
    /// The statuses translation computed, before NACKs are merged in.
    translated_rx: watch::Receiver<Arc<Statuses>>,
    merged_tx: watch::Sender<Arc<Statuses>>,
}

/// Builds the cache, the ADS server and the metrics around the loaded plugins
/// (`runtime`) and binds both ports; nothing runs until [`Bound::wait_termination`].
pub async fn bind(config: AppConfig, runtime: PluginRuntime) -> anyhow::Result<Bound> {
    let cache = SnapshotCache::new();
    let server = AdsServer::new(cache.clone());
    let metrics = Arc::new(Metrics::new(server.metrics(), cache.clone()));
    let xds_listener = TcpListener::bind(config.xds_addr)
        .await
        .with_context(|| format!("cannot listen for xDS on {}", config.xds_addr))?;
    let admin_listener = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("cannot listen for admin HTTP on {}", config.admin_addr))?;
    let (ready_tx, ready_rx) = watch::channel(false);
    let (translated_tx, translated_rx) = watch::channel(Arc::new(Statuses::new()));
    let (merged_tx, merged_rx) = watch::channel(Arc::new(Statuses::new()));
    let kubernetes = match &config.kubernetes {
        Some(args) => {
            Some(crate::source::kubernetes::serve::KubeMode::start(args, merged_rx.clone()).await?)
        }
        None => None,
    };
    Ok(Bound {
        xds_addr: xds_listener.local_addr()?,
        admin_addr: admin_listener.local_addr()?,
        xds_listener,
        admin_listener,
        server,
        translation: Translation {
            source: DirSource::new(config.source_dir),
            debounce: config.debounce,
            rescan_interval: config.rescan_interval,
            plugins: PluginDir::new(config.plugin_dir.clone()),
            runtime,
            cache: cache.clone(),
            metrics: metrics.clone(),
            ready_tx,
            statuses_tx: translated_tx,
            kubernetes,
        },
        admin: AdminState {
            ready: ready_rx,
            metrics,
            cache,
            statuses: merged_rx,
        },
        translated_rx,
        merged_tx,
    })
}

impl Bound {
    /// The address the ADS server listens on.
    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    /// The address the admin HTTP server listens on.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Runs every loop until `shutdown` completes, then drains them and returns.
    pub async fn wait_termination(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (drain_tx, drain_rx) = watch::channel(false);
        let (wake_tx, wake_rx) = mpsc::channel::<Wake>();
        let mut translation = self.translation;
        let watcher_tx = wake_tx.clone();
        let mut election = None;
        if let Some(kube) = translation.kubernetes.as_mut() {
            let (_, events) = tokio::sync::mpsc::unbounded_channel();
            let events = std::mem::replace(&mut kube.events, events);
            tokio::spawn(forward_source_events(events, wake_tx.clone()));
            election = kube.guard.take_election();
        }
        let translating = std::thread::Builder::new()
            .name("weir-translate".into())
            .spawn(move || translation.run(wake_rx, watcher_tx))
            .context("cannot start the translation thread")?;

        let statuses = tokio::spawn(merge_statuses(
            self.translated_rx,
            self.server.nacks().subscribe(),
            self.merged_tx,
            drain_rx.clone(),
        ));
        let admin = tokio::spawn(crate::admin::serve(
            self.admin_listener,
            self.admin,
            drain_rx.clone(),
        ));
        let mut xds_drain = drain_rx;
        let xds = tokio::spawn(self.server.serve(self.xds_listener, async move {
            let _ = xds_drain.wait_for(|drained| *drained).await;
        }));
        tracing::info!(xds = %self.xds_addr, admin = %self.admin_addr, "weir is serving");

        shutdown.await;
        if let Some(election) = election {
            // Give the Lease up so another replica takes over at once.
            election.release().await;
        }
        tracing::info!("shutting down: draining xDS streams and the admin server");
        let _ = drain_tx.send(true);
        let _ = wake_tx.send(Wake::Stop);
        let xds_result = xds.await.context("the xDS server task failed")?;
        admin.await.context("the admin server task failed")?;
        statuses.await.context("the status task failed")?;
        tokio::task::spawn_blocking(move || translating.join())
            .await
            .context("cannot join the translation thread")?
            .map_err(|_| anyhow::anyhow!("the translation thread panicked"))?;
        xds_result.context("the xDS server failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}

// === Status ===

/// Keeps `merged` equal to the translated statuses with the standing NACKs merged in
/// ([`merge_nacks`]), until `drain_rx` turns `true`.
async fn merge_statuses(
    mut translated: watch::Receiver<Arc<Statuses>>,
    mut nacks: watch::Receiver<NackMap>,
    merged: watch::Sender<Arc<Statuses>>,
    mut drain_rx: watch::Receiver<bool>,
) {
    loop {
        let statuses = translated.borrow_and_update().clone();
        let standing = nacks.borrow_and_update().clone();
        let now = kubernetes_time(k8s_openapi::jiff::Timestamp::now());
        merged.send_replace(Arc::new(merge_nacks(&statuses, &standing, &now)));
        let changed = tokio::select! {
            biased;
            _ = drain_rx.wait_for(|drained| *drained) => return,
            changed = translated.changed() => changed,
            changed = nacks.changed() => changed,
        };
        if changed.is_err() {
            return;
        }
    }
}

/// A timestamp as Kubernetes writes `lastTransitionTime` (RFC 3339, whole seconds).
fn kubernetes_time(now: k8s_openapi::jiff::Timestamp) -> String {
    let time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
    match serde_json::to_value(time) {
        Ok(serde_json::Value::String(s)) => s,
        _ => now.to_string(),
    }
}

// === Translation loop ===

/// What wakes the translation thread.
#[derive(Debug)]
enum Wake {
    /// The watcher saw these paths change; `settled` when the change finishes a write
    /// (close after writing, rename, removal), so no more writes are expected.
    Changed {
        /// The paths the event names.
        paths: Vec<PathBuf>,
        /// Whether the event finishes a write.
        settled: bool,
    },
    /// The watcher lost events (queue overflow): everything must be rescanned.
    Rescan,
    /// The watcher failed; fall back to rescanning.
    WatchFailed(String),
    /// The Kubernetes source reported a change.
    Source(crate::source::SourceEvent),
    /// Shut down.
    Stop,
}

/// What the next pass must read.
#[derive(Debug)]
enum Pending {
    /// Walk the whole directory.
    Rescan,
    /// Only these paths.
    Paths(BTreeSet<PathBuf>),
}

impl Pending {
    fn add(this: &mut Option<Pending>, wake: Wake) {
        match (this.as_mut(), wake) {
            (_, Wake::Stop | Wake::Source(_)) => {}
            (Some(Pending::Rescan), _) => {}
            (Some(Pending::Paths(paths)), Wake::Changed { paths: new, .. }) => paths.extend(new),
            (None, Wake::Changed { paths: new, .. }) => {
                *this = Some(Pending::Paths(new.into_iter().collect()))
            }
            (_, Wake::Rescan | Wake::WatchFailed(_)) => *this = Some(Pending::Rescan),
        }
    }
}

/// The files of a burst that may still be written to: a pass waits for the debounce
/// while there is any (or a rescan, which may follow lost events).
#[derive(Debug, Default)]
struct Writing {
    unsettled: BTreeSet<PathBuf>,
    rescan: bool,
}

impl Writing {
    fn note(&mut self, wake: &Wake) {
        match wake {
            Wake::Changed {
                paths,
                settled: true,
            } => paths.iter().for_each(|p| {
                self.unsettled.remove(p);
            }),
            Wake::Changed {
                paths,
                settled: false,
            } => self.unsettled.extend(paths.iter().cloned()),
            Wake::Rescan | Wake::WatchFailed(_) => self.rescan = true,
            Wake::Source(_) | Wake::Stop => {}
        }
    }

    fn is_settled(&self) -> bool {
        self.unsettled.is_empty() && !self.rescan
    }
}

/// The translation thread's state: the plugins, the source and where results go.
struct Translation {
    source: DirSource,
    debounce: Duration,
    rescan_interval: Duration,
    /// Where the extra plugins come from, and what was loaded.
    plugins: PluginDir,
    runtime: PluginRuntime,
    cache: SnapshotCache,
    metrics: Arc<Metrics>,
    /// Turned `true` once the first pass is published.
    ready_tx: watch::Sender<bool>,
    /// The statuses of the latest pass.
    statuses_tx: watch::Sender<Arc<Statuses>>,
    /// Kubernetes mode: its events arrive as [`Wake::Source`] instead of file changes.
    kubernetes: Option<crate::source::kubernetes::serve::KubeMode>,
}

/// The translation thread's mutable state across passes.
struct Passes {
    store: Store,
    /// Warm across passes, so a pass redoes only what changed.
    translator: Translator,
    published: bool,
    /// The last read error logged, so a problem that persists is reported once.
    last_read_error: Option<String>,
    /// The same for the watcher.
    last_watch_error: Option<String>,
}

impl Translation {
    /// Translates whenever the directory changes, until told to stop.
    fn run(mut self, wake_rx: mpsc::Receiver<Wake>, wake_tx: mpsc::Sender<Wake>) {
        if self.kubernetes.is_some() {
            return self.run_kubernetes(wake_rx);
        }
        let span = tracing::info_span!("translate", dir = %self.source.absolute_root().display());
        let _entered = span.enter();
        let mut passes = Passes {
            store: Store::new(),
            translator: Translator::new(),
            published: false,
            last_read_error: None,
            last_watch_error: None,
        };
        let mut watcher: Option<notify::RecommendedWatcher> = None;
        let mut pending = Some(Pending::Rescan);
        loop {
            if watcher.is_none() {
                match watch(
                    self.source.absolute_root(),
                    self.plugins.dir.as_deref(),
                    wake_tx.clone(),
                ) {
                    Ok(w) => {
                        tracing::info!(
                            debounce_ms = self.debounce.as_millis() as u64,
                            "watching the source directory"
                        );
                        watcher = Some(w);
                        passes.last_watch_error = None;
                        // Anything may have changed while it was not watched.
                        pending = Some(Pending::Rescan);
                    }
                    Err(err) => report_once(
                        &mut passes.last_watch_error,
                        format!(
                            "cannot watch the source directory ({err}); rescanning it every {} ms",
                            self.rescan_interval.as_millis()
                        ),
                        false,
                    ),
                }
            }
            if let Some(what) = pending.take()
                && !self.pass(what, &mut passes)
            {
                // The directory may have moved away: watch it again once it is back.
                watcher = None;
            }
            let first = if watcher.is_some() {
                wake_rx
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
            } else {
                wake_rx.recv_timeout(self.rescan_interval)
            };
            match first {
                Err(mpsc::RecvTimeoutError::Timeout) => pending = Some(Pending::Rescan),
                Err(mpsc::RecvTimeoutError::Disconnected) | Ok(Wake::Stop) => return,
                Ok(wake) => {
                    if let Wake::WatchFailed(err) = &wake {
                        tracing::warn!(error = %err, "the directory watcher failed; rescanning");
                        watcher = None;
                    }
                    if collect_burst(wake, &wake_rx, &mut pending, self.debounce).is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Reads what changed, translates and publishes. Returns `false` when the directory
    /// could not be read (nothing changed then).
    fn pass(&mut self, what: Pending, passes: &mut Passes) -> bool {
        let started = Instant::now();
        let plugins_reloaded = self.reload_plugins_if_changed(&what, passes);
        let refreshed = match &what {
            Pending::Rescan => self.source.rescan(),
            Pending::Paths(paths) => {
                let manifests: Vec<PathBuf> = paths
                    .iter()
                    .filter(|p| !self.plugins.holds(p))
                    .cloned()
                    .collect();
                self.source.update(&manifests)
            }
        };
        let refresh: Refresh = match refreshed {
            Ok(refresh) => refresh,
            Err(err) => {
                self.metrics.translation_failed();
                report_once(
                    &mut passes.last_read_error,
                    format!(
                        "cannot read the source directory; the last good configuration keeps serving: {err}"
                    ),
                    true,
                );
                return false;
            }
        };
        passes.last_read_error = None;
        for diagnostic in &refresh.diagnostics {
            match diagnostic.severity {
                file::Severity::Error => {
                    tracing::error!(file = %diagnostic.file.display(), line = diagnostic.line, "{}", diagnostic.message)
                }
                file::Severity::Warning => {
                    tracing::warn!(file = %diagnostic.file.display(), line = diagnostic.line, "{}", diagnostic.message)
                }
            }
        }
        let mut changed_objects = 0;
        for event in refresh.events {
            changed_objects += passes.store.handle(event).len();
        }
        if changed_objects == 0 && passes.published && !plugins_reloaded {
            tracing::debug!(files_read = refresh.files_read, "no object changed");
            return true;
        }
        let read = started.elapsed();
        let translation = {
            let mut session = ObservedSession::new(&self.runtime, self.metrics.as_ref());
            passes.translator.translate(
                &passes.store,
                &mut session,
                k8s_openapi::jiff::Timestamp::now(),
            )
        };
        let translated = started.elapsed();
        let changed = self.cache.publish_all(&translation.gateways);
        let published = started.elapsed();
        self.statuses_tx
            .send_replace(Arc::new(translation.statuses));
        self.ready_tx.send_replace(true);
        passes.published = true;
        let elapsed = started.elapsed();
        self.metrics.translation(elapsed);
        let stats = passes.translator.last_pass();
        tracing::info!(
            files_read = refresh.files_read,
            files_removed = refresh.files_removed,
            objects_changed = changed_objects,
            gateways = translation.gateways.len(),
            snapshots_changed = changed,
            routes_translated = stats.routes_translated,
            read_us = read.as_micros() as u64,
            translate_us = (translated - read).as_micros() as u64,
            publish_us = (published - translated).as_micros() as u64,
            elapsed_us = elapsed.as_micros() as u64,
            "translated and published"
        );
        true
    }
}

impl Translation {
    /// Reloads every plugin when `what` may have touched the plugin directory and its
    /// `*.wasm` files changed (added, replaced or removed); the translator then starts
    /// afresh, since anything it memoised may have come from an old plugin. A file that
    /// fails to load is logged and skipped; objects using the keys it claimed become
    /// `Accepted=False` ("no plugin claims"). Returns whether the plugins were reloaded.
    fn reload_plugins_if_changed(&mut self, what: &Pending, passes: &mut Passes) -> bool {
        let touched = match what {
            Pending::Rescan => true,
            Pending::Paths(paths) => paths.iter().any(|p| self.plugins.holds(p)),
        };
        if !touched || !self.plugins.changed() {
            return false;
        }
        let config = self.runtime.config().clone();
        match PluginRuntime::with_plugins(config, self.plugins.dir.as_deref()) {
            Ok((runtime, errors)) => {
                for err in errors {
                    tracing::error!("plugin not loaded: {err}");
                }
                self.runtime = runtime;
                passes.translator = Translator::new();
                tracing::info!(plugins = self.runtime.plugins().len(), "plugins reloaded");
                true
            }
            Err(err) => {
                tracing::error!(
                    "cannot reload the plugins; the ones loaded before keep working: {err:#}"
                );
                false
            }
        }
    }
}

/// The `--plugin-dir` directory and what its `*.wasm` files looked like when last loaded.
struct PluginDir {
    dir: Option<PathBuf>,
    /// Each file's name, size and modification time.
    loaded: Vec<(PathBuf, u64, Option<std::time::SystemTime>)>,
}

impl PluginDir {
    /// `dir` as loaded at start-up.
    fn new(dir: Option<PathBuf>) -> Self {
        // Canonical, as the watcher reports the paths under it.
        let dir = dir.map(|d| std::fs::canonicalize(&d).unwrap_or(d));
        let mut this = Self {
            dir,
            loaded: Vec::new(),
        };
        this.loaded = this.files();
        this
    }

    /// Whether `path` is in the plugin directory.
    fn holds(&self, path: &std::path::Path) -> bool {
        self.dir
            .as_deref()
            .is_some_and(|d| path.parent() == Some(d) || path == d)
    }

    /// The directory's plugin files now.
    fn files(&self) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let len = meta.as_ref().map_or(0, |m| m.len());
                let modified = meta.and_then(|m| m.modified().ok());
                (p, len, modified)
            })
            .collect();
        files.sort();
        files
    }

    /// Whether the files differ from those last loaded (and remembers them if so).
    fn changed(&mut self) -> bool {
        let now = self.files();
        if now == self.loaded {
            return false;
        }
        self.loaded = now;
        true
    }
}

/// Adds `first` and the rest of its burst to `pending`: everything already queued once
/// every file named is settled, else until none arrived for `debounce` (or
/// [`MAX_BATCH_DELAY`] passed). `Err` means stop.
fn collect_burst(
    first: Wake,
    wake_rx: &mpsc::Receiver<Wake>,
    pending: &mut Option<Pending>,
    debounce: Duration,
) -> Result<(), ()> {
    let deadline = Instant::now() + MAX_BATCH_DELAY;
    let mut writing = Writing::default();
    writing.note(&first);
    Pending::add(pending, first);
    loop {
        let quiet_for = if writing.is_settled() {
            Duration::ZERO
        } else {
            debounce
        };
        let wait = quiet_for.min(deadline.saturating_duration_since(Instant::now()));
        match wake_rx.recv_timeout(wait) {
            Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return Err(()),
            Ok(wake) => {
                writing.note(&wake);
                Pending::add(pending, wake);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return Ok(()),
        }
    }
}

// === Kubernetes source ===

/// Hands the Kubernetes source's events to the translation thread.
async fn forward_source_events(
    mut events: tokio::sync::mpsc::UnboundedReceiver<crate::source::SourceEvent>,
    wake_tx: mpsc::Sender<Wake>,
) {
    while let Some(event) = events.recv().await {
        if wake_tx.send(Wake::Source(event)).is_err() {
            return;
        }
    }
}

impl Translation {
    /// Kubernetes mode: applies each burst of source events (debounced like file changes)
    /// and translates, until told to stop. Nothing is published before the source's first
    /// event, the complete initial sync.
    fn run_kubernetes(self, wake_rx: mpsc::Receiver<Wake>) {
        let span = tracing::info_span!("translate", source = "kubernetes");
        let _entered = span.enter();
        let mut passes = Passes {
            store: Store::new(),
            translator: Translator::new(),
            published: false,
            last_read_error: None,
            last_watch_error: None,
        };
        loop {
            let mut events = Vec::new();
            match wake_rx.recv() {
                Ok(Wake::Source(event)) => events.push(event),
                Ok(Wake::Stop) | Err(_) => return,
                Ok(_) => continue,
            }
            let deadline = Instant::now() + MAX_BATCH_DELAY;
            loop {
                let wait = self
                    .debounce
                    .min(deadline.saturating_duration_since(Instant::now()));
                match wake_rx.recv_timeout(wait) {
                    Ok(Wake::Source(event)) => events.push(event),
                    Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    Ok(_) => {}
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                }
            }
            let started = Instant::now();
            let changed_objects: usize = events
                .into_iter()
                .map(|e| passes.store.handle(e).len())
                .sum();
            if changed_objects == 0 && passes.published {
                continue;
            }
            let translation = {
                let mut session = ObservedSession::new(&self.runtime, self.metrics.as_ref());
                passes.translator.translate(
                    &passes.store,
                    &mut session,
                    k8s_openapi::jiff::Timestamp::now(),
                )
            };
            let changed = self.cache.publish_all(&translation.gateways);
            self.statuses_tx
                .send_replace(Arc::new(translation.statuses));
            self.ready_tx.send_replace(true);
            passes.published = true;
            let elapsed = started.elapsed();
            self.metrics.translation(elapsed);
            tracing::info!(
                objects = passes.store.len(),
                objects_changed = changed_objects,
                gateways = translation.gateways.len(),
                snapshots_changed = changed,
                routes_translated = passes.translator.last_pass().routes_translated,
                elapsed_us = elapsed.as_micros() as u64,
                "translated and published"
            );
        }
    }
}

/// Logs `message` (as an error, else a warning) unless `last` already holds it.
fn report_once(last: &mut Option<String>, message: String, error: bool) {
    if last.as_ref() == Some(&message) {
        return;
    }
    if error {
        tracing::error!("{message}");
    } else {
        tracing::warn!("{message}");
    }
    *last = Some(message);
}

/// Watches `dir` recursively (and `plugin_dir`, without its subdirectories), sending what
/// changes to `wake_tx`. Reads (opens, closes
/// without writing) are not changes, so the source reading its own files wakes nothing.
fn watch(
    dir: &std::path::Path,
    plugin_dir: Option<&std::path::Path>,
    wake_tx: mpsc::Sender<Wake>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Some(wake) = wake_for(event) {
            // The thread is gone only when shutting down.
            let _ = wake_tx.send(wake);
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::Recursive)?;
    if let Some(plugin_dir) = plugin_dir {
        watcher.watch(plugin_dir, notify::RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// What a watcher event means for the translation thread; `None` for reads.
fn wake_for(event: notify::Result<notify::Event>) -> Option<Wake> {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
    let event = match event {
        Err(err) => return Some(Wake::WatchFailed(err.to_string())),
        Ok(event) if event.need_rescan() => return Some(Wake::Rescan),
        Ok(event) => event,
    };
    let settled = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => return None,
        EventKind::Create(CreateKind::Folder) => true,
        EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_)) => true,
        EventKind::Remove(_) => true,
        _ => false,
    };
    Some(Wake::Changed {
        paths: event.paths,
        settled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind, RenameMode,
    };

    fn event(kind: EventKind, path: &str) -> Wake {
        let event = notify::Event::new(kind).add_path(PathBuf::from(path));
        wake_for(Ok(event)).expect("a change")
    }

    fn written(path: &str) -> [Wake; 3] {
        [
            event(EventKind::Create(CreateKind::File), path),
            event(EventKind::Modify(ModifyKind::Data(DataChange::Any)), path),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                path,
            ),
        ]
    }

    /// Runs `collect_burst` on `first` with `queued` already waiting and the sender kept
    /// open: the paths collected and how long it took.
    fn burst(first: Wake, queued: Vec<Wake>, debounce: Duration) -> (Vec<PathBuf>, Duration) {
        let (tx, rx) = mpsc::channel();
        for wake in queued {
            tx.send(wake).unwrap();
        }
        let mut pending = None;
        let started = Instant::now();
        collect_burst(first, &rx, &mut pending, debounce).expect("not stopped");
        let elapsed = started.elapsed();
        drop(tx);
        match pending {
            Some(Pending::Paths(paths)) => (paths.into_iter().collect(), elapsed),
            other => panic!("expected paths, got {other:?}"),
        }
    }

    #[test]
    fn reads_wake_nothing() {
        let read = notify::Event::new(EventKind::Access(AccessKind::Close(AccessMode::Read)));
        assert!(wake_for(Ok(read)).is_none());
    }

    #[test]
    fn a_file_written_and_closed_is_translated_without_waiting_for_the_debounce() {
        let [create, modify, close] = written("/d/a.yaml");
        let (paths, elapsed) = burst(create, vec![modify, close], Duration::from_secs(600));
        assert_eq!(paths, [PathBuf::from("/d/a.yaml")]);
        assert!(elapsed < Duration::from_secs(60), "waited {elapsed:?}");
    }

    #[test]
    fn a_file_renamed_into_place_or_removed_is_settled_and_the_queue_is_taken_along() {
        let renamed = event(
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            "/d/b.yaml",
        );
        let removed = event(
            EventKind::Remove(notify::event::RemoveKind::File),
            "/d/c.yaml",
        );
        let (paths, elapsed) = burst(renamed, vec![removed], Duration::from_secs(600));
        assert_eq!(
            paths,
            [PathBuf::from("/d/b.yaml"), PathBuf::from("/d/c.yaml")]
        );
        assert!(elapsed < Duration::from_secs(60), "waited {elapsed:?}");
    }

    #[test]
    fn a_file_still_being_written_waits_for_the_debounce() {
        let [create, modify, _] = written("/d/a.yaml");
        let debounce = Duration::from_millis(300);
        let (paths, elapsed) = burst(create, vec![modify], debounce);
        assert_eq!(paths, [PathBuf::from("/d/a.yaml")]);
        assert!(elapsed >= debounce, "returned after {elapsed:?}");
    }
}
