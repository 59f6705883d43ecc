//! Discovery: the server's 401 challenge, its protected resource metadata (RFC 9728) and its
//! authorization server's metadata (RFC 8414 or OpenID discovery), with the 2025-03-26 fallback
//! to the server's origin and default endpoints.

pub use super::challenge::{Challenge, parse_bearer, split_scopes};
use super::{OAuthError, describe, endpoint_url, read_limited, secure_enough};
use reqwest::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde::Deserialize;
use std::collections::BTreeMap;
use url::Url;

/// RFC 9728 protected resource metadata, the fields used here.
#[derive(Clone, Debug, Deserialize)]
pub struct ResourceMetadata {
    /// The resource the metadata is for (must cover the server's URL).
    pub resource: Option<String>,
    /// Issuers of the authorization servers that protect it.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// The scopes it says it knows.
    pub scopes_supported: Option<Vec<String>>,
}

/// RFC 8414 / OpenID authorization server metadata, the fields used here.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ServerMetadata {
    /// `issuer`, which must match the one asked for.
    pub issuer: Option<String>,
    /// Where the browser is sent.
    pub authorization_endpoint: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: Option<String>,
    /// Dynamic client registration (RFC 7591), if offered.
    pub registration_endpoint: Option<String>,
    /// The scopes the authorization server knows.
    pub scopes_supported: Option<Vec<String>>,
    /// How a client may authenticate at the token endpoint.
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// PKCE methods; `S256` must be among them.
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Whether an https URL may serve as `client_id` (client ID metadata documents).
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
}

/// What discovery found: where to send the user and the tokens, and for which resource.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The RFC 8707 resource; `None` in the 2025-03-26 mode (no protected resource metadata).
    pub resource: Option<String>,
    /// The authorization server's issuer.
    pub issuer: String,
    /// Where the browser is sent.
    pub authorization_endpoint: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: Url,
    /// Dynamic client registration, if offered.
    pub registration_endpoint: Option<Url>,
    /// Everything else the metadata said.
    pub metadata: ServerMetadata,
    /// Scopes from the 401 challenge, else the resource's `scopes_supported`.
    pub suggested_scopes: Option<Vec<String>>,
}

/// Runs discovery for the MCP server at `server`.
pub async fn discover(
    client: &reqwest::Client,
    server: &Url,
    headers: &BTreeMap<String, String>,
) -> Result<Discovered, OAuthError> {
    if !secure_enough(server) {
        return Err(OAuthError::Insecure {
            what: "server URL",
            url: server.to_string(),
        });
    }
    let challenge = probe(client, server, headers).await?;
    let mut candidates = Vec::new();
    if let Some(url) = challenge.as_ref().and_then(|c| c.get("resource_metadata")) {
        candidates.push(endpoint_url("resource_metadata", url)?);
    }
    candidates.extend(well_known(server, "oauth-protected-resource"));
    let mut prm = None;
    for url in candidates {
        if let Some(meta) = get_json::<ResourceMetadata>(client, &url).await? {
            prm = Some(meta);
            break;
        }
    }
    let challenge_scopes = challenge.as_ref().and_then(Challenge::scopes);
    let Some(prm) = prm else {
        return legacy(client, server, challenge_scopes).await;
    };
    let resource = prm.resource.clone().unwrap_or_else(|| canonical(server));
    if !resource_covers(&resource, server) {
        return Err(OAuthError::ResourceMismatch {
            advertised: resource.chars().take(200).collect(),
            server: server.to_string(),
        });
    }
    let issuer = prm
        .authorization_servers
        .first()
        .ok_or_else(|| OAuthError::Metadata {
            url: server.to_string(),
            detail: "protected resource metadata names no authorization server".into(),
        })?;
    let issuer_url = endpoint_url("authorization server", issuer)?;
    let mut meta = None;
    for url in server_metadata_urls(&issuer_url) {
        if let Some(m) = get_json::<ServerMetadata>(client, &url).await? {
            meta = Some((m, url));
            break;
        }
    }
    let (metadata, from) = meta.ok_or_else(|| OAuthError::Metadata {
        url: issuer.clone(),
        detail: "no authorization server metadata at any well-known location".into(),
    })?;
    let trim = |s: &str| s.trim_end_matches('/').to_string();
    if metadata.issuer.as_deref().map(trim) != Some(trim(issuer)) {
        return Err(OAuthError::Metadata {
            url: from.to_string(),
            detail: format!("`issuer` is not `{issuer}` (RFC 8414 §3.3)"),
        });
    }
    let s256 = metadata
        .code_challenge_methods_supported
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| m == "S256"));
    if !s256 {
        return Err(OAuthError::NoPkce {
            issuer: issuer.clone(),
        });
    }
    let suggested_scopes = challenge_scopes.or_else(|| prm.scopes_supported.clone());
    build(
        Some(resource),
        issuer.clone(),
        metadata,
        suggested_scopes,
        &from,
    )
}

/// The 2025-03-26 mode: the server's origin is the authorization server; its RFC 8414 metadata
/// if it has some, else the default endpoints /authorize, /token and /register.
async fn legacy(
    client: &reqwest::Client,
    server: &Url,
    challenge_scopes: Option<Vec<String>>,
) -> Result<Discovered, OAuthError> {
    let origin = server.origin().ascii_serialization();
    let base = Url::parse(&origin).map_err(|e| OAuthError::Config(format!("{server}: {e}")))?;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let url = base.join(path).expect("a fixed path joins");
        if let Some(metadata) = get_json::<ServerMetadata>(client, &url).await? {
            tracing::info!(
                "no protected resource metadata: using {origin} as the authorization server (2025-03-26)"
            );
            return build(None, origin, metadata, challenge_scopes, &url);
        }
    }
    tracing::info!("no OAuth metadata: using the default endpoints of {origin} (2025-03-26)");
    let at = |p: &str| base.join(p).expect("a fixed path joins").to_string();
    let metadata = ServerMetadata {
        issuer: Some(origin.clone()),
        authorization_endpoint: Some(at("/authorize")),
        token_endpoint: Some(at("/token")),
        registration_endpoint: Some(at("/register")),
        ..ServerMetadata::default()
    };
    build(None, origin, metadata, challenge_scopes, &base)
}

fn build(
    resource: Option<String>,
    issuer: String,
    metadata: ServerMetadata,
    suggested_scopes: Option<Vec<String>>,
    from: &Url,
) -> Result<Discovered, OAuthError> {
    let missing = |field: &str| OAuthError::Metadata {
        url: from.to_string(),
        detail: format!("no `{field}`"),
    };
    let authorization_endpoint = endpoint_url(
        "authorization endpoint",
        metadata
            .authorization_endpoint
            .as_deref()
            .ok_or_else(|| missing("authorization_endpoint"))?,
    )?;
    let token_endpoint = endpoint_url(
        "token endpoint",
        metadata
            .token_endpoint
            .as_deref()
            .ok_or_else(|| missing("token_endpoint"))?,
    )?;
    let registration_endpoint = metadata
        .registration_endpoint
        .as_deref()
        .map(|u| endpoint_url("registration endpoint", u))
        .transpose()?;
    Ok(Discovered {
        resource,
        issuer,
        authorization_endpoint,
        token_endpoint,
        registration_endpoint,
        metadata,
        suggested_scopes,
    })
}

/// Sends an unauthenticated `initialize` to learn the server's challenge.
async fn probe(
    client: &reqwest::Client,
    server: &Url,
    headers: &BTreeMap<String, String>,
) -> Result<Option<Challenge>, OAuthError> {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "mcp-bridge", "version": env!("CARGO_PKG_VERSION")}}
    });
    let mut req = client
        .post(server.clone())
        .header(ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| OAuthError::Http {
        url: server.to_string(),
        detail: describe(&e),
    })?;
    let challenge = resp
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_bearer);
    if resp.status().is_success() {
        tracing::warn!("{server} answered without a token; looking for OAuth metadata anyway");
    }
    Ok(challenge)
}

/// GETs JSON metadata; `None` for a 4xx (not there), an error for anything else that fails.
async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &Url,
) -> Result<Option<T>, OAuthError> {
    tracing::debug!("GET {url}");
    let resp = client
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .header("MCP-Protocol-Version", "2025-11-25")
        .send()
        .await
        .map_err(|e| OAuthError::Http {
            url: url.to_string(),
            detail: describe(&e),
        })?;
    let status = resp.status();
    if status.is_client_error() {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(OAuthError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            detail: String::new(),
        });
    }
    let body = read_limited(resp, url.as_str()).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| OAuthError::Metadata {
            url: url.to_string(),
            detail: format!("not the expected JSON: {e}"),
        })
}

/// RFC 9728 §3.1 / RFC 8414 §3.1: `/.well-known/NAME` inserted before the URL's path, then (when
/// there is a path) at the root.
fn well_known(url: &Url, name: &str) -> Vec<Url> {
    let path = url.path().trim_end_matches('/');
    let mut out = Vec::new();
    let mut at = |p: String| {
        let mut u = url.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        out.push(u);
    };
    if !path.is_empty() {
        at(format!("/.well-known/{name}{path}"));
    }
    at(format!("/.well-known/{name}"));
    out
}

/// The spec's order for an issuer: with a path, OAuth then OpenID path insertion, then OpenID
/// path appending; without one, OAuth then OpenID at the root.
pub fn server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/');
    let mk = |p: String| {
        let mut u = issuer.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        u
    };
    if path.is_empty() {
        vec![
            mk("/.well-known/oauth-authorization-server".into()),
            mk("/.well-known/openid-configuration".into()),
        ]
    } else {
        vec![
            mk(format!("/.well-known/oauth-authorization-server{path}")),
            mk(format!("/.well-known/openid-configuration{path}")),
            mk(format!("{path}/.well-known/openid-configuration")),
        ]
    }
}

/// The canonical URI of the server (RFC 8707 / the MCP spec): no fragment, and no lone `/` path.
pub fn canonical(server: &Url) -> String {
    let mut u = server.clone();
    u.set_fragment(None);
    let s = u.to_string();
    if u.path() == "/" && u.query().is_none() {
        s.trim_end_matches('/').to_string()
    } else {
        s
    }
}

/// Whether a protected resource identifier covers the server URL: same origin, and its path a
/// prefix of the server's at a segment boundary.
pub fn resource_covers(resource: &str, server: &Url) -> bool {
    let Ok(res) = Url::parse(resource) else {
        return false;
    };
    if res.origin() != server.origin() || res.fragment().is_some() {
        return false;
    }
    let rp = res.path().trim_end_matches('/');
    let sp = server.path().trim_end_matches('/');
    sp == rp || sp.starts_with(&format!("{rp}/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_the_spec_order() {
        let u = Url::parse("https://h/public/mcp?x=1").unwrap();
        let got: Vec<String> = well_known(&u, "oauth-protected-resource")
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "https://h/.well-known/oauth-protected-resource/public/mcp",
                "https://h/.well-known/oauth-protected-resource",
            ]
        );
        let got: Vec<String> = server_metadata_urls(&Url::parse("https://a/tenant1").unwrap())
            .iter()
            .map(Url::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "https://a/.well-known/oauth-authorization-server/tenant1",
                "https://a/.well-known/openid-configuration/tenant1",
                "https://a/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            server_metadata_urls(&Url::parse("https://a").unwrap()).len(),
            2
        );
    }

    #[test]
    fn resources_must_cover_the_server() {
        let s = Url::parse("http://localhost:9/mcp").unwrap();
        assert!(resource_covers("http://localhost:9/mcp", &s));
        assert!(resource_covers("http://localhost:9", &s));
        assert!(resource_covers("http://localhost:9/", &s));
        assert!(!resource_covers("https://evil.example.com/mcp", &s));
        assert!(!resource_covers("http://localhost:9/mc", &s));
        assert!(!resource_covers("http://localhost:10/mcp", &s));
        assert_eq!(
            canonical(&Url::parse("https://h/mcp#f").unwrap()),
            "https://h/mcp"
        );
        assert_eq!(canonical(&Url::parse("https://h").unwrap()), "https://h");
    }
}
