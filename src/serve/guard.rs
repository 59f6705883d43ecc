//! Request checks in front of every route: Host and Origin against the allow-list (403; defends
//! against DNS rebinding), then the bearer token (401, compared in constant time; /healthz is
//! exempt). Also counts error answers for /metrics.

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

/// Whether a `Host` header value is on the allow-list.
pub fn host_allowed(host: &str, extra: &[String]) -> bool {
    let h = host_only(host);
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
    let resp = match refuse(&app, &req) {
        Some(refusal) => refusal.into_response(),
        // Past the token check: the caller's identity (and key) pick its children.
        None => match Caller::of(req.headers(), app.cfg.token.is_some()) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                next.run(req).await
            }
            Err(refusal) => refusal.into_response(),
        },
    };
    if resp.status().is_client_error() || resp.status().is_server_error() {
        app.metrics.http_errors.inc();
    }
    resp
}

fn refuse(app: &App, req: &Request) -> Option<Refusal> {
    let headers = req.headers();
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
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
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
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
    fn hosts() {
        let none: Vec<String> = vec![];
        assert!(host_allowed("localhost:9000", &none));
        assert!(host_allowed("127.0.0.1", &none));
        assert!(host_allowed("[::1]:80", &none));
        assert!(!host_allowed("evil.example:9000", &none));
        assert!(!host_allowed("localhost.evil.example", &none));
        let extra = vec!["host.docker.internal".to_owned()];
        assert!(host_allowed("host.docker.internal:9000", &extra));
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
