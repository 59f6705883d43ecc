//! Host side: serve a stdio MCP server over Streamable HTTP and legacy SSE.

use tokio_util::sync::CancellationToken;

/// Options of `mcp-bridge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The stdio MCP server to run, and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Runs the gateway until `shutdown` is cancelled.
pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let _ = (args, shutdown);
    anyhow::bail!("serve is not implemented yet")
}
