//! The client's identity at the authorization server, in the spec's order of preference: a
//! pre-registered client from the config, a client ID metadata document (when the user hosts one
//! and the server supports them), else dynamic client registration (RFC 7591).

use super::discovery::{Discovered, ServerMetadata};
use super::entry::OAuthClientConfig;
use super::store::{AuthMethod, ClientRegistration, Secret};
use super::{OAuthError, describe, error_detail, read_limited};
use serde::Deserialize;

/// Picks the token endpoint authentication for a client that has a secret (or not), from the
/// methods the server lists (RFC 8414's default when it lists none: `client_secret_basic`).
pub fn choose_auth_method(meta: &ServerMetadata, has_secret: bool) -> AuthMethod {
    if !has_secret {
        return AuthMethod::None;
    }
    let supported = |m: &str| match &meta.token_endpoint_auth_methods_supported {
        Some(list) => list.iter().any(|x| x == m),
        None => m == "client_secret_basic",
    };
    if supported("client_secret_basic") {
        AuthMethod::ClientSecretBasic
    } else if supported("client_secret_post") {
        AuthMethod::ClientSecretPost
    } else if supported("none") {
        AuthMethod::None
    } else {
        AuthMethod::ClientSecretBasic
    }
}

fn method_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::ClientSecretBasic => "client_secret_basic",
        AuthMethod::ClientSecretPost => "client_secret_post",
        AuthMethod::None => "none",
    }
}

fn parse_method(s: &str) -> Option<AuthMethod> {
    match s {
        "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
        "client_secret_post" => Some(AuthMethod::ClientSecretPost),
        "none" => Some(AuthMethod::None),
        _ => None,
    }
}

/// The method to ask for at dynamic registration: the strongest of ours the server supports.
fn requested_method(meta: &ServerMetadata) -> AuthMethod {
    match &meta.token_endpoint_auth_methods_supported {
        Some(list) if list.iter().any(|m| m == "none") && list.len() == 1 => AuthMethod::None,
        _ => choose_auth_method(meta, true),
    }
}

/// Works out the client identity for this login.
pub async fn client_identity(
    http: &reqwest::Client,
    server_name: &str,
    found: &Discovered,
    config: &OAuthClientConfig,
    previous: Option<&ClientRegistration>,
    redirect_uri: &str,
    scopes: Option<&[String]>,
) -> Result<ClientRegistration, OAuthError> {
    if let Some(client_id) = &config.client_id {
        let secret = config.client_secret().map_err(OAuthError::Config)?;
        let auth_method = choose_auth_method(&found.metadata, secret.is_some());
        return Ok(ClientRegistration {
            client_id: client_id.clone(),
            client_secret: secret.map(Secret::new),
            auth_method,
            source: "preregistered".into(),
            redirect_uri: None,
        });
    }
    if let Some(url) = &config.client_metadata_url {
        if found.metadata.client_id_metadata_document_supported {
            return Ok(ClientRegistration {
                client_id: url.clone(),
                client_secret: None,
                auth_method: AuthMethod::None,
                source: "metadata-document".into(),
                redirect_uri: None,
            });
        }
        tracing::info!(
            "the authorization server does not support client ID metadata documents; registering dynamically"
        );
    }
    if let Some(prev) = previous
        && prev.source == "dynamic"
        && prev.redirect_uri.as_deref() == Some(redirect_uri)
    {
        return Ok(prev.clone());
    }
    let Some(endpoint) = &found.registration_endpoint else {
        return Err(OAuthError::NoRegistration {
            issuer: found.issuer.clone(),
            server: server_name.to_string(),
        });
    };
    let method = requested_method(&found.metadata);
    let mut body = serde_json::json!({
        "client_name": "mcp-bridge",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method_name(method),
    });
    if let Some(scopes) = scopes.filter(|s| !s.is_empty()) {
        body["scope"] = scopes.join(" ").into();
    }
    tracing::debug!("registering a client at {endpoint}");
    let resp = http
        .post(endpoint.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| OAuthError::Http {
            url: endpoint.to_string(),
            detail: describe(&e),
        })?;
    let status = resp.status();
    let bytes = read_limited(resp, endpoint.as_str()).await?;
    if !status.is_success() {
        let (error, description) = error_detail(&bytes);
        return Err(OAuthError::Status {
            url: endpoint.to_string(),
            status: status.as_u16(),
            detail: if error.is_empty() {
                String::new()
            } else {
                format!(" ({error}{description})")
            },
        });
    }
    #[derive(Deserialize)]
    struct Answer {
        client_id: String,
        client_secret: Option<String>,
        token_endpoint_auth_method: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| OAuthError::Metadata {
        url: endpoint.to_string(),
        detail: format!("registration answer: {e}"),
    })?;
    let secret = answer.client_secret.filter(|s| !s.is_empty());
    let auth_method = match answer
        .token_endpoint_auth_method
        .as_deref()
        .and_then(parse_method)
    {
        Some(m) => m,
        None if secret.is_none() => AuthMethod::None,
        None if method == AuthMethod::None => choose_auth_method(&found.metadata, true),
        None => method,
    };
    Ok(ClientRegistration {
        client_id: answer.client_id,
        client_secret: secret.map(Secret::new),
        auth_method,
        source: "dynamic".into(),
        redirect_uri: Some(redirect_uri.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(methods: Option<&[&str]>) -> ServerMetadata {
        ServerMetadata {
            token_endpoint_auth_methods_supported: methods
                .map(|m| m.iter().map(|s| s.to_string()).collect()),
            ..ServerMetadata::default()
        }
    }

    #[test]
    fn auth_method_follows_the_metadata() {
        assert_eq!(
            choose_auth_method(&meta(None), true),
            AuthMethod::ClientSecretBasic
        );
        assert_eq!(
            choose_auth_method(&meta(Some(&["client_secret_post"])), true),
            AuthMethod::ClientSecretPost
        );
        assert_eq!(
            choose_auth_method(&meta(Some(&["client_secret_basic"])), false),
            AuthMethod::None
        );
        assert_eq!(requested_method(&meta(Some(&["none"]))), AuthMethod::None);
        assert_eq!(
            requested_method(&meta(Some(&["none", "client_secret_post"]))),
            AuthMethod::ClientSecretPost
        );
    }
}
