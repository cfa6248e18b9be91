//! `weir bootstrap`: print the Envoy bootstrap for one Gateway's proxies
//! ([`crate::xds::bootstrap`] builds it).

use anyhow::Context;
use clap::Args;

use crate::xds::bootstrap::{BootstrapConfig, DEFAULT_ADMIN_PORT, XdsAddress, to_bootstrap};

/// Arguments of `weir bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The Gateway these proxies serve, as NAMESPACE/NAME.
    #[arg(long, value_name = "NS/NAME")]
    pub gateway: String,
    /// Where Weir's xDS server is, as HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub xds: XdsAddress,
    /// Envoy's admin port (bound on 127.0.0.1).
    #[arg(long, default_value_t = DEFAULT_ADMIN_PORT)]
    pub admin_port: u16,
    /// The proxy's node id [default: weir-NS-NAME].
    #[arg(long)]
    pub node_id: Option<String>,
    /// Use state-of-the-world ADS instead of delta (incremental), the default. State of
    /// the world resends every cluster and listener on every change.
    #[arg(long)]
    pub sotw: bool,
    /// The local IP address the proxies' listeners bind [default: 0.0.0.0], so several
    /// Gateways can share a port on different addresses.
    #[arg(long, value_name = "ADDR")]
    pub bind_address: Option<std::net::IpAddr>,
}

pub(super) fn run(args: &BootstrapArgs) -> anyhow::Result<()> {
    let (namespace, name) = args
        .gateway
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .with_context(|| {
            format!(
                "--gateway {:?} is not NAMESPACE/NAME (for example default/quickstart)",
                args.gateway
            )
        })?;
    let config = BootstrapConfig {
        namespace: namespace.to_string(),
        name: name.to_string(),
        xds: args.xds.clone(),
        admin_port: args.admin_port,
        node_id: args.node_id.clone(),
        delta: !args.sotw,
        bind_address: args.bind_address,
    };
    println!("{}", serde_json::to_string_pretty(&to_bootstrap(&config))?);
    Ok(())
}
