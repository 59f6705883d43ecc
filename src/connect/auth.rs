//! OAuth for a relay run by the gateway on the host: when [`Config::auth`](super::Config) holds a
//! [`TokenProvider`], every request gets `Authorization: Bearer` with a fresh access token; a 401
//! (the request did not run) refreshes the token once and sends the request once more; a 403
//! `insufficient_scope` and a token the provider cannot give become the bridge's own error, whose
//! message names the `mcp-bridge login` to run on the host. `connect` in a sandbox never has a
//! provider: it holds no credential. The token is only ever in a sensitive header value.

use super::Shared;
use super::http::{self, Outgoing};
use crate::oauth::store::Secret;
use crate::oauth::{TokenError, TokenProvider};
use crate::wire::{BridgeError, Reason};
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::Instant;

/// The access token a request was sent with (kept to tell the provider which one a 401 refused).
pub(crate) type Used = Option<Secret>;

/// The bridge error for a provider that has no token to give.
pub(crate) fn token_failure(err: &TokenError, provider: &TokenProvider) -> BridgeError {
    let (reason, message) = match err {
        TokenError::LoginRequired(_) => (Reason::LoginRequired, err.to_string()),
        TokenError::Unavailable { .. } => (
            Reason::TokenUnavailable,
            format!(
                "{err}; if this persists, run `{}` on the host",
                provider.login_command()
            ),
        ),
    };
    BridgeError::new(reason, false, message)
}

/// The `Authorization` value for `token`; `None` for a token a header cannot carry (it is sent
/// without: the server's 401 tells the user).
fn bearer(token: &Secret) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose())).ok()?;
    // Keeps the value out of any Debug output, and out of HPACK's tables.
    value.set_sensitive(true);
    Some(value)
}

/// Adds the bearer token to `req`.
fn with_bearer(req: RequestBuilder, token: &Secret) -> RequestBuilder {
    match bearer(token) {
        Some(value) => req.header(AUTHORIZATION, value),
        None => req,
    }
}

fn www_authenticate(resp: &Response) -> Option<&str> {
    resp.headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
}

impl Shared {
    /// `req` with the current access token, and that token; `req` as it is without a provider.
    pub async fn authorize(
        &self,
        req: RequestBuilder,
    ) -> Result<(RequestBuilder, Used), BridgeError> {
        let Some(provider) = &self.config.auth else {
            return Ok((req, None));
        };
        match provider.access_token().await {
            Ok(token) => {
                let token = Secret::new(token);
                Ok((with_bearer(req, &token), Some(token)))
            }
            Err(e) => Err(token_failure(&e, provider)),
        }
    }

    /// For requests retried on their own schedule (the GET streams): after a 401 to a request
    /// sent with `used`, have the next attempt use a refreshed token.
    pub async fn refused(&self, resp: &Response, used: &Used) {
        if let (Some(provider), Some(token)) = (&self.config.auth, used)
            && resp.status() == StatusCode::UNAUTHORIZED
            && let Err(e) = provider.refresh_after_401(token.expose()).await
        {
            tracing::warn!("{}", token_failure(&e, provider).message);
        }
    }

    /// Sends a request built by `make` as [`http::send`] does, with the access token when the
    /// relay has a provider. A 401 refreshes the token and sends the request again, once; with
    /// a provider, a 401 after that and a 403 `insufficient_scope` come back as the bridge's
    /// `login-required` error.
    pub async fn send(
        &self,
        deadline: Instant,
        make: impl Fn() -> Outgoing,
    ) -> Result<Response, BridgeError> {
        let Some(provider) = &self.config.auth else {
            return http::send(&self.link, &self.target, deadline, make).await;
        };
        let mut token = match provider.access_token().await {
            Ok(t) => Secret::new(t),
            Err(e) => return Err(token_failure(&e, provider)),
        };
        let mut refreshed = false;
        loop {
            let value = bearer(&token);
            let resp = http::send(&self.link, &self.target, deadline, || match &value {
                Some(v) => make().header(AUTHORIZATION, v.clone()),
                None => make(),
            })
            .await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    // A 401 means the request did not run: sending it again is safe.
                    refreshed = true;
                    tracing::debug!(target = %self.target, "401: refreshing the access token");
                    token = match provider.refresh_after_401(token.expose()).await {
                        Ok(t) => Secret::new(t),
                        Err(e) => return Err(token_failure(&e, provider)),
                    };
                }
                StatusCode::UNAUTHORIZED => {
                    let e = provider.rejected();
                    let mut f = token_failure(&e, provider);
                    f.http_status = Some(401);
                    return Err(f);
                }
                StatusCode::FORBIDDEN
                    if www_authenticate(&resp)
                        .is_some_and(|w| w.contains("insufficient_scope")) =>
                {
                    let www = www_authenticate(&resp).unwrap_or_default().to_owned();
                    let e = provider.insufficient_scope(&www).await;
                    let mut f = token_failure(&e, provider);
                    f.http_status = Some(403);
                    return Err(f);
                }
                _ => return Ok(resp),
            }
        }
    }
}
