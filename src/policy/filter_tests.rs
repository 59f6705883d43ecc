//! Tests of list filtering on raw answer bytes.

use super::*;
use crate::policy::rules::ServerPolicy;
use serde_json::{Value, json};

fn rules(v: Value) -> std::sync::Arc<Rules> {
    ServerPolicy::parse(&v, "p")
        .unwrap()
        .rules_for("c")
        .unwrap()
}

const TOOLS: &[u8] = br#"{"jsonrpc":"2.0","id":"q 1","result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}, {"name":"get_sum","annotations":{"readOnlyHint":true,"title":"Sum"}},{"name":"delete_all","annotations":{"readOnlyHint":false}}],"nextCursor":"c-2","_meta":{"x":[1, 2]}}}"#;

fn names(answer: &[u8], key: &str, field: &str) -> Vec<String> {
    let v: Value = serde_json::from_slice(answer).unwrap();
    v["result"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn only_the_array_changes() {
    let r = rules(json!({"tools": {"deny": ["delete_*"]}}));
    let out = filter_list(&r, &ToolCatalog::default(), "tools/list", TOOLS)
        .unwrap()
        .unwrap();
    assert!(out.len() < TOOLS.len());
    let text = std::str::from_utf8(&out).unwrap();
    assert_eq!(
        text,
        r#"{"jsonrpc":"2.0","id":"q 1","result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"get_sum","annotations":{"readOnlyHint":true,"title":"Sum"}}],"nextCursor":"c-2","_meta":{"x":[1, 2]}}}"#
    );
}

#[test]
fn allow_and_read_only_shape_the_tool_list() {
    let cat = ToolCatalog::default();
    let allow = rules(json!({"tools": {"allow": ["get_*", "echo"]}}));
    let out = filter_list(&allow, &cat, "tools/list", TOOLS)
        .unwrap()
        .unwrap();
    assert_eq!(names(&out, "tools", "name"), ["echo", "get_sum"]);
    let ro = rules(json!({"readOnly": true}));
    let out = filter_list(&ro, &cat, "tools/list", TOOLS)
        .unwrap()
        .unwrap();
    assert_eq!(names(&out, "tools", "name"), ["get_sum"]);
    assert!(cat.is_read_only("get_sum"));
    assert!(!cat.is_read_only("echo"));
}

#[test]
fn nothing_removed_or_nothing_to_check_passes_unchanged() {
    let cat = ToolCatalog::default();
    let r = rules(json!({"tools": {"deny": ["nope"]}}));
    assert_eq!(filter_list(&r, &cat, "tools/list", TOOLS), Ok(None));
    // No rules for prompts: not even parsed.
    assert_eq!(filter_list(&r, &cat, "prompts/list", b"not json"), Ok(None));
    assert_eq!(filter_list(&r, &cat, "initialize", b"not json"), Ok(None));
    let err = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#;
    assert_eq!(filter_list(&r, &cat, "tools/list", err), Ok(None));
    let other = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
    assert_eq!(filter_list(&r, &cat, "tools/list", other), Ok(None));
}

#[test]
fn an_emptied_page_keeps_its_cursor() {
    let r = rules(json!({"tools": {"allow": ["zzz"]}}));
    let out = filter_list(&r, &ToolCatalog::default(), "tools/list", TOOLS)
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["result"]["tools"], json!([]));
    assert_eq!(v["result"]["nextCursor"], "c-2");
    assert_eq!(v["id"], "q 1");
}

#[test]
fn prompts_resources_and_templates_are_filtered() {
    let cat = ToolCatalog::default();
    let r = rules(
        json!({"prompts": {"deny": ["secret_*"]}, "resources": {"allow": ["file:///docs/*"]}}),
    );
    let prompts =
        br#"{"jsonrpc":"2.0","id":1,"result":{"prompts":[{"name":"greet"},{"name":"secret_a"}]}}"#;
    let out = filter_list(&r, &cat, "prompts/list", prompts)
        .unwrap()
        .unwrap();
    assert_eq!(names(&out, "prompts", "name"), ["greet"]);
    let resources = br#"{"jsonrpc":"2.0","id":1,"result":{"resources":[{"uri":"file:///docs/a","name":"a"},{"uri":"file:///etc/passwd","name":"docs"}]}}"#;
    let out = filter_list(&r, &cat, "resources/list", resources)
        .unwrap()
        .unwrap();
    assert_eq!(names(&out, "resources", "uri"), ["file:///docs/a"]);
    let templates = br#"{"jsonrpc":"2.0","id":1,"result":{"resourceTemplates":[{"uriTemplate":"file:///docs/{p}","name":"d"},{"uriTemplate":"db://{t}","name":"t"}]}}"#;
    let out = filter_list(&r, &cat, "resources/templates/list", templates)
        .unwrap()
        .unwrap();
    assert_eq!(
        names(&out, "resourceTemplates", "uriTemplate"),
        ["file:///docs/{p}"]
    );
}

#[test]
fn entries_the_gateway_cannot_read_are_dropped() {
    let r = rules(json!({"tools": {"deny": ["x"]}}));
    let answer = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"title":"no name"},{"name":7},{"name":"b","name":"x"},"str"]}}"#;
    let out = filter_list(&r, &ToolCatalog::default(), "tools/list", answer)
        .unwrap()
        .unwrap();
    assert_eq!(names(&out, "tools", "name"), ["a"]);
}

#[test]
fn an_unreadable_answer_becomes_a_bridge_error() {
    let r = rules(json!({"tools": {"deny": ["x"]}}));
    let cat = ToolCatalog::default();
    for bad in [
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"x\"}]"[..],
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"x"}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"x"}]}}"#,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"\xff\"}]}}",
    ] {
        let e = filter_list(&r, &cat, "tools/list", bad).unwrap_err();
        let v: Value = serde_json::from_slice(&e.response("1")).unwrap();
        assert_eq!(v["error"]["code"], -32000);
        assert_eq!(v["error"]["data"]["reason"], "policy-unfilterable");
    }
}

#[test]
fn a_big_list_is_filtered_in_one_pass() {
    let entries: Vec<String> = (0..20_000)
        .map(|i| format!(r#"{{"name":"t{i}","description":"{}"}}"#, "d".repeat(50)))
        .collect();
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#,
        entries.join(",")
    );
    let r = rules(json!({"tools": {"allow": ["t1*"]}}));
    let out = filter_list(&r, &ToolCatalog::default(), "tools/list", answer.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        names(&out, "tools", "name").len(),
        1 + 10 + 100 + 1000 + 10_000
    );
}
