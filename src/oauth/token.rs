//! The gateway's view of the token store: [`TokenProvider`] hands out a fresh access token for
//! one server, refreshing it shortly before it expires or after a 401, one refresh at a time for
//! every session of this process, and picking up a refresh another process already made.

use super::discovery::parse_bearer;
use super::endpoint::{Grant, request_token};
use super::store::{Store, StoreError, TokenRecord, now_secs};
use super::{OAuthError, http_client};
use std::sync::Arc;
use std::time::Duration;

/// Why the gateway has no usable token: the user must run `login` on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginReason {
    /// No token stored for the server.
    NotLoggedIn,
    /// The token expired and there is no refresh token.
    Expired,
    /// The authorization server refused the refresh token (revoked, rotated away, too old).
    RefreshRejected,
    /// A 403 `insufficient_scope`: the server wants these scopes.
    InsufficientScope {
        /// The scopes the server's challenge named (space-separated).
        scope: String,
    },
    /// The server refused the token even after a refresh (revoked, or issued for another
    /// resource).
    Rejected,
}

/// The error the sandbox's request gets (with `reason: "login-required"`): what happened and the
/// command to run on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRequired {
    /// The server's name in the gateway config.
    pub server: String,
    /// Why a login is needed.
    pub reason: LoginReason,
    /// The command to run on the host, e.g. `mcp-bridge login github --config /etc/mcp.json`.
    pub command: String,
}

impl std::fmt::Display for LoginRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (server, command) = (&self.server, &self.command);
        match &self.reason {
            LoginReason::NotLoggedIn => write!(f, "not logged in to `{server}`"),
            LoginReason::Expired => write!(f, "the OAuth token for `{server}` expired"),
            LoginReason::RefreshRejected => {
                write!(
                    f,
                    "the authorization server for `{server}` refused to refresh the token"
                )
            }
            LoginReason::Rejected => {
                write!(f, "`{server}` refused the OAuth token even after a refresh")
            }
            LoginReason::InsufficientScope { scope } => write!(
                f,
                "`{server}` needs more permissions (scope `{scope}`); the next login asks for them"
            ),
        }?;
        write!(f, ": run `{command}` on the host")
    }
}

impl std::error::Error for LoginRequired {}

/// Why [`TokenProvider`] could not give a token.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TokenError {
    /// Only a login on the host helps.
    #[error(transparent)]
    LoginRequired(#[from] LoginRequired),
    /// A passing failure (authorization server unreachable, store unreadable): retrying may help.
    #[error("cannot get an OAuth token for `{server}`: {detail}")]
    Unavailable {
        /// The server (its URL or config name).
        server: String,
        /// What went wrong.
        detail: String,
    },
}

impl TokenError {
    /// The `reason` for the bridge's error object: `login-required` or `token-unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::LoginRequired(_) => "login-required",
            TokenError::Unavailable { .. } => "token-unavailable",
        }
    }
}

/// Refresh this long before the stated expiry.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Fresh access tokens for one server, shared by every session (wrap it in an `Arc`).
pub struct TokenProvider {
    name: String,
    store: Store,
    http: reqwest::Client,
    command: String,
    margin: Duration,
    /// The last record read or written: the fast path needs no file access.
    cached: std::sync::Mutex<Option<Arc<TokenRecord>>>,
    /// Held by the one task refreshing; the others wait on it and then reuse its token.
    /// Guarded by `refreshing`: when the last refresh failed for a passing reason and why, so
    /// that an unreachable authorization server is asked at most once per [`RETRY_AFTER`].
    failed: std::sync::Mutex<Option<(tokio::time::Instant, String)>>,
    refreshing: tokio::sync::Mutex<()>,
}

/// After a refresh fails for a passing reason, callers get that failure for this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("server", &self.name)
            .finish_non_exhaustive()
    }
}

impl TokenProvider {
    /// A provider for the server called `server_name` in the gateway config.
    pub fn new(server_name: &str, store: Store) -> Result<Self, OAuthError> {
        super::store::check_name(server_name)?;
        Ok(Self {
            name: server_name.to_string(),
            store,
            http: http_client(None)?,
            command: format!("mcp-bridge login {server_name}"),
            margin: REFRESH_MARGIN,
            cached: std::sync::Mutex::new(None),
            failed: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// Names the config file in the login command it suggests (`--config PATH`).
    pub fn with_config_hint(mut self, config: &std::path::Path) -> Self {
        self.command = format!(
            "mcp-bridge login {} --config {}",
            self.name,
            config.display()
        );
        self
    }

    /// Uses this HTTP client for refreshes (e.g. one trusting a private CA).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Refreshes this long before expiry instead of 60 s.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// The command the user runs on the host to log in to this server again.
    pub fn login_command(&self) -> &str {
        &self.command
    }

    /// The error for a server that answered 401 to a token just refreshed: only a new login
    /// helps. The cached token is dropped so that the next request reads the store again.
    pub fn rejected(&self) -> TokenError {
        self.remember(None);
        self.login_required(LoginReason::Rejected)
    }

    fn login_required(&self, reason: LoginReason) -> TokenError {
        TokenError::LoginRequired(LoginRequired {
            server: self.name.clone(),
            reason,
            command: self.command.clone(),
        })
    }

    fn unavailable(&self, detail: impl std::fmt::Display) -> TokenError {
        TokenError::Unavailable {
            server: self.name.clone(),
            detail: detail.to_string(),
        }
    }

    fn cached(&self) -> Option<Arc<TokenRecord>> {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remember(&self, record: Option<Arc<TokenRecord>>) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = record;
    }

    /// An access token good for at least the margin, refreshed first if needed.
    pub async fn access_token(&self) -> Result<String, TokenError> {
        if let Some(rec) = self.cached().filter(|r| r.fresh_for(self.margin)) {
            return Ok(rec.access_token.expose().to_string());
        }
        self.refresh(None).await
    }

    /// After the server answered 401 to `rejected`: a newer token if another session already
    /// got one, else a refresh.
    pub async fn refresh_after_401(&self, rejected: &str) -> Result<String, TokenError> {
        self.refresh(Some(rejected)).await
    }

    /// After a 403 with `error="insufficient_scope"`: records the scope the server asked for, so
    /// the next `login` requests it too, and returns the error for the sandbox.
    pub async fn insufficient_scope(&self, www_authenticate: &str) -> TokenError {
        let scope = parse_bearer(www_authenticate)
            .and_then(|c| c.get("scope").map(str::to_string))
            .unwrap_or_default();
        let wanted = super::discovery::split_scopes(&scope);
        let (store, name) = (self.store.clone(), self.name.clone());
        let saved = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let _lock = store.lock(&name)?;
            if let Some(mut rec) = store.load(&name)? {
                let before = rec.step_up_scopes.len();
                for s in wanted {
                    if !rec.step_up_scopes.contains(&s) && !rec.scopes.contains(&s) {
                        rec.step_up_scopes.push(s);
                    }
                }
                if rec.step_up_scopes.len() != before {
                    store.save(&rec)?;
                }
            }
            Ok(())
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::warn!("cannot note the requested scope for `{}`: {e}", self.name);
        }
        // The user's next login replaces the token: read the store again rather than the cache.
        self.remember(None);
        self.login_required(LoginReason::InsufficientScope { scope })
    }

    async fn refresh(&self, rejected: Option<&str>) -> Result<String, TokenError> {
        let _turn = self.refreshing.lock().await;
        // Whoever held the turn before may have refreshed already.
        let usable = |r: &TokenRecord| {
            r.fresh_for(self.margin) && rejected.is_none_or(|bad| r.access_token.expose() != bad)
        };
        if let Some(rec) = self.cached().filter(|r| usable(r)) {
            return Ok(rec.access_token.expose().to_string());
        }
        // Another process may have refreshed: read the store under its lock, and keep the lock
        // while refreshing so that process and this one never both spend the refresh token.
        let (store, name) = (self.store.clone(), self.name.clone());
        let (lock, record) = tokio::task::spawn_blocking(move || {
            let lock = store.lock(&name)?;
            let record = store.load(&name)?;
            Ok::<_, StoreError>((lock, record))
        })
        .await
        .map_err(|e| self.unavailable(e))?
        .map_err(|e| self.unavailable(e))?;
        let Some(record) = record else {
            self.remember(None);
            return Err(self.login_required(LoginReason::NotLoggedIn));
        };
        if usable(&record) {
            let token = record.access_token.expose().to_string();
            self.remember(Some(Arc::new(record)));
            return Ok(token);
        }
        let Some(refresh_token) = record.refresh_token.clone() else {
            self.remember(Some(Arc::new(record)));
            return Err(self.login_required(LoginReason::Expired));
        };
        let recent = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(at, _)| at.elapsed() < RETRY_AFTER);
        if let Some((_, why)) = recent {
            return self.still_valid(record, rejected, why);
        }
        tracing::debug!(server = %self.name, "refreshing the OAuth token");
        let answer = request_token(
            &self.http,
            &record.token_endpoint,
            &record.client,
            record.resource.as_deref(),
            Grant::Refresh {
                refresh_token: refresh_token.expose(),
            },
        )
        .await;
        let mut updated = record;
        match answer {
            Ok(answer) => {
                let now = now_secs();
                updated.access_token = answer.access_token;
                if answer.refresh_token.is_some() {
                    updated.refresh_token = answer.refresh_token;
                }
                updated.expires_at = answer.expires_in.map(|s| now.saturating_add(s));
                if let Some(scopes) = answer.scopes {
                    updated.scopes = scopes;
                }
                updated.updated_at = now;
            }
            Err(OAuthError::Refused { error, .. }) if error == "invalid_grant" => {
                tracing::warn!(server = %self.name, "the refresh token was refused; a new login is needed");
                updated.access_token = super::store::Secret::new("");
                updated.refresh_token = None;
                updated.expires_at = Some(0);
                self.save(lock, updated).await?;
                return Err(self.login_required(LoginReason::RefreshRejected));
            }
            Err(e) => {
                let why = e.to_string();
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((tokio::time::Instant::now(), why.clone()));
                return self.still_valid(updated, rejected, why);
            }
        }
        *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let token = updated.access_token.expose().to_string();
        self.save(lock, updated).await?;
        Ok(token)
    }

    /// After a passing refresh failure: the current token while it has not quite expired (it
    /// was only inside the margin) and was not rejected, else the failure.
    fn still_valid(
        &self,
        record: TokenRecord,
        rejected: Option<&str>,
        why: String,
    ) -> Result<String, TokenError> {
        if record.fresh_for(Duration::ZERO)
            && rejected.is_none_or(|bad| record.access_token.expose() != bad)
        {
            tracing::warn!(server = %self.name, "cannot refresh the OAuth token yet ({why}); using the current one");
            let token = record.access_token.expose().to_string();
            self.remember(Some(Arc::new(record)));
            return Ok(token);
        }
        Err(self.unavailable(why))
    }

    async fn save(
        &self,
        lock: super::store::RecordLock,
        record: TokenRecord,
    ) -> Result<(), TokenError> {
        let record = Arc::new(record);
        self.remember(Some(record.clone()));
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let saved = store.save(&record);
            drop(lock);
            saved
        })
        .await
        .map_err(|e| self.unavailable(e))?
        .map_err(|e| self.unavailable(e))
    }
}
