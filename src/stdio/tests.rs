//! Unit tests of `stdio.rs`.

use super::*;

/// Drains a reader to the end through a splitter.
fn read_lines<R: std::io::Read>(reader: R, max: usize) -> Vec<Line> {
    let mut input = BufReader::new(reader);
    let mut s = LineSplitter::new(max);
    let mut lines = Vec::new();
    loop {
        let n = match input.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(chunk) => {
                s.feed(chunk, &mut lines);
                chunk.len()
            }
        };
        input.consume(n);
    }
    s.finish(&mut lines);
    lines
}

fn text(s: &str) -> Line {
    Line::Text(Bytes::from(s.to_owned()))
}

#[test]
fn splits_lines_and_strips_crlf() {
    let lines = read_lines(&b"a\r\nbc\n\nlast"[..], 100);
    assert_eq!(lines, vec![text("a"), text("bc"), text(""), text("last")]);
}

#[test]
fn over_long_line_is_reported_and_the_next_survives() {
    let mut s = LineSplitter::new(4);
    let mut out = Vec::new();
    s.feed(b"12", &mut out);
    s.feed(b"345", &mut out);
    s.feed(b"67\nok\n", &mut out);
    let head = Bytes::from_static(b"1234567");
    assert_eq!(out, vec![Line::TooLong { len: 8, head }, text("ok")]);
    let mut out = Vec::new();
    s.feed(b"123456\n", &mut out);
    let head = Bytes::from_static(b"123456");
    assert_eq!(out, vec![Line::TooLong { len: 7, head }]);
}

#[test]
fn exactly_max_is_allowed() {
    assert_eq!(read_lines(&b"1234\n"[..], 4), vec![text("1234")]);
}

#[tokio::test]
async fn writer_writes_one_message_per_line() {
    let closed = CancellationToken::new();
    let (tx, rx) = std::sync::mpsc::channel();
    struct Sink(std::sync::mpsc::Sender<Vec<u8>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.send(b.to_vec()).ok();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (out, handle) = Stdout::spawn_to(Sink(tx), closed.clone());
    assert!(out.send(Bytes::from_static(b"{}")).await);
    assert!(out.send(Bytes::from_static(b"[]")).await);
    drop(out);
    handle.join().unwrap();
    let all: Vec<u8> = rx.try_iter().flatten().collect();
    assert_eq!(all, b"{}\n[]\n");
    assert!(closed.is_cancelled());
}

#[test]
fn an_over_long_lines_head_does_not_depend_on_its_chunks() {
    let line = br#"{"jsonrpc":"2.0","id":7,"result":{"text":"far too long"}}"#;
    let whole = {
        let mut s = LineSplitter::new(8);
        let mut out = Vec::new();
        s.feed(line, &mut out);
        s.feed(b"\n", &mut out);
        out
    };
    let chunked = {
        let mut s = LineSplitter::new(8);
        let mut out = Vec::new();
        for piece in line.chunks(3) {
            s.feed(piece, &mut out);
        }
        s.feed(b"\n", &mut out);
        out
    };
    assert_eq!(whole, chunked);
    let [Line::TooLong { head, .. }] = &whole[..] else {
        panic!("{whole:?}")
    };
    assert_eq!(
        &head[..],
        &line[..],
        "the head holds the id the error is sent for"
    );
}
