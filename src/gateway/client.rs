//! `serve --config FILE --print-client-config`: the `.mcp.json` a sandboxed agent needs, one
//! `mcp-bridge connect` entry per server. Built from names only, so no secret of the host's
//! file (env values, headers, remote URLs) can reach it.

use super::File;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use url::Url;

/// Variable the printed config references for the gateway's token; the sandbox sets it.
pub const TOKEN_VAR: &str = "MCP_BRIDGE_TOKEN";

/// Where the sandbox reaches the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientTarget {
    /// The gateway's Unix socket, as its path appears inside the sandbox.
    Socket(PathBuf),
    /// A base URL such as `http://host.docker.internal:9000`; routes are appended to its path.
    Url(Url),
}

impl ClientTarget {
    /// A socket path; it must be absolute, since the agent may start connect anywhere.
    pub fn socket(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        if !path.is_absolute() {
            return Err(format!(
                "socket path `{}` must be absolute (as seen inside the sandbox)",
                path.display()
            ));
        }
        Ok(ClientTarget::Socket(path))
    }

    /// A base URL: http or https, with no credentials, query or fragment (the printed config
    /// is meant to be shared, and routes are appended to the path).
    pub fn url(s: &str) -> Result<Self, String> {
        let url = Url::parse(s).map_err(|e| format!("--url: not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("--url: the scheme must be http or https".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("--url: must not carry credentials; the token goes in a header".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("--url: must not have a query or fragment".into());
        }
        Ok(ClientTarget::Url(url))
    }
}

/// The `.mcp.json` text (pretty JSON, newline-terminated) with one entry per server:
/// `mcp-bridge connect [--unix PATH] URL/servers/NAME/mcp`. With `with_token`, each entry sets
/// `MCP_BRIDGE_HEADERS` to `Authorization: Bearer ${MCP_BRIDGE_TOKEN}`: the agent or connect
/// expands it inside the sandbox, and it stays out of argv.
pub fn client_config(file: &File, target: &ClientTarget, with_token: bool) -> String {
    let mut servers = Map::new();
    for server in file.servers.values() {
        let route = server.mcp_route();
        let mut args = vec![json!("connect")];
        match target {
            ClientTarget::Socket(path) => {
                args.push(json!("--unix"));
                args.push(json!(path.to_string_lossy()));
                args.push(json!(format!("http://localhost{route}")));
            }
            ClientTarget::Url(base) => {
                let mut url = base.clone();
                let joined = format!("{}{route}", base.path().trim_end_matches('/'));
                url.set_path(&joined);
                args.push(json!(url.as_str()));
            }
        }
        let mut entry = json!({"command": "mcp-bridge", "args": args});
        if with_token {
            entry["env"] = json!({
                "MCP_BRIDGE_HEADERS": format!("Authorization: Bearer ${{{TOKEN_VAR}}}")
            });
        }
        servers.insert(server.name.clone(), entry);
    }
    let doc = json!({ "mcpServers": Value::Object(servers) });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HOST_FILE: &str = r#"{
      "mcpServers": {
        "memory": {"command": "npx", "args": ["-y", "mem", "--key=${SECRET}"], "env": {"K": "${SECRET}"}},
        "github": {"type": "http", "url": "https://api.example/${SECRET}/mcp",
                   "headers": {"Authorization": "Bearer ${SECRET}"}},
        "off": {"command": "x", "disabled": true}
      },
      "mcpBridge": {"authTokenFile": "/etc/token"}
    }"#;

    fn host() -> File {
        let env = |k: &str| (k == "SECRET").then(|| "hunter2".to_owned());
        File::parse_with(HOST_FILE, "host.json", Path::new("/"), &env).unwrap()
    }

    #[test]
    fn socket_target() {
        let target = ClientTarget::socket("/run/mcp.sock").unwrap();
        let text = client_config(&host(), &target, true);
        let v: Value = serde_json::from_str(&text).unwrap();
        let names: Vec<&String> = v["mcpServers"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["github", "memory"]);
        let mem = &v["mcpServers"]["memory"];
        assert_eq!(mem["command"], "mcp-bridge");
        assert_eq!(
            mem["args"],
            json!([
                "connect",
                "--unix",
                "/run/mcp.sock",
                "http://localhost/servers/memory/mcp"
            ])
        );
        assert_eq!(
            mem["env"]["MCP_BRIDGE_HEADERS"],
            "Authorization: Bearer ${MCP_BRIDGE_TOKEN}"
        );
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn url_target_keeps_a_path_prefix() {
        for (base, want) in [
            (
                "http://host.docker.internal:9000",
                "http://host.docker.internal:9000/servers/github/mcp",
            ),
            (
                "https://gw.example/bridge/",
                "https://gw.example/bridge/servers/github/mcp",
            ),
        ] {
            let text = client_config(&host(), &ClientTarget::url(base).unwrap(), false);
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["mcpServers"]["github"]["args"], json!(["connect", want]));
            assert!(v["mcpServers"]["github"].get("env").is_none());
        }
    }

    #[test]
    fn never_a_secret_of_the_host_file() {
        for target in [
            ClientTarget::socket("/s").unwrap(),
            ClientTarget::url("http://h:1").unwrap(),
        ] {
            for token in [true, false] {
                let text = client_config(&host(), &target, token);
                for secret in ["hunter2", "api.example", "npx", "/etc/token", "off"] {
                    assert!(!text.contains(secret), "{secret} leaked: {text}");
                }
            }
        }
    }

    #[test]
    fn bad_targets() {
        assert!(ClientTarget::socket("run/mcp.sock").is_err());
        assert!(ClientTarget::url("unix:/x").is_err());
        assert!(
            ClientTarget::url("http://u:p@h/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(ClientTarget::url("http://h/?t=1").is_err());
        assert!(ClientTarget::url("not a url").is_err());
    }
}
