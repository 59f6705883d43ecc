//! `serve` options: the clap arguments (each also from an `MCP_BRIDGE_*` variable) and their
//! validation into a [`Config`], which refuses unsafe or contradictory setups before anything
//! is bound or spawned.

use crate::cli::{parse_duration, parse_size};
use crate::net::ListenAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variables a child gets by default (when set on the host).
pub const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];

/// Options of `mcp-bridge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where to listen: HOST:PORT, [IPv6]:PORT or unix:/path. Repeatable. Port 0 picks a free
    /// port; the bound addresses are logged as `listening on …`.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9000",
        env = "MCP_BRIDGE_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<ListenAddr>,

    /// File whose first line is the bearer token clients must send (Authorization: Bearer …).
    #[arg(long, value_name = "FILE", env = "MCP_BRIDGE_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// The bearer token itself. Prefer the environment variable: command lines are visible to
    /// every local user.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MCP_BRIDGE_AUTH_TOKEN",
        hide_env_values = true,
        hide = true
    )]
    pub auth_token: Option<String>,

    /// Allow listening on a non-loopback TCP address without a token.
    #[arg(long, env = "MCP_BRIDGE_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,

    /// Extra accepted Host header value (a name or IP, any port; `*` accepts any). Repeatable.
    /// localhost, 127.0.0.1 and [::1] are always accepted.
    #[arg(
        long,
        value_name = "HOST",
        env = "MCP_BRIDGE_ALLOW_HOST",
        value_delimiter = ','
    )]
    pub allow_host: Vec<String>,

    /// Extra accepted Origin (e.g. https://app.example; `*` accepts any). Repeatable. Origins on
    /// localhost, 127.0.0.1 and [::1] are always accepted; requests without Origin are too.
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "MCP_BRIDGE_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origin: Vec<String>,

    /// How long a session (and its child) lives on with no client connected.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, env = "MCP_BRIDGE_SESSION_TTL")]
    pub session_ttl: Duration,

    /// One child serves every session (request ids are rewritten), instead of one per session.
    #[arg(long, env = "MCP_BRIDGE_SHARED")]
    pub shared: bool,

    /// Most sessions at once; past it, new sessions get 503.
    #[arg(
        long,
        value_name = "N",
        default_value = "100",
        env = "MCP_BRIDGE_MAX_SESSIONS"
    )]
    pub max_sessions: usize,

    /// Largest request body (bytes; K, M, G suffixes); past it, 413.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size, env = "MCP_BRIDGE_MAX_BODY")]
    pub max_body: usize,

    /// Largest line (message) accepted from a child's stdout.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size, env = "MCP_BRIDGE_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,

    /// Bytes of recent SSE events each session keeps for clients that resume with Last-Event-ID.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = parse_size, env = "MCP_BRIDGE_REPLAY_BUFFER")]
    pub replay_buffer: usize,

    /// Set a variable in the child's environment, `NAME=VALUE`. Repeatable.
    #[arg(
        long = "env",
        value_name = "NAME=VALUE",
        env = "MCP_BRIDGE_ENV",
        value_delimiter = '\n'
    )]
    pub env: Vec<String>,

    /// Pass this variable from the host environment to the child. Repeatable.
    #[arg(
        long,
        value_name = "NAME",
        env = "MCP_BRIDGE_PASS_ENV",
        value_delimiter = ','
    )]
    pub pass_env: Vec<String>,

    /// Mode of Unix socket files, in octal.
    #[arg(long, value_name = "OCTAL", default_value = "0600", value_parser = parse_mode, env = "MCP_BRIDGE_SOCKET_MODE")]
    pub socket_mode: u32,

    /// How long a stopping child gets after stdin closes, and again after SIGTERM, before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, env = "MCP_BRIDGE_STOP_TIMEOUT")]
    pub stop_timeout: Duration,

    /// Interval of SSE keep-alive comments on idle streams (0 = never).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration, env = "MCP_BRIDGE_KEEPALIVE")]
    pub keepalive: Duration,

    /// Serve the built-in example server (`mcp-bridge example-server`) instead of CMD.
    #[arg(long, conflicts_with = "command", env = "MCP_BRIDGE_EXAMPLE")]
    pub example: bool,

    /// The stdio MCP server to run, and its arguments.
    #[arg(last = true, required_unless_present = "example", value_name = "CMD")]
    pub command: Vec<String>,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("`{s}` is not an octal file mode (try 0600)"))?;
    if mode > 0o777 {
        return Err(format!("`{s}` is not a file mode (at most 0777)"));
    }
    Ok(mode)
}

/// Validated `serve` settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<ListenAddr>,
    /// The bearer token, if auth is on. Never logged.
    pub token: Option<Token>,
    pub allow_unauthenticated: bool,
    pub allow_hosts: Vec<String>,
    pub allow_origins: Vec<String>,
    pub session_ttl: Duration,
    pub shared: bool,
    pub max_sessions: usize,
    pub max_body: usize,
    pub max_message_size: usize,
    pub replay_buffer: usize,
    /// The child's whole environment.
    pub child_env: Vec<(String, String)>,
    pub program: String,
    pub args: Vec<String>,
    pub socket_mode: u32,
    pub stop_timeout: Duration,
    pub keepalive: Option<Duration>,
}

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
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the auth token is empty")]
    EmptyToken,
    #[error("--env `{0}` is not NAME=VALUE")]
    BadEnv(String),
    #[error("refusing to pass {0} to the child: it holds the gateway's own token")]
    SecretEnv(String),
    #[error("--max-sessions must be at least 1")]
    NoSessions,
    #[error("--example: cannot find this executable to run as the example server: {0}")]
    NoExe(std::io::Error),
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
        if a.max_sessions == 0 {
            return Err(ConfigError::NoSessions);
        }
        let command = match a.example {
            true => {
                let exe = std::env::current_exe().map_err(ConfigError::NoExe)?;
                vec![exe.to_string_lossy().into_owned(), "example-server".into()]
            }
            false => a.command,
        };
        let mut command = command.into_iter();
        let program = command.next().unwrap_or_default();
        Ok(Config {
            listen: a.listen,
            token: token.map(Token),
            allow_unauthenticated: a.allow_unauthenticated,
            allow_hosts: a.allow_host,
            allow_origins: a.allow_origin,
            session_ttl: a.session_ttl,
            shared: a.shared,
            max_sessions: a.max_sessions,
            max_body: a.max_body,
            max_message_size: a.max_message_size,
            replay_buffer: a.replay_buffer,
            child_env,
            program,
            args: command.collect(),
            socket_mode: a.socket_mode,
            stop_timeout: a.stop_timeout,
            keepalive: (!a.keepalive.is_zero()).then_some(a.keepalive),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600").unwrap(), 0o600);
        assert_eq!(parse_mode("660").unwrap(), 0o660);
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("01777").is_err());
    }
}
