use super::*;
use serde_json::{Value, json};

fn policy(bridge: Value, server_policy: Option<Value>) -> Policy {
    let get = |k: &'static str| bridge.get(k).map(|v| (v, k));
    let servers = [(
        "everything",
        server_policy
            .as_ref()
            .map(|p| (p, "mcpBridge.servers.everything.policy")),
    )];
    let env = |n: &str| (n == "TOK_A").then(|| "secret-a".to_owned());
    Policy::parse(
        get("clients"),
        get("rateLimit"),
        get("audit"),
        &servers,
        &env,
    )
    .expect("a valid policy")
}

fn msg(v: Value) -> Message {
    crate::jsonrpc::parse(Bytes::from(v.to_string())).expect("JSON-RPC")
}

fn call(id: u64, tool: &str) -> Message {
    msg(
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,
        "arguments":{"text":"hi","password":"hunter2"}}}),
    )
}

static SERVER: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "everything".into());
static SESSION: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "s1".into());

fn at(requester: &Requester) -> Place<'_> {
    Place {
        requester,
        server: Some(&SERVER),
        session: Some(&SESSION),
        key: None,
    }
}

fn answer_json(v: &Verdict) -> Value {
    match v {
        Verdict::Answer(a) => serde_json::from_slice(&a[0]).expect("JSON"),
        Verdict::Forward(_) => panic!("forwarded: {v:?}"),
    }
}

#[test]
fn nothing_configured_forwards_without_a_ticket() {
    let gate = Gate::default();
    let who = Requester::default();
    let v = gate.inbound(at(&who), &call(1, "echo"), &ToolCatalog::default());
    assert!(matches!(v, Verdict::Forward(None)), "{v:?}");
}

#[test]
fn a_denied_call_is_answered_by_the_gate() {
    let p = policy(json!({}), Some(json!({"tools": {"deny": ["get-env"]}})));
    let gate = Gate::new(p).unwrap();
    let who = Requester::default();
    let cat = ToolCatalog::default();
    let v = gate.inbound(at(&who), &call(7, "get-env"), &cat);
    let a = answer_json(&v);
    assert_eq!(a["id"], 7);
    assert_eq!(a["error"]["code"], -32602);
    assert_eq!(a["error"]["data"]["reason"], "policy-denied");
    assert_eq!(a["error"]["data"]["rule"], "deny");
    // An allowed call passes, and needs no ticket (no list to filter, no audit).
    let v = gate.inbound(at(&who), &call(8, "echo"), &cat);
    assert!(matches!(v, Verdict::Forward(None)), "{v:?}");
    assert!(
        gate.render_metrics()
            .contains("mcp_bridge_policy_denied_total 1\n")
    );
}

#[test]
fn a_list_answer_is_filtered_by_its_ticket() {
    let p = policy(json!({}), Some(json!({"tools": {"allow": ["echo"]}})));
    let gate = Gate::new(p).unwrap();
    let who = Requester::default();
    let cat = ToolCatalog::default();
    let list = msg(json!({"jsonrpc":"2.0","id":"l","method":"tools/list"}));
    let Verdict::Forward(Some(ticket)) = gate.inbound(at(&who), &list, &cat) else {
        panic!("a list request is followed")
    };
    let answer = json!({"jsonrpc":"2.0","id":"l","result":{"tools":[{"name":"echo"},{"name":"add"}],
        "nextCursor":"2"}});
    let out: Value =
        serde_json::from_slice(&ticket.finish(Bytes::from(answer.to_string()), &cat)).unwrap();
    assert_eq!(out["result"]["tools"], json!([{"name":"echo"}]));
    assert_eq!(out["result"]["nextCursor"], "2");
}

#[test]
fn the_call_past_the_rate_is_refused_with_when_to_retry() {
    let p = policy(json!({"rateLimit": {"calls": 2, "per": "1h"}}), None);
    let gate = Gate::new(p).unwrap();
    let who = Requester::default();
    let cat = ToolCatalog::default();
    for id in 0..2 {
        let v = gate.inbound(at(&who), &call(id, "echo"), &cat);
        assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    }
    let a = answer_json(&gate.inbound(at(&who), &call(3, "echo"), &cat));
    assert_eq!(a["error"]["data"]["reason"], "rate-limited");
    assert!(a["error"]["data"]["retryAfterMs"].as_u64().unwrap() > 1000);
    // Notifications are free.
    let note = msg(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    assert!(matches!(
        gate.inbound(at(&who), &note, &cat),
        Verdict::Forward(None)
    ));
    assert!(
        gate.render_metrics()
            .contains("mcp_bridge_rate_limited_total 1\n")
    );
}

#[test]
fn a_batch_is_refused_request_by_request_where_a_rule_applies() {
    let p = policy(json!({}), Some(json!({"readOnly": true})));
    let gate = Gate::new(p).unwrap();
    let who = Requester::default();
    let batch = msg(json!([
        {"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","method":"notifications/x"},
        {"jsonrpc":"2.0","id":2,"method":"ping"}
    ]));
    let Verdict::Answer(answers) = gate.inbound(at(&who), &batch, &ToolCatalog::default()) else {
        panic!("refused")
    };
    assert_eq!(answers.len(), 2);
}

#[tokio::test]
async fn the_audit_log_has_one_line_per_request_and_redacts_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let audit = |arguments: bool| json!({"audit": {"file": file.to_str().unwrap(), "arguments": arguments, "redact": ["text"]}});
    let gate = Gate::new(policy(
        audit(false),
        Some(json!({"tools": {"deny": ["get-env"]}})),
    ))
    .unwrap();
    let who = Requester {
        peer_uid: Some(1000),
        ..Requester::default()
    };
    let cat = ToolCatalog::default();
    let Verdict::Forward(Some(ticket)) = gate.inbound(at(&who), &call(1, "echo"), &cat) else {
        panic!("followed for the audit log")
    };
    let answer = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#);
    assert_eq!(ticket.finish(answer.clone(), &cat), answer);
    let _ = gate.inbound(at(&who), &call(2, "get-env"), &cat);
    let Verdict::Forward(Some(dropped)) = gate.inbound(at(&who), &call(3, "echo"), &cat) else {
        panic!("followed")
    };
    drop(dropped);
    gate.flush_audit().await;
    // Arguments on: redacted by default keys and by the configured ones.
    gate.reload(policy(audit(true), None)).unwrap();
    let Verdict::Forward(Some(ticket)) = gate.inbound(at(&who), &call(4, "echo"), &cat) else {
        panic!("followed")
    };
    ticket.finish(answer, &cat);
    gate.flush_audit().await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    let keys: Vec<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for &k in crate::policy::audit_line::RECORD_FIELDS {
        assert!(keys.contains(&k), "{k} missing from {}", lines[0]);
    }
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["name"], "echo");
    assert_eq!(lines[0]["peerUid"], 1000);
    assert_eq!(lines[0]["session"], "s1");
    assert_eq!(lines[0]["server"], "everything");
    assert!(lines[0].get("arguments").is_none());
    assert_eq!(
        (lines[1]["outcome"].clone(), lines[1]["reason"].clone()),
        (json!("denied"), json!("policy-denied"))
    );
    assert_eq!(lines[2]["reason"], "no-answer");
    assert_eq!(
        lines[3]["arguments"],
        json!({"text": "[redacted]", "password": "[redacted]"})
    );
    assert!(!text.contains("hunter2"));
}
