//! Starting `serve --config`: the file's `mcpBridge` settings under the flags (a flag or its
//! environment variable wins), and `--print-client-config`'s text.

use crate::cli::ServeArgs;
use crate::gateway::{ClientTarget, File};
use crate::net::ListenAddr;
use crate::serve::config::{Config, ConfigError};

/// The validated settings of `serve --config`: `args` with what they leave unset taken from
/// `file.bridge`.
pub fn gateway_config(mut args: ServeArgs, file: &File) -> Result<Config, ConfigError> {
    let b = &file.bridge;
    if args.listen.is_empty()
        && let Some(listen) = &b.listen
    {
        args.listen = listen.clone();
    }
    if args.auth_token_file.is_none() && args.auth_token.is_none() {
        args.auth_token_file = b.auth_token_file.clone();
    }
    args.session_ttl = args.session_ttl.or(b.session_ttl);
    args.max_sessions = args.max_sessions.or(b.max_sessions);
    args.drain_timeout = args.drain_timeout.or(b.drain_timeout);
    Config::try_from(args)
}

/// Why `--print-client-config` cannot print.
#[derive(Debug, thiserror::Error)]
#[error("--print-client-config: {0}")]
pub struct PrintError(String);

/// The sandbox's `.mcp.json` for `file`: reached at `--socket`, `--url`, or else the first
/// listen address as this host sees it. The token is referenced as `${MCP_BRIDGE_TOKEN}` when
/// the gateway requires one, never written out.
pub fn client_config_text(
    socket: Option<std::path::PathBuf>,
    url: Option<&str>,
    file: &File,
    cfg: &Config,
) -> Result<String, PrintError> {
    let target = match (socket, url) {
        (Some(path), _) => ClientTarget::socket(path),
        (None, Some(url)) => ClientTarget::url(url),
        (None, None) => match cfg.listen.first() {
            Some(ListenAddr::Unix(path)) => {
                ClientTarget::socket(std::path::absolute(path).unwrap_or_else(|_| path.clone()))
            }
            Some(ListenAddr::Tcp(addr)) => ClientTarget::url(&format!("http://{addr}")),
            None => Err("no listen address".to_owned()),
        },
    }
    .map_err(PrintError)?;
    Ok(crate::gateway::client_config(
        file,
        &target,
        cfg.token.is_some(),
    ))
}
