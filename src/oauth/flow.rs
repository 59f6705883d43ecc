//! The login itself: discovery, client identity, the authorization request with PKCE and
//! `state`, the browser, the loopback callback listener, the code exchange, and the store.

use super::discovery::{self, Discovered};
use super::endpoint::{Grant, request_token};
use super::entry::RemoteServer;
use super::pkce::{Pkce, random_token};
use super::store::{Store, TokenRecord, now_secs};
use super::{OAuthError, register};
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How a login runs.
/// How `login` runs: browser, patience, extra scopes, HTTP client.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    /// Open the browser (else only print the URL).
    pub open_browser: bool,
    /// How long to wait for the browser to come back.
    pub timeout: Duration,
    /// Scopes to request on top of the ones chosen (e.g. for a step-up by hand).
    pub extra_scopes: Vec<String>,
    /// The client for every OAuth request of the login.
    pub http: reqwest::Client,
}

/// Logs in to `server` as `name` and stores the tokens. Refused while another login for the same
/// name runs (the login lock is held until this returns).
pub async fn login(
    name: &str,
    server: &RemoteServer,
    store: &Store,
    opts: &LoginOptions,
    shutdown: &CancellationToken,
) -> Result<TokenRecord, OAuthError> {
    let _login_lock = store.try_login_lock(name)?;
    let previous = match store.load(name) {
        Ok(p) => p.filter(|p| p.server_url == server.url.as_str()),
        Err(e) => {
            tracing::warn!("{e}; it will be replaced");
            None
        }
    };
    let found = discovery::discover(&opts.http, &server.url, &server.headers).await?;
    let scopes = choose_scopes(server, &found, previous.as_ref(), &opts.extra_scopes);

    let port = server.oauth.redirect_port.unwrap_or(0);
    let addr = format!("127.0.0.1:{port}");
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| OAuthError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| OAuthError::Listen {
        addr: addr.clone(),
        source,
    })?;
    let redirect_uri = format!("http://127.0.0.1:{}/callback", local.port());

    let previous_client = previous
        .as_ref()
        .filter(|p| p.issuer == found.issuer)
        .map(|p| &p.client);
    let client = register::client_identity(
        &opts.http,
        name,
        &found,
        &server.oauth,
        previous_client,
        &redirect_uri,
        scopes.as_deref(),
    )
    .await?;

    let pkce = Pkce::new()?;
    let state = random_token(24)?;
    let mut auth_url = found.authorization_endpoint.clone();
    {
        let mut q = auth_url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        if let Some(scopes) = scopes.as_ref().filter(|s| !s.is_empty()) {
            q.append_pair("scope", &scopes.join(" "));
        }
        if let Some(resource) = &found.resource {
            q.append_pair("resource", resource);
        }
    }
    tell(&format!(
        "To log in to `{name}`, open this URL in a browser:\n\n  {auth_url}\n\nWaiting up to {} for the redirect to {redirect_uri}",
        human(opts.timeout)
    ));
    if opts.open_browser
        && let Err(e) = open_browser(auth_url.as_str())
    {
        tracing::warn!("cannot open a browser ({e}); open the URL above by hand");
    }
    let code = wait_for_code(listener, &state, &found, opts.timeout, shutdown).await?;

    let answer = request_token(
        &opts.http,
        found.token_endpoint.as_str(),
        &client,
        found.resource.as_deref(),
        Grant::AuthorizationCode {
            code: &code,
            redirect_uri: &redirect_uri,
            verifier: &pkce.verifier,
        },
    )
    .await?;
    let now = now_secs();
    let record = TokenRecord {
        server: name.to_string(),
        server_url: server.url.to_string(),
        resource: found.resource.clone(),
        issuer: found.issuer.clone(),
        token_endpoint: found.token_endpoint.to_string(),
        client,
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
        expires_at: answer.expires_in.map(|s| now.saturating_add(s)),
        scopes: answer.scopes.or(scopes).unwrap_or_default(),
        step_up_scopes: Vec::new(),
        updated_at: now,
    };
    let saved = record.clone();
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let _lock = store.lock(&saved.server)?;
        store.save(&saved)
    })
    .await
    .map_err(|_| OAuthError::Interrupted)??;
    Ok(record)
}

/// The spec's scope choice (the 401's `scope`, else `scopes_supported`, else none) unless the
/// config names scopes; plus, for a step-up, everything asked for before (scopes accumulate);
/// plus `offline_access` when the authorization server offers it, for a refresh token.
fn choose_scopes(
    server: &RemoteServer,
    found: &Discovered,
    previous: Option<&TokenRecord>,
    extra: &[String],
) -> Option<Vec<String>> {
    let mut scopes = server
        .oauth
        .scopes
        .clone()
        .or_else(|| found.suggested_scopes.clone());
    if let Some(prev) = previous {
        add_scopes(&mut scopes, &prev.scopes);
        add_scopes(&mut scopes, &prev.step_up_scopes);
    }
    add_scopes(&mut scopes, extra);
    let offers_offline = found
        .metadata
        .scopes_supported
        .as_ref()
        .is_some_and(|s| s.iter().any(|s| s == "offline_access"));
    if offers_offline && scopes.as_ref().is_some_and(|s| !s.is_empty()) {
        add_scopes(&mut scopes, &["offline_access".to_string()]);
    }
    scopes
}

fn add_scopes(scopes: &mut Option<Vec<String>>, more: &[String]) {
    if more.is_empty() {
        return;
    }
    let list = scopes.get_or_insert_with(Vec::new);
    for s in more {
        if !list.contains(s) {
            list.push(s.clone());
        }
    }
}

/// What the callback brought back.
type Outcome = Result<String, OAuthError>;

struct Callback {
    state: String,
    issuer: String,
    tx: mpsc::Sender<Outcome>,
}

const PAGE_OK: &str =
    "<!doctype html><title>mcp-bridge</title><p>Logged in. You can close this tab.</p>";
const PAGE_FAILED: &str = "<!doctype html><title>mcp-bridge</title><p>Login failed; see the terminal. You can close this tab.</p>";

async fn callback(
    State(cb): State<Arc<Callback>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let outcome = judge(&cb, &q);
    let page = if outcome.is_ok() {
        PAGE_OK
    } else {
        PAGE_FAILED
    };
    let status = if outcome.is_ok() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::BAD_REQUEST
    };
    // Only the first answer counts; later ones find the channel full or closed.
    let _ = cb.tx.try_send(outcome);
    (status, Html(page))
}

fn judge(cb: &Callback, q: &HashMap<String, String>) -> Outcome {
    use subtle::ConstantTimeEq;
    let state_ok = q
        .get("state")
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(cb.state.as_bytes())));
    if !state_ok {
        return Err(OAuthError::StateMismatch);
    }
    if let Some(error) = q.get("error") {
        let (error, description) = super::error_detail(
            serde_json::json!({"error": error, "error_description": q.get("error_description")})
                .to_string()
                .as_bytes(),
        );
        return Err(OAuthError::Refused { error, description });
    }
    // RFC 9207: when the server names itself, it must be the one we sent the user to.
    if let Some(iss) = q.get("iss")
        && iss.trim_end_matches('/') != cb.issuer.trim_end_matches('/')
    {
        return Err(OAuthError::Metadata {
            url: "the redirect".into(),
            detail: "`iss` is not the authorization server this login used (mix-up)".into(),
        });
    }
    match q.get("code").filter(|c| !c.is_empty()) {
        Some(code) => Ok(code.clone()),
        None => Err(OAuthError::Refused {
            error: "no code in the redirect".into(),
            description: String::new(),
        }),
    }
}

async fn wait_for_code(
    listener: tokio::net::TcpListener,
    state: &str,
    found: &Discovered,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<String, OAuthError> {
    let (tx, mut rx) = mpsc::channel(1);
    let cb = Arc::new(Callback {
        state: state.to_string(),
        issuer: found.issuer.clone(),
        tx,
    });
    let app = axum::Router::new()
        .route("/callback", axum::routing::get(callback))
        .with_state(cb);
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    // Each branch only waits; nothing is lost when another one wins.
    let outcome = tokio::select! {
        got = rx.recv() => got.unwrap_or(Err(OAuthError::Interrupted)),
        _ = tokio::time::sleep(timeout) => Err(OAuthError::Timeout(timeout)),
        _ = shutdown.cancelled() => Err(OAuthError::Interrupted),
    };
    stop.cancel();
    // Let the page reach the browser, but do not wait on a browser's idle keep-alive connection.
    let abort = server.abort_handle();
    if tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .is_err()
    {
        abort.abort();
    }
    outcome
}

/// Opens `url` with `$BROWSER` (first of a `:`-separated list; `%s` stands for the URL), else the
/// platform's opener. The child is reaped in the background.
fn open_browser(url: &str) -> Result<(), String> {
    let configured = std::env::var("BROWSER").ok().and_then(|b| {
        b.split(':')
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(str::to_string)
    });
    let (program, mut args): (String, Vec<String>) = match configured {
        Some(cmd) => {
            let mut parts = cmd.split_ascii_whitespace().map(str::to_string);
            let program = parts.next().unwrap_or_default();
            (program, parts.collect())
        }
        None if cfg!(target_os = "macos") => ("open".into(), Vec::new()),
        None => ("xdg-open".into(), Vec::new()),
    };
    if args.iter().any(|a| a.contains("%s")) {
        args = args.iter().map(|a| a.replace("%s", url)).collect();
    } else {
        args.push(url.to_string());
    }
    let mut child = tokio::process::Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(())
}

/// A line for the person at the terminal (stderr: stdout stays clean for scripts).
pub fn tell(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
    let _ = err.flush();
}

/// `5m`, `1m30s`, `2h5m`: for messages (seconds dropped above an hour).
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    match (h, m, sec) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}
