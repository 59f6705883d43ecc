//! `serve` settings: [`ServeArgs`] validated into a [`Config`], which refuses unsafe or
//! contradictory setups before anything is bound or spawned.

use crate::cli::ServeArgs;
use crate::net::ListenAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variables a child gets by default (when set on the host).
pub const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

/// Validated `serve` settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`--listen`).
    pub listen: Vec<ListenAddr>,
    /// The bearer token, if auth is on. Never logged.
    pub token: Option<Token>,
    /// A non-loopback listener without a token is allowed (`--allow-unauthenticated`).
    pub allow_unauthenticated: bool,
    /// Extra accepted Host values, the listen addresses' own names included.
    pub allow_hosts: Vec<String>,
    /// Extra accepted Origins (`--allow-origin`).
    pub allow_origins: Vec<String>,
    /// How long a session with no client attached lives on (`--session-ttl`).
    pub session_ttl: Duration,
    /// Which child serves a request (`--scope`; `--shared` is `--scope shared`).
    pub scope: crate::cli::Scope,
    /// How long a keyed child lives on unused (`--keep-alive`; `None`: the session TTL).
    pub keep_alive: Option<Duration>,
    /// Most sessions at once (`--max-sessions`).
    pub max_sessions: usize,
    /// Largest request body in bytes (`--max-body`).
    pub max_body: usize,
    /// Most bytes held in request bodies at once (`--max-body-total`).
    pub max_body_total: usize,
    /// Most open connections per listener (`--max-connections`).
    pub max_connections: usize,
    /// Time a client gets to send a request's headers, or to start its next one on a kept-alive
    /// connection (`--header-timeout`).
    pub header_timeout: Duration,
    /// Largest line from a child's stdout in bytes (`--max-message-size`).
    pub max_message_size: usize,
    /// Bytes of SSE events each session keeps for resumption (`--replay-buffer`).
    pub replay_buffer: usize,
    /// The child's whole environment.
    pub child_env: Vec<(String, String)>,
    /// The command to run as each MCP server.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// File mode of Unix socket files (`--socket-mode`).
    pub socket_mode: u32,
    /// Grace a stopping child gets after stdin closes, and after SIGTERM (`--stop-timeout`).
    pub stop_timeout: Duration,
    /// Interval of SSE keep-alive comments; `None`: never.
    pub keepalive: Option<Duration>,
    /// `--config`: the gateway file (`program` is then empty until a server's own config is
    /// made from this one).
    pub config_file: Option<PathBuf>,
    /// How long sessions of a server a reload removed or changed may run on (`--drain-timeout`).
    pub drain_timeout: Duration,
    /// The server's name in a gateway file (`None` for `serve -- CMD`).
    pub server_name: Option<std::sync::Arc<str>>,
    /// Working directory of the child (a gateway file's `cwd`).
    pub cwd: Option<PathBuf>,
    /// A remote server: each child is an in-process `connect` relay to it instead of a process.
    pub relay: Option<std::sync::Arc<crate::connect::Config>>,
    /// `mcpBridge.servers.NAME` of a gateway file: scope, keep-alive, policy (defaults for
    /// `serve -- CMD`).
    pub options: crate::gateway::ServerOptions,
    /// Named clients, tool policy, rate limits, audit log: one for the whole gateway, shared
    /// by every server's config made from this one.
    pub gate: std::sync::Arc<crate::serve::policy::Gate>,
}

/// `--session-ttl` when neither the flag nor the file sets it.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(600);
/// `--max-sessions` when neither the flag nor the file sets it.
pub const DEFAULT_MAX_SESSIONS: usize = 100;
/// `--drain-timeout` when neither the flag nor the file sets it.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// `--listen` when neither the flag nor the file sets it.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";

/// A secret that does not print itself.
#[derive(Clone)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// A configuration that cannot work, found before starting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--auth-token-file` could not be read.
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token is empty (or only whitespace).
    #[error("the auth token is empty")]
    EmptyToken,
    /// An `--env` without `=`, or with an empty name.
    #[error("--env `{0}` is not NAME=VALUE")]
    BadEnv(String),
    /// `--pass-env` named the variable that holds the gateway's token.
    #[error("refusing to pass {0} to the child: it holds the gateway's own token")]
    SecretEnv(String),
    /// `--max-sessions 0`.
    #[error("--max-sessions must be at least 1")]
    NoSessions,
    /// A size or count that cannot work.
    #[error("{0}")]
    Limit(String),
    /// A listen address that does not parse.
    #[error("--listen: {0}")]
    BadListen(String),
    /// `mcpBridge.clients`, `rateLimit`, `audit` or a server's `policy` cannot be used.
    #[error("{0}")]
    Policy(#[from] crate::policy::ConfigError),
    /// The audit log cannot be opened.
    #[error("{0}")]
    Audit(std::io::Error),
    /// Named clients and the gateway's single token both given.
    #[error(
        "mcpBridge.clients names clients, each with its own credential: drop the gateway's single \
         token (--auth-token, --auth-token-file, MCP_BRIDGE_AUTH_TOKEN, authTokenFile)"
    )]
    TokenWithClients,
    /// Nothing to run.
    #[error(
        "no command to serve: give it after `--`, e.g. `serve -- npx my-server`, or give --config"
    )]
    NoCommand,
    /// `--example`, but this executable cannot be found to run as the example server.
    #[error("--example: cannot find this executable to run as the example server: {0}")]
    NoExe(std::io::Error),
}

/// A listener that could not be opened, or one that must not be.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address could not be resolved or bound.
    #[error(transparent)]
    Bind(#[from] crate::net::BindError),
    /// The address a TCP listener got could not be read back.
    #[error("cannot read the address of a bound listener: {0}")]
    LocalAddr(std::io::Error),
    /// A non-loopback address without a token would serve anyone who can reach it.
    #[error(
        "refusing to listen on {0} (not loopback) without a token: set --auth-token-file or \
         MCP_BRIDGE_AUTH_TOKEN, or pass --allow-unauthenticated"
    )]
    Unauthenticated(std::net::IpAddr),
}

impl Config {
    /// How long a keyed child lives on unused: `--keep-alive`, else the session TTL.
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive.unwrap_or(self.session_ttl)
    }
}

impl TryFrom<ServeArgs> for Config {
    type Error = ConfigError;

    fn try_from(a: ServeArgs) -> Result<Config, ConfigError> {
        let token = match (&a.auth_token_file, &a.auth_token) {
            (Some(path), _) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
                        path: path.clone(),
                        source,
                    })?;
                Some(text.lines().next().unwrap_or("").trim().to_owned())
            }
            (None, Some(t)) => Some(t.trim().to_owned()),
            (None, None) => None,
        };
        if token.as_deref() == Some("") {
            return Err(ConfigError::EmptyToken);
        }
        let mut child_env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| {
            child_env.retain(|(name, _)| name != k);
            child_env.push((k.to_owned(), v));
        };
        for name in DEFAULT_PASS_ENV {
            if let Ok(v) = std::env::var(name) {
                set(name, v);
            }
        }
        for name in &a.pass_env {
            if name.starts_with("MCP_BRIDGE_AUTH_TOKEN") {
                return Err(ConfigError::SecretEnv(name.clone()));
            }
            if let Ok(v) = std::env::var(name) {
                set(name, v);
            }
        }
        for kv in &a.env {
            match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => set(k, v.to_owned()),
                _ => return Err(ConfigError::BadEnv(kv.clone())),
            }
        }
        let max_sessions = a.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
        if max_sessions == 0 {
            return Err(ConfigError::NoSessions);
        }
        check_limits(&a)?;
        let command = match a.example {
            true => {
                let exe = std::env::current_exe().map_err(ConfigError::NoExe)?;
                vec![exe.to_string_lossy().into_owned(), "example-server".into()]
            }
            false => a.command,
        };
        let mut command = command.into_iter();
        let program = match (command.next(), &a.config) {
            (Some(p), _) => p,
            (None, Some(_)) => String::new(),
            (None, None) => return Err(ConfigError::NoCommand),
        };
        let listen = if a.listen.is_empty() {
            vec![DEFAULT_LISTEN.parse().map_err(ConfigError::BadListen)?]
        } else {
            a.listen
        };
        // Clients reach an explicit listen address by that name: accept it as a Host.
        let mut allow_hosts = a.allow_host;
        for addr in &listen {
            if let ListenAddr::Tcp(a) = addr
                && let Some((host, _)) = a.rsplit_once(':')
                && !matches!(host, "0.0.0.0" | "[::]")
            {
                allow_hosts.push(host.to_owned());
            }
        }
        Ok(Config {
            listen,
            token: token.map(Token),
            allow_unauthenticated: a.allow_unauthenticated,
            allow_hosts,
            allow_origins: a.allow_origin,
            session_ttl: a.session_ttl.unwrap_or(DEFAULT_SESSION_TTL),
            scope: if a.shared {
                crate::cli::Scope::Shared
            } else {
                a.scope
            },
            keep_alive: a.keep_alive,
            max_sessions,
            max_body: a.max_body,
            max_body_total: a.max_body_total,
            max_connections: a.max_connections,
            header_timeout: a.header_timeout,
            max_message_size: a.max_message_size,
            replay_buffer: a.replay_buffer,
            child_env,
            program,
            args: command.collect(),
            socket_mode: a.socket_mode,
            stop_timeout: a.stop_timeout,
            keepalive: (!a.keepalive.is_zero()).then_some(a.keepalive),
            config_file: a.config,
            drain_timeout: a.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
            server_name: None,
            cwd: None,
            relay: None,
            options: Default::default(),
            gate: Default::default(),
        })
    }
}

/// Refuses limits that cannot work together: bodies larger than the total, zero counts or times.
fn check_limits(a: &ServeArgs) -> Result<(), ConfigError> {
    let bad = |m: &str| Err(ConfigError::Limit(m.to_owned()));
    if a.max_connections == 0 {
        return bad("--max-connections must be at least 1");
    }
    if a.max_body == 0 || a.max_body_total < a.max_body {
        return bad("--max-body must be at least 1 byte and at most --max-body-total");
    }
    if a.header_timeout.is_zero() {
        return bad("--header-timeout must be longer than 0");
    }
    if a.max_sessions.is_some_and(|n| n > 1_000_000) {
        return bad("--max-sessions must be at most 1000000");
    }
    Ok(())
}
