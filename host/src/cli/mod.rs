//! The `weir` command line: argument parsing and the wiring behind each subcommand.

mod bootstrap;
mod plugin;
mod serve;
mod translate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Weir: a Gateway API control plane for Envoy with WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// How logs (on stderr) are written: `text` or `json` (one JSON object per line).
    /// `RUST_LOG` picks what is logged (default: `info` for `serve`, `warn` otherwise).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with every structured field.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Translate manifests offline and print every Gateway's Envoy resources (in Envoy's
    /// proto3 JSON form, secrets redacted) followed by the status of every input object.
    Translate(translate::TranslateArgs),
    /// Print the CustomResourceDefinitions of Weir's own kinds (Upstream, the option
    /// kinds, DirectResponse) as multi-document YAML.
    Crds,
    /// Print the Envoy bootstrap (JSON) for one Gateway's proxies: node identity, ADS over
    /// gRPC to Weir, admin on loopback.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Run the control plane: read manifests, translate, serve xDS, re-translate on change.
    Serve(serve::ServeArgs),
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
    // A server reports what it does; the one-shot commands stay quiet unless asked.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    init_tracing(cli.log_format == LogFormat::Json, default_level);
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
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
        Command::Translate(args) => translate::run(&args),
        Command::Crds => {
            print!("{}", crate::model::crds::render());
            Ok(())
        }
        Command::Bootstrap(args) => bootstrap::run(&args),
        Command::Serve(args) => serve::run(args),
        Command::Plugin { command } => match command {
            PluginCommand::Inspect { file, json } => plugin::inspect(&file, json),
            PluginCommand::Check { file } => plugin::check(&file),
            PluginCommand::List { plugin_dir } => plugin::list(plugin_dir.as_deref()),
        },
    }
}

/// A runtime with the built-in plugins and, when given, those of `plugin_dir`. A plugin
/// of the directory that cannot be loaded is reported on stderr and skipped.
fn load_runtime(
    plugin_dir: Option<&std::path::Path>,
) -> anyhow::Result<crate::plugin::PluginRuntime> {
    let (runtime, errors) = crate::plugin::PluginRuntime::with_plugins(
        crate::plugin::RuntimeConfig::default(),
        plugin_dir,
    )?;
    for err in errors {
        eprintln!("skipped: {err}");
    }
    Ok(runtime)
}
