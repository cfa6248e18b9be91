//! `weir-echo`: the conformance echo backend (see [`weir_conformance::echo`]).

fn main() -> anyhow::Result<()> {
    let config = weir_conformance::echo::EchoConfig::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(weir_conformance::echo::run(config))
}
