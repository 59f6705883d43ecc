//! Harnesses for the fuzz targets in `fuzz/` and for `tests/fuzz_corpus.rs`, which replays the
//! committed corpus on stable. Each takes arbitrary bytes, drives one parser the way the bridge
//! does, and panics only when one of the parser's promises breaks (never on bad input itself).
//! Not an API: hidden from the docs, and kept apart so the modules it reaches stay `pub(crate)`.

use crate::jsonrpc;
use crate::sse::{Event, Parser};
use crate::stdio::{Line, LineSplitter};
use crate::wire::stateless;
use bytes::Bytes;

/// Splits `data` into chunks whose lengths come from `sizes` (cycled; 0 counts as 1).
fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(64)).max(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

/// The SSE parser: the first two bytes choose the event limit and how the rest is cut into
/// chunks. The events must not depend on the cut (when no limit was hit), a message event's
/// data folded for stdout must be one line, and a server's `retry:` must be clamped.
pub fn sse(data: &[u8]) {
    let Some((&[limit, cut], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = 16 + usize::from(limit) * 64;
    let run = |parts: Vec<&[u8]>| -> Option<Vec<Event>> {
        let mut parser = Parser::new(max);
        let mut events = Vec::new();
        for part in &parts {
            parser
                .feed(Bytes::copy_from_slice(part), &mut events)
                .ok()?;
        }
        Some(events)
    };
    let sizes = [cut, cut.rotate_left(3), 1];
    let cut_events = run(chunks(body, &sizes));
    let whole = run(vec![body]);
    if let (Some(a), Some(b)) = (&cut_events, &whole) {
        assert_eq!(a, b, "events depend on how the stream was cut");
    }
    for ev in cut_events.iter().flatten() {
        if ev.is_message() && !ev.data.is_empty() {
            let line = jsonrpc::fold_lines(&ev.data);
            assert!(memchr::memchr2(b'\n', b'\r', &line).is_none());
        }
        if let Some(ms) = ev.retry {
            let d = crate::connect::clamp_retry(ms);
            assert!(
                (std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(60))
                    .contains(&d)
            );
        }
    }
}

/// The agent's stdin: line framing with a limit (the first byte), then what `connect` does with
/// each line: classification, and for refused lines the bounded scan for their id. Lines must
/// respect the limit and not depend on the chunking; whatever goes back to the agent must be one
/// line that means what the server sent.
pub fn lines(data: &[u8]) {
    let Some((&limit, body)) = data.split_first() else {
        return;
    };
    let max = 1 + usize::from(limit) * 4;
    let split = |parts: Vec<&[u8]>| {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for part in parts {
            s.feed(part, &mut out);
        }
        s.finish(&mut out);
        out
    };
    let got = split(chunks(body, &[limit, 3, 1, 200]));
    assert_eq!(got, split(vec![body]), "lines depend on the chunking");
    for line in got {
        match line {
            Line::Text(text) => {
                assert!(text.len() <= max && !text.contains(&b'\n'));
                classify(text);
            }
            Line::TooLong { len, head } => {
                assert!(len > max && head.len() <= crate::stdio::HEAD_KEPT);
                let _ = jsonrpc::scan_request_id(&head);
                let _ = jsonrpc::scan_response_id(&head);
            }
        }
    }
}

/// One line as `connect` takes it from the agent or a body from the server.
fn classify(text: Bytes) {
    let _ = jsonrpc::scan_request_id(&text);
    let _ = jsonrpc::scan_response_id(&text);
    let Ok(msg) = jsonrpc::parse(text.clone()) else {
        return;
    };
    let _ = (
        msg.method(),
        msg.request_ids().count(),
        msg.response_ids().count(),
    );
    let folded = jsonrpc::fold_lines(&msg.raw);
    assert!(memchr::memchr2(b'\n', b'\r', &folded).is_none());
    // Folding keeps the message: same JSON value, same classification.
    let again = jsonrpc::parse(folded.clone()).expect("a folded message still parses");
    assert_eq!(again.parts, msg.parts);
    // The names the policy reads are the ones a full parse reads, and folding keeps them.
    let value: Option<serde_json::Value> = serde_json::from_slice(&msg.raw).ok();
    for (found, key) in [(msg.param_name(), "name"), (msg.param_uri(), "uri")] {
        // (A full parse refuses some texts the envelope keeps whole, e.g. an id of 1e400.)
        if let (Some(found), Some(value)) = (found, &value) {
            assert_eq!(value["params"][key].as_str(), Some(found), "params.{key}");
        }
    }
    assert_eq!(again.param_name(), msg.param_name());
    assert_eq!(again.param_uri(), msg.param_uri());
    let before: Result<serde_json::Value, _> = serde_json::from_slice(&msg.raw);
    let after: Result<serde_json::Value, _> = serde_json::from_slice(&folded);
    if let (Ok(a), Ok(b)) = (before, after) {
        assert_eq!(a, b, "folding changed the message");
    }
    if let (false, Some(jsonrpc::Kind::Request { id, .. })) = (msg.batch, msg.parts.first())
        && let Some(found) = jsonrpc::scan_request_id(&msg.raw)
    {
        // The scan reads the same member the parser did (unless a key was written escaped).
        let same: Result<serde_json::Value, _> = serde_json::from_str(found.as_json());
        let real: Result<serde_json::Value, _> = serde_json::from_str(id.as_json());
        if !msg.raw.contains(&b'\\') {
            assert_eq!(same.ok(), real.ok(), "the scan found another id");
        }
    }
    if let (false, Some(jsonrpc::Kind::Response { id })) = (msg.batch, msg.parts.first())
        && let Some(found) = jsonrpc::scan_response_id(&msg.raw)
        && !msg.raw.contains(&b'\\')
    {
        // What serve answers in place of a dropped answer goes to the id the child meant.
        let same: Result<serde_json::Value, _> = serde_json::from_str(found.as_json());
        let real: Result<serde_json::Value, _> = serde_json::from_str(id.as_json());
        assert_eq!(same.ok(), real.ok(), "the response scan found another id");
    }
}

/// The 2026-07-28 header values: decoding anything must not panic; encoding any text must give
/// a visible-ASCII value that decodes back to it. The rest of the input is tried as a tool's
/// input schema for `x-mcp-header` annotations.
pub fn stateless_headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = stateless::decode_header_value(&text);
    let encoded = stateless::encode_header_value(&text);
    assert!(encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    assert_eq!(
        stateless::decode_header_value(&encoded).as_deref(),
        Some(&*text)
    );
    if let Ok(schema) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(params) = stateless::header_params(&schema) {
            for (path, _) in params {
                if let Some(v) = stateless::argument_at(&schema, &path) {
                    let _ = stateless::param_text(v);
                }
            }
        }
        let _ = stateless::param_text(&schema);
    }
}
