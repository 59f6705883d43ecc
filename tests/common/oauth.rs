//! A mock OAuth world on one real socket: a protected MCP resource at `/mcp` (401 with
//! `resource_metadata` without a valid token; with one, a small MCP server), its protected
//! resource metadata, authorization server metadata, dynamic registration, an `/authorize` that
//! approves at once, and a `/token` that checks PKCE, the resource and the client's
//! authentication, and counts refreshes. [`World`] is the host side: a gateway config naming the
//! mock, a private token store, and `mcp-bridge login` with a `$BROWSER` that approves.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use mcp_bridge::oauth::store::{AuthMethod, ClientRegistration, Secret, now_secs};
use mcp_bridge::oauth::{Store, TokenRecord};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Command;

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
    /// `tools/call` of this tool answers 403 `insufficient_scope` asking for this scope.
    pub forbidden_tool: Option<(String, String)>,
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
            forbidden_tool: None,
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
    /// Every access and refresh token issued, valid or not.
    pub issued: Vec<String>,
    pub mcp_ok: usize,
    /// `tools/call` requests answered.
    pub tool_calls: usize,
    /// Requests to `/mcp` refused with 401.
    pub mcp_401: usize,
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
    /// Every access token issued so far stops working (as if it expired): the next request
    /// with one gets a 401.
    pub fn expire_access_tokens(&self) -> Vec<String> {
        std::mem::take(&mut self.seen().access)
    }
    /// Stores a login for server `name` at this mock in `store`, with a client the mock knows,
    /// as `mcp-bridge login` would have (without the browser round trip).
    pub fn seed(
        &self,
        name: &str,
        store: &Store,
        access: &str,
        expires_at: u64,
        refresh: Option<&str>,
    ) {
        self.seen().clients.insert("c1".into(), Some("s1".into()));
        if let Some(r) = refresh {
            self.add_refresh_token(r);
        }
        self.seen().access.push(access.into());
        let rec = TokenRecord {
            server: name.into(),
            server_url: self.mcp_url(),
            resource: Some(self.mcp_url()),
            issuer: self.base.clone(),
            token_endpoint: format!("{}/token", self.base),
            client: ClientRegistration {
                client_id: "c1".into(),
                client_secret: Some(Secret::new("s1")),
                auth_method: AuthMethod::ClientSecretBasic,
                source: "dynamic".into(),
                redirect_uri: None,
            },
            access_token: Secret::new(access),
            refresh_token: refresh.map(Secret::new),
            expires_at: Some(expires_at),
            scopes: vec!["mcp:read".into()],
            step_up_scopes: vec![],
            updated_at: now_secs(),
        };
        let _lock = store.lock(name).unwrap();
        store.save(&rec).unwrap();
    }
    /// Every access and refresh token the mock ever issued (for "never seen there" checks).
    pub fn issued(&self) -> Vec<String> {
        self.seen().issued.clone()
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
        let msg = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null);
        return mcp_answer(&m, &msg);
    }
    m.seen().mcp_401 += 1;
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

/// A tiny stateless MCP server: initialize, tools/list, tools/call (`echo`), anything else `{}`;
/// 202 for notifications and responses.
fn mcp_answer(m: &Mock, msg: &Value) -> Response {
    let Some(id) = msg.get("id").filter(|_| msg.get("method").is_some()) else {
        return StatusCode::ACCEPTED.into_response();
    };
    let result = match msg["method"].as_str().unwrap_or_default() {
        "initialize" => json!({
            "protocolVersion": msg["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "oauth-mock", "version": "1"},
        }),
        "tools/list" => json!({"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}),
        "tools/call" => {
            let name = msg["params"]["name"].as_str().unwrap_or_default();
            if let Some((tool, scope)) = &m.opts.forbidden_tool
                && tool == name
            {
                let challenge = format!(
                    r#"Bearer error="insufficient_scope", scope="{scope}", resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#,
                    m.base
                );
                return (
                    StatusCode::FORBIDDEN,
                    [(header::WWW_AUTHENTICATE, challenge)],
                )
                    .into_response();
            }
            m.seen().tool_calls += 1;
            let text = msg["params"]["arguments"]["text"].clone();
            json!({"content": [{"type": "text", "text": text}]})
        }
        _ => json!({}),
    };
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
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
    seen.issued.extend([access.clone(), refresh.clone()]);
    let mut answer = json!({"access_token": access, "token_type": "Bearer",
                            "expires_in": m.opts.expires_in, "refresh_token": refresh});
    if let Some(s) = scope {
        answer["scope"] = s.into();
    }
    axum::Json(answer).into_response()
}

/// How long a `login` run may take.
pub const LOGIN_LIMIT: Duration = Duration::from_secs(30);

/// The host of a test: a temp dir with the gateway config (`mcp.json`), the token store
/// (`state/tokens`) and the approving browser.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub config: PathBuf,
}

impl World {
    /// A config whose one server `gh` is the remote at `url`, with `oauth` as its
    /// `mcpBridge.servers.gh.oauth`.
    pub fn new(url: &str, oauth: Value) -> World {
        World::with_config(json!({
            "mcpServers": {"gh": {"type": "http", "url": url}},
            "mcpBridge": {"servers": {"gh": {"oauth": oauth}}},
        }))
    }

    /// A world with this config file.
    pub fn with_config(doc: Value) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("mcp.json");
        std::fs::write(&config, doc.to_string()).unwrap();
        World { tmp, config }
    }

    /// `MCP_BRIDGE_STATE_DIR` of every command run here.
    pub fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// `gh`'s token file.
    pub fn token_file(&self) -> PathBuf {
        self.state().join("tokens/gh.json")
    }

    /// The config file as a string argument.
    pub fn config_arg(&self) -> String {
        self.config.to_str().unwrap().to_string()
    }

    /// The variables every command here runs with: the store in the temp dir, a browser that
    /// approves, no proxies.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "MCP_BRIDGE_STATE_DIR".into(),
                self.state().display().to_string(),
            ),
            (
                "BROWSER".into(),
                browser_script(self.tmp.path()).display().to_string(),
            ),
            ("NO_PROXY".into(), "*".into()),
        ]
    }

    /// The binary with [`World::env`] and piped output.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(super::BIN);
        cmd.args(args)
            .envs(self.env())
            .env_remove("MCP_BRIDGE_CONFIG")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs the binary to its end (bounded); whether it succeeded and its output.
    pub async fn run(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::time::timeout(LOGIN_LIMIT, self.command(args).output())
            .await
            .expect("mcp-bridge did not finish in time")
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("--- mcp-bridge {args:?}:\n{text}");
        (out.status.success(), text)
    }

    /// `mcp-bridge login gh --config CONFIG`.
    pub async fn login(&self) -> (bool, String) {
        let config = self.config_arg();
        self.run(&["login", "gh", "--config", &config, "--timeout", "20s"])
            .await
    }
}

/// A browser that fetches the authorization URL and follows its redirect to the callback, as a
/// user who approves. Python because it is everywhere the suite runs.
pub fn browser_script(dir: &Path) -> PathBuf {
    let path = dir.join("browser.py");
    if !path.exists() {
        let python = which_python();
        std::fs::write(
            &path,
            format!(
                "#!{python}\nimport sys, urllib.request\n\
                 opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))\n\
                 try:\n    opener.open(sys.argv[1], timeout=20).read()\n\
                 except Exception as e:\n    print('browser:', e, file=sys.stderr)\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

fn which_python() -> String {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("python3");
        if p.is_file() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!("python3 is needed for the test browser and was not found on PATH");
}
