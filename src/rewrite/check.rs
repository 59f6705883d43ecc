//! The properties the fuzz target (`fuzz/fuzz_targets/rewrite.rs`) and the corpus replay test
//! check on any input: nothing panics; a JSON object with one `id` gets exactly that member
//! replaced and every other member unchanged, and the fast top-level splice agrees; ids spelled
//! differently with one value share a key.

use super::{get, get_id, splice, splice_id, value_key};
use serde_json::{Map, Value};

/// Runs every property on `data`; panics (the fuzzer's finding) when one does not hold.
pub fn check(data: &[u8]) {
    for path in [
        &["id"][..],
        &["params", "_meta", "progressToken"],
        &["params", "requestId"],
    ] {
        let _ = get(data, path);
        let _ = splice(data, path, "0");
    }
    let _ = get_id(data);
    let _ = splice_id(data, "0");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = value_key(text);
        if let Ok(v) = serde_json::from_str::<Value>(text)
            && (v.is_number() || v.is_string())
        {
            let respelled = v.to_string();
            if v.as_f64().is_none_or(f64::is_finite) {
                assert_eq!(
                    value_key(text),
                    value_key(&respelled),
                    "{text} vs {respelled}"
                );
            }
        }
    }
    let Ok(before) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    if !before.contains_key("id") {
        return;
    }
    let Ok(out) = splice(data, &["id"], r#""bridge-1""#) else {
        // Only a repeated `id` may refuse a valid object (serde keeps the last one).
        assert!(
            count_ids(data) > 1,
            "a valid object with one id was not rewritten"
        );
        return;
    };
    assert_eq!(
        splice_id(data, r#""bridge-1""#).as_ref(),
        Ok(&out),
        "the fast splice differs"
    );
    let after: Map<String, Value> = serde_json::from_slice(&out).expect("still JSON");
    assert_eq!(after["id"], "bridge-1");
    for (k, v) in &before {
        if k != "id" {
            assert_eq!(after.get(k), Some(v), "member {k} changed");
        }
    }
    assert_eq!(before.len(), after.len());
}

/// How many top-level members are named `id` (by a lenient count over the raw text).
fn count_ids(data: &[u8]) -> usize {
    let Ok(Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        return 0;
    };
    #[derive(serde::Deserialize)]
    struct Ids(#[serde(with = "ids")] usize);
    mod ids {
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = usize;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<usize, A::Error> {
                    let mut n = 0;
                    while let Some(k) = m.next_key::<String>()? {
                        let _: serde::de::IgnoredAny = m.next_value()?;
                        n += usize::from(k == "id");
                    }
                    Ok(n)
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Ids>(data).map_or(0, |i| i.0)
}
