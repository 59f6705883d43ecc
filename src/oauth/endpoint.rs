//! Requests to the token endpoint: the authorization code grant at login and the refresh token
//! grant in the gateway, with the client authentication the registration chose and the RFC 8707
//! resource on both.

use super::store::{AuthMethod, ClientRegistration, Secret};
use super::{OAuthError, describe, error_detail, read_limited};
use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

/// The grant being exchanged for tokens.
pub enum Grant<'a> {
    /// The code from the redirect, with the redirect URI and the PKCE verifier.
    AuthorizationCode {
        /// The authorization code.
        code: &'a str,
        /// The redirect URI the code was sent to.
        redirect_uri: &'a str,
        /// The PKCE code verifier.
        verifier: &'a str,
    },
    /// A refresh token.
    Refresh {
        /// The refresh token.
        refresh_token: &'a str,
    },
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug)]
pub struct TokenAnswer {
    /// The access token.
    pub access_token: Secret,
    /// A (new) refresh token, if one was issued.
    pub refresh_token: Option<Secret>,
    /// Lifetime in seconds, if stated.
    pub expires_in: Option<u64>,
    /// Scopes granted, if stated.
    pub scopes: Option<Vec<String>>,
}

/// Asks the token endpoint for tokens. A refusal with an OAuth error body becomes
/// [`OAuthError::Refused`] carrying the `error` code (e.g. `invalid_grant`).
pub async fn request_token(
    http: &reqwest::Client,
    token_endpoint: &str,
    client: &ClientRegistration,
    resource: Option<&str>,
    grant: Grant<'_>,
) -> Result<TokenAnswer, OAuthError> {
    let (form, basic) = encode(client, resource, grant);
    let mut req = http
        .post(token_endpoint)
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(basic) = basic {
        req = req.header(AUTHORIZATION, basic);
    }
    let resp = req.body(form).send().await.map_err(|e| OAuthError::Http {
        url: token_endpoint.to_string(),
        detail: describe(&e),
    })?;
    let status = resp.status();
    let body = read_limited(resp, token_endpoint).await?;
    if !status.is_success() {
        let (error, description) = error_detail(&body);
        if !error.is_empty() {
            return Err(OAuthError::Refused { error, description });
        }
        return Err(OAuthError::Status {
            url: token_endpoint.to_string(),
            status: status.as_u16(),
            detail: String::new(),
        });
    }
    parse_answer(&body).map_err(|detail| OAuthError::Metadata {
        url: token_endpoint.to_string(),
        detail,
    })
}

/// The form body and, for `client_secret_basic`, the Authorization header value.
fn encode(
    client: &ClientRegistration,
    resource: Option<&str>,
    grant: Grant<'_>,
) -> (String, Option<String>) {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match grant {
        Grant::AuthorizationCode {
            code,
            redirect_uri,
            verifier,
        } => {
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_verifier", verifier);
        }
        Grant::Refresh { refresh_token } => {
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh_token);
        }
    }
    if let Some(resource) = resource {
        form.append_pair("resource", resource);
    }
    let mut basic = None;
    let secret = client.client_secret.as_ref().map(Secret::expose);
    match (client.auth_method, secret) {
        (AuthMethod::ClientSecretBasic, Some(secret)) => {
            // RFC 6749 §2.3.1: both parts form-encoded before joining.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&client.client_id), enc(secret));
            let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
            basic = Some(format!("Basic {b64}"));
        }
        (AuthMethod::ClientSecretPost, Some(secret)) => {
            form.append_pair("client_id", &client.client_id)
                .append_pair("client_secret", secret);
        }
        _ => {
            form.append_pair("client_id", &client.client_id);
        }
    }
    (form.finish(), basic)
}

fn parse_answer(body: &[u8]) -> Result<TokenAnswer, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the token response is not JSON".to_string())?;
    let access_token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or("the token response has no access_token")?;
    if let Some(kind) = v.get("token_type").and_then(|t| t.as_str())
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "token_type `{}` is not Bearer",
            kind.chars().take(40).collect::<String>()
        ));
    }
    let expires_in = match v.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(TokenAnswer {
        access_token: Secret::new(access_token),
        refresh_token: v
            .get("refresh_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        expires_in,
        scopes: v
            .get("scope")
            .and_then(|s| s.as_str())
            .map(super::discovery::split_scopes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_parse_leniently_but_safely() {
        let a = parse_answer(
            br#"{"access_token":"x","token_type":"bearer","expires_in":"60","scope":"a b"}"#,
        )
        .unwrap();
        assert_eq!(a.expires_in, Some(60));
        assert_eq!(a.scopes.unwrap(), vec!["a", "b"]);
        assert!(parse_answer(br#"{"token_type":"Bearer"}"#).is_err());
        assert!(parse_answer(br#"{"access_token":"x","token_type":"mac"}"#).is_err());
        let err = parse_answer(b"<html>").unwrap_err();
        assert!(!err.contains("html"));
    }
}
