//! Which remote servers of a gateway file the gateway relays with OAuth: one [`TokenProvider`]
//! per server, put in the relay's `connect::Config` (`auth`) and so shared by every session of
//! that server, which makes its refreshes single-flight.

use super::entry::client_config;
use super::{OAuthError, Store, TokenProvider};
use crate::gateway::{Definition, Server};
use std::path::Path;
use std::sync::Arc;

/// The provider for `server` when it has an OAuth login: a token file in `store`, or
/// `mcpBridge.servers.NAME.oauth` in the file. `None` for a stdio server, or a remote one that
/// authenticates otherwise (its `headers`, or not at all). `config_file` is named in the login
/// command the sandbox is told to run.
pub fn provider_for(
    server: &Server,
    config_file: Option<&Path>,
    store: &Store,
) -> Result<Option<Arc<TokenProvider>>, OAuthError> {
    if !matches!(server.definition, Definition::Remote { .. }) {
        return Ok(None);
    }
    client_config(&server.options)
        .map_err(|detail| OAuthError::Config(format!("server `{}`: {detail}", server.name)))?;
    let logged_in = store.path_of(&server.name)?.exists();
    if !logged_in && server.options.oauth.is_none() {
        return Ok(None);
    }
    let mut provider = TokenProvider::new(&server.name, store.clone())?;
    if let Some(path) = config_file {
        provider = provider.with_config_hint(&absolute(path));
    }
    Ok(Some(Arc::new(provider)))
}

/// The gateway's provider for `server`, from the default store (see
/// [`Store::default_location`]); a failure is logged and the server is relayed without one.
pub fn for_gateway(server: &Server, config_file: Option<&Path>) -> Option<Arc<TokenProvider>> {
    if !matches!(server.definition, Definition::Remote { .. }) {
        return None;
    }
    let found = match Store::default_location() {
        Ok(store) => provider_for(server, config_file, &store),
        // No store, so no login: only worth a word when the file asks for OAuth.
        Err(_) if server.options.oauth.is_none() => Ok(None),
        Err(e) => Err(e.into()),
    };
    match found {
        Ok(Some(provider)) => {
            tracing::info!(server = %server.name, "relaying with the OAuth login kept on the host");
            Some(provider)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(server = %server.name, "OAuth for this server is off: {e}");
            None
        }
    }
}

/// `path` made absolute, so the command works from any directory (as it is if that fails).
fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::File;

    fn file(text: &str) -> File {
        File::parse(text).unwrap()
    }

    #[test]
    fn only_remote_servers_with_a_login_or_an_oauth_client_get_one() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::at(tmp.path());
        let f = file(
            r#"{"mcpServers":{"a":{"url":"http://127.0.0.1:1/mcp"},"b":{"url":"http://127.0.0.1:1/mcp"},
               "c":{"url":"http://127.0.0.1:1/mcp"},"s":{"command":"x"}},
               "mcpBridge":{"servers":{"b":{"oauth":{}},"s":{"oauth":{}}}}}"#,
        );
        std::fs::write(tmp.path().join("c.json"), "{}").unwrap();
        let get = |n: &str| provider_for(&f.servers[n], Some(Path::new("m.json")), &store).unwrap();
        assert!(get("a").is_none(), "no login, no oauth section");
        let b = get("b").expect("oauth section");
        assert!(
            b.login_command()
                .starts_with("mcp-bridge login b --config /")
        );
        assert!(b.login_command().ends_with("/m.json"));
        assert!(get("c").is_some(), "a token file");
        assert!(get("s").is_none(), "a stdio server never");
    }

    #[test]
    fn a_bad_oauth_section_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let f = file(
            r#"{"mcpServers":{"a":{"url":"http://127.0.0.1:1/mcp"}},
               "mcpBridge":{"servers":{"a":{"oauth":{"clientSecretEnv":"X"}}}}}"#,
        );
        let err = provider_for(&f.servers["a"], None, &Store::at(tmp.path())).unwrap_err();
        assert!(err.to_string().contains("needs a `clientId`"), "{err}");
    }
}
