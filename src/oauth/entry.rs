//! One remote server's entry in the gateway's config file, as much as `login` needs: its URL, its
//! static headers and an optional pre-registered OAuth client. A stand-in for the gateway's own
//! config loader, kept to one function so it can be swapped for it.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A remote (`url`) server to log in to.
#[derive(Clone, Debug)]
pub struct RemoteServer {
    pub url: url::Url,
    /// Static headers from the entry, sent on the first (unauthenticated) request only.
    pub headers: BTreeMap<String, String>,
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
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is not valid JSON: {detail}")]
    Json { path: PathBuf, detail: String },
    #[error("config {path} has no server `{name}` under `mcpServers` or `servers`")]
    NoServer { path: PathBuf, name: String },
    #[error("server `{name}` in {path} has no `url`: only remote servers log in")]
    NotRemote { path: PathBuf, name: String },
    #[error("server `{name}` in {path}: {detail}")]
    Invalid {
        path: PathBuf,
        name: String,
        detail: String,
    },
}

#[derive(Deserialize)]
struct File {
    #[serde(rename = "mcpServers")]
    mcp_servers: Option<BTreeMap<String, serde_json::Value>>,
    servers: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(rename = "mcpBridge")]
    bridge: Option<Bridge>,
}

#[derive(Deserialize)]
struct Bridge {
    servers: Option<BTreeMap<String, BridgeServer>>,
}

#[derive(Deserialize)]
struct BridgeServer {
    oauth: Option<serde_json::Value>,
}

/// Reads server `name` from the config at `path` (`mcpServers.NAME` or `servers.NAME`).
pub fn server_entry(path: &Path, name: &str) -> Result<RemoteServer, EntryError> {
    let text = std::fs::read_to_string(path).map_err(|source| EntryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file: File = serde_json::from_str(&text).map_err(|e| EntryError::Json {
        path: path.to_path_buf(),
        detail: format!("line {} column {}", e.line(), e.column()),
    })?;
    let invalid = |detail: String| EntryError::Invalid {
        path: path.to_path_buf(),
        name: name.to_string(),
        detail,
    };
    let entry = file
        .mcp_servers
        .as_ref()
        .and_then(|m| m.get(name))
        .or_else(|| file.servers.as_ref().and_then(|m| m.get(name)))
        .ok_or_else(|| EntryError::NoServer {
            path: path.to_path_buf(),
            name: name.to_string(),
        })?;
    let Some(url) = entry.get("url") else {
        return Err(EntryError::NotRemote {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    };
    let url = url
        .as_str()
        .ok_or_else(|| invalid("`url` is not a string".into()))?;
    let url = url::Url::parse(url).map_err(|e| invalid(format!("`url` is not a URL: {e}")))?;
    let mut headers = BTreeMap::new();
    if let Some(h) = entry.get("headers") {
        let map = h
            .as_object()
            .ok_or_else(|| invalid("`headers` is not an object".into()))?;
        for (k, v) in map {
            let v = v
                .as_str()
                .ok_or_else(|| invalid(format!("header `{k}` is not a string")))?;
            headers.insert(k.clone(), v.to_string());
        }
    }
    let oauth = match file
        .bridge
        .and_then(|b| b.servers)
        .and_then(|mut s| s.remove(name))
        .and_then(|s| s.oauth)
    {
        None => OAuthClientConfig::default(),
        Some(v) => serde_json::from_value(v)
            .map_err(|e| invalid(format!("`mcpBridge.servers.{name}.oauth`: {e}")))?,
    };
    if oauth.client_secret_file.is_some() && oauth.client_secret_env.is_some() {
        return Err(invalid(
            "give `clientSecretFile` or `clientSecretEnv`, not both".into(),
        ));
    }
    if oauth.client_id.is_none()
        && (oauth.client_secret_file.is_some() || oauth.client_secret_env.is_some())
    {
        return Err(invalid("a client secret needs a `clientId`".into()));
    }
    Ok(RemoteServer {
        url,
        headers,
        oauth,
    })
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
        assert_eq!(s.headers["X-A"], "1");
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
    }
}
