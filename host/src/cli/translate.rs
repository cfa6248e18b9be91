//! `weir translate`: the whole pipeline offline — read manifests, translate them with the
//! loaded plugins, print what each Gateway's proxies would be served and the status every
//! input object would get.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::envoy_json;
use crate::source::file;
use crate::store::Store;
use crate::translate::{GatewayResources, Translator};

/// Arguments of `weir translate`.
#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// Manifest files or directories (read recursively): Gateway API kinds, Weir kinds,
    /// Namespaces, Services, EndpointSlices, Secrets.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// A directory of extra plugins (*.wasm) to load next to the built-in ones.
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
}

/// How `weir translate` prints its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// YAML.
    Yaml,
    /// Pretty-printed JSON.
    Json,
}

pub(super) fn run(args: &TranslateArgs) -> anyhow::Result<()> {
    let loaded = file::load(&args.paths)?;
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    let mut store = Store::new();
    store.handle(loaded.into_event());

    let runtime = super::load_runtime(args.plugin_dir.as_deref())?;
    let mut session = runtime.session();
    let translation =
        Translator::new().translate(&store, &mut session, k8s_openapi::jiff::Timestamp::now());

    let mut gateways = serde_json::Map::new();
    for (key, resources) in &translation.gateways {
        let name = format!(
            "{}/{}",
            key.namespace.as_deref().unwrap_or_default(),
            key.name
        );
        let rendered =
            render(resources).with_context(|| format!("cannot render Gateway {name}"))?;
        gateways.insert(name, rendered);
    }
    let status: BTreeMap<String, &Value> = translation
        .statuses
        .iter()
        .map(|(key, status)| (key.to_string(), &**status))
        .collect();
    let document = json!({ "gateways": gateways, "status": status });
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&document)?),
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(&document)?),
    }
    Ok(())
}

/// One Gateway's resources as Envoy's `/config_dump` prints them (proto3 JSON with
/// the proto field names), secrets redacted.
fn render(resources: &GatewayResources) -> Result<Value, envoy_json::JsonError> {
    fn all<'a, M: prost::Message + prost::Name + 'a>(
        items: impl IntoIterator<Item = &'a M>,
    ) -> Result<Vec<Value>, envoy_json::JsonError> {
        items
            .into_iter()
            .map(|item| envoy_json::to_json_with(item, envoy_json::JsonStyle::ConfigDump))
            .collect()
    }
    let routes: Vec<_> = resources.routes.iter().map(|r| r.to_proto()).collect();
    let clusters: Vec<_> = resources.clusters.iter().map(|c| c.decode()).collect();
    let endpoints: Vec<_> = resources.endpoints.iter().map(|e| e.decode()).collect();
    let mut secrets = all(resources.secrets.iter().map(|r| &**r))?;
    secrets.iter_mut().for_each(envoy_json::redact_secret);
    let mut out = json!({
        "listeners": all(resources.listeners.iter().map(|r| &**r))?,
        "routes": all(&routes)?,
        "clusters": all(&clusters)?,
        "endpoints": all(&endpoints)?,
        "secrets": secrets,
    });
    // Only a Gateway with a port served by scoped routes has them.
    if !resources.scoped_routes.is_empty() {
        out["scopedRoutes"] = Value::Array(all(resources.scoped_routes.iter().map(|r| &**r))?);
    }
    Ok(out)
}
