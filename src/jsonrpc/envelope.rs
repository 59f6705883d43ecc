//! The one pass over a message's text: its `id`, `method`, whether it answers, and where its
//! `params.name` and `params.uri` are, so that the gateway's policy and audit log need not parse
//! a request a second time.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Where a member of a request's `params` is, as read in the envelope's pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Text {
    /// Not there (the message has no such member, or no `params`).
    #[default]
    Absent,
    /// A string without escapes: the byte range of its contents in the message text.
    At(usize, usize),
    /// A string with escapes, decoded as the server will decode it.
    Decoded(Box<str>),
    /// There, but not one string: another type, given twice, or inside a `params` that is given
    /// twice or is not an object. The gateway cannot tell how the server will read it.
    Unreadable,
}

/// `params.name` and `params.uri` of a single request or notification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Named {
    /// `params.name` (a tool or prompt).
    pub name: Text,
    /// `params.uri` (a resource).
    pub uri: Text,
}

impl Named {
    const UNREADABLE: Named = Named {
        name: Text::Unreadable,
        uri: Text::Unreadable,
    };
}

/// What the pass found at the top level of one JSON object.
#[derive(Default)]
pub(super) struct Envelope<'a> {
    pub id: Option<&'a RawValue>,
    pub method: Option<String>,
    /// A `result` member that is not `null`.
    pub result: bool,
    /// An `error` member that is not `null`.
    pub error: bool,
    pub named: Named,
}

/// Reads the object in `text` (which must start with `{`, after whitespace). A member given twice
/// is an error for `id`, `method`, `result` and `error`, as a derived struct makes it; twice
/// `params` only makes its names unreadable, so such a message still passes where no policy
/// looks at it.
pub(super) fn read(text: &str) -> serde_json::Result<Envelope<'_>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let env = de::Deserializer::deserialize_map(&mut de, EnvelopeOf { base: text })?;
    de.end()?;
    Ok(env)
}

/// Top-level members the pass looks at.
enum Member {
    Id,
    Method,
    Result,
    Error,
    Params,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
                Ok(match v {
                    "id" => Member::Id,
                    "method" => Member::Method,
                    "result" => Member::Result,
                    "error" => Member::Error,
                    "params" => Member::Params,
                    _ => Member::Other,
                })
            }
        }
        d.deserialize_identifier(Key)
    }
}

/// Members of `params` the pass looks at.
enum Param {
    Name,
    Uri,
    Other,
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = Param;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Param, E> {
                Ok(match v {
                    "name" => Param::Name,
                    "uri" => Param::Uri,
                    _ => Param::Other,
                })
            }
        }
        d.deserialize_identifier(Key)
    }
}

/// The visitor of the top-level object; `base` is the whole text, for byte ranges.
struct EnvelopeOf<'a> {
    base: &'a str,
}

impl<'de> Visitor<'de> for EnvelopeOf<'de> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        let mut env = Envelope::default();
        let mut seen = [false; 5];
        let mut once = |i: usize, name: &'static str| {
            if std::mem::replace(&mut seen[i], true) {
                Err(de::Error::duplicate_field(name))
            } else {
                Ok(())
            }
        };
        while let Some(member) = map.next_key::<Member>()? {
            match member {
                Member::Id => {
                    once(0, "id")?;
                    env.id = map.next_value()?;
                }
                Member::Method => {
                    once(1, "method")?;
                    env.method = map.next_value()?;
                }
                Member::Result => {
                    once(2, "result")?;
                    env.result = map.next_value::<Option<IgnoredAny>>()?.is_some();
                }
                Member::Error => {
                    once(3, "error")?;
                    env.error = map.next_value::<Option<IgnoredAny>>()?.is_some();
                }
                Member::Params => {
                    if once(4, "params").is_err() {
                        map.next_value::<IgnoredAny>()?;
                        env.named = Named::UNREADABLE;
                    } else {
                        env.named = map.next_value_seed(ParamsOf { base: self.base })?;
                    }
                }
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(env)
    }
}

/// Answers `$value` for every JSON value other than those the visitor reads, consuming arrays
/// and objects whole, so that an unexpected shape is never a parse error.
macro_rules! anything_else {
    ($value:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
}

/// Reads `params`: its `name` and `uri` when it is an object.
struct ParamsOf<'a> {
    base: &'a str,
}

impl<'de> DeserializeSeed<'de> for ParamsOf<'de> {
    type Value = Named;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Named, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ParamsOf<'de> {
    type Value = Named;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("params")
    }

    anything_else!(Named::UNREADABLE);

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Named, E> {
        Ok(Named::UNREADABLE)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
        let mut named = Named::default();
        while let Some(param) = map.next_key::<Param>()? {
            let slot = match param {
                Param::Name => &mut named.name,
                Param::Uri => &mut named.uri,
                Param::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let text = map.next_value_seed(TextOf { base: self.base })?;
            *slot = match slot {
                Text::Absent => text,
                _ => Text::Unreadable,
            };
        }
        Ok(named)
    }
}

/// Reads one member's value: where its string is, or that it is not one.
struct TextOf<'a> {
    base: &'a str,
}

impl<'de> DeserializeSeed<'de> for TextOf<'de> {
    type Value = Text;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Text, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextOf<'de> {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    anything_else!(Text::Unreadable);

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text::Unreadable)
    }

    /// A string the parser could lend from the text: it had no escapes, so its bytes are the
    /// text's own.
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text, E> {
        let start = (v.as_ptr() as usize).wrapping_sub(self.base.as_ptr() as usize);
        match start.checked_add(v.len()) {
            Some(end) if end <= self.base.len() => Ok(Text::At(start, end)),
            _ => Ok(Text::Decoded(v.into())),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(Text::Decoded(v.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::{Kind, ParseError};
    use bytes::Bytes;

    fn kind(s: &str) -> Result<Kind, ParseError> {
        crate::jsonrpc::parse(Bytes::from(s.to_owned())).map(|m| m.parts[0].clone())
    }

    #[test]
    fn the_names_a_request_gives_are_found_in_the_same_pass() {
        let names = |s: &str| {
            let m = crate::jsonrpc::parse(Bytes::from(s.to_owned())).unwrap();
            (
                m.param_name().map(str::to_owned),
                m.param_uri().map(str::to_owned),
                m.named.clone(),
            )
        };
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"inner"},"name":"echo"}}"#;
        assert_eq!(names(call).0.as_deref(), Some("echo"));
        assert!(matches!(names(call).2.name, Text::At(..)));
        let read = r#"{"id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#;
        assert_eq!(names(read).1.as_deref(), Some("file:///a"));
        // An escaped name (or key) is read as the server reads it.
        let escaped = r#"{"id":1,"method":"tools/call","params":{"n\u0061me":"get_\u0073ecret"}}"#;
        assert_eq!(names(escaped).0.as_deref(), Some("get_secret"));
        // Given twice, or not a string: there, but unreadable; the message still parses.
        for odd in [
            r#"{"id":1,"method":"tools/call","params":{"name":"ok","name":"x"}}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":"ok","n\u0061me":"x"}}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":"ok"},"params":{"name":"x"}}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":null}}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":["x"]}}"#,
            r#"{"id":1,"method":"tools/call","params":{"name":{"a":"x"}}}"#,
            r#"{"id":1,"method":"tools/call","params":["x"]}"#,
            r#"{"id":1,"method":"tools/call","params":"x"}"#,
        ] {
            let (name, _, named) = names(odd);
            assert_eq!((name, named.name), (None, Text::Unreadable), "{odd}");
        }
        assert_eq!(
            names(r#"{"id":1,"method":"tools/list"}"#).2,
            Named::default()
        );
        // A batch's parts are not read for names.
        let batch = crate::jsonrpc::parse(Bytes::from_static(
            br#"[{"id":1,"method":"tools/call","params":{"name":"echo"}}]"#,
        ))
        .unwrap();
        assert_eq!(batch.named, Named::default());
        // The members the envelope needs stay strict, as before.
        for bad in [
            r#"{"id":1,"id":2,"method":"m"}"#,
            r#"{"id":1,"method":"m","method":"n"}"#,
            r#"{"id":1,"method":7}"#,
        ] {
            assert!(matches!(kind(bad), Err(ParseError::NotJsonRpc(_))), "{bad}");
        }
        assert!(matches!(
            kind(r#"{"id":1,"method":"m","params":{"name":"x"}} x"#),
            Err(ParseError::NotJson(_))
        ));
    }
}
