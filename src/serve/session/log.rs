//! A session's SSE events, kept in one bounded log so that any stream (the GET stream or a POST's
//! answer stream) can be read, cut, and resumed from a `Last-Event-ID` with nothing lost or
//! repeated. Event ids are `STREAM-SEQ`: the stream number and a session-wide sequence number.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// The stream of server-initiated messages (GET); POST streams are numbered from 1.
pub const GET_STREAM: u64 = 0;

#[derive(Debug)]
struct Entry {
    seq: u64,
    stream: u64,
    frame: Bytes,
}

/// Where one stream stands.
#[derive(Debug, Default)]
struct StreamState {
    /// Requests sent on this stream still waiting for their answer.
    open: usize,
    /// No more events will be added (all answers written, or cancelled).
    finished: bool,
    last_seq: u64,
    /// The newest seq when the stream opened: its events all come after it.
    opened_after: u64,
}

/// The bounded event log.
#[derive(Debug)]
pub struct Log {
    events: VecDeque<Entry>,
    bytes: usize,
    cap: usize,
    next_seq: u64,
    streams: HashMap<u64, StreamState>,
}

/// A parsed `Last-Event-ID`.
pub fn parse_event_id(s: &str) -> Option<(u64, u64)> {
    let (stream, seq) = s.trim().split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

impl Log {
    /// A log that keeps at most `cap` bytes of frames (but always the newest event).
    pub fn new(cap: usize) -> Log {
        let mut streams = HashMap::new();
        streams.insert(GET_STREAM, StreamState::default());
        Log {
            events: VecDeque::new(),
            bytes: 0,
            cap,
            next_seq: 1,
            streams,
        }
    }

    /// Starts a POST stream that will carry the answers to `open` requests.
    pub fn open_stream(&mut self, stream: u64, open: usize) {
        self.streams.insert(
            stream,
            StreamState {
                open,
                finished: open == 0,
                last_seq: 0,
                opened_after: self.next_seq - 1,
            },
        );
    }

    /// Appends an event (`event: message` unless `event` says otherwise) and returns its seq.
    pub fn push(&mut self, stream: u64, event: Option<&str>, data: &[u8]) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let id = format!("{stream}-{seq}");
        let mut frame = Vec::with_capacity(data.len() + 48);
        crate::sse::write_event(&mut frame, event.or(Some("message")), Some(&id), data);
        self.bytes += frame.len();
        self.events.push_back(Entry {
            seq,
            stream,
            frame: Bytes::from(frame),
        });
        if let Some(s) = self.streams.get_mut(&stream) {
            s.last_seq = seq;
        }
        self.evict();
        seq
    }

    /// A response for `stream` was written: one fewer open request; the last one finishes it.
    pub fn answered(&mut self, stream: u64) {
        if stream == GET_STREAM {
            return;
        }
        if let Some(s) = self.streams.get_mut(&stream) {
            s.open = s.open.saturating_sub(1);
            if s.open == 0 {
                s.finished = true;
            }
        }
    }

    /// Whether `stream` will get no more events (unknown streams count as finished).
    pub fn is_finished(&self, stream: u64) -> bool {
        self.streams.get(&stream).is_none_or(|s| s.finished)
    }

    /// Whether `stream` is a live POST stream still waiting for answers.
    pub fn is_open(&self, stream: u64) -> bool {
        stream != GET_STREAM && self.streams.get(&stream).is_some_and(|s| !s.finished)
    }

    /// Appends the frames of `stream` after `cursor` to `out`; returns the new cursor.
    pub fn take(&self, stream: u64, cursor: u64, out: &mut Vec<u8>) -> u64 {
        // Only the known stream's span of the log is scanned, not everything after the cursor:
        // a new POST stream (cursor 0) in a long session would otherwise walk the whole log.
        let (from, until) = match self.streams.get(&stream) {
            Some(s) => (cursor.max(s.opened_after), s.last_seq),
            None => (cursor, u64::MAX),
        };
        if until <= from {
            return cursor;
        }
        let start = self.events.partition_point(|e| e.seq <= from);
        let mut last = cursor;
        for e in self.events.range(start..) {
            if e.seq > until {
                break;
            }
            if e.stream == stream {
                out.extend_from_slice(&e.frame);
                last = e.seq;
            }
        }
        last
    }

    /// The seq of the newest event of any stream (0 if none yet).
    #[cfg(test)]
    pub fn head(&self) -> u64 {
        self.next_seq - 1
    }

    fn evict(&mut self) {
        while self.bytes > self.cap && self.events.len() > 1 {
            let Some(e) = self.events.pop_front() else {
                break;
            };
            self.bytes -= e.frame.len();
            let gone = self
                .streams
                .get(&e.stream)
                .is_some_and(|s| s.finished && s.last_seq <= e.seq);
            if gone && e.stream != GET_STREAM {
                self.streams.remove(&e.stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(log: &Log, stream: u64, cursor: u64) -> (String, u64) {
        let mut out = Vec::new();
        let c = log.take(stream, cursor, &mut out);
        (String::from_utf8(out).unwrap(), c)
    }

    #[test]
    fn streams_are_read_and_resumed_separately() {
        let mut log = Log::new(1 << 20);
        log.open_stream(1, 1);
        log.push(GET_STREAM, None, b"a");
        log.push(1, None, b"b");
        log.push(GET_STREAM, None, b"c");
        let (t, c) = text(&log, GET_STREAM, 0);
        assert_eq!(
            t,
            "event: message\nid: 0-1\ndata: a\n\nevent: message\nid: 0-3\ndata: c\n\n"
        );
        assert_eq!(c, 3);
        let (t, _) = text(&log, GET_STREAM, 1);
        assert_eq!(t, "event: message\nid: 0-3\ndata: c\n\n");
        assert!(!log.is_finished(1));
        log.answered(1);
        assert!(log.is_finished(1));
        let (t, c) = text(&log, 1, 0);
        assert!(t.contains("id: 1-2\ndata: b"));
        assert_eq!(text(&log, 1, c).0, "");
        assert_eq!(parse_event_id("1-2"), Some((1, 2)));
        assert_eq!(parse_event_id("x"), None);
    }

    #[test]
    fn a_stream_opened_late_reads_only_its_own_events() {
        let mut log = Log::new(1 << 20);
        for _ in 0..100 {
            log.push(GET_STREAM, None, b"g");
        }
        log.open_stream(7, 1);
        assert_eq!(text(&log, 7, 0), (String::new(), 0));
        log.push(7, None, b"answer");
        log.push(GET_STREAM, None, b"later");
        log.answered(7);
        let (t, c) = text(&log, 7, 0);
        assert_eq!(t, "event: message\nid: 7-101\ndata: answer\n\n");
        assert_eq!(c, 101);
        assert_eq!(text(&log, 7, c), (String::new(), 101));
        assert!(text(&log, GET_STREAM, 100).0.contains("data: later"));
    }

    #[test]
    fn bounded_but_keeps_the_newest() {
        let mut log = Log::new(100);
        for _ in 0..50 {
            log.push(GET_STREAM, None, b"0123456789");
        }
        assert!(log.bytes <= 100 || log.events.len() == 1);
        let (t, _) = text(&log, GET_STREAM, 0);
        assert!(t.contains("id: 0-50\n"));
        log.push(GET_STREAM, None, &[b'x'; 500]);
        assert_eq!(log.events.len(), 1);
        assert_eq!(log.head(), 51);
    }
}
