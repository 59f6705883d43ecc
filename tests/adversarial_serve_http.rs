//! Adversarial: what a hostile client or a web page can do at the HTTP layer. Floods of idle and
//! half-sent connections (bounded, loopback only) against `--max-connections` and
//! `--header-timeout`, for `serve -- CMD` and the gateway of `serve --config`; browser-like requests (`Sec-Fetch-*`) against the MCP routes; a missing
//! Host; the bearer scheme in any case.

mod common;

use common::http::{Session, client, init_msg};
use common::serve::{Opts, Serve, have_python3};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// serve's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_idle_and_half_sent_connections_is_bounded() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--max-connections", "128", "--header-timeout", "1s"]);
    let port = gw.port();
    let pid = gw.child.id();
    let mut flood = flood_past_the_cap(port, pid, 2000, 128).await;
    // A legitimate client gets through while the flood is held open.
    let s = tokio::time::timeout(Duration::from_secs(40), Session::open(&gw.mcp()))
        .await
        .expect("a client initializes during the flood")
        .unwrap();
    drop(s);
    // Connections serve accepted are closed by the header timeout, not kept forever.
    closed_by_serve(flood.swap_remove(0)).await;
    assert!(open_fds(pid) < 128 + 64);
}

/// Floods `port` with `n` connections and checks that serve (process `pid`, run with
/// `--max-connections cap`) holds about `cap` of them, not all.
async fn flood_past_the_cap(port: u16, pid: u32, n: usize, cap: usize) -> Vec<TcpStream> {
    let flood = flood(port, n).await;
    // Past the cap, connections wait in the kernel's backlog (its size is the machine's): what
    // matters is that the flood is well past --max-connections.
    assert!(
        flood.len() > 2 * cap,
        "the flood itself connected ({})",
        flood.len()
    );
    let fds = open_fds(pid);
    assert!(
        fds < cap + 64,
        "serve holds {fds} descriptors with --max-connections {cap}"
    );
    flood
}

/// Opens up to `n` connections to `port`, every other one with half a request's headers.
async fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    let connects = (0..n).map(|i| async move {
        let mut s = tokio::time::timeout(
            Duration::from_secs(2),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        .ok()?
        .ok()?;
        if i % 2 == 0 {
            // Half-sent: a request line and part of a header, then nothing.
            let _ = s
                .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
                .await;
        }
        Some(s)
    });
    futures_util::future::join_all(connects)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Waits (bounded) for serve to close a connection that never completed a request.
async fn closed_by_serve(mut s: TcpStream) {
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(40), s.read(&mut buf))
        .await
        .expect("serve closes a silent connection")
        .unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_bounds_connections_like_serve() {
    if !have_python3() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gw.json");
    let entry = json!({"command": "python3", "args": [common::serve::fixture()]});
    let doc = json!({"mcpServers": {"one": entry, "two": entry}});
    std::fs::write(&file, doc.to_string()).unwrap();
    let gw = Serve::start_config(
        &file,
        &["--max-connections", "16", "--header-timeout", "1s"],
        &[],
    );
    let mut flood = flood_past_the_cap(gw.port(), gw.child.id(), 300, 16).await;
    closed_by_serve(flood.swap_remove(0)).await;
}

/// A raw request, and the status line of its answer.
async fn raw(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(common::WAIT, s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_page_cannot_drive_serve() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&["--allow-origin", "https://app.example"]);
    let c = client();
    // <img src="http://127.0.0.1:PORT/sse">: no Origin, no-cors; it must not open a session.
    for mode in ["no-cors", "navigate"] {
        let r = c
            .get(format!("{}/sse", gw.url))
            .header("sec-fetch-mode", mode)
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-dest", "image")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{mode}");
        let r = c
            .get(format!("{}/sse", gw.url))
            .header("sec-fetch-mode", mode)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{mode} without a site");
    }
    assert!(!gw.log.text().contains("child started"), "no child spawned");
    // Cross-site with a local Origin that was not allowed explicitly.
    let post = |origin: &str, site: &str, mode: &str| {
        c.post(gw.mcp())
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .header("sec-fetch-mode", mode)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init_msg(1).to_string())
            .send()
    };
    let r = post("http://127.0.0.1:8000", "cross-site", "cors")
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // An Origin allowed explicitly may be cross-site.
    let r = post("https://app.example", "cross-site", "cors")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The MCP Inspector: a same-site CORS fetch from another localhost port.
    let r = post("http://localhost:6274", "same-site", "cors")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The probes stay reachable for a browser tab.
    let r = c
        .get(format!("{}/healthz", gw.url))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_forms_and_a_missing_host() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start(&[]);
    let port = gw.port();
    let get = |host: Option<&str>| match host {
        Some(h) => format!("GET /readyz HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n"),
        None => "GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
    };
    assert!(raw(port, &get(None)).await.contains(" 403 "), "no Host");
    for ok in [
        "LOCALHOST",
        "localhost.",
        "LocalHost.:1",
        "127.0.0.1",
        "[::1]:9",
    ] {
        assert!(raw(port, &get(Some(ok))).await.contains(" 200 "), "{ok}");
    }
    for bad in [
        "evil.example",
        "evil.example.",
        "localhost.evil.example",
        "[::2]",
        "",
    ] {
        assert!(
            raw(port, &get(Some(bad))).await.contains(" 403 "),
            "{bad:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_case_insensitive() {
    if !have_python3() {
        return;
    }
    let gw = Serve::start_with(Opts {
        args: &[],
        env: &[("MCP_BRIDGE_AUTH_TOKEN", "tok-123")],
        ..Opts::default()
    });
    let c = client();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = c
            .get(format!("{}/readyz", gw.url))
            .header("authorization", format!("{scheme} tok-123"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = c
        .get(format!("{}/readyz", gw.url))
        .header("authorization", "Basic tok-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
