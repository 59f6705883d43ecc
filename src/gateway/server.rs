//! One entry of `mcpServers` (or VS Code's `servers`): a stdio command or a remote URL, read
//! with `${VAR}` expanded and checked, ready for `serve` to spawn or relay to.

use super::envfile;
use super::error::{ConfigError, JsonPath};
use super::name::check_name;
use super::walk::{Walker, get};
use crate::cli::TransportChoice;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use url::Url;

/// How to reach one MCP server.
#[derive(Clone, PartialEq)]
pub enum Definition {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        /// The program (looked up in `PATH` when it has no slash).
        command: String,
        /// Its arguments, `${VAR}` expanded.
        args: Vec<String>,
        /// Variables set for the child on top of serve's pass-through set: `envFile` first,
        /// then `env` (which wins).
        env: BTreeMap<String, String>,
        /// Working directory; a relative `cwd` is taken relative to the file's directory.
        cwd: Option<PathBuf>,
    },
    /// An HTTP MCP server, relayed with the connect machinery.
    Remote {
        /// The MCP endpoint (http or https), `${VAR}` expanded.
        url: Url,
        /// Sent on every request; values are marked sensitive so `Debug` never shows them.
        headers: HeaderMap,
        /// From `type`: `http` → Streamable HTTP, `sse` → legacy SSE, none → auto-detect.
        transport: TransportChoice,
    },
}

// Hand-written so logs never show env values, arguments, or a URL's path and query, any of
// which may carry a secret after expansion.
impl fmt::Debug for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Definition::Stdio {
                command,
                args,
                env,
                cwd,
            } => f
                .debug_struct("Stdio")
                .field("command", command)
                .field("args", &format_args!("[{} redacted]", args.len()))
                .field("env", &env.keys().collect::<Vec<_>>())
                .field("cwd", cwd)
                .finish(),
            Definition::Remote {
                url,
                headers,
                transport,
            } => f
                .debug_struct("Remote")
                .field("origin", &url.origin().ascii_serialization())
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .field("transport", transport)
                .finish(),
        }
    }
}

/// Reads one server entry; `Ok(None)` when it says `"disabled": true`.
pub(super) fn parse(
    w: &Walker<'_>,
    dir: &Path,
    name: &str,
    value: &Value,
    path: &JsonPath,
) -> Result<Option<Definition>, ConfigError> {
    let entry = w.object(value, path)?;
    if let Some(d) = get(entry, "disabled")
        && w.bool(d, &path.key("disabled"))?
    {
        return Ok(None);
    }
    check_name(name).map_err(|e| w.err(path, e))?;
    // Cline once spelled it `transportType`; Windsurf spells the URL `serverUrl`.
    let (type_key, kind) = match get(entry, "type") {
        Some(v) => ("type", Some(v)),
        None => ("transportType", get(entry, "transportType")),
    };
    let kind = match kind {
        Some(v) => Some(transport_type(w, v, &path.key(type_key))?),
        None => None,
    };
    let url_key = if get(entry, "url").is_some() {
        "url"
    } else {
        "serverUrl"
    };
    let command = get(entry, "command");
    let url = get(entry, url_key);
    match (kind, command, url) {
        (_, Some(_), Some(_)) => Err(w.err(path, "has both \"command\" and \"url\"; keep one")),
        (Some(Kind::Stdio) | None, Some(command), None) => {
            stdio(w, dir, entry, command, path).map(Some)
        }
        (Some(Kind::Remote(t)), None, Some(url)) => {
            remote(w, entry, url, t, url_key, path).map(Some)
        }
        (None, None, Some(url)) => {
            remote(w, entry, url, TransportChoice::Auto, url_key, path).map(Some)
        }
        (Some(Kind::Stdio), None, _) => Err(w.err(path, "\"type\": \"stdio\" needs \"command\"")),
        (Some(Kind::Remote(_)), _, None) => Err(w.err(path, "a remote server needs \"url\"")),
        (None, None, None) => Err(w.err(path, "needs \"command\" or \"url\"")),
    }
}

enum Kind {
    Stdio,
    Remote(TransportChoice),
}

fn transport_type(w: &Walker<'_>, v: &Value, path: &JsonPath) -> Result<Kind, ConfigError> {
    Ok(match w.string(v, path)? {
        "stdio" => Kind::Stdio,
        "http" | "streamable-http" | "streamableHttp" | "streamable_http" | "streamable" => {
            Kind::Remote(TransportChoice::Streamable)
        }
        "sse" => Kind::Remote(TransportChoice::Sse),
        other => {
            return Err(w.err(
                path,
                format!("unknown type {} (stdio, http, sse)", Value::from(other)),
            ));
        }
    })
}

fn stdio(
    w: &Walker<'_>,
    dir: &Path,
    entry: &serde_json::Map<String, Value>,
    command: &Value,
    path: &JsonPath,
) -> Result<Definition, ConfigError> {
    let command_path = path.key("command");
    let command = w.expanded(command, &command_path)?;
    if command.trim().is_empty() {
        return Err(w.err(&command_path, "is empty"));
    }
    let args = match get(entry, "args") {
        Some(v) => w.expanded_list(v, &path.key("args"))?,
        None => Vec::new(),
    };
    let mut env = BTreeMap::new();
    if let Some(v) = get(entry, "envFile") {
        let p = path.key("envFile");
        let file = dir.join(w.expanded(v, &p)?);
        env = envfile::read(&file).map_err(|e| w.err(&p, e))?;
    }
    if let Some(v) = get(entry, "env") {
        env.extend(w.expanded_map(v, &path.key("env"))?);
    }
    for (k, v) in &env {
        if k.is_empty() || k.contains(['=', '\0']) {
            let problem = "is not a valid environment variable name";
            return Err(w.err(&path.key("env").key(k), problem));
        }
        if v.contains('\0') {
            return Err(w.err(&path.key("env").key(k), "contains a NUL character"));
        }
    }
    let cwd = match get(entry, "cwd") {
        Some(v) => Some(dir.join(w.expanded(v, &path.key("cwd"))?)),
        None => None,
    };
    Ok(Definition::Stdio {
        command,
        args,
        env,
        cwd,
    })
}

fn remote(
    w: &Walker<'_>,
    entry: &serde_json::Map<String, Value>,
    url: &Value,
    transport: TransportChoice,
    url_key: &str,
    path: &JsonPath,
) -> Result<Definition, ConfigError> {
    let url_path = path.key(url_key);
    // Parse errors from `url` never include the input, which may hold an expanded secret.
    let url = Url::parse(&w.expanded(url, &url_path)?)
        .map_err(|e| w.err(&url_path, format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(w.err(&url_path, "the scheme must be http or https"));
    }
    let mut headers = HeaderMap::new();
    if let Some(v) = get(entry, "headers") {
        let hpath = path.key("headers");
        for (name, value) in w.expanded_map(v, &hpath)? {
            let p = hpath.key(&name);
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| w.err(&p, "not a valid header name"))?;
            let mut value = HeaderValue::try_from(value)
                .map_err(|_| w.err(&p, "the value has characters a header cannot carry"))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
    }
    Ok(Definition::Remote {
        url,
        headers,
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Option<Definition>, ConfigError> {
        let env = |k: &str| (k == "TOKEN").then(|| "s3cret".to_owned());
        let w = Walker {
            file: "t.json",
            lookup: &env,
        };
        let path = JsonPath::root().key("mcpServers").key("x");
        parse(&w, Path::new("/etc/mcp"), "x", &v, &path)
    }

    #[test]
    fn stdio_entry() {
        let d = read(json!({"command": "npx", "args": ["-y", "pkg"], "env": {"K": "${TOKEN}"}, "cwd": "work"}))
            .unwrap()
            .unwrap();
        let Definition::Stdio {
            command,
            args,
            env,
            cwd,
        } = d
        else {
            panic!("not stdio")
        };
        assert_eq!(command, "npx");
        assert_eq!(args, ["-y", "pkg"]);
        assert_eq!(env["K"], "s3cret");
        assert_eq!(cwd.unwrap(), Path::new("/etc/mcp/work"));
    }

    #[test]
    fn remote_entries_and_their_transport() {
        for (ty, want) in [
            (json!("http"), TransportChoice::Streamable),
            (json!("streamableHttp"), TransportChoice::Streamable),
            (json!("sse"), TransportChoice::Sse),
            (Value::Null, TransportChoice::Auto),
        ] {
            let d = read(json!({"type": ty, "url": "https://api.example/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}))
                .unwrap()
                .unwrap();
            let Definition::Remote {
                url,
                headers,
                transport,
            } = &d
            else {
                panic!("not remote")
            };
            assert_eq!(*transport, want);
            assert_eq!(url.as_str(), "https://api.example/mcp");
            assert_eq!(headers["authorization"], "Bearer s3cret");
            assert!(!format!("{d:?}").contains("s3cret"));
        }
        let d = read(json!({"serverUrl": "http://127.0.0.1:1/sse"}))
            .unwrap()
            .unwrap();
        assert!(matches!(d, Definition::Remote { .. }));
    }

    #[test]
    fn disabled_entries_are_skipped_unchecked() {
        assert!(read(json!({"disabled": true})).unwrap().is_none());
        assert!(
            read(json!({"disabled": false}))
                .unwrap_err()
                .to_string()
                .contains("needs \"command\" or \"url\"")
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let d =
            read(json!({"command": "srv", "args": ["--key=${TOKEN}"], "env": {"K": "${TOKEN}"}}))
                .unwrap()
                .unwrap();
        let shown = format!("{d:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("\"K\""));
        let d = read(json!({"url": "https://h.example/${TOKEN}/sse?key=${TOKEN}"}))
            .unwrap()
            .unwrap();
        assert!(!format!("{d:?}").contains("s3cret"));
    }

    #[test]
    fn refusals_name_the_path() {
        let cases = [
            (json!({}), "mcpServers.x: needs \"command\" or \"url\""),
            (
                json!({"command": "a", "url": "http://h/"}),
                "mcpServers.x: has both",
            ),
            (
                json!({"type": "http", "command": "a"}),
                "mcpServers.x: a remote server needs \"url\"",
            ),
            (
                json!({"type": "stdio", "url": "http://h/"}),
                "mcpServers.x: \"type\": \"stdio\" needs \"command\"",
            ),
            (
                json!({"type": "websocket", "url": "ws://h/"}),
                "mcpServers.x.type: unknown type \"websocket\" (stdio, http, sse)",
            ),
            (
                json!({"command": 7}),
                "mcpServers.x.command: expected a string, found a number",
            ),
            (json!({"command": " "}), "mcpServers.x.command: is empty"),
            (
                json!({"command": "a", "args": ["b", 1]}),
                "mcpServers.x.args[1]: expected a string",
            ),
            (
                json!({"command": "a", "args": "b c"}),
                "mcpServers.x.args: expected an array of strings",
            ),
            (
                json!({"command": "a", "env": {"A=B": "1"}}),
                "mcpServers.x.env[\"A=B\"]: is not a valid environment variable name",
            ),
            (
                json!({"command": "a", "env": {"K": "${NOPE}"}}),
                "mcpServers.x.env.K: environment variable NOPE is not set",
            ),
            (
                json!({"url": "ftp://h/"}),
                "mcpServers.x.url: the scheme must be http or https",
            ),
            (
                json!({"url": "not a url"}),
                "mcpServers.x.url: not a valid URL",
            ),
            (
                json!({"url": "http://h/", "headers": {"Bad Name": "v"}}),
                "mcpServers.x.headers[\"Bad Name\"]: not a valid header name",
            ),
            (
                json!({"url": "http://h/", "headers": {"X": "a\nb"}}),
                "mcpServers.x.headers.X: the value has characters",
            ),
            (
                json!({"disabled": "yes"}),
                "mcpServers.x.disabled: expected true or false",
            ),
            (
                json!("npx"),
                "mcpServers.x: expected an object, found a string",
            ),
        ];
        for (entry, want) in cases {
            let err = read(entry.clone()).unwrap_err().to_string();
            assert!(err.starts_with("t.json: "), "{err}");
            assert!(err.contains(want), "{entry}: got {err:?}, want {want:?}");
        }
    }
}
