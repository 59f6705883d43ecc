//! Security: bearer token, Host and Origin allow-lists, refusing an unauthenticated public bind,
//! and Unix-socket listeners (mode, stale and live files, removal, peer credentials).

mod common;

use common::http::{Session, call_msg, client, init_msg};
use common::serve::{Opts, Serve, have_python3};
use common::{WAIT, tool_text};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn bearer_token_is_required() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret-token\n").unwrap();
    let gw = Serve::start(&["--auth-token-file", file.to_str().unwrap()]);
    let c = client();
    assert_eq!(
        c.get(format!("{}/healthz", gw.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for path in ["/readyz", "/metrics"] {
        let r = c.get(format!("{}{path}", gw.url)).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let err = Session::open_full(&gw.mcp(), "2025-06-18", Some("wrong"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(Session::open(&gw.mcp()).await.is_err());
    let s = Session::open_full(&gw.mcp(), "2025-06-18", Some("s3cret-token"))
        .await
        .unwrap();
    let a = s
        .request(call_msg(json!(1), "echo", json!({"text":"authorized"})))
        .await
        .unwrap();
    assert_eq!(tool_text(&a), "authorized");
    let logs = gw.log.text();
    assert!(!logs.contains("s3cret-token"), "the token is never logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_and_origin_are_checked() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[
        "--allow-origin",
        "https://app.example",
        "--allow-host",
        "gateway.internal",
    ]);
    let c = client();
    let get = |host: Option<&str>, origin: Option<&str>| {
        let mut r = c.get(format!("{}/readyz", gw.url));
        if let Some(h) = host {
            r = r.header("host", h);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(get(None, None).await.unwrap().status(), 200);
    assert_eq!(
        get(Some("localhost:1234"), None).await.unwrap().status(),
        200
    );
    assert_eq!(
        get(Some("gateway.internal:9000"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get(Some("evil.example"), None).await.unwrap().status(), 403);
    assert_eq!(
        get(None, Some("http://localhost:3000"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(None, Some("https://app.example"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(None, Some("http://evil.example"))
            .await
            .unwrap()
            .status(),
        403
    );
    let r = c
        .post(gw.mcp())
        .header("origin", "http://evil.example")
        .header("content-type", "application/json")
        .body(init_msg(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn public_bind_needs_a_token() {
    if !have_python3() {
        return;
    }
    let err = Serve::try_start(Opts {
        args: &["--listen", "0.0.0.0:0"],
        listen_tcp: false,
        ..Opts::default()
    });
    let err = err.err().expect("refuses to start").to_string();
    assert!(err.contains("allow-unauthenticated"), "{err}");
    // With the override it starts.
    let gw = Serve::start_with(Opts {
        args: &["--listen", "0.0.0.0:0", "--allow-unauthenticated"],
        listen_tcp: false,
        ..Opts::default()
    });
    assert!(gw.url.starts_with("http://0.0.0.0:"), "{}", gw.url);
}

async fn unix_request(path: &std::path::Path, request: &str) -> String {
    let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_socket_listener() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("mcp.sock");
    let listen = format!("unix:{}", sock.display());
    // A stale socket file (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let mut gw = Serve::start_with(Opts {
        args: &["--listen", &listen],
        listen_tcp: true,
        ..Opts::default()
    });
    gw.wait_log(&format!("listening on {listen}"));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let body = init_msg(1).to_string();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = unix_request(&sock, &req).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("mcp-session-id:"),
        "{resp}"
    );
    assert!(resp.contains("\"serverInfo\""), "{resp}");
    let line = gw.wait_log("session opened");
    assert!(
        line.contains(&format!("uid={}", rustix::process::getuid().as_raw())),
        "{line}"
    );
    assert!(line.contains("pid="), "{line}");

    // A second gateway on the same live socket refuses to start.
    let second = Serve::try_start(Opts {
        args: &["--listen", &listen],
        listen_tcp: false,
        ..Opts::default()
    });
    let err = second.err().expect("refused").to_string();
    assert!(err.contains("already listening"), "{err}");

    assert!(gw.terminate().success());
    assert!(!sock.exists(), "the socket file is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_mode_is_configurable() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("g.sock");
    let listen = format!("unix:{}", sock.display());
    let gw = Serve::start_with(Opts {
        args: &["--listen", &listen, "--socket-mode", "0660"],
        listen_tcp: false,
        ..Opts::default()
    });
    gw.wait_log("listening on unix:");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}
