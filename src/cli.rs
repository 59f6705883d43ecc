//! Command-line interface: clap definitions (every flag also readable from an `MCP_BRIDGE_*`
//! variable) and the small value parsers they share.

use crate::net::ListenAddr;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Carry MCP between a sandboxed agent's stdio and a host's HTTP MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcp-bridge", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The mode to run.
    #[command(subcommand)]
    pub command: Command,

    /// More log output on stderr (-v debug, -vv trace). Overridden by --log-level.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log filter for stderr, e.g. `info`, `debug`, `mcp_bridge=trace`. RUST_LOG also works.
    #[arg(long, env = "MCP_BRIDGE_LOG_LEVEL", global = true)]
    pub log_level: Option<String>,
}

/// The two modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run inside the sandbox: be a stdio MCP server that relays to the MCP server at URL.
    Connect(ConnectArgs),
    /// Run on the host: serve a stdio MCP server (CMD ARGS…) over Streamable HTTP and SSE.
    Serve(ServeArgs),
    /// Run on the host: log in to a remote server of the gateway's config (OAuth) and keep its
    /// tokens in the host's token store; `--status` lists the logins.
    Login(crate::oauth::LoginArgs),
    /// Run on the host: delete a server's tokens from the host's token store.
    Logout(crate::oauth::LogoutArgs),
}

/// Which HTTP transport `connect` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TransportChoice {
    /// Try Streamable HTTP, fall back to legacy HTTP+SSE (a URL ending in /sse tries SSE first).
    Auto,
    /// Streamable HTTP only (spec 2025-03-26 and later).
    Streamable,
    /// Legacy HTTP+SSE only (spec 2024-11-05).
    Sse,
}

/// `connect`'s flags as given; [`crate::connect::Config`] is what they mean once validated.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The remote MCP endpoint, e.g. http://host.docker.internal:9000/mcp or …/sse.
    #[arg(env = "MCP_BRIDGE_URL")]
    pub url: String,

    /// Transport to use.
    #[arg(long, value_enum, default_value = "auto", env = "MCP_BRIDGE_TRANSPORT")]
    pub transport: TransportChoice,

    /// Extra HTTP header on every request, `Name: value`. Repeatable. `${VAR}` in the value is
    /// replaced from the environment (an unset VAR is an error), so tokens stay out of configs.
    /// From the environment: one header per line.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        env = "MCP_BRIDGE_HEADERS",
        value_delimiter = '\n'
    )]
    pub headers: Vec<String>,

    /// Reach the server through this Unix domain socket instead of TCP; the URL still gives the
    /// path and Host header (e.g. http://localhost/mcp).
    #[arg(long, value_name = "PATH", env = "MCP_BRIDGE_UNIX")]
    pub unix: Option<PathBuf>,

    /// How long a message waits for an unreachable server before the agent gets an error.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "MCP_BRIDGE_CONNECT_TIMEOUT")]
    pub connect_timeout: Duration,

    /// Largest message accepted from the agent or the server (bytes; K, M, G, KiB, MiB, GiB suffixes).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size, env = "MCP_BRIDGE_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,

    /// Extra PEM CA certificate(s) to trust besides the system's, for private CAs.
    #[arg(long, value_name = "FILE", env = "MCP_BRIDGE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

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

    /// The stdio MCP server to run, and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
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

/// Parses `250ms`, `10s`, `5m`, `1h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 10s, 500ms, 10m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a duration"));
    }
    // A number of seconds past what a Duration holds is refused, not a panic.
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is too long a duration"))
}

/// Parses `1048576`, `64MiB`, `64M`, `512K`, `1G` (K/M/G are binary here, as for memory).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 64MiB)"))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (use K, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("99999999999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("17").unwrap(), 17);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0600").unwrap(), 0o600);
        assert_eq!(parse_mode("660").unwrap(), 0o660);
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("01777").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
