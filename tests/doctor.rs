//! `mcp-bridge doctor` against real causes: its self-test, a missing socket, a socket it may not
//! open, a closed port, a 401, a 403 for a foreign Host, and a certificate nobody vouches for.
//! Each failure must be named, with its fix, and give a non-zero exit code.

mod common;

use common::blocking::{BIN, Proc, WAIT, serve};
use serde_json::Value;
use std::process::Command;

/// Runs `doctor --json ARGS…` (with `envs`) and returns (exit success, report).
fn doctor(args: &[&str], envs: &[(&str, &str)]) -> (bool, Value) {
    let mut cmd = Command::new(BIN);
    cmd.args(["doctor", "--json", "--pings=3", "--timeout=5s"])
        .args(args)
        .envs(envs.iter().copied());
    let mut p = Proc::spawn(cmd);
    let status = p.wait();
    let out = p.rest_of_stdout().join("\n");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        report["ok"],
        status.success(),
        "exit code and `ok` agree: {report}"
    );
    (status.success(), report)
}

/// The check named `name`.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"))
}

/// Asserts that `name` failed, its detail holds `detail` and its fix holds `fix`.
fn assert_failed(report: &Value, name: &str, detail: &str, fix: &str) {
    let c = check(report, name);
    assert_eq!(c["status"], "fail", "{report:#}");
    assert!(
        c["detail"].as_str().unwrap().contains(detail),
        "detail of {name}: {c:#}"
    );
    assert!(
        c["fix"].as_str().unwrap().contains(fix),
        "fix of {name}: {c:#}"
    );
}

#[test]
fn self_test_passes_with_nothing_but_the_binary() {
    let (ok, report) = doctor(&[], &[]);
    assert!(ok, "{report:#}");
    for name in [
        "serve",
        "socket",
        "http",
        "auth",
        "host",
        "transport",
        "initialize",
        "lists",
        "latency",
    ] {
        assert_eq!(check(&report, name)["status"], "pass", "{name}: {report:#}");
    }
    let init = check(&report, "initialize")["detail"].as_str().unwrap();
    assert!(
        init.contains("mcp-bridge-example") && init.contains("2025-11-25"),
        "{init}"
    );
    assert!(
        check(&report, "lists")["detail"]
            .as_str()
            .unwrap()
            .contains("4 tools")
    );
    assert!(
        check(&report, "transport")["detail"]
            .as_str()
            .unwrap()
            .contains("Streamable HTTP")
    );
    // The text form says the same to a person.
    let mut cmd = Command::new(BIN);
    cmd.args(["doctor", "--pings=2"]);
    let mut p = Proc::spawn(cmd);
    assert!(p.wait().success());
    let text = p.rest_of_stdout();
    assert!(
        text.iter().any(|l| l.contains("all checks passed")),
        "{text:?}"
    );
}

#[test]
fn a_missing_socket_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nope.sock");
    let (ok, report) = doctor(
        &["--unix", sock.to_str().unwrap(), "http://localhost/mcp"],
        &[],
    );
    assert!(!ok);
    assert_failed(
        &report,
        "socket",
        "socket file missing",
        "serve --listen unix:",
    );
    assert_eq!(check(&report, "initialize")["status"], "skip");
}

#[test]
fn a_socket_of_another_user_is_permission_denied_with_owner_and_mode() {
    if !rustix_is_root() {
        // Without root there is no second user to be.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sock = dir.path().join("mcp.sock");
    let _serve = common::blocking::serve_example_unix(&sock);
    // The binary must be runnable by the other user: copy it next to the socket.
    let bin = dir.path().join("mcp-bridge");
    std::fs::copy(BIN, &bin).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args([
            "doctor",
            "--json",
            "--unix",
            sock.to_str().unwrap(),
            "http://localhost/mcp",
        ]);
    let mut p = Proc::spawn(cmd);
    let status = p.wait();
    assert!(!status.success());
    let out = p.rest_of_stdout().join("\n");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_failed(&report, "socket", "permission denied", "--socket-mode 0660");
    let detail = check(&report, "socket")["detail"].as_str().unwrap();
    assert!(
        detail.contains("owner uid 0") && detail.contains("mode 0600"),
        "{detail}"
    );
}

fn rustix_is_root() -> bool {
    // The owner of a file we just made is who we are.
    let f = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::MetadataExt::uid(&f.as_file().metadata().unwrap()) == 0
}

#[test]
fn a_closed_port_is_connection_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (ok, report) = doctor(&[&format!("http://127.0.0.1:{port}/mcp")], &[]);
    assert!(!ok);
    assert_eq!(check(&report, "resolve")["status"], "pass");
    assert_failed(
        &report,
        "connect",
        "refused",
        &format!("nothing listens on port {port}"),
    );
}

#[test]
fn a_401_names_the_challenge_and_the_header_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let (_serve, addr) = serve(&[
        "--example",
        "--listen=127.0.0.1:0",
        &format!("--auth-token-file={}", token_file.display()),
    ]);
    let url = format!("{addr}/mcp");
    let (ok, report) = doctor(&[&url], &[]);
    assert!(!ok);
    assert_failed(
        &report,
        "auth",
        "WWW-Authenticate: Bearer",
        "-H 'Authorization: Bearer",
    );
    assert!(!report.to_string().contains("s3cret"));

    let header = "Authorization: Bearer ${DOCTOR_TEST_TOKEN}";
    let (ok, report) = doctor(&["-H", header, &url], &[("DOCTOR_TEST_TOKEN", "wrong")]);
    assert!(!ok);
    assert_failed(&report, "auth", "401", "the token sent was refused");

    let (ok, report) = doctor(
        &["-H", header, &url],
        &[("DOCTOR_TEST_TOKEN", "s3cret-token")],
    );
    assert!(ok, "{report:#}");
    assert_eq!(check(&report, "auth")["detail"], "credentials accepted");
}

#[test]
fn a_403_for_a_foreign_host_names_the_allow_host_to_add() {
    let (_serve, addr) = serve(&["--example", "--listen=0.0.0.0:0", "--allow-unauthenticated"]);
    let port = addr.rsplit(':').next().unwrap();
    let (ok, report) = doctor(&[&format!("http://127.0.0.2:{port}/mcp")], &[]);
    assert!(!ok);
    assert_failed(&report, "host", "403", "--allow-host 127.0.0.2");
    // The same server by a name it accepts passes.
    let (ok, report) = doctor(&[&format!("http://localhost:{port}/mcp")], &[]);
    assert!(ok, "{report:#}");
}

/// A TLS server on 127.0.0.1 with a self-signed certificate for localhost, answering every
/// request with a 404. Returns its port and the certificate (PEM).
fn tls_server() -> (u16, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "doctor test server");
    let cert = params.self_signed(&key).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der)
    .unwrap();
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut tcp) = stream else { break };
            let config = config.clone();
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                tcp.set_read_timeout(Some(WAIT)).ok();
                let mut conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                let mut buf = [0u8; 4096];
                if tls.read(&mut buf).is_ok() {
                    let _ = tls.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
            });
        }
    });
    (port, cert.pem())
}

#[test]
fn an_unknown_certificate_issuer_is_named_with_the_ca_cert_hint() {
    let (port, pem) = tls_server();
    let url = format!("https://localhost:{port}/mcp");
    let (ok, report) = doctor(&[&url], &[]);
    assert!(!ok);
    assert_failed(&report, "tls", "doctor test server", "--ca-cert");
    let detail = check(&report, "tls")["detail"].as_str().unwrap();
    assert!(
        detail.contains("UnknownIssuer") && detail.contains("expires"),
        "{detail}"
    );

    // Trusting it moves the failure past TLS: the 404 server is no MCP endpoint.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let (ok, report) = doctor(&["--ca-cert", ca.to_str().unwrap(), &url], &[]);
    assert!(!ok);
    assert_eq!(check(&report, "tls")["status"], "pass", "{report:#}");
    assert_failed(&report, "transport", "404", "/mcp");
}

#[test]
fn a_bad_url_is_named() {
    let (ok, report) = doctor(&["ftp://example/mcp"], &[]);
    assert!(!ok);
    assert_failed(&report, "url", "scheme", "http://127.0.0.1:9000/mcp");
}
