//! The `login` and `logout` subcommands: arguments, and what each prints for the person at the
//! terminal (on stderr; tokens never).

use super::entry::{OAuthClientConfig, RemoteServer, server_entry};
use super::flow::{LoginOptions, human, login, tell};
use super::store::{Store, TokenRecord, check_name, now_secs};
use super::{OAuthError, http_client};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `mcp-bridge login`'s flags.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The server's name in the config (a remote `url` server); with --status, only that one.
    #[arg(required_unless_present = "status")]
    pub name: Option<String>,

    /// The gateway's config file (the `mcpServers` or `servers` JSON).
    #[arg(
        long,
        value_name = "FILE",
        env = "MCP_BRIDGE_CONFIG",
        conflicts_with = "url"
    )]
    pub config: Option<PathBuf>,

    /// Log in to this MCP server URL directly instead of looking NAME up in a config.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Print the authorization URL instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,

    /// List the servers logged in to, with scopes and expiry (never a token), and exit.
    #[arg(long)]
    pub status: bool,

    /// Also request this scope (repeatable, or space-separated), e.g. after a step-up message.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,

    /// How long to wait for the browser to come back.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::cli::parse_duration)]
    pub timeout: Duration,

    /// Extra PEM CA certificate(s) to trust besides the system's, for private CAs.
    #[arg(long, value_name = "FILE", env = "MCP_BRIDGE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// `mcp-bridge logout`'s flags.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The server whose tokens to delete from the host's token store.
    pub name: String,
}

/// Runs `mcp-bridge login`.
pub async fn run_login(args: LoginArgs, shutdown: CancellationToken) -> Result<(), OAuthError> {
    let store = Store::default_location()?;
    if args.status {
        return status(&store, args.name.as_deref());
    }
    let name = args.name.unwrap_or_default();
    check_name(&name)?;
    let server = match (&args.url, &args.config) {
        (Some(url), _) => RemoteServer {
            url: url::Url::parse(url)
                .map_err(|e| OAuthError::Config(format!("--url `{url}`: {e}")))?,
            headers: BTreeMap::new(),
            oauth: OAuthClientConfig::default(),
        },
        (None, Some(path)) => server_entry(path, &name)?,
        (None, None) => {
            return Err(OAuthError::Config(
                "which server? give --config FILE (or MCP_BRIDGE_CONFIG), or --url URL".into(),
            ));
        }
    };
    let opts = LoginOptions {
        open_browser: !args.no_browser,
        timeout: args.timeout,
        extra_scopes: args
            .scopes
            .iter()
            .flat_map(|s| s.split_ascii_whitespace())
            .map(str::to_string)
            .collect(),
        http: http_client(args.ca_cert.as_deref())?,
    };
    let record = login(&name, &server, &store, &opts, &shutdown).await?;
    tell(&format!(
        "Logged in to `{name}`: {}. Tokens kept in {}",
        summary(&record),
        store.path_of(&name)?.display()
    ));
    Ok(())
}

/// Runs `mcp-bridge logout`.
pub async fn run_logout(args: LogoutArgs) -> Result<(), OAuthError> {
    let store = Store::default_location()?;
    check_name(&args.name)?;
    let name = args.name.clone();
    let removed = tokio::task::spawn_blocking(move || {
        let _lock = store.lock(&name)?;
        store.remove(&name)
    })
    .await
    .map_err(|_| OAuthError::Interrupted)??;
    if removed {
        tell(&format!(
            "Logged out of `{}`: its tokens are deleted",
            args.name
        ));
    } else {
        tell(&format!("No tokens stored for `{}`", args.name));
    }
    Ok(())
}

fn status(store: &Store, only: Option<&str>) -> Result<(), OAuthError> {
    let mut shown = 0;
    for (name, record) in store.list()? {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        shown += 1;
        match record {
            Ok(r) => tell(&format!("{name}  {}  {}", r.server_url, summary(&r))),
            Err(e) => tell(&format!("{name}  unreadable: {e}")),
        }
    }
    if shown == 0 {
        tell(&format!("No OAuth logins in {}", store.dir().display()));
    }
    Ok(())
}

/// Scopes, expiry, refresh and client kind: everything but the secrets.
fn summary(r: &TokenRecord) -> String {
    let scopes = if r.scopes.is_empty() {
        "no scopes".to_string()
    } else {
        format!("scopes {}", r.scopes.join(" "))
    };
    let now = now_secs();
    let expiry = match r.expires_at {
        _ if r.access_token.expose().is_empty() => "needs a new login".to_string(),
        None => "no expiry given".to_string(),
        Some(at) if at > now => format!("expires in {}", human(Duration::from_secs(at - now))),
        Some(at) => format!(
            "expired {} ago",
            human(Duration::from_secs(now.saturating_sub(at)))
        ),
    };
    let refresh = if r.refresh_token.is_some() {
        "refreshable"
    } else {
        "no refresh token"
    };
    let mut line = format!("{scopes}, {expiry}, {refresh}, {} client", r.client.source);
    if !r.step_up_scopes.is_empty() {
        line.push_str(&format!(
            ", step-up wanted: {} (log in again)",
            r.step_up_scopes.join(" ")
        ));
    }
    line
}
