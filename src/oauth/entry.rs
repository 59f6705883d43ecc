//! One remote server's entry in the gateway's config file, as much as `login` needs: its URL, its
//! static headers and an optional pre-registered OAuth client, read with the gateway's loader
//! ([`crate::gateway::File`]).

use crate::gateway::{self, ConfigError, Definition, ServerOptions};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A remote (`url`) server to log in to.
#[derive(Clone, Debug)]
pub struct RemoteServer {
    /// The MCP endpoint.
    pub url: url::Url,
    /// Static headers from the entry, sent on the first (unauthenticated) request only.
    pub headers: BTreeMap<String, String>,
    /// The client to log in with (default: registered by `login`).
    pub oauth: OAuthClientConfig,
}

/// `mcpBridge.servers.NAME.oauth` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthClientConfig {
    /// A client registered by hand with the authorization server.
    pub client_id: Option<String>,
    /// A file holding that client's secret (first line).
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding that client's secret.
    pub client_secret_env: Option<String>,
    /// Scopes to request instead of the ones the server suggests.
    pub scopes: Option<Vec<String>>,
    /// A fixed port for the loopback redirect (for clients registered with one redirect URI).
    pub redirect_port: Option<u16>,
    /// An HTTPS URL where the user hosts this client's metadata document; used as `client_id`
    /// when the authorization server supports client ID metadata documents.
    pub client_metadata_url: Option<String>,
}

/// Why a config entry could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The file itself was refused (unreadable, not JSON, or an invalid entry anywhere in it).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No server of that name (or it is `disabled`).
    #[error("config {path} has no server `{name}` under `mcpServers` or `servers`")]
    NoServer {
        /// The config file.
        path: PathBuf,
        /// The server asked for.
        name: String,
    },
    /// A stdio server: only remote ones log in.
    #[error("server `{name}` in {path} has no `url`: only remote servers log in")]
    NotRemote {
        /// The config file.
        path: PathBuf,
        /// The server asked for.
        name: String,
    },
    /// `mcpBridge.servers.NAME.oauth` is wrong.
    #[error("server `{name}` in {path}: {detail}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The server asked for.
        name: String,
        /// What is wrong (never a secret's value).
        detail: String,
    },
}

/// Reads server `name` from the gateway config at `path` (`mcpServers.NAME` or `servers.NAME`),
/// with the gateway's own loader: what `login` reads is what `serve --config` serves.
pub fn server_entry(path: &Path, name: &str) -> Result<RemoteServer, EntryError> {
    let file = gateway::File::load(path)?;
    let server = file.servers.get(name).ok_or_else(|| EntryError::NoServer {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    let Definition::Remote { url, headers, .. } = &server.definition else {
        return Err(EntryError::NotRemote {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    };
    let headers = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let oauth = client_config(&server.options).map_err(|detail| EntryError::Invalid {
        path: path.to_path_buf(),
        name: name.to_string(),
        detail,
    })?;
    Ok(RemoteServer {
        url: url.clone(),
        headers,
        oauth,
    })
}

/// The OAuth client of a server's `mcpBridge.servers.NAME` options, checked (the default when
/// there is none).
pub fn client_config(options: &ServerOptions) -> Result<OAuthClientConfig, String> {
    let Some(raw) = &options.oauth else {
        return Ok(OAuthClientConfig::default());
    };
    let oauth: OAuthClientConfig =
        serde_json::from_value(raw.value.clone()).map_err(|e| format!("`{}`: {e}", raw.path))?;
    if oauth.client_secret_file.is_some() && oauth.client_secret_env.is_some() {
        return Err("give `clientSecretFile` or `clientSecretEnv`, not both".into());
    }
    if oauth.client_id.is_none()
        && (oauth.client_secret_file.is_some() || oauth.client_secret_env.is_some())
    {
        return Err("a client secret needs a `clientId`".into());
    }
    Ok(oauth)
}

impl OAuthClientConfig {
    /// The pre-registered client's secret, read from its file or variable.
    pub fn client_secret(&self) -> Result<Option<String>, String> {
        if let Some(path) = &self.client_secret_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read clientSecretFile {}: {e}", path.display()))?;
            let secret = text.lines().next().unwrap_or("").trim().to_string();
            if secret.is_empty() {
                return Err(format!("clientSecretFile {} is empty", path.display()));
            }
            return Ok(Some(secret));
        }
        if let Some(var) = &self.client_secret_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => Err(format!("clientSecretEnv: `{var}` is not set")),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn reads_claude_and_vscode_shapes_with_the_bridge_section() {
        let f = write(
            r#"{"mcpServers":{"gh":{"type":"http","url":"https://example.com/mcp","headers":{"X-A":"1"}},
                "local":{"command":"x"}},
                "mcpBridge":{"servers":{"gh":{"oauth":{"clientId":"abc","scopes":["read"],"redirectPort":8765}}}}}"#,
        );
        let s = server_entry(f.path(), "gh").unwrap();
        assert_eq!(s.url.as_str(), "https://example.com/mcp");
        assert_eq!(s.headers["x-a"], "1");
        assert_eq!(s.oauth.client_id.as_deref(), Some("abc"));
        assert_eq!(s.oauth.redirect_port, Some(8765));
        let err = server_entry(f.path(), "local").unwrap_err().to_string();
        assert!(err.contains("no `url`"), "{err}");
        let err = server_entry(f.path(), "nope").unwrap_err().to_string();
        assert!(err.contains("no server `nope`"), "{err}");

        let f = write(r#"{"servers":{"gh":{"url":"http://127.0.0.1:9/mcp"}}}"#);
        assert!(
            server_entry(f.path(), "gh")
                .unwrap()
                .oauth
                .client_id
                .is_none()
        );
    }

    #[test]
    fn bad_entries_get_clear_errors() {
        let f = write(
            r#"{"mcpServers":{"gh":{"url":"https://e.com"}},"mcpBridge":{"servers":{"gh":{"oauth":{"clientSecretEnv":"X"}}}}}"#,
        );
        let err = server_entry(f.path(), "gh").unwrap_err().to_string();
        assert!(err.contains("needs a `clientId`"), "{err}");
        let f = write(
            r#"{"mcpServers":{"gh":{"url":"https://e.com"}},"mcpBridge":{"servers":{"gh":{"oauth":{"clientid":"X"}}}}}"#,
        );
        assert!(server_entry(f.path(), "gh").is_err());
        let f = write("{");
        assert!(
            server_entry(f.path(), "gh")
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
        // A typo in the bridge's section is refused by the gateway's loader, as serve would.
        let f = write(
            r#"{"mcpServers":{"gh":{"url":"https://e.com"}},"mcpBridge":{"servers":{"gh":{"oauht":{}}}}}"#,
        );
        assert!(server_entry(f.path(), "gh").is_err());
    }
}
