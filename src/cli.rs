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
// Parsed once at startup and moved out at once: boxing would only add noise at every match.
#[allow(clippy::large_enum_variant)]
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
    /// A small stdio MCP server built in (tools echo, add, slow, counter; one resource; one
    /// prompt): for a quick start and for testing a bridge.
    ExampleServer,
    /// Diagnose a connection to an MCP server step by step; with no URL, a self-test of the
    /// built-in example server behind serve and connect.
    Doctor(crate::doctor::DoctorArgs),
    /// Print a shell completion script (e.g. `mcp-bridge completions bash > /etc/bash_completion.d/mcp-bridge`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `mcp-bridge man | man -l -`.
    Man,
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

    /// Sent with every request (header `Mcp-Bridge-Session-Key`) so that a `serve --scope
    /// per-key` gives every sandbox with this key the same child, across restarts. Not a secret.
    #[arg(long, value_name = "KEY", env = "MCP_BRIDGE_SESSION_KEY")]
    pub session_key: Option<String>,
}

/// Which child serves a request (`serve --scope`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// One child per handshake session; 2026-07-28 requests: one per client identity and key.
    #[default]
    PerSession,
    /// One child per session key (per client identity), for both eras.
    PerKey,
    /// One child for every request.
    Shared,
}

/// Options of `mcp-bridge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where to listen: HOST:PORT, [IPv6]:PORT or unix:/path. Repeatable. Port 0 picks a free
    /// port; the bound addresses are logged as `listening on …`. Default: `mcpBridge.listen` of
    /// --config, else 127.0.0.1:9000.
    #[arg(
        long,
        value_name = "ADDR",
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

    /// How long a session (and its child) lives on with no client connected. Default: the
    /// config file's `sessionTtl`, else 10m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = "MCP_BRIDGE_SESSION_TTL")]
    pub session_ttl: Option<Duration>,

    /// One child serves every session (request ids are rewritten), instead of one per session.
    /// The same as `--scope shared`.
    #[arg(long, env = "MCP_BRIDGE_SHARED")]
    pub shared: bool,

    /// Which child serves a request: `per-session` (one per handshake session; a 2026-07-28
    /// request goes to a child of its own client and session key), `per-key` (every request
    /// with session key K, of either era, goes to K's child) or `shared` (one child for all).
    #[arg(
        long,
        value_enum,
        value_name = "SCOPE",
        default_value = "per-session",
        env = "MCP_BRIDGE_SCOPE"
    )]
    pub scope: Scope,

    /// How long a keyed child lives on once no session of its key is attached and no request
    /// for it is in flight (default: --session-ttl).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = "MCP_BRIDGE_KEEP_ALIVE")]
    pub keep_alive: Option<Duration>,

    /// Most sessions at once (per server); past it, new sessions get 503. Default: the config
    /// file's `maxSessions`, else 100.
    #[arg(long, value_name = "N", env = "MCP_BRIDGE_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,

    /// Largest request body (bytes; K, M, G suffixes); past it, 413.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size, env = "MCP_BRIDGE_MAX_BODY")]
    pub max_body: usize,

    /// Largest line (message) accepted from a child's stdout.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size, env = "MCP_BRIDGE_MAX_MESSAGE_SIZE")]
    pub max_message_size: usize,

    /// Most bytes held in request bodies at once, all requests together; past it, 503.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size, env = "MCP_BRIDGE_MAX_BODY_TOTAL")]
    pub max_body_total: usize,

    /// Most open connections per listener; further clients wait in the kernel's backlog.
    #[arg(
        long,
        value_name = "N",
        default_value = "1024",
        env = "MCP_BRIDGE_MAX_CONNECTIONS"
    )]
    pub max_connections: usize,

    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may wait idle for its next request, before the connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, env = "MCP_BRIDGE_HEADER_TIMEOUT")]
    pub header_timeout: Duration,

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

    /// Threads that handle requests and relay messages. Default: half the cores, at least one:
    /// every call also runs a child process, which needs a core of its own (measured in bench/).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024), env = "MCP_BRIDGE_WORKERS")]
    pub workers: Option<u16>,

    /// Serve the built-in example server (`mcp-bridge example-server`) instead of CMD.
    #[arg(long, conflicts_with_all = ["command", "config"], env = "MCP_BRIDGE_EXAMPLE")]
    pub example: bool,

    /// Serve every server of this file (the `mcpServers` JSON of Claude Desktop, Claude Code,
    /// Cursor, Cline, or VS Code's `mcp.json`) at /servers/NAME/…, reloading it when it changes
    /// and on SIGHUP. Flags override its `mcpBridge` settings.
    #[arg(
        long,
        value_name = "FILE",
        env = "MCP_BRIDGE_CONFIG",
        conflicts_with = "command"
    )]
    pub config: Option<PathBuf>,

    /// How long sessions of a server removed or changed by a reload may run on. Default: the
    /// config file's `drainTimeout`, else 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = "MCP_BRIDGE_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<Duration>,

    /// Print the sandbox's `.mcp.json` for --config (one `mcp-bridge connect` entry per server,
    /// the token as `${MCP_BRIDGE_TOKEN}`) to stdout and exit.
    #[arg(long, requires = "config")]
    pub print_client_config: bool,

    /// With --print-client-config: the gateway's Unix socket as the sandbox sees it.
    #[arg(
        long,
        value_name = "PATH",
        requires = "print_client_config",
        conflicts_with = "url"
    )]
    pub socket: Option<PathBuf>,

    /// With --print-client-config: the gateway's base URL as the sandbox sees it, e.g.
    /// http://host.docker.internal:9000.
    #[arg(long, value_name = "URL", requires = "print_client_config")]
    pub url: Option<String>,

    /// The stdio MCP server to run, and its arguments (or --config, or --example).
    #[arg(last = true, required_unless_present_any = ["config", "example"], value_name = "CMD")]
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
    // Durations are added to `Instant`s: keep them far from any overflow.
    if secs > MAX_DURATION_SECS {
        return Err(format!("`{s}` is too long (at most 30 days)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The longest duration any flag takes: 30 days.
const MAX_DURATION_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// The largest size any flag takes: 16 GiB.
const MAX_SIZE: u64 = 16 << 30;

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
        .filter(|&n| n as u64 <= MAX_SIZE)
        .ok_or_else(|| format!("`{s}` is too large (at most 16GiB)"))
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
        // Absurd values are refused, never an overflow later.
        for absurd in [
            "1e30s",
            "99999999999h",
            "1e400",
            "inf",
            "NaN",
            "-1s",
            "31d",
            "721h",
        ] {
            assert!(parse_duration(absurd).is_err(), "{absurd}");
        }
        assert!(parse_duration("720h").is_ok());
        assert!(parse_duration("99999999999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("17").unwrap(), 17);
        assert!(parse_size("lots").is_err());
        for absurd in ["99999999999G", "17G", "18446744073709551616", "1e9M"] {
            assert!(parse_size(absurd).is_err(), "{absurd}");
        }
        assert_eq!(parse_size("16G").unwrap(), 16 << 30);
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
