//! doctor's HTTP steps, spoken directly: is anything answering, does it want credentials, does
//! it refuse our Host or Origin, and which MCP transport it speaks (Streamable HTTP, legacy
//! HTTP+SSE, and whether the 2026-07-28 revision answers `server/discover`).

use super::{Check, Target};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use std::sync::Arc;

fn client(t: &Target) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .default_headers(t.headers.clone())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(t.timeout)
        .timeout(t.timeout)
        .dns_resolver(Arc::new(crate::resolve::Resolver::default()))
        .user_agent(concat!("mcp-bridge-doctor/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &t.unix {
        b = b.unix_socket(path.as_path());
    }
    if let Some(path) = &t.ca_cert {
        let pem = std::fs::read(path).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| e.to_string())
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "mcp-bridge-doctor", "version": env!("CARGO_PKG_VERSION")}}})
}

/// The error text of a JSON-RPC error body, if the body is one.
fn rpc_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    v.pointer("/error/message")?.as_str().map(str::to_owned)
}

/// Runs the HTTP steps; false when a later step could not work.
pub(super) async fn check(t: &Target, checks: &mut Vec<Check>) -> bool {
    let client = match client(t) {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::fail("http", e, "check --ca-cert and the -H headers"));
            return false;
        }
    };
    let sent = client
        .post(t.url.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(initialize_body().to_string())
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let detail = format!("no HTTP answer from {}: {}", t.url, error_chain(&e));
            checks.push(Check::fail(
                "http",
                detail,
                "check that an HTTP MCP server (e.g. mcp-bridge serve) listens there and that \
                 the scheme (http/https) is right",
            ));
            return false;
        }
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap_or_default();
    checks.push(Check::pass(
        "http",
        format!("POST {} → HTTP {status}", t.url.path()),
    ));

    if status == StatusCode::UNAUTHORIZED {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)");
        let sent_auth = t.headers.contains_key(reqwest::header::AUTHORIZATION);
        let fix = match sent_auth {
            true => "the token sent was refused: check that it matches the server's (serve's \
                     --auth-token-file), and pass the same -H to connect"
                .to_owned(),
            false => "pass the token: -H 'Authorization: Bearer ${TOKEN}' (with TOKEN in the \
                      environment), to doctor and to connect"
                .to_owned(),
        };
        checks.push(Check::fail(
            "auth",
            format!("HTTP 401, WWW-Authenticate: {challenge}"),
            fix,
        ));
        return false;
    }
    checks.push(Check::pass(
        "auth",
        match t.headers.contains_key(reqwest::header::AUTHORIZATION) {
            true => "credentials accepted",
            false => "no credentials required",
        },
    ));

    if status == StatusCode::FORBIDDEN {
        let message = rpc_message(&body).unwrap_or_else(|| body.chars().take(200).collect());
        let host = t.url.host_str().unwrap_or_default();
        let fix = if message.contains("Origin") {
            "the server refused the Origin header: on serve, add --allow-origin ORIGIN".to_owned()
        } else {
            format!(
                "the server refused the Host `{host}`: on serve, add --allow-host {host} (or reach \
                 it by a name it accepts, e.g. localhost)"
            )
        };
        checks.push(Check::fail("host", format!("HTTP 403: {message}"), fix));
        return false;
    }
    checks.push(Check::pass("host", "Host and Origin accepted"));
    transport(t, &client, status, &headers, &body, checks).await
}

async fn transport(
    t: &Target,
    client: &reqwest::Client,
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    checks: &mut Vec<Check>,
) -> bool {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let modern = discover(t, client).await;
    let modern_note = match modern {
        true => "; 2026-07-28 (stateless) answers server/discover too",
        false => "",
    };
    if status.is_success()
        && (content_type.starts_with("application/json")
            || content_type.starts_with("text/event-stream"))
    {
        let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
        if let Some(id) = session {
            // Leave no session behind on the server.
            let _ = client
                .delete(t.url.clone())
                .header("mcp-session-id", id)
                .send()
                .await;
        }
        let session = match session {
            Some(_) => "with a session",
            None => "without a session",
        };
        checks.push(Check::pass(
            "transport",
            format!("Streamable HTTP ({content_type}, {session}){modern_note}"),
        ));
        return true;
    }
    if matches!(status.as_u16(), 400 | 404 | 405) {
        let sse = client
            .get(t.url.clone())
            .header(ACCEPT, "text/event-stream")
            .send()
            .await;
        if let Ok(r) = sse {
            let ct = r.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            if r.status().is_success() && ct.is_some_and(|c| c.starts_with("text/event-stream")) {
                checks.push(Check::pass(
                    "transport",
                    format!("legacy HTTP+SSE (2024-11-05){modern_note}"),
                ));
                return true;
            }
        }
    }
    if modern {
        checks.push(Check::pass("transport", "2026-07-28 (stateless) only"));
        return true;
    }
    let said = rpc_message(body).unwrap_or_else(|| body.chars().take(200).collect());
    checks.push(Check::fail(
        "transport",
        format!("HTTP {status} ({content_type}) to initialize, and no SSE stream on GET: {said}"),
        "check the path: mcp-bridge serve answers on /mcp (Streamable HTTP) and /sse (legacy)",
    ));
    false
}

/// Whether the server answers a 2026-07-28 `server/discover` with that version.
async fn discover(t: &Target, client: &reqwest::Client) -> bool {
    let v = crate::wire::STATELESS_VERSION;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": v,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "mcp-bridge-doctor",
                                               "version": env!("CARGO_PKG_VERSION")}}}});
    let sent = client
        .post(t.url.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .header("mcp-protocol-version", v)
        .header("mcp-method", "server/discover")
        .body(body.to_string())
        .send()
        .await;
    let Ok(resp) = sent else { return false };
    if !resp.status().is_success() {
        return false;
    }
    let text = resp.text().await.unwrap_or_default();
    // The answer may come as JSON or as one SSE event.
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text);
    serde_json::from_str::<Value>(json.trim())
        .ok()
        .and_then(|v| v.pointer("/result/supportedVersions").cloned())
        .and_then(|s| s.as_array().map(|a| a.iter().any(|x| x == v)))
        .unwrap_or(false)
}

/// An error with its causes, which is where reqwest keeps the useful part.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
