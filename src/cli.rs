//! Command-line interface: clap definitions (every flag also readable from an `MCP_BRIDGE_*`
//! variable) and the small value parsers they share.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Carry MCP between a sandboxed agent's stdio and a host's HTTP MCP servers.
#[derive(Debug, Parser)]
#[command(name = "mcp-bridge", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output on stderr (-v debug, -vv trace). Overridden by --log-level.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Log filter for stderr, e.g. `info`, `debug`, `mcp_bridge=trace`. RUST_LOG also works.
    #[arg(long, env = "MCP_BRIDGE_LOG_LEVEL", global = true)]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run inside the sandbox: be a stdio MCP server that relays to the MCP server at URL.
    Connect(ConnectArgs),
    /// Run on the host: serve a stdio MCP server (CMD ARGS…) over Streamable HTTP and SSE.
    Serve(crate::serve::ServeArgs),
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
    Ok(Duration::from_secs_f64(secs))
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
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1k").unwrap(), 1024);
        assert_eq!(parse_size("17").unwrap(), 17);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
