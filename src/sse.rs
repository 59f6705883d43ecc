//! Server-Sent Events: an incremental parser (fed whatever chunks the network delivers) and the
//! writer used by `serve`. Follows the WHATWG event-stream rules that matter for MCP: `data`
//! lines joined by LF, `id`, `event`, `retry`, comments, and CR, LF or CRLF line ends.

use crate::chunks::Pieces;
use bytes::{Buf, Bytes};

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event` field; empty means the default type, `message`.
    pub event: String,
    /// The `data` lines joined with LF.
    pub data: Bytes,
    /// The `id` field, if this event carried one.
    pub id: Option<String>,
    /// A `retry` field seen while this event was being read, in milliseconds.
    pub retry: Option<u64>,
}

impl Event {
    /// Whether this is a `message` event (named so, or unnamed).
    pub fn is_message(&self) -> bool {
        self.event.is_empty() || self.event == "message"
    }
}

/// Incremental event-stream parser. Memory use is bounded by `max_event` bytes per event, and a
/// line's bytes are copied at most once, however many chunks it came in.
#[derive(Debug)]
pub struct Parser {
    /// The current line, up to the end of the last chunk.
    partial: Pieces,
    data: Pieces,
    event: String,
    id: Option<String>,
    retry: Option<u64>,
    has_data: bool,
    /// A CR ended the last line; a following LF belongs to it.
    after_cr: bool,
    /// The first bytes of the stream, until it is clear whether they are a byte order mark.
    head: Option<Vec<u8>>,
    max_event: usize,
}

/// An event grew past the parser's limit.
#[derive(Debug, thiserror::Error)]
#[error("server-sent event larger than {0} bytes")]
pub struct TooLarge(pub usize);

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Parser {
    /// A parser that refuses events of more than `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Parser {
            partial: Pieces::default(),
            data: Pieces::default(),
            event: String::new(),
            id: None,
            retry: None,
            has_data: false,
            after_cr: false,
            head: Some(Vec::new()),
            max_event,
        }
    }

    /// Feeds a chunk; complete events are pushed onto `out`.
    pub fn feed(&mut self, mut chunk: Bytes, out: &mut Vec<Event>) -> Result<(), TooLarge> {
        if let Some(head) = self.head.as_mut() {
            // A UTF-8 byte order mark may open the stream.
            head.extend_from_slice(&chunk);
            if head.len() < BOM.len() && BOM.starts_with(head) {
                return Ok(());
            }
            let head = self.head.take().unwrap_or_default();
            let skip = if head.starts_with(BOM) { BOM.len() } else { 0 };
            chunk = Bytes::from(head).slice(skip..);
        }
        loop {
            if self.after_cr {
                match chunk.first() {
                    None => break,
                    Some(b'\n') => chunk.advance(1),
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let Some(pos) = memchr::memchr2(b'\n', b'\r', &chunk) else {
                self.partial.push(chunk);
                break;
            };
            self.partial.push(chunk.split_to(pos));
            self.after_cr = chunk[0] == b'\r';
            chunk.advance(1);
            let line = self.partial.take();
            self.line(line, out);
        }
        if self.partial.len() + self.data.len() > self.max_event {
            self.partial.clear();
            self.data.clear();
            return Err(TooLarge(self.max_event));
        }
        Ok(())
    }

    fn line(&mut self, line: Bytes, out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let start = if line.get(i + 1) == Some(&b' ') {
                    i + 2
                } else {
                    i + 1
                };
                (&line[..i], line.slice(start..))
            }
            None => (&line[..], Bytes::new()),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(Bytes::from_static(b"\n"));
                }
                self.data.push(value);
                self.has_data = true;
            }
            b"event" => self.event = String::from_utf8_lossy(&value).into_owned(),
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(&value).into_owned());
            }
            b"retry" => {
                if let Ok(ms) = std::str::from_utf8(&value).unwrap_or("x").parse::<u64>() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        let id = self.id.take();
        let retry = self.retry.take();
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            // No data: nothing is dispatched, but an id or retry still counts (priming events).
            if id.is_some() || retry.is_some() {
                out.push(Event {
                    event,
                    data: Bytes::new(),
                    id,
                    retry,
                });
            }
            return;
        }
        self.has_data = false;
        let data = self.data.take();
        out.push(Event {
            event,
            data,
            id,
            retry,
        });
    }
}

/// Writes one event. `data` may not contain CR or LF other than as line separators.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, id: Option<&str>, data: &[u8]) {
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(Bytes::copy_from_slice(c), &mut out).unwrap();
        }
        out
    }

    #[test]
    fn parses_fields_and_joins_data_lines() {
        let ev = parse_all(&[b"event: message\nid: 5\ndata: {\"a\":\ndata: 1}\n\n"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, "message");
        assert_eq!(ev[0].id.as_deref(), Some("5"));
        assert_eq!(&ev[0].data[..], b"{\"a\":\n1}");
    }

    #[test]
    fn any_chunking_and_line_ending_gives_the_same_events() {
        let text = b"\xEF\xBB\xBF: comment\r\nretry: 1500\r\nid: x\r\ndata: one\r\n\r\nevent: endpoint\rdata: /m?s=1\r\rdata:two\n\n";
        let whole = parse_all(&[text]);
        for split in 0..text.len() {
            let parts = parse_all(&[&text[..split], &text[split..]]);
            assert_eq!(parts, whole, "split at {split}");
        }
        let bytewise: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(parse_all(&bytewise), whole);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].retry, Some(1500));
        assert_eq!(whole[1].event, "endpoint");
        assert_eq!(&whole[1].data[..], b"/m?s=1");
        assert_eq!(&whole[2].data[..], b"two");
    }

    #[test]
    fn priming_event_without_data_keeps_its_id() {
        let ev = parse_all(&[b"id: 0\ndata:\n\nid: 1\nretry: 10\n\n"]);
        assert_eq!(ev.len(), 2);
        assert!(ev[0].data.is_empty());
        assert_eq!(ev[1].id.as_deref(), Some("1"));
        assert_eq!(ev[1].retry, Some(10));
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = Parser::new(10);
        let mut out = Vec::new();
        assert!(
            p.feed(Bytes::from_static(b"data: 0123456789abcdef"), &mut out)
                .is_err()
        );
    }

    #[test]
    fn writer_and_parser_agree() {
        let mut buf = Vec::new();
        write_event(&mut buf, Some("message"), Some("s-1"), b"{\"x\":\n2}");
        let ev = parse_all(&[&buf]);
        assert_eq!(ev[0].id.as_deref(), Some("s-1"));
        assert_eq!(&ev[0].data[..], b"{\"x\":\n2}");
    }

    #[test]
    fn random_chunking_never_panics_and_is_stable() {
        // A small deterministic fuzz: random bytes from an alphabet rich in SSE syntax.
        let alphabet = b"data:id event retry\r\n: {}x0";
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..300 {
            let mut text = Vec::new();
            for _ in 0..200 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let whole = parse_all(&[&text]);
            let cut = (seed % text.len() as u64) as usize;
            assert_eq!(parse_all(&[&text[..cut], &text[cut..]]), whole);
        }
    }
}
