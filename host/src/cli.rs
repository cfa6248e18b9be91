//! The `weir` command line: argument parsing and the wiring behind each subcommand.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::plugin::{self, PluginRuntime, RuntimeConfig};

/// Weir: a Gateway API control plane for Envoy with WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// Write logs as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CustomResourceDefinitions of Weir's own kinds (Upstream, the option
    /// kinds, DirectResponse) as multi-document YAML.
    Crds,
    /// Inspect, check and list plugins.
    Plugin {
        /// What to do with plugins.
        #[command(subcommand)]
        command: PluginCommand,
    },
}

/// `weir plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's metadata: name, version, API version, claimed keys, config schema.
    Inspect {
        /// The plugin's .wasm file.
        file: PathBuf,
        /// Print the metadata as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load and link a plugin next to the built-in ones; fail with the reason if it cannot be.
    Check {
        /// The plugin's .wasm file.
        file: PathBuf,
    },
    /// Load the built-in plugins (and those in a directory) and list what they claim.
    List {
        /// A directory of extra plugins (*.wasm).
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
    },
}

/// Parses the command line, runs the command and maps the outcome to an exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Crds => {
            print!("{}", crate::model::crds::render());
            Ok(())
        }
        Command::Plugin { command } => match command {
            PluginCommand::Inspect { file, json } => inspect(&file, json),
            PluginCommand::Check { file } => check(&file),
            PluginCommand::List { plugin_dir } => list(plugin_dir.as_deref()),
        },
    }
}

fn inspect(file: &Path, json: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let origin = file.display().to_string();
    let meta = plugin::metadata::read(&bytes, &origin)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&meta)?);
        return Ok(());
    }
    println!("plugin:      {}", meta.name);
    println!("version:     {}", meta.version);
    println!(
        "api version: {} (this Weir implements {})",
        meta.api_version,
        plugin::metadata::HOST_API_VERSION
    );
    println!("world:       {}", meta.world);
    println!("keys:        {}", meta.keys.join(", "));
    println!("size:        {} bytes", bytes.len());
    for (key, schema) in &meta.config_schema {
        println!("config schema of `{key}`:");
        println!("{}", serde_json::to_string_pretty(schema)?);
    }
    Ok(())
}

fn check(file: &Path) -> anyhow::Result<()> {
    let mut runtime = PluginRuntime::new(RuntimeConfig::default())?;
    plugin::builtin::load_all(&mut runtime).context("cannot load the built-in plugins")?;
    let loaded = runtime.load_file(file)?;
    println!(
        "ok: {}: {} plugin for API {}, claims {}",
        loaded.id,
        loaded.metadata.world,
        loaded.metadata.api_version,
        loaded.metadata.keys.join(", ")
    );
    Ok(())
}

fn list(plugin_dir: Option<&Path>) -> anyhow::Result<()> {
    let mut runtime = PluginRuntime::new(RuntimeConfig::default())?;
    plugin::builtin::load_all(&mut runtime).context("cannot load the built-in plugins")?;
    if let Some(dir) = plugin_dir {
        for path in plugin_files(dir)? {
            if let Err(err) = runtime.load_file(&path) {
                eprintln!("skipped: {err}");
            }
        }
    }
    for plugin in runtime.plugins() {
        println!(
            "{:<16} {:<9} {:<18} {}",
            plugin.id.name,
            plugin.id.version,
            plugin.metadata.world.to_string(),
            plugin.metadata.keys.join(", ")
        );
    }
    Ok(())
}

/// The `*.wasm` files of a plugin directory, sorted so load order is deterministic.
pub fn plugin_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
