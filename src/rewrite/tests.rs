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

#[test]
fn the_top_level_id_is_spliced_alone() {
    let cases: [(&[u8], &str); 5] = [
        (
            br#"{ "jsonrpc":"2.0" , "id" : 7 ,"method":"m"}"#,
            r#"{ "jsonrpc":"2.0" , "id" : 42 ,"method":"m"}"#,
        ),
        // `id` inside params and inside strings, before the real one.
        (
            br#"{"params":{"id":5,"x":["id",{"id":1}],"s":"\"id\":9"},"id":7}"#,
            r#"{"params":{"id":5,"x":["id",{"id":1}],"s":"\"id\":9"},"id":42}"#,
        ),
        // Brackets and escaped quotes inside strings do not count.
        (
            br#"{"result":{"a":"}]}\"{[","b":[["{"],"\\"]},"id":"x\"y"}"#,
            r#"{"result":{"a":"}]}\"{[","b":[["{"],"\\"]},"id":42}"#,
        ),
        (
            br#"{"\u0069d":1e400,"method":"m"}"#,
            r#"{"\u0069d":42,"method":"m"}"#,
        ),
        (b"{\n\t\"id\"\r\n:\n-1.5E+3\n}", "{\n\t\"id\"\r\n:\n42\n}"),
    ];
    for (raw, want) in cases {
        assert_eq!(s(&splice_id(raw, "42").unwrap()), want);
        assert_eq!(splice_id(raw, "42"), splice(raw, &["id"], "42"));
    }
    assert_eq!(
        get_id(br#"{"a":[{"id":1}],"id":"b"}"#).unwrap(),
        Some(r#""b""#)
    );
}

#[test]
fn a_huge_id_or_a_huge_message_is_spliced_whole() {
    let big = format!(r#"{{"id":"{}","method":"m"}}"#, "\\\"".repeat(500_000));
    assert_eq!(
        s(&splice_id(big.as_bytes(), "1").unwrap()),
        r#"{"id":1,"method":"m"}"#
    );
    let digits = "9".repeat(100_000);
    let raw = format!(r#"{{"id":{digits},"method":"m"}}"#);
    assert_eq!(get_id(raw.as_bytes()).unwrap(), Some(digits.as_str()));
    // Deep nesting before the id costs no stack.
    let deep = format!(
        r#"{{"p":{}1{},"id":3}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(get_id(deep.as_bytes()).unwrap(), Some("3"));
}

#[test]
fn a_repeated_id_never_reaches_the_fast_splice() {
    // The fast splice trusts the parse to refuse a repeated `id`, however it is spelled.
    for dup in [
        &br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}"#[..],
        br#"{"jsonrpc":"2.0","id":1,"\u0069d":2,"method":"m"}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{},"\u0069\u0064":2}"#,
    ] {
        assert!(crate::jsonrpc::parse(Bytes::copy_from_slice(dup)).is_err());
        // Given one anyway, it changes the first and nothing else.
        assert!(s(&splice_id(dup, "9").unwrap()).contains(r#""id":9"#));
    }
}

#[test]
fn hostile_bytes_get_an_error_not_a_panic() {
    assert_eq!(
        splice_id(br#"{"method":"n","params":{"id":1}}"#, "9"),
        Err(RewriteError::Missing("id".into()))
    );
    assert_eq!(get_id(b" { } ").unwrap(), None);
    for bad in [
        &b""[..],
        b"[1]",
        b"{",
        b"{\"id\"",
        b"{\"id\":",
        b"{\"id\" 1}",
        b"{\"a\":}",
        b"{\"a\":]",
        b"{\"a\":1 \"id\":2}",
        b"{\"a\":\"\\",
        b"{\"a\":\"\\\"}",
        b"{\"a\":[[[{\"b\":\"]}\"",
        b"{id:1}",
        b"\"\\",
    ] {
        assert!(splice_id(bad, "9").is_err(), "{bad:?}");
    }
}

#[test]
fn the_bridge_numbers_are_read_without_a_detour() {
    for (text, want) in [
        ("7", Some(7)),
        ("0", Some(0)),
        ("18446744073709551615", Some(u64::MAX)),
        ("18446744073709551616", None),
        ("007", None),
        ("+1", None),
        ("-0", Some(0)),
        ("1.0", Some(1)),
        (r#""7""#, None),
        ("", None),
    ] {
        assert_eq!(as_number(text), want, "{text}");
    }
}

#[test]
fn the_token_look_is_false_only_when_no_spelling_is_possible() {
    assert!(!may_name_progress_token(
        br#"{"id":1,"params":{"a":"progress\\n","b":"Token"}}"#
    ));
    for may in [
        &br#"{"params":{"_meta":{"progressToken":1}}}"#[..],
        br#"{"params":{"_meta":{"progress\u0054oken":1}}}"#,
        br#"{"params":{"_meta":{"\u0070rogressToken":1}}}"#,
        b"\\u",
    ] {
        assert!(may_name_progress_token(may), "{may:?}");
    }
}
