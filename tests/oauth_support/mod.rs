//! A mock OAuth world on one real socket: a protected MCP resource at `/mcp` (401 with
//! `resource_metadata`), its protected resource metadata, authorization server metadata,
//! dynamic registration, an `/authorize` that approves at once, and a `/token` that checks PKCE,
//! the resource and the client's authentication, and counts refreshes.

#![allow(dead_code)]

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the mock behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// The scope named in the 401's `WWW-Authenticate` (none: no `scope` parameter).
    pub challenge_scope: Option<String>,
    /// Lifetime of issued access tokens.
    pub expires_in: u64,
    /// `/authorize` sends back a different `state` than it got.
    pub wrong_state: bool,
    /// `token_endpoint_auth_methods_supported`.
    pub auth_methods: Vec<String>,
    /// How long a refresh takes (so concurrent callers overlap).
    pub refresh_delay: Duration,
    /// Pre-registered client accepted besides registered ones: (id, secret).
    pub preregistered: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            challenge_scope: Some("mcp:read".into()),
            expires_in: 3600,
            wrong_state: false,
            auth_methods: vec!["client_secret_basic".into()],
            refresh_delay: Duration::ZERO,
            preregistered: None,
        }
    }
}

/// What the mock saw and issued.
#[derive(Default, Debug)]
pub struct Seen {
    pub registrations: usize,
    pub authorize: Vec<HashMap<String, String>>,
    pub token_forms: Vec<HashMap<String, String>>,
    pub refreshes: usize,
    pub pkce_verified: usize,
    pub pkce_failed: usize,
    /// Client id → secret of registered clients.
    pub clients: HashMap<String, Option<String>>,
    codes: HashMap<String, Issued>,
    /// Valid access tokens.
    pub access: Vec<String>,
    /// Valid refresh tokens.
    pub refresh: Vec<String>,
    pub mcp_ok: usize,
    counter: usize,
}

/// An authorization code's binding: (challenge, client_id, redirect_uri, resource, scope).
type Issued = (String, String, String, Option<String>, Option<String>);

pub struct Mock {
    pub base: String,
    pub opts: Options,
    pub seen: Mutex<Seen>,
}

type Shared = Arc<Mock>;

impl Mock {
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }
    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }
    /// Registers a valid refresh token (for provider tests that start from a stored record).
    pub fn add_refresh_token(&self, token: &str) {
        self.seen().refresh.push(token.to_string());
    }
}

/// Starts the mock on 127.0.0.1:0.
pub async fn start(opts: Options) -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mock = Arc::new(Mock {
        base,
        opts,
        seen: Mutex::new(Seen::default()),
    });
    let app = axum::Router::new()
        .route("/mcp", post(mcp))
        .route("/.well-known/oauth-protected-resource/mcp", get(prm))
        .route("/.well-known/oauth-authorization-server", get(as_meta))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(mock.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    mock
}

fn next(seen: &mut Seen, prefix: &str) -> String {
    seen.counter += 1;
    format!("{prefix}-{}", seen.counter)
}

async fn mcp(State(m): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(t) = token
        && m.seen().access.iter().any(|a| a == t)
    {
        m.seen().mcp_ok += 1;
        let id = serde_json::from_str::<Value>(&body)
            .map(|v| v["id"].clone())
            .unwrap_or(Value::Null);
        return axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": {}})).into_response();
    }
    let mut challenge = format!(
        r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
        m.base
    );
    if let Some(scope) = &m.opts.challenge_scope {
        challenge.push_str(&format!(r#", scope="{scope}""#));
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
    )
        .into_response()
}

async fn prm(State(m): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "resource": m.mcp_url(),
        "authorization_servers": [m.base],
        "scopes_supported": ["mcp:read", "mcp:write"],
    }))
}

async fn as_meta(State(m): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": m.base,
        "authorization_endpoint": format!("{}/authorize", m.base),
        "token_endpoint": format!("{}/token", m.base),
        "registration_endpoint": format!("{}/register", m.base),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": m.opts.auth_methods,
    }))
}

async fn register(State(m): State<Shared>, axum::Json(req): axum::Json<Value>) -> Response {
    let mut seen = m.seen();
    seen.registrations += 1;
    let id = next(&mut seen, "client");
    let method = req["token_endpoint_auth_method"]
        .as_str()
        .unwrap_or("client_secret_basic");
    let secret = (method != "none").then(|| next(&mut seen, "secret"));
    seen.clients.insert(id.clone(), secret.clone());
    let mut answer = json!({"client_id": id, "token_endpoint_auth_method": method,
                            "redirect_uris": req["redirect_uris"]});
    if let Some(s) = secret {
        answer["client_secret"] = s.into();
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

async fn authorize(State(m): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut seen = m.seen();
    seen.authorize.push(q.clone());
    let known = |id: &str| {
        seen.clients.contains_key(id) || m.opts.preregistered.as_ref().is_some_and(|p| p.0 == id)
    };
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.contains_key("code_challenge")
        && q.get("client_id").is_some_and(|c| known(c));
    let Some(redirect) = q.get("redirect_uri").filter(|_| ok) else {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    };
    let code = next(&mut seen, "code");
    seen.codes.insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            q["client_id"].clone(),
            redirect.clone(),
            q.get("resource").cloned(),
            q.get("scope").cloned(),
        ),
    );
    let state = if m.opts.wrong_state {
        "forged".to_string()
    } else {
        q["state"].clone()
    };
    let mut to = url::Url::parse(redirect).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    Redirect::to(to.as_str()).into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error}))).into_response()
}

/// The client id the request authenticated as, checking its secret.
fn authenticate(
    m: &Mock,
    seen: &Seen,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<String> {
    let secret_of = |id: &str| -> Option<Option<String>> {
        if let Some((pid, psecret)) = &m.opts.preregistered
            && pid == id
        {
            return Some(Some(psecret.clone()));
        }
        seen.clients.get(id).cloned()
    };
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let pair = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .ok()?;
        let pair = String::from_utf8(pair).ok()?;
        let (id, secret) = pair.split_once(':')?;
        return (secret_of(id)? == Some(secret.to_string())).then(|| id.to_string());
    }
    let id = form.get("client_id")?;
    match secret_of(id)? {
        None => Some(id.clone()),
        Some(s) => (form.get("client_secret") == Some(&s)).then(|| id.clone()),
    }
}

async fn token(
    State(m): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    if grant == "refresh_token" && !m.opts.refresh_delay.is_zero() {
        tokio::time::sleep(m.opts.refresh_delay).await;
    }
    let mut seen = m.seen();
    seen.token_forms.push(form.clone());
    let Some(client) = authenticate(&m, &seen, &headers, &form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let mut scope = None;
    match grant.as_str() {
        "authorization_code" => {
            let Some((challenge, cid, redirect, resource, sc)) =
                form.get("code").and_then(|c| seen.codes.remove(c))
            else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
            if computed != challenge {
                seen.pkce_failed += 1;
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            seen.pkce_verified += 1;
            if cid != client
                || form.get("redirect_uri") != Some(&redirect)
                || form.get("resource") != resource.as_ref()
            {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            scope = sc;
        }
        "refresh_token" => {
            let Some(pos) = form
                .get("refresh_token")
                .and_then(|r| seen.refresh.iter().position(|x| x == r))
            else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            seen.refresh.remove(pos);
            seen.refreshes += 1;
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let access = next(&mut seen, "at");
    let refresh = next(&mut seen, "rt");
    seen.access.push(access.clone());
    seen.refresh.push(refresh.clone());
    let mut answer = json!({"access_token": access, "token_type": "Bearer",
                            "expires_in": m.opts.expires_in, "refresh_token": refresh});
    if let Some(s) = scope {
        answer["scope"] = s.into();
    }
    axum::Json(answer).into_response()
}
