//! The `weir serve` runtime: builds every component, binds every port, then runs until
//! told to stop.
//!
//! ```text
//!  translation thread (std)                        tokio
//!  ┌──────────────────────────────┐
//!  │ poll DIR every 500 ms        │   publish_all   ┌──────────────┐
//!  │ → file::load → Store::handle ├───────────────► │ SnapshotCache├──► AdsServer (xDS port)
//!  │ → Translator::translate      │                 └──────────────┘
//!  │   (warm memo, plugins)       ├── ready ──────► admin HTTP (/healthz, /readyz)
//!  └──────────────────────────────┘
//! ```
//!
//! Start at [`bind`], which returns a [`Bound`] holding the addresses actually bound
//! (tests bind port 0 and read them) and [`Bound::wait_termination`], which runs until
//! shutdown and then drains: the admin server stops accepting, every ADS stream ends (so
//! proxies reconnect elsewhere) and the translation thread finishes its pass and exits.
//!
//! Translation runs on its own thread, not on the async runtime: it is CPU-bound and
//! calls WebAssembly plugins synchronously. It watches the directory by polling file
//! modification times and sizes every [`AppConfig::poll_interval`]; polling coalesces a
//! burst of writes into one pass (the interval is the debounce) and needs no platform
//! notification API. A directory that cannot be read, or a pass that fails, is logged and
//! the last good snapshots keep serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::plugin::PluginRuntime;
use crate::source::file;
use crate::store::Store;
use crate::translate::Translator;
use crate::xds::{AdsServer, SnapshotCache};

/// How often the directory is checked for changes when not configured.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

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
    /// How often the directory is checked for changes.
    pub poll_interval: Duration,
}

/// A built and bound control plane, not yet running its loops.
pub struct Bound {
    xds_addr: SocketAddr,
    admin_addr: SocketAddr,
    xds_listener: TcpListener,
    admin_listener: TcpListener,
    server: AdsServer,
    translation: Translation,
    ready_rx: watch::Receiver<bool>,
}

/// Builds the cache and the ADS server around the loaded plugins (`runtime`) and binds
/// both ports; nothing runs until [`Bound::wait_termination`].
pub async fn bind(config: AppConfig, runtime: PluginRuntime) -> anyhow::Result<Bound> {
    let cache = SnapshotCache::new();
    let server = AdsServer::new(cache.clone());
    let xds_listener = TcpListener::bind(config.xds_addr)
        .await
        .with_context(|| format!("cannot listen for xDS on {}", config.xds_addr))?;
    let admin_listener = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("cannot listen for admin HTTP on {}", config.admin_addr))?;
    let (ready_tx, ready_rx) = watch::channel(false);
    Ok(Bound {
        xds_addr: xds_listener.local_addr()?,
        admin_addr: admin_listener.local_addr()?,
        xds_listener,
        admin_listener,
        server,
        translation: Translation {
            dir: config.source_dir,
            poll_interval: config.poll_interval,
            runtime,
            cache,
            ready_tx,
        },
        ready_rx,
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
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let translation = self.translation;
        let translating = std::thread::Builder::new()
            .name("weir-translate".into())
            .spawn(move || translation.run(stop_rx))
            .context("cannot start the translation thread")?;

        let admin = tokio::spawn(serve_admin(
            self.admin_listener,
            self.ready_rx,
            drain_rx.clone(),
        ));
        let mut xds_drain = drain_rx;
        let xds = tokio::spawn(self.server.serve(self.xds_listener, async move {
            let _ = xds_drain.wait_for(|drained| *drained).await;
        }));
        tracing::info!(xds = %self.xds_addr, admin = %self.admin_addr, "weir is serving");

        shutdown.await;
        tracing::info!("shutting down: draining xDS streams and the admin server");
        let _ = drain_tx.send(true);
        drop(stop_tx);
        let xds_result = xds.await.context("the xDS server task failed")?;
        admin.await.context("the admin server task failed")?;
        tokio::task::spawn_blocking(move || translating.join())
            .await
            .context("cannot join the translation thread")?
            .map_err(|_| anyhow::anyhow!("the translation thread panicked"))?;
        xds_result.context("the xDS server failed")?;
        tracing::info!("stopped");
        Ok(())
    }
}

// === Translation loop ===

/// The translation thread's state: the plugins, the directory and where results go.
struct Translation {
    dir: PathBuf,
    poll_interval: Duration,
    runtime: PluginRuntime,
    cache: SnapshotCache,
    /// Turned `true` once the first pass is published.
    ready_tx: watch::Sender<bool>,
}

/// What the directory looked like: every entry's path, size and modification time.
type Fingerprint = BTreeMap<PathBuf, (u64, Option<SystemTime>)>;

impl Translation {
    /// Translates whenever the directory changes, until `stop_rx` is dropped or signalled.
    fn run(self, stop_rx: mpsc::Receiver<()>) {
        let span = tracing::info_span!("translate", dir = %self.dir.display());
        let _entered = span.enter();
        let mut store = Store::new();
        // Warm across passes, so a pass redoes only what changed.
        let mut translator = Translator::new();
        let mut last: Option<Fingerprint> = None;
        // The last read error logged, so a directory that stays unreadable is reported
        // once per distinct error rather than every poll.
        let mut last_error: Option<String> = None;
        loop {
            let read = fingerprint(&self.dir).and_then(|current| {
                if last.as_ref() != Some(&current) {
                    self.pass(&mut store, &mut translator)?;
                    last = Some(current);
                }
                Ok(())
            });
            match read {
                Ok(()) => last_error = None,
                Err(err) => {
                    let message = format!("{err:#}");
                    if last_error.as_ref() != Some(&message) {
                        tracing::error!(
                            error = %message,
                            "cannot read the source directory; the last good configuration keeps serving"
                        );
                        last_error = Some(message);
                    }
                }
            }
            match stop_rx.recv_timeout(self.poll_interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Reads the directory, translates and publishes. A directory that cannot be read
    /// changes nothing.
    fn pass(&self, store: &mut Store, translator: &mut Translator) -> anyhow::Result<()> {
        let started = Instant::now();
        let loaded = file::load(&[&self.dir])?;
        for diagnostic in &loaded.diagnostics {
            match diagnostic.severity {
                file::Severity::Error => tracing::error!("{diagnostic}"),
                file::Severity::Warning => tracing::warn!("{diagnostic}"),
            }
        }
        store.handle(loaded.into_event());
        let mut session = self.runtime.session();
        let translation =
            translator.translate(store, &mut session, k8s_openapi::jiff::Timestamp::now());
        let changed = self.cache.publish_all(&translation.gateways);
        self.ready_tx.send_replace(true);
        let stats = translator.last_pass();
        tracing::info!(
            gateways = translation.gateways.len(),
            changed,
            routes_translated = stats.routes_translated,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "translated and published"
        );
        Ok(())
    }
}

/// Every entry under `dir` with its size and modification time (hidden entries skipped,
/// as the file source skips them).
fn fingerprint(dir: &Path) -> anyhow::Result<Fingerprint> {
    let mut out = Fingerprint::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta =
            std::fs::metadata(&path).with_context(|| format!("cannot stat {}", path.display()))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path)
                .with_context(|| format!("cannot list {}", path.display()))?;
            for entry in entries {
                let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
                if !entry.file_name().to_string_lossy().starts_with('.') {
                    pending.push(entry.path());
                }
            }
        } else {
            out.insert(path, (meta.len(), meta.modified().ok()));
        }
    }
    Ok(out)
}

// === Admin HTTP ===

/// Serves `/healthz` and `/readyz` until `drain_rx` turns `true`.
async fn serve_admin(
    listener: TcpListener,
    ready_rx: watch::Receiver<bool>,
    mut drain_rx: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = drain_rx.wait_for(|drained| *drained) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(error = %err, "admin accept failed");
                continue;
            }
        };
        let ready_rx = ready_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let ready = *ready_rx.borrow();
                async move { Ok::<_, std::convert::Infallible>(admin_response(&req, ready)) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "admin connection failed");
            }
        });
    }
}

/// The answer to one admin request.
fn admin_response<B>(req: &Request<B>, ready: bool) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n"),
        "/readyz" if ready => (StatusCode::OK, "ready\n"),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no configuration published yet\n",
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::get(path).body(()).unwrap()
    }

    #[test]
    fn readyz_is_unavailable_until_ready() {
        assert_eq!(
            admin_response(&get("/readyz"), false).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            admin_response(&get("/readyz"), true).status(),
            StatusCode::OK
        );
        assert_eq!(
            admin_response(&get("/healthz"), false).status(),
            StatusCode::OK
        );
        assert_eq!(
            admin_response(&get("/nope"), true).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn fingerprint_changes_when_a_file_changes_and_skips_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        let before = fingerprint(dir.path()).unwrap();
        assert_eq!(before.len(), 1);
        std::fs::write(dir.path().join("a.yaml"), "ab").unwrap();
        assert_ne!(fingerprint(dir.path()).unwrap(), before);
        assert!(fingerprint(&dir.path().join("missing")).is_err());
    }
}
