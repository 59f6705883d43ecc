//! Tests of the client table: parsing, identification, grants.

use super::*;
use serde_json::json;

const PATH: &str = "mcpBridge.clients";

fn env(name: &str) -> Option<String> {
    match name {
        "AGENT_TOKEN" => Some("agent-secret\n".into()),
        "EMPTY" => Some("  ".into()),
        _ => None,
    }
}

fn table(v: Value) -> Result<Clients, ConfigError> {
    Clients::parse(&v, PATH, &env)
}

fn token_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn tokens_from_files_and_the_environment_identify_clients() {
    let dir = tempfile::tempdir().unwrap();
    let file = token_file(&dir, "ci.token", "ci-secret\nsecond line ignored\n");
    let t = table(json!({
        "ci": {"tokenFile": file, "servers": ["everything"]},
        "agent": {"tokenEnv": "AGENT_TOKEN", "servers": "*"},
        "local": {"uid": 1000, "servers": ["memory"]}
    }))
    .unwrap();
    let who = |h: &str| {
        t.identify(Some(h.as_bytes()), None)
            .map(|c| c.name.to_string())
    };
    assert_eq!(who("Bearer ci-secret").as_deref(), Some("ci"));
    assert_eq!(who("bearer agent-secret").as_deref(), Some("agent"));
    assert_eq!(who("BEARER  ci-secret ").as_deref(), Some("ci"));
    assert_eq!(who("Bearer ci-secre"), None);
    assert_eq!(who("Bearer ci-secretX"), None);
    assert_eq!(who("Basic ci-secret"), None);
    assert_eq!(who("Bearerci-secret"), None);
    assert_eq!(who("Bearer "), None);
    assert_eq!(who(""), None);
    // The uid client is found by its peer uid only when no token is offered.
    assert_eq!(t.identify(None, Some(1000)).unwrap().name.as_ref(), "local");
    assert!(t.identify(None, Some(1001)).is_none());
    assert!(t.identify(None, None).is_none());
    assert!(t.identify(Some(b"Bearer wrong"), Some(1000)).is_none());
    assert!(!format!("{:?}", t.get("ci").unwrap()).contains("ci-secret"));
}

#[test]
fn access_tells_unknown_clients_from_servers_not_granted() {
    let t = table(json!({
        "agent": {"tokenEnv": "AGENT_TOKEN", "servers": ["everything"]},
    }))
    .unwrap();
    let h = Some(&b"Bearer agent-secret"[..]);
    assert!(matches!(t.access(h, None, "everything"), Access::Granted(c) if &*c.name == "agent"));
    assert!(matches!(t.access(h, None, "memory"), Access::NotGranted(_)));
    assert!(matches!(
        t.access(Some(b"Bearer x"), None, "everything"),
        Access::Unauthorized
    ));
    assert!(matches!(
        t.access(None, None, "everything"),
        Access::Unauthorized
    ));
}

#[test]
fn an_inline_token_is_refused_and_says_why() {
    let e = table(json!({"ci": {"token": "abc", "servers": "*"}})).unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.ci.token");
    assert!(e.message.contains("never written in the config file"));
    assert!(e.message.contains("tokenFile"));
    assert!(!e.to_string().contains("abc"));
}

#[test]
fn each_client_has_exactly_one_credential_of_its_own() {
    let e = table(json!({"ci": {"servers": "*"}})).unwrap_err();
    assert!(e.message.contains("exactly one"), "{e}");
    let e =
        table(json!({"ci": {"uid": 1, "tokenEnv": "AGENT_TOKEN", "servers": "*"}})).unwrap_err();
    assert!(e.message.contains("tokenEnv, uid"), "{e}");
    let e = table(json!({
        "a": {"tokenEnv": "AGENT_TOKEN", "servers": "*"},
        "b": {"tokenEnv": "AGENT_TOKEN", "servers": "*"}
    }))
    .unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.b");
    assert!(e.message.contains("same credential as client `a`"));
    let e = table(json!({"a": {"uid": 5, "servers": "*"}, "b": {"uid": 5, "servers": "*"}}))
        .unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.b");
}

#[test]
fn bad_credentials_name_the_path_but_never_the_token() {
    let e = table(json!({"a": {"tokenEnv": "NOPE", "servers": "*"}})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mcpBridge.clients.a.tokenEnv: environment variable NOPE is not set"
    );
    let e = table(json!({"a": {"tokenEnv": "EMPTY", "servers": "*"}})).unwrap_err();
    assert!(e.message.contains("is empty"));
    let e = table(json!({"a": {"tokenFile": "/nonexistent/t", "servers": "*"}})).unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.a.tokenFile");
    assert!(e.message.contains("/nonexistent/t"));
    let dir = tempfile::tempdir().unwrap();
    let spaced = token_file(&dir, "t", "two words\n");
    let e = table(json!({"a": {"tokenFile": spaced, "servers": "*"}})).unwrap_err();
    assert!(e.message.contains("cannot have"));
    assert!(!e.to_string().contains("two words"));
    let e = table(json!({"a": {"uid": -1, "servers": "*"}})).unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.a.uid");
}

#[test]
fn grants_are_checked() {
    let e = table(json!({"a": {"uid": 1}})).unwrap_err();
    assert!(e.message.contains("missing `servers`"));
    let e = table(json!({"a": {"uid": 1, "servers": ["x", 2]}})).unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.a.servers[1]");
    let e = table(json!({"a": {"uid": 1, "servers": "all"}})).unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.a.servers");
    let e = table(json!({"a": {"uid": 1, "servers": "*", "rateLimit": {"calls": 1}}})).unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.a.rateLimit.per");
    let t = table(json!({"a": {"uid": 1, "servers": ["everything", "memroy"]}})).unwrap();
    let e = t
        .check_servers(PATH, &|n| n == "everything" || n == "memory")
        .unwrap_err();
    assert_eq!(e.path, "mcpBridge.clients.a.servers");
    assert!(e.message.contains("memroy"));
}

#[test]
fn an_empty_section_means_no_named_clients() {
    assert!(table(json!({})).unwrap().is_empty());
    assert!(table(json!([])).is_err());
}
