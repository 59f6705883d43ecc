//! The benchmark server's MCP behaviour, shared by its HTTP and stdio front ends: answer one
//! JSON-RPC message with the least work possible, and the `echo` tool's payload pattern.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::OnceLock;

/// Largest result the `echo` tool produces.
pub const MAX_PAYLOAD: usize = 32 << 20;

const VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InitParams<'a> {
    #[serde(borrow, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<EchoArgs<'a>>,
}

/// `echo {size}` answers `size` bytes of the pattern; `echo {data}` answers the length and an
/// FNV-1a hash of `data`, so big arguments are checked without sending them back.
#[derive(Deserialize)]
struct EchoArgs<'a> {
    size: Option<usize>,
    #[serde(borrow)]
    data: Option<Cow<'a, str>>,
}

/// What a message asks of the server.
pub enum Reply {
    /// A response to send back; `initialize` is true for the answer that starts a session.
    Answer { body: Vec<u8>, initialize: bool },
    /// A notification or a response: nothing to answer.
    Nothing,
}

/// Answers one JSON-RPC message.
pub fn handle(raw: &[u8]) -> Reply {
    let Ok(msg) = serde_json::from_slice::<Incoming<'_>>(raw) else {
        return Reply::Answer {
            body: error("null", -32700, "parse error"),
            initialize: false,
        };
    };
    let (Some(id), Some(method)) = (msg.id, msg.method) else {
        return Reply::Nothing;
    };
    let id = id.get();
    let params = msg.params.map(RawValue::get).unwrap_or("{}");
    let body = match method.as_ref() {
        "initialize" => {
            let asked = serde_json::from_str::<InitParams<'_>>(params)
                .ok()
                .and_then(|p| p.protocol_version);
            let version = VERSIONS
                .iter()
                .find(|v| Some(**v) == asked.as_deref())
                .unwrap_or(&"2025-06-18");
            let result = format!(
                r#"{{"protocolVersion":"{version}","capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"mcp-bench-server","version":"0.1.0"}}}}"#
            );
            return Reply::Answer {
                body: ok(id, &result),
                initialize: true,
            };
        }
        "ping" | "logging/setLevel" => ok(id, "{}"),
        "tools/list" => ok(
            id,
            r#"{"tools":[{"name":"echo","description":"size: answer that many bytes; data: answer its length and FNV-1a hash","inputSchema":{"type":"object","properties":{"size":{"type":"integer"},"data":{"type":"string"}}}}]}"#,
        ),
        "resources/list" => ok(id, r#"{"resources":[]}"#),
        "resources/templates/list" => ok(id, r#"{"resourceTemplates":[]}"#),
        "prompts/list" => ok(id, r#"{"prompts":[]}"#),
        "tools/call" => call(id, params),
        _ => error(id, -32601, "method not found"),
    };
    Reply::Answer {
        body,
        initialize: false,
    }
}

fn call(id: &str, params: &str) -> Vec<u8> {
    let Ok(p) = serde_json::from_str::<CallParams<'_>>(params) else {
        return error(id, -32602, "invalid params");
    };
    if p.name != "echo" {
        return error(id, -32602, "unknown tool");
    }
    let args = p.arguments.unwrap_or(EchoArgs {
        size: None,
        data: None,
    });
    if let Some(data) = args.data {
        let text = format!("len={} fnv={:016x}", data.len(), fnv1a(data.as_bytes()));
        return text_result(id, text.as_bytes());
    }
    let size = args.size.unwrap_or(0);
    if size > MAX_PAYLOAD {
        return error(id, -32602, "size too large");
    }
    text_result(id, pattern(size))
}

fn text_result(id: &str, text: &[u8]) -> Vec<u8> {
    let head = r#"{"jsonrpc":"2.0","id":"#;
    let mid = r#","result":{"content":[{"type":"text","text":""#;
    let tail = r#""}],"isError":false}}"#;
    let mut out = Vec::with_capacity(head.len() + id.len() + mid.len() + text.len() + tail.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(mid.as_bytes());
    // The pattern and the summaries are plain ASCII letters and digits: nothing to escape.
    out.extend_from_slice(text);
    out.extend_from_slice(tail.as_bytes());
    out
}

fn ok(id: &str, result: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).into_bytes()
}

fn error(id: &str, code: i32, message: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":"{message}"}}}}"#)
        .into_bytes()
}

/// The first `len` bytes of the payload pattern: ASCII letters and digits from a fixed
/// pseudo-random sequence, so a shifted, dropped or repeated chunk never matches by chance.
/// Small prefixes come from a short copy, so an idle stdio server stays small.
pub fn pattern(len: usize) -> &'static [u8] {
    static SMALL: OnceLock<Vec<u8>> = OnceLock::new();
    static FULL: OnceLock<Vec<u8>> = OnceLock::new();
    const SMALL_LEN: usize = 64 << 10;
    if len <= SMALL_LEN {
        &SMALL.get_or_init(|| generate(SMALL_LEN))[..len]
    } else {
        &FULL.get_or_init(|| generate(MAX_PAYLOAD))[..len.min(MAX_PAYLOAD)]
    }
}

fn generate(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    // Eight characters per xorshift step: the server starts in milliseconds.
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend(
            state
                .to_le_bytes()
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()]),
        );
    }
    out.truncate(len);
    out
}

/// 64-bit FNV-1a.
pub fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_answers_size_and_hash() {
        let Reply::Answer { body, .. } = handle(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"size":5}}}"#,
        ) else {
            panic!("no answer")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .as_bytes(),
            pattern(5)
        );
        let Reply::Answer { body, .. } = handle(
            br#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"data":"abc"}}}"#,
        ) else {
            panic!("no answer")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let want = format!("len=3 fnv={:016x}", fnv1a(b"abc"));
        assert_eq!(v["result"]["content"][0]["text"], want.as_str());
    }

    #[test]
    fn small_pattern_is_a_prefix_of_the_full_one() {
        let small = pattern(1000).to_vec();
        assert_eq!(&pattern(1 << 20)[..1000], &small[..]);
    }

    #[test]
    fn notifications_get_nothing() {
        assert!(matches!(
            handle(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Reply::Nothing
        ));
    }
}
