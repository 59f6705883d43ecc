//! Tests of the request check and the denial it answers with.

use super::*;
use crate::policy::rules::ServerPolicy;
use serde_json::{Value, json};

fn rules(v: Value) -> std::sync::Arc<Rules> {
    ServerPolicy::parse(&v, "p")
        .unwrap()
        .rules_for("c")
        .unwrap()
}

/// `request` as serve's gate gets it: parsed, or (not JSON-RPC) with nothing readable in it.
pub(super) fn parsed(request: &[u8]) -> Message {
    let raw = bytes::Bytes::copy_from_slice(request);
    crate::jsonrpc::parse(raw.clone()).unwrap_or(Message {
        raw,
        parts: Vec::new(),
        batch: false,
        named: crate::jsonrpc::Named {
            name: crate::jsonrpc::Text::Unreadable,
            uri: crate::jsonrpc::Text::Unreadable,
        },
    })
}

fn call(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}})).unwrap()
}

#[test]
fn tools_are_checked_by_name() {
    let r = rules(json!({"tools": {"allow": ["get_*", "echo"], "deny": ["get_secret"]}}));
    let cat = ToolCatalog::default();
    assert_eq!(r.check_call("tools/call", &call("echo"), &cat), Ok(()));
    let d = r
        .check_call("tools/call", &call("get_secret"), &cat)
        .unwrap_err();
    assert_eq!(
        (d.subject, d.name.as_str(), d.refusal),
        (Subject::Tool, "get_secret", Refusal::Denied)
    );
    let d = r.check_call("tools/call", &call("add"), &cat).unwrap_err();
    assert_eq!(d.refusal, Refusal::NotAllowed);
    // Escapes are read as the server will read them.
    let escaped =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_\u0073ecret"}}"#;
    assert_eq!(
        r.check_call("tools/call", escaped, &cat).unwrap_err().name,
        "get_secret"
    );
    // Other methods are not looked at, even when they are not JSON.
    assert_eq!(r.check_call("tools/list", b"garbage", &cat), Ok(()));
}

#[test]
fn what_cannot_be_read_is_refused() {
    let r = rules(json!({"tools": {"deny": ["x"]}}));
    let cat = ToolCatalog::default();
    for bad in [
        &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"x"}}"#[..],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"},"params":{"name":"x"}}"#,
        b"not json",
    ] {
        let d = r.check_call("tools/call", bad, &cat).unwrap_err();
        assert_eq!(d.refusal, Refusal::Malformed, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn read_only_needs_the_hint_from_a_list() {
    let r = rules(json!({"readOnly": true}));
    let cat = ToolCatalog::default();
    assert_eq!(
        r.check_call("tools/call", &call("get"), &cat)
            .unwrap_err()
            .refusal,
        Refusal::NotReadOnly
    );
    cat.learn("get", true);
    assert_eq!(r.check_call("tools/call", &call("get"), &cat), Ok(()));
    cat.learn("get", false);
    assert!(r.check_call("tools/call", &call("get"), &cat).is_err());
    cat.learn("get", true);
    cat.clear();
    assert!(r.check_call("tools/call", &call("get"), &cat).is_err());
}

#[test]
fn prompts_resources_and_completions_are_checked() {
    let r = rules(
        json!({"prompts": {"deny": ["secret_*"]}, "resources": {"allow": ["file:///docs/*"]}}),
    );
    let cat = ToolCatalog::default();
    let req = |method: &str, params: Value| {
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .unwrap()
    };
    assert!(
        r.check_call(
            "prompts/get",
            &req("prompts/get", json!({"name": "greet"})),
            &cat
        )
        .is_ok()
    );
    let d = r
        .check_call(
            "prompts/get",
            &req("prompts/get", json!({"name": "secret_x"})),
            &cat,
        )
        .unwrap_err();
    assert_eq!(d.subject, Subject::Prompt);
    assert!(
        r.check_call(
            "resources/read",
            &req("resources/read", json!({"uri": "file:///docs/a"})),
            &cat
        )
        .is_ok()
    );
    for m in ["resources/read", "resources/subscribe"] {
        let d = r
            .check_call(m, &req(m, json!({"uri": "file:///etc/passwd"})), &cat)
            .unwrap_err();
        assert_eq!(
            (d.subject, d.refusal),
            (Subject::Resource, Refusal::NotAllowed)
        );
    }
    let complete = |r#ref: Value| {
        req(
            "completion/complete",
            json!({"ref": r#ref, "argument": {"name": "a", "value": ""}}),
        )
    };
    assert!(
        r.check_call(
            "completion/complete",
            &complete(json!({"type": "ref/prompt", "name": "greet"})),
            &cat
        )
        .is_ok()
    );
    let d = r
        .check_call(
            "completion/complete",
            &complete(json!({"type": "ref/prompt", "name": "secret_1"})),
            &cat,
        )
        .unwrap_err();
    assert_eq!(d.name, "secret_1");
    let d = r
        .check_call(
            "completion/complete",
            &complete(json!({"type": "ref/resource", "uri": "db://{x}"})),
            &cat,
        )
        .unwrap_err();
    assert_eq!(d.subject, Subject::Resource);
    let d = r
        .check_call(
            "completion/complete",
            &complete(json!({"type": "ref/other"})),
            &cat,
        )
        .unwrap_err();
    assert_eq!(d.refusal, Refusal::Malformed);
    // Tools have no rules here: a call is not even parsed.
    assert!(r.check_call("tools/call", b"not json", &cat).is_ok());
}

#[test]
fn the_denial_looks_like_an_unknown_name_and_keeps_the_id_bytes() {
    let d = Denied {
        subject: Subject::Tool,
        name: "rm".into(),
        refusal: Refusal::Denied,
    };
    let line = d.response(r#""abc \u00e9""#);
    assert!(line.starts_with(br#"{"jsonrpc":"2.0","id":"abc \u00e9","error":"#));
    let v: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(v["error"]["data"]["source"], "mcp-bridge");
    assert_eq!(v["error"]["data"]["reason"], "policy-denied");
    assert_eq!(v["error"]["data"]["tool"], "rm");
    assert_eq!(v["error"]["data"]["rule"], "deny");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool `rm`")
    );
    let d = Denied {
        subject: Subject::Resource,
        name: "file:///x".into(),
        refusal: Refusal::NotAllowed,
    };
    let v: Value = serde_json::from_slice(&d.response("12")).unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(12), json!(-32002))
    );
    assert_eq!(v["error"]["data"]["resource"], "file:///x");
}

#[test]
fn the_audit_name_of_a_request() {
    let named = |method: &str, request: &[u8]| {
        Asked::of(method, &parsed(request)).and_then(|a| a.name.map(|n| n.into_owned()))
    };
    assert_eq!(named("tools/call", &call("echo")).as_deref(), Some("echo"));
    let read =
        br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#;
    assert_eq!(named("resources/read", read).as_deref(), Some("file:///a"));
    let complete = br#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}}"#;
    assert_eq!(named("completion/complete", complete).as_deref(), Some("p"));
    assert_eq!(named("tools/list", b"not parsed"), None);
    assert_eq!(named("tools/call", b"not json"), None);
}

#[test]
fn a_huge_name_is_not_echoed_whole() {
    let d = Denied {
        subject: Subject::Tool,
        name: "x".repeat(1_000_000),
        refusal: Refusal::Denied,
    };
    assert!(d.response("1").len() < 1000);
}

#[test]
fn remembered_verdicts_agree_with_the_patterns_and_a_flood_of_names_is_bounded() {
    let r = rules(json!({"tools": {"allow": ["get_*", "echo", "*_doc"], "deny": ["get_secret*"]}}));
    let names = [
        "echo",
        "get_sum",
        "get_secret_key",
        "rm",
        "read_doc",
        "",
        "get_",
    ];
    let first: Vec<_> = names.iter().map(|n| r.tools.refusal(n)).collect();
    let again: Vec<_> = names.iter().map(|n| r.tools.refusal(n)).collect();
    assert_eq!(first, again);
    assert_eq!(
        first,
        [
            None,
            None,
            Some(Refusal::Denied),
            Some(Refusal::NotAllowed),
            None,
            Some(Refusal::NotAllowed),
            None
        ]
    );
    // A hostile client naming endless made-up tools: verdicts stay right, memory stays bounded.
    for i in 0..10_000 {
        let denied = format!("get_secret{i}");
        assert_eq!(r.tools.refusal(&denied), Some(Refusal::Denied));
        let unknown = format!("tool{i}");
        assert_eq!(r.tools.refusal(&unknown), Some(Refusal::NotAllowed));
    }
    assert!(r.tools.memo.remembered() <= crate::policy::rules::Memo::MAX);
    let long = format!("get_{}", "x".repeat(10_000));
    assert_eq!(r.tools.refusal(&long), None);
    // A copy of the rules (a reload) starts with nothing remembered and still equals them.
    let copy = (*r).clone();
    assert_eq!(copy.tools.memo.remembered(), 0);
    assert_eq!(copy, *r);
}
