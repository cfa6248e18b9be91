//! `weir serve`: parse the arguments, load the plugins and hand over to
//! [`crate::app`], which runs the control plane until SIGTERM or ctrl-c.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use clap::Args;

use crate::app::{AppConfig, DEFAULT_DEBOUNCE, DEFAULT_RESCAN_INTERVAL};

/// Arguments of `weir serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the manifests come from: `file:DIR`, a directory read recursively, watched,
    /// and re-read (only the files that changed) 50 ms after the last change; or
    /// `kubernetes`, the API server (watched, with status written back).
    #[arg(long, value_name = "file:DIR|kubernetes", default_value = "file:.")]
    pub source: SourceArg,
    /// Where the xDS (ADS) server listens.
    #[arg(long, default_value = "127.0.0.1:18000")]
    pub xds_addr: SocketAddr,
    /// Where the admin HTTP server listens (/healthz, /readyz, /metrics,
    /// /debug/config?gateway=NS/NAME, /debug/status).
    #[arg(long, default_value = "127.0.0.1:19100")]
    pub admin_addr: SocketAddr,
    /// A directory of extra plugins (*.wasm) to load next to the built-in ones; it is
    /// watched, and the plugins reloaded when a file in it is added, replaced or removed.
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// Kubernetes mode's flags (used with `--source kubernetes`).
    #[command(flatten)]
    pub kubernetes: crate::source::kubernetes::serve::KubeArgs,
}

/// A `--source` value.
#[derive(Clone, Debug)]
pub enum SourceArg {
    /// `file:DIR`.
    File(PathBuf),
    /// `kubernetes`: the API server of the kubeconfig's current context (or in-cluster).
    Kubernetes,
}

impl FromStr for SourceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "kubernetes" {
            return Ok(Self::Kubernetes);
        }
        match s.split_once(':') {
            Some(("file", dir)) if !dir.is_empty() => Ok(Self::File(PathBuf::from(dir))),
            _ => Err(format!(
                "`{s}` is not a source; expected file:DIR (for example file:examples/quickstart) or kubernetes"
            )),
        }
    }
}

pub(super) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (source_dir, kubernetes) = match args.source {
        SourceArg::File(dir) => (dir, None),
        SourceArg::Kubernetes => (PathBuf::from("."), Some(args.kubernetes)),
    };
    let config = AppConfig {
        source_dir,
        xds_addr: args.xds_addr,
        admin_addr: args.admin_addr,
        debounce: DEFAULT_DEBOUNCE,
        rescan_interval: DEFAULT_RESCAN_INTERVAL,
        kubernetes,
        plugin_dir: args.plugin_dir.clone(),
    };
    let runtime = super::load_runtime(args.plugin_dir.as_deref())?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir")
        .build()
        .context("cannot start the async runtime")?
        .block_on(async move {
            let bound = crate::app::bind(config, runtime).await?;
            bound.wait_termination(shutdown_signal()).await
        })
}

/// Completes on ctrl-c or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
