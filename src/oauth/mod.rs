//! OAuth on the host. `mcp-bridge login NAME` runs the MCP authorization flow (discovery,
//! client registration, authorization code with PKCE) for a remote server of the gateway's
//! config and keeps the tokens in the host's token store; the gateway asks a [`TokenProvider`]
//! for a fresh access token before each request. Nothing here ever reaches the sandbox.

pub mod challenge;
pub mod cmd;
pub mod discovery;
pub mod endpoint;
pub mod entry;
pub mod flow;
pub mod pkce;
pub mod register;
pub mod relay;
pub mod store;
pub mod token;

pub use cmd::{LoginArgs, LogoutArgs};
pub use entry::{OAuthClientConfig, RemoteServer, server_entry};
pub use relay::{for_gateway, provider_for};
pub use store::{Store, StoreError, TokenRecord};
pub use token::{LoginReason, LoginRequired, TokenError, TokenProvider};

use std::path::Path;
use std::time::Duration;

/// Why a login (or a token request) failed. Messages name the URL or server, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The server's config entry.
    #[error(transparent)]
    Entry(#[from] entry::EntryError),
    /// The token store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting or flag.
    #[error("{0}")]
    Config(String),
    /// A request that got no answer.
    #[error("request to {url} failed: {detail}")]
    Http {
        /// The URL concerned (never carries a secret).
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// An unexpected HTTP status.
    #[error("{url} answered HTTP {status}{detail}")]
    Status {
        /// The URL concerned (never carries a secret).
        url: String,
        /// The HTTP status.
        status: u16,
        /// What went wrong.
        detail: String,
    },
    /// Metadata that cannot be used.
    #[error("bad metadata from {url}: {detail}")]
    Metadata {
        /// The URL concerned (never carries a secret).
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// Protected resource metadata for another resource.
    #[error(
        "the protected resource metadata is for `{advertised}`, not for {server}: refusing to log in"
    )]
    ResourceMismatch {
        /// The resource the metadata names.
        advertised: String,
        /// The server (its URL or config name).
        server: String,
    },
    /// An OAuth endpoint that is not https (nor loopback http).
    #[error("refusing {what} {url}: OAuth needs https (plain http only to a loopback address)")]
    Insecure {
        /// Which endpoint.
        what: &'static str,
        /// The URL concerned (never carries a secret).
        url: String,
    },
    /// No PKCE S256 at the authorization server.
    #[error(
        "authorization server {issuer} does not support PKCE with S256 (code_challenge_methods_supported): refusing to log in"
    )]
    NoPkce {
        /// The authorization server's issuer.
        issuer: String,
    },
    /// No way to get a client.
    #[error(
        "authorization server {issuer} offers no dynamic client registration: register a client with it and set `mcpBridge.servers.{server}.oauth.clientId` in the config"
    )]
    NoRegistration {
        /// The authorization server's issuer.
        issuer: String,
        /// The server (its URL or config name).
        server: String,
    },
    /// An OAuth error answer (RFC 6749 §5.2).
    #[error("the authorization server refused: {error}{description}")]
    Refused {
        /// The `error` code.
        error: String,
        /// `: error_description`, or empty.
        description: String,
    },
    /// The callback's `state` was not this login's.
    #[error(
        "the callback's `state` did not match this login: refused (a stale tab or a forged redirect); run login again"
    )]
    StateMismatch,
    /// The browser did not come back in time.
    #[error("no answer from the browser within {0:?}; run login again (or raise --timeout)")]
    Timeout(Duration),
    /// The loopback callback could not listen.
    #[error("cannot listen for the redirect on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// No randomness for `state` and PKCE.
    #[error("the system has no randomness to give: {0}")]
    Random(getrandom::Error),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl From<getrandom::Error> for OAuthError {
    fn from(e: getrandom::Error) -> Self {
        OAuthError::Random(e)
    }
}

/// The largest metadata, registration or token response accepted.
pub const MAX_RESPONSE: usize = 256 * 1024;

/// Every HTTP call here (metadata, registration, token) gives up after this long.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client for OAuth calls: rustls with the system's roots plus an optional extra CA,
/// proxies from the environment, same-origin redirects only (never forward a form with a secret
/// or a code to another host), a timeout on every request.
pub fn http_client(ca_cert: Option<&Path>) -> Result<reqwest::Client, OAuthError> {
    // main installs it; a library user (or a test) may not have.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let redirect = reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .last()
            .is_some_and(|prev| prev.origin() == attempt.url().origin());
        if attempt.previous().len() >= 5 || !same {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(redirect)
        .referer(false)
        .timeout(HTTP_TIMEOUT)
        // The code exchange follows a browser round trip of any length: a pooled connection
        // that the server has since closed (Node closes idle ones after 5 s) would fail it.
        .pool_idle_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("mcp-bridge/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|e| {
            OAuthError::Config(format!("cannot read --ca-cert {}: {e}", path.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            OAuthError::Config(format!(
                "--ca-cert {}: not a PEM certificate: {e}",
                path.display()
            ))
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| OAuthError::Config(format!("cannot build the HTTP client: {e}")))
}

/// Whether `url` may carry OAuth traffic: https, or http to a loopback address.
pub fn secure_enough(url: &url::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// Parses an endpoint URL from metadata and refuses an insecure one.
pub fn endpoint_url(what: &'static str, raw: &str) -> Result<url::Url, OAuthError> {
    let url = url::Url::parse(raw).map_err(|e| OAuthError::Metadata {
        url: raw.chars().take(200).collect(),
        detail: format!("{what} is not a URL: {e}"),
    })?;
    if !secure_enough(&url) {
        return Err(OAuthError::Insecure {
            what,
            url: url.to_string(),
        });
    }
    Ok(url)
}

/// A reqwest error with its causes (the URLs requested here carry no secrets).
pub fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

/// Reads a response body up to [`MAX_RESPONSE`] bytes.
pub async fn read_limited(mut resp: reqwest::Response, url: &str) -> Result<Vec<u8>, OAuthError> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE {
                    return Err(OAuthError::Metadata {
                        url: url.to_string(),
                        detail: format!("response larger than {MAX_RESPONSE} bytes"),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(OAuthError::Http {
                    url: url.to_string(),
                    detail: describe(&e),
                });
            }
        }
    }
}

/// `: description` from an OAuth error body (RFC 6749 §5.2), short and printable.
pub fn error_detail(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect::<String>()
    };
    let error = v
        .get("error")
        .and_then(|e| e.as_str())
        .map(clean)
        .unwrap_or_default();
    let description = v
        .get("error_description")
        .and_then(|e| e.as_str())
        .map(|d| format!(": {}", clean(d)))
        .unwrap_or_default();
    (error, description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        let ok = |s: &str| secure_enough(&url::Url::parse(s).unwrap());
        assert!(ok("https://example.com/x"));
        assert!(ok("http://127.0.0.1:9/x"));
        assert!(ok("http://localhost:9/x"));
        assert!(ok("http://[::1]:9/x"));
        assert!(!ok("http://example.com/x"));
        assert!(!ok("http://10.0.0.1/x"));
        assert!(!ok("ftp://127.0.0.1/x"));
    }

    #[test]
    fn error_bodies_are_trimmed() {
        let (e, d) = error_detail(br#"{"error":"invalid_grant","error_description":"bad\ncode"}"#);
        assert_eq!(e, "invalid_grant");
        assert_eq!(d, ": badcode");
        assert_eq!(error_detail(b"<html>"), (String::new(), String::new()));
    }
}
