//! The echo backend's HTTPS listener: a real `weir-echo` process with a generated server
//! certificate, reached over TLS by a rustls client; the echoed JSON carries the
//! connection's `tls` object (INVENTORY.md §3), the plain HTTP port's does not. And the
//! harness: the base manifests' `tls-backend` pods serve HTTPS from their secret volume.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use weir_conformance::processes::free_port;

/// Kills the echo when the test ends, however it ends.
struct Echo(Child);

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The TLS material of one test: a CA, a server certificate it signed for
/// `echo.example`, and a client certificate it signed.
struct Material {
    ca: String,
    server: (String, String),
    client: (CertificateDer<'static>, PrivateKeyDer<'static>, String),
}

fn material() -> Material {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["echo.example".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client.example".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    Material {
        ca: ca.pem(),
        server: (server.pem(), server_key.serialize_pem()),
        client: (
            client.der().clone(),
            PrivateKeyDer::Pkcs8(client_key.serialize_der().into()),
            client.pem(),
        ),
    }
}

/// Starts `weir-echo` on 127.0.0.1 with HTTPS from the files in `dir`; its ports.
fn start(dir: &Path, m: &Material) -> (Echo, u16, u16) {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (http, h2c, https) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_weir-echo"))
        .env("POD_NAME", "tls-backend-abc-def")
        .env("NAMESPACE", "gateway-conformance-infra")
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("HTTP_PORT", http.to_string())
        .env("H2C_PORT", h2c.to_string())
        .env("HTTPS_PORT", https.to_string())
        .env("TLS_SERVER_CERT", write("crt", &m.server.0))
        .env("TLS_SERVER_PRIVKEY", write("key", &m.server.1))
        .env("TLS_CLIENT_CACERTS", write("ca", &m.ca))
        .spawn()
        .expect("weir-echo starts");
    let echo = Echo(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", https)).is_err() {
        assert!(
            Instant::now() < deadline,
            "weir-echo never listened on {https}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (echo, http, https)
}

/// Sends `GET /tls?x=1` and returns the echoed JSON.
fn get(stream: impl Read + Write) -> serde_json::Value {
    let mut stream = stream;
    stream
        .write_all(b"GET /tls?x=1 HTTP/1.1\r\nHost: echo.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify after the answer: keep what arrived.
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A TLS client trusting `ca`, offering ALPN http/1.1 and, optionally, a client cert.
fn tls_get(
    port: u16,
    ca: &str,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> serde_json::Value {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("echo.example").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    get(rustls::StreamOwned::new(conn, tcp))
}

#[test]
fn https_answers_carry_the_connection_tls_details() {
    let dir = tempfile::tempdir().unwrap();
    let m = material();
    let (_echo, http, https) = start(dir.path(), &m);

    let echo = tls_get(https, &m.ca, None);
    assert_eq!(echo["path"], "/tls?x=1");
    assert_eq!(echo["pod"], "tls-backend-abc-def");
    assert_eq!(echo["namespace"], "gateway-conformance-infra");
    let tls = &echo["tls"];
    assert_eq!(tls["version"], "TLSv1.3", "{echo:#}");
    assert_eq!(tls["serverName"], "echo.example");
    assert_eq!(tls["negotiatedProtocol"], "http/1.1");
    let suite = tls["cipherSuite"].as_str().unwrap();
    assert!(
        suite.starts_with("TLS_") && !suite.starts_with("TLS13_"),
        "{suite}"
    );
    // No client certificate offered: the field is left out.
    assert!(tls.get("peerCertificates").is_none(), "{tls:#}");

    // A client certificate signed by TLS_CLIENT_CACERTS is verified and echoed as PEM.
    let (cert, key, pem) = m.client;
    let echo = tls_get(https, &m.ca, Some((cert, key)));
    let peers = echo["tls"]["peerCertificates"].as_array().unwrap();
    assert_eq!(peers.len(), 1);
    let normalise = |s: &str| s.replace("\r\n", "\n").trim().to_string();
    assert_eq!(normalise(peers[0].as_str().unwrap()), normalise(&pem));

    // The plain HTTP port says nothing about TLS.
    let echo = get(TcpStream::connect(("127.0.0.1", http)).unwrap());
    assert_eq!(echo["path"], "/tls?x=1");
    assert!(echo.get("tls").is_none(), "{echo:#}");
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = material();
    let other = material();
    let (_echo, _http, https) = start(dir.path(), &m);
    let (cert, key, _) = other.client;
    let result = std::panic::catch_unwind(|| tls_get(https, &m.ca, Some((cert, key))));
    assert!(
        result.is_err(),
        "a certificate from an unknown CA was accepted"
    );
}

#[test]
fn the_harness_tls_backend_pod_serves_https_from_its_secret_volume() {
    let logs = tempfile::tempdir().unwrap();
    let base = weir_conformance::manifests::default_dir().join("base/manifests.yaml");
    let docs = weir_conformance::manifests::load(&base).unwrap();
    let tls_backend: Vec<serde_json::Value> = docs
        .into_iter()
        .filter(|d| {
            d["kind"] == "Deployment"
                && d["metadata"]["name"] == "tls-backend"
                && d["metadata"]["namespace"] == "gateway-conformance-infra"
        })
        .collect();
    assert_eq!(tls_backend.len(), 1, "base manifests changed");
    let mut docs = weir_conformance::certs::suite_secrets().unwrap();
    docs.extend(tls_backend);
    let mut cluster = weir_conformance::cluster::Cluster::new(
        env!("CARGO_BIN_EXE_weir-echo").into(),
        logs.path().to_path_buf(),
    );
    cluster.start_deployments("base", &docs).unwrap();
    let pod = &cluster.pods[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    let tcp = loop {
        match TcpStream::connect((pod.ip, 8443)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{} never served HTTPS: {e}\n{}",
                    pod.name,
                    pod.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    // The certificate is CA-signed for abc.example.com; what matters here is that the pod
    // found its files and speaks TLS with the SNI the gateway would send.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from("abc.example.com").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let echo = get(rustls::StreamOwned::new(conn, tcp));
    assert_eq!(echo["pod"], pod.name.as_str());
    assert_eq!(echo["tls"]["serverName"], "abc.example.com", "{echo:#}");
}

/// Accepts any server certificate (the test above checks the pod's TLS, not its chain).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
