//! connect over HTTPS: a server whose certificate comes from a private CA is trusted with
//! `--ca-cert`, and refused without it.

mod common;

use common::connect::Connect;
use common::mock::{Mock, Options};
use serde_json::json;

fn private_ca() -> (
    String,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mcp-bridge test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    (ca.pem(), vec![leaf.der().clone()], key)
}

#[tokio::test(flavor = "multi_thread")]
async fn private_ca_is_trusted_only_with_ca_cert() {
    let (ca_pem, chain, key) = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mock = Mock::start_tls(Options::default(), chain, key).await;
    let url = format!("https://localhost:{}/mcp", mock.addr.port());

    let mut b = Connect::start(&["--ca-cert", ca_file.to_str().unwrap(), &url]);
    let init = b.initialize("2025-06-18").await;
    assert!(init.get("result").is_some(), "{init}");
    assert_eq!(
        b.call(json!(1), "ping", json!({})).await["result"],
        json!({})
    );

    let mut b = Connect::start(&["--connect-timeout", "1s", &url]);
    let init = b.call(json!(0), "initialize", json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}})).await;
    assert_eq!(
        init["error"]["data"]["source"], "mcp-bridge",
        "an unknown CA is refused: {init}"
    );
    assert!(
        mock.state.requests("initialize").len() == 1,
        "nothing was sent over the untrusted connection"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_ca_file_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let out = std::process::Command::new(common::BIN)
        .args([
            "connect",
            "--ca-cert",
            bad.to_str().unwrap(),
            "https://localhost:1/mcp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ca-cert"));
}
