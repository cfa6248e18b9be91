//! The TLS material the suite creates at start (it is not in the manifests): Secrets
//! named and shaped as upstream's suite setup makes them, self-signed here.

use serde_json::{Value, json};

/// A self-signed certificate and key (PEM) for these DNS names.
pub fn self_signed(names: &[&str]) -> anyhow::Result<(String, String)> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names)?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

/// A `kubernetes.io/tls` Secret.
pub fn tls_secret(namespace: &str, name: &str, cert: &str, key: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert, "tls.key": key},
    })
}

/// The Secrets the HTTP tests need: `tls-validity-checks-certificate` (infra; SANs *,
/// *.org, *.wildcard.org) and `certificate` (web-backend; SAN *).
pub fn suite_secrets() -> anyhow::Result<Vec<Value>> {
    let (cert, key) = self_signed(&["*", "*.org", "*.wildcard.org"])?;
    let (web_cert, web_key) = self_signed(&["*"])?;
    Ok(vec![
        tls_secret(
            "gateway-conformance-infra",
            "tls-validity-checks-certificate",
            &cert,
            &key,
        ),
        tls_secret(
            "gateway-conformance-web-backend",
            "certificate",
            &web_cert,
            &web_key,
        ),
    ])
}
