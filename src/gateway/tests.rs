//! Whole files: the fixtures under tests/fixtures loaded unmodified, and refusals of whole
//! documents (syntax, shape, names), each naming the file and JSON path.

use super::*;
use crate::cli::TransportChoice;
use crate::net::ListenAddr;
use std::path::PathBuf;
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn host_env(k: &str) -> Option<String> {
    match k {
        "HOME" => Some("/home/alice".into()),
        "GITHUB_TOKEN" => Some("gho_fromenv".into()),
        "INTERNAL_API_KEY" => Some("k-123".into()),
        _ => None,
    }
}

fn stdio(file: &File, name: &str) -> (String, Vec<String>, BTreeMap<String, String>) {
    match &file.servers[name].definition {
        Definition::Stdio {
            command, args, env, ..
        } => (command.clone(), args.clone(), env.clone()),
        other => panic!("{name} is not stdio: {other:?}"),
    }
}

fn remote(file: &File, name: &str) -> (String, TransportChoice, usize) {
    match &file.servers[name].definition {
        Definition::Remote {
            url,
            headers,
            transport,
        } => (url.to_string(), *transport, headers.len()),
        other => panic!("{name} is not remote: {other:?}"),
    }
}

#[test]
fn claude_desktop_file_unmodified() {
    let f = File::load_with(&fixture("claude_desktop_config.json"), &host_env).unwrap();
    let names: Vec<&str> = f.servers.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["filesystem", "github", "memory", "postgres", "sqlite"]
    );
    let (command, args, env) = stdio(&f, "github");
    assert_eq!(command, "docker");
    assert_eq!(args[5], "ghcr.io/github/github-mcp-server");
    assert!(env["GITHUB_PERSONAL_ACCESS_TOKEN"].starts_with("ghp_"));
    assert_eq!(f.bridge, Bridge::default());
    assert_eq!(f.servers["memory"].mcp_route(), "/servers/memory/mcp");
    assert_eq!(f.servers["memory"].sse_route(), "/servers/memory/sse");
    assert!(f.summary().ends_with(
        "claude_desktop_config.json: 5 servers (filesystem, github, memory, postgres, sqlite)"
    ));
    assert!(!format!("{f:?}").contains("ghp_"), "Debug shows a secret");
}

#[test]
fn vscode_file_unmodified() {
    let f = File::load_with(&fixture("vscode-mcp.json"), &host_env).unwrap();
    let names: Vec<&str> = f.servers.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["fetch", "github", "legacy-sse", "memory", "playwright"]
    );
    let Definition::Remote { headers, .. } = &f.servers["github"].definition else {
        panic!("github is not remote");
    };
    assert_eq!(headers["authorization"], "Bearer gho_fromenv");
    assert_eq!(remote(&f, "github").1, TransportChoice::Streamable);
    let (url, transport, _) = remote(&f, "legacy-sse");
    assert_eq!(
        (url.as_str(), transport),
        ("http://localhost:3001/sse", TransportChoice::Sse)
    );
    let (_, _, env) = stdio(&f, "memory");
    // `env` wins over `envFile`, which was read relative to the config file.
    assert_eq!(env["MEMORY_FILE_PATH"], "/home/alice/.cache/memory.jsonl");
    assert_eq!(env["DEBUG"], "mcp:*");
    assert_eq!(stdio(&f, "playwright").1, ["@playwright/mcp@latest"]);
}

#[test]
fn claude_code_file_with_bridge_section() {
    let f = File::load_with(&fixture("claude-code.mcp.json"), &host_env).unwrap();
    let (url, transport, headers) = remote(&f, "internal-api");
    assert_eq!(url, "https://api.internal.example/mcp");
    assert_eq!((transport, headers), (TransportChoice::Streamable, 2));
    assert_eq!(remote(&f, "linear").1, TransportChoice::Sse);
    assert_eq!(
        stdio(&f, "memory").2["MEMORY_FILE_PATH"],
        "/var/lib/mcp/memory.jsonl"
    );
    let b = &f.bridge;
    assert_eq!(
        b.listen.as_deref(),
        Some(&[ListenAddr::Unix("/run/mcp-bridge/gateway.sock".into())][..])
    );
    assert_eq!(
        b.auth_token_file.as_deref(),
        Some(fixture("token").as_path())
    );
    assert_eq!(b.session_ttl, Some(Duration::from_secs(900)));
    assert_eq!(b.max_sessions, Some(64));
    assert_eq!(b.drain_timeout, Some(Duration::from_secs(30)));
    assert_eq!(b.clients.as_ref().unwrap().path, "mcpBridge.clients");
    assert!(b.rate_limit.is_none());
    let mem = &f.servers["memory"].options;
    assert_eq!(
        (mem.scope, mem.keep_alive),
        (Scope::PerKey, Some(Duration::from_secs(3600)))
    );
    let ev = &f.servers["everything"].options;
    assert_eq!(
        (ev.scope, ev.session_ttl),
        (Scope::PerSession, Some(Duration::from_secs(120)))
    );
    let policy = f.servers["internal-api"].options.policy.as_ref().unwrap();
    assert_eq!(policy.path, "mcpBridge.servers.internal-api.policy");
    assert_eq!(policy.value["tools"]["deny"][0], "delete_*");
    assert_eq!(f.servers["linear"].options, ServerOptions::default());
}

#[test]
fn cline_file_skips_disabled_servers() {
    let f = File::load_with(&fixture("cline_mcp_settings.json"), &host_env).unwrap();
    let names: Vec<&str> = f.servers.keys().map(String::as_str).collect();
    assert_eq!(names, ["brave-search", "remote-docs"]);
    assert_eq!(f.report.disabled, ["sequential-thinking"]);
    assert!(
        f.summary()
            .ends_with("; skipped (disabled): sequential-thinking")
    );
    assert_eq!(remote(&f, "remote-docs").1, TransportChoice::Streamable);
}

#[test]
fn syntax_errors_give_file_line_and_column() {
    let err = File::parse_with(
        "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"\n  }\n",
        "bad.json",
        Path::new("/"),
        &host_env,
    )
    .unwrap_err();
    let ConfigError::Syntax { line, column, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*line, *column), (5, 0));
    assert!(
        err.to_string()
            .starts_with("bad.json:5:0: not valid JSON: EOF while parsing"),
        "{err}"
    );
    let err = File::parse_with(
        "{\"mcpServers\": {\"a\": {\"command\": x}}}",
        "f",
        Path::new("/"),
        &host_env,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "f:1:34: not valid JSON: expected value");
}

#[test]
fn document_refusals_name_the_path() {
    let cases = [
        ("[]", "f: the file must be a JSON object"),
        (
            "{}",
            "f: no \"mcpServers\" object (Claude, Cursor, Cline) or \"servers\" object (VS Code)",
        ),
        (
            r#"{"mcpServers": []}"#,
            "f: mcpServers: expected an object, found an array",
        ),
        (
            r#"{"mcpServers": {"a/b": {"command": "x"}}}"#,
            "f: mcpServers[\"a/b\"]: server name must be",
        ),
        (
            r#"{"mcpServers": {"..": {"command": "x"}}}"#,
            "f: mcpServers[\"..\"]: server name must be",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x"}}, "servers": {"a": {"command": "y"}}}"#,
            "f: servers.a: defined twice",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x"}}, "mcpBridge": {"servers": {"b": {}}}}"#,
            "f: mcpBridge.servers.b: no server of that name",
        ),
        (
            r#"{"mcpServers": {"github": {"command": "x", "args": ["a", "b", 3]}}}"#,
            "f: mcpServers.github.args[2]: expected a string, found a number",
        ),
        (
            r#"{"mcpServers": {"x": {"args": []}}}"#,
            "f: mcpServers.x: needs \"command\" or \"url\"",
        ),
        (
            r#"{"mcpServers": {"a": {"command": "x"}}, "mcpBridge": {"servers": {"a": {"scope": "perkey"}}}}"#,
            "f: mcpBridge.servers.a.scope: unknown scope \"perkey\" (per-session, per-key, shared)",
        ),
        (
            r#"{"servers": {"p": {"command": "x", "env": {"K": "${input:perplexity-key}"}}}}"#,
            "f: servers.p.env.K: `${input:perplexity-key}` is an editor variable",
        ),
        (
            r#"{"servers": {"p": {"url": "https://h/${UNSET_VAR}"}}}"#,
            "f: servers.p.url: environment variable UNSET_VAR is not set",
        ),
        (
            r#"{"servers": {"p": {"command": "x", "envFile": "/nonexistent/.env"}}}"#,
            "f: servers.p.envFile: cannot read /nonexistent/.env",
        ),
    ];
    for (text, want) in cases {
        let err = File::parse_with(text, "f", Path::new("/"), &host_env).unwrap_err();
        assert!(
            err.to_string().starts_with(want),
            "{text}: got {err}, want {want}"
        );
    }
}

#[test]
fn options_for_a_disabled_server_are_accepted_and_unused() {
    let text = r#"{"mcpServers": {"a": {"command": "x", "disabled": true}, "b": {"command": "y"}},
                   "mcpBridge": {"servers": {"a": {"scope": "shared"}}}}"#;
    let f = File::parse_with(text, "f", Path::new("/"), &host_env).unwrap();
    assert_eq!(f.servers.len(), 1);
    assert_eq!(f.report.disabled, ["a"]);
}

#[test]
fn an_empty_list_a_bom_and_a_missing_file() {
    let f = File::parse_with(
        "\u{feff}{\"mcpServers\": {}}",
        "f",
        Path::new("/"),
        &host_env,
    )
    .unwrap();
    assert!(f.servers.is_empty());
    assert_eq!(f.summary(), "f: 0 servers ()");
    let err = File::load(&fixture("no-such-file.json")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().starts_with("cannot read "), "{err}");
    assert!(err.to_string().contains("no-such-file.json"));
}

#[test]
fn values_are_never_echoed_in_errors() {
    let text = r#"{"mcpServers": {"a": {"url": "https://user:hunter2@h/x y", "headers": {"X": "hunter2\u0001"}}}}"#;
    let err = File::parse_with(text, "f", Path::new("/"), &host_env).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let text = r#"{"mcpServers": {"a": {"url": "https://h/", "headers": {"X": "hunter2\u0001"}}}}"#;
    let err = File::parse_with(text, "f", Path::new("/"), &host_env).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn hostile_nesting_is_refused_not_overflowed() {
    let deep = format!(
        "{{\"mcpServers\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = File::parse_with(&deep, "f", Path::new("/"), &host_env).unwrap_err();
    assert!(err.to_string().contains("recursion limit"), "{err}");
}
