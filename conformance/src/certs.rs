//! The TLS material the suite creates at start (it is not in the manifests): Secrets
//! named and shaped as upstream's suite setup makes them, self-signed here.

use serde_json::{Value, json};

/// A self-signed certificate and key (PEM) for these DNS names.
pub fn self_signed(names: &[&str]) -> anyhow::Result<(String, String)> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::generate_simple_self_signed(names)?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

/// A CA (its certificate as PEM) and a certificate and key (PEM) it signed for these
/// DNS names.
pub fn ca_signed(names: &[&str]) -> anyhow::Result<(String, String, String)> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "weir conformance CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    let key = rcgen::KeyPair::generate()?;
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)?.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
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
/// *.org, *.wildcard.org), `certificate` (web-backend; SAN *) and
/// `tls-checks-certificate` (infra; abc.example.com, CA-signed), which the infra
/// `tls-backend` pods serve HTTPS with.
pub fn suite_secrets() -> anyhow::Result<Vec<Value>> {
    let (cert, key) = self_signed(&["*", "*.org", "*.wildcard.org"])?;
    let (web_cert, web_key) = self_signed(&["*"])?;
    let (_ca, checks_cert, checks_key) = ca_signed(&["abc.example.com"])?;
    Ok(vec![
        tls_secret(
            "gateway-conformance-infra",
            "tls-checks-certificate",
            &checks_cert,
            &checks_key,
        ),
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
