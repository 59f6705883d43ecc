//! Byte transparency and value matching of the rewriting.

use super::*;

fn s(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn only_the_id_changes_byte_for_byte() {
    let raw = br#"{ "method":"x" , "id" : 7,"params":{"big":1180591620717411303424,"f":1.0,"e":1e400,"z":"\u0041"} }"#;
    let out = splice(raw, &["id"], r#""b-1""#).unwrap();
    assert_eq!(
        s(&out),
        r#"{ "method":"x" , "id" : "b-1","params":{"big":1180591620717411303424,"f":1.0,"e":1e400,"z":"\u0041"} }"#
    );
}

#[test]
fn a_nested_token_is_found_and_replaced() {
    let raw = br#"{"id":1,"params":{"_meta":{"progressToken":1e400,"k":[1,{"progressToken":2}]},"a":"}"}}"#;
    assert_eq!(
        get(raw, &["params", "_meta", "progressToken"]).unwrap(),
        Some("1e400")
    );
    let out = splice(raw, &["params", "_meta", "progressToken"], "\"t\"").unwrap();
    assert_eq!(
        s(&out),
        r#"{"id":1,"params":{"_meta":{"progressToken":"t","k":[1,{"progressToken":2}]},"a":"}"}}"#
    );
}

#[test]
fn escaped_member_names_are_the_names_they_spell() {
    let raw = br#"{"\u0069d":3,"method":"m"}"#;
    assert_eq!(get(raw, &["id"]).unwrap(), Some("3"));
}

#[test]
fn what_cannot_be_rewritten_says_why() {
    assert_eq!(
        splice(br#"{"id":1,"id":2}"#, &["id"], "9"),
        Err(RewriteError::Duplicate("id".into()))
    );
    assert_eq!(
        splice(br#"{"method":"n"}"#, &["id"], "9"),
        Err(RewriteError::Missing("id".into()))
    );
    for bad in [
        &b"[1]"[..],
        b"{\"id\":",
        b"{\"id\":1} x",
        b"",
        b"{\"a\":}",
        b"\"\\",
    ] {
        assert!(splice(bad, &["id"], "9").is_err(), "{bad:?}");
    }
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(1000), "]".repeat(1000));
    assert!(
        get(deep.as_bytes(), &["id"]).is_err(),
        "too deep, no overflow"
    );
}

#[test]
fn ids_match_by_value() {
    assert_eq!(value_key("1"), value_key("1.0"));
    assert_eq!(value_key("1"), value_key("10e-1"));
    assert_eq!(value_key(r#""\u0041""#), value_key(r#""A""#));
    assert_ne!(value_key("1"), value_key(r#""1""#));
    assert_ne!(value_key("1180591620717411303424"), value_key("1"));
    assert_eq!(
        value_key("1180591620717411303424"),
        value_key("1180591620717411303424.0")
    );
    assert_eq!(value_key("1e400"), value_key(" 1e400 "));
    assert_eq!(as_number("7.0"), Some(7));
    assert_eq!(as_number(r#""7""#), None);
}
