//! Request checks in front of every route: Host and Origin against the allow-list (403; defends
//! against DNS rebinding), then the bearer token (401, compared in constant time; /healthz is
//! exempt), then who the client is (`policy::identify`, 401 for an unknown named client).
//! Also counts error answers for /metrics.

use crate::jsonrpc;
use crate::serve::app::App;
use crate::serve::http::Refusal;
use crate::serve::scope::Caller;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Hosts always accepted, with any port.
const LOCAL_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The host part of a `Host` value or an origin's authority, lower-cased, without the port.
fn host_only(authority: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    if a.starts_with('[') {
        return match a.find(']') {
            Some(end) => a[..=end].to_owned(),
            None => a,
        };
    }
    match a.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h.to_owned(),
        _ => a,
    }
}

/// The credentials of an `Authorization: Bearer …` value; the scheme is case-insensitive
/// (RFC 7235).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

/// Whether a `Host` header value is on the allow-list. A trailing dot names the same host.
pub fn host_allowed(host: &str, extra: &[String]) -> bool {
    let mut h = host_only(host);
    if h.ends_with('.') {
        h.pop();
    }
    if h.is_empty() {
        return false;
    }
    LOCAL_HOSTS.contains(&h.as_str()) || extra.iter().any(|e| e == "*" || host_only(e) == h)
}

/// Whether an `Origin` header value is on the allow-list.
pub fn origin_allowed(origin: &str, extra: &[String]) -> bool {
    let o = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if extra
        .iter()
        .any(|e| e == "*" || e.trim_end_matches('/').eq_ignore_ascii_case(&o))
    {
        return true;
    }
    let Some(rest) = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
    else {
        return false;
    };
    LOCAL_HOSTS.contains(&host_only(rest).as_str())
}

/// The middleware.
pub async fn check(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(app.bodies.clone());
    let refused = refuse_browser(&app, &req).or_else(|| refuse(&app, &req));
    let resp = match refused {
        Some(refusal) => refusal.into_response(),
        // Past the token check: the caller's identity (and key) pick its children.
        None => match Caller::of(req.headers(), app.cfg.token.is_some()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                // Then who the client is (named clients): one middleware, not two, per request.
                match crate::serve::policy::identify(&app, &mut req) {
                    Ok(()) => next.run(req).await,
                    Err(refusal) => refusal.into_response(),
                }
            }
            Err(refusal) => refusal.into_response(),
        },
    };
    if resp.status().is_client_error() || resp.status().is_server_error() {
        app.metrics.http_errors.inc();
    }
    resp
}

/// Paths that drive an MCP server; the probes (/healthz, /readyz, /metrics) are not among them.
const MCP_PATHS: &[&str] = &["/mcp", "/sse", "/messages"];

/// Whether `path` drives an MCP server: `/mcp`, `/sse`, `/messages`, or the same under a
/// gateway server's `/servers/NAME` prefix.
fn is_mcp_route(path: &str) -> bool {
    let tail = match path.strip_prefix("/servers/") {
        Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
        None => path,
    };
    MCP_PATHS.contains(&tail)
}

/// Refuses what only a web page would send: a request the browser marks cross-site (unless its
/// Origin was allowed explicitly), and on MCP routes any `no-cors` or `navigate` fetch (an
/// `<img>`, `<script>`, `<iframe>` or link), which no MCP client sends, Origin or not.
fn refuse_browser(app: &App, req: &Request) -> Option<Refusal> {
    let headers = req.headers();
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    let site = value("sec-fetch-site");
    let mode = value("sec-fetch-mode");
    if site.as_deref() == Some("cross-site") {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let explicit = origin.is_some_and(|o| {
            let o = o.trim().trim_end_matches('/');
            app.cfg
                .allow_origins
                .iter()
                .any(|e| e == "*" || e.trim_end_matches('/').eq_ignore_ascii_case(o))
        });
        if !explicit {
            tracing::warn!(
                "refused a cross-site browser request (allow its Origin with --allow-origin)"
            );
            return Some(Refusal::rpc(
                StatusCode::FORBIDDEN,
                jsonrpc::INVALID_REQUEST,
                "cross-site browser requests are not allowed",
            ));
        }
    }
    let mcp_route = is_mcp_route(req.uri().path());
    if mcp_route
        && matches!(
            mode.as_deref(),
            Some("no-cors" | "navigate" | "nested-navigate")
        )
    {
        tracing::warn!(
            mode = mode.as_deref(),
            "refused a browser fetch no MCP client sends"
        );
        return Some(Refusal::rpc(
            StatusCode::FORBIDDEN,
            jsonrpc::INVALID_REQUEST,
            "browser navigations and no-cors fetches cannot reach MCP routes",
        ));
    }
    None
}

fn refuse(app: &App, req: &Request) -> Option<Refusal> {
    let headers = req.headers();
    // HTTP/1.1 requires Host; HTTP/2 carries it as the URI's authority.
    let host = headers
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or(""))
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    {
        let host = host.unwrap_or("");
        if !host_allowed(host, &app.cfg.allow_hosts) {
            tracing::warn!(
                host,
                "refused a request for a foreign Host (add --allow-host to accept it)"
            );
            return Some(Refusal::rpc(
                StatusCode::FORBIDDEN,
                jsonrpc::INVALID_REQUEST,
                "Host not allowed",
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, &app.cfg.allow_origins) {
            tracing::warn!(
                origin,
                "refused a request from a foreign Origin (add --allow-origin to accept it)"
            );
            return Some(Refusal::rpc(
                StatusCode::FORBIDDEN,
                jsonrpc::INVALID_REQUEST,
                "Origin not allowed",
            ));
        }
    }
    let token = app.cfg.token.as_ref()?;
    if req.uri().path() == "/healthz" {
        return None;
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.0.as_bytes())) {
        return None;
    }
    Some(
        Refusal::rpc(
            StatusCode::UNAUTHORIZED,
            jsonrpc::INVALID_REQUEST,
            "missing or wrong bearer token",
        )
        .with(header::WWW_AUTHENTICATE, "Bearer"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_rule_covers_gateway_routes() {
        for p in [
            "/mcp",
            "/sse",
            "/messages",
            "/servers/a/mcp",
            "/servers/a/sse",
            "/servers/a/messages",
        ] {
            assert!(is_mcp_route(p), "{p}");
        }
        for p in [
            "/healthz",
            "/metrics",
            "/servers",
            "/servers/a",
            "/servers/a/healthz",
        ] {
            assert!(!is_mcp_route(p), "{p}");
        }
    }

    #[test]
    fn hosts() {
        let none: Vec<String> = vec![];
        assert!(host_allowed("localhost:9000", &none));
        assert!(host_allowed("127.0.0.1", &none));
        assert!(host_allowed("[::1]:80", &none));
        assert!(!host_allowed("evil.example:9000", &none));
        assert!(!host_allowed("localhost.evil.example", &none));
        let extra = vec!["host.docker.internal".to_owned()];
        assert!(host_allowed("host.docker.internal:9000", &extra));
        // Case, a trailing dot and IPv6 forms name the same hosts.
        assert!(host_allowed("LOCALHOST:9000", &none));
        assert!(host_allowed("localhost.:9000", &none));
        assert!(host_allowed("[::1]", &none));
        assert!(host_allowed("[::1]:80", &none));
        assert!(!host_allowed("[::2]:80", &none));
        assert!(!host_allowed("[::1", &none));
        assert!(!host_allowed("", &none));
        assert!(!host_allowed(":9000", &none));
        assert!(!host_allowed(".", &none));
        assert!(!host_allowed("evil.example.:9000", &none));
        assert!(!host_allowed("127.0.0.1.evil.example", &none));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bEaReR  abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
        assert_eq!(bearer(""), None);
    }

    #[test]
    fn origins() {
        let none: Vec<String> = vec![];
        assert!(origin_allowed("http://localhost:3000", &none));
        assert!(origin_allowed("https://127.0.0.1", &none));
        assert!(!origin_allowed("http://evil.example", &none));
        assert!(!origin_allowed("null", &none));
        let extra = vec!["https://app.example".to_owned()];
        assert!(origin_allowed("https://app.example", &extra));
        assert!(!origin_allowed("http://app.example", &extra));
    }
}
