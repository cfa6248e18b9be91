//! `weir plugin inspect|check|list`: look at plugin files and what the runtime makes of them.

use std::path::Path;

use anyhow::Context;

use crate::plugin;

pub(super) fn inspect(file: &Path, json: bool) -> anyhow::Result<()> {
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

pub(super) fn check(file: &Path) -> anyhow::Result<()> {
    let mut runtime = super::load_runtime(None)?;
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

pub(super) fn list(plugin_dir: Option<&Path>) -> anyhow::Result<()> {
    let runtime = super::load_runtime(plugin_dir)?;
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
