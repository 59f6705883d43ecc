//! The agent's side of `connect`: newline-delimited messages with a size limit on the way in, and
//! the one writer of stdout on the way out, with writes coalesced and flushed when idle. Pipes and
//! sockets are served on the runtime; terminals and files, which cannot be, by a plain thread each.

use crate::chunks::Pieces;
use bytes::Bytes;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One line from a newline-delimited stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its line end (LF or CRLF).
    Text(Bytes),
    /// A line over the limit; its bytes were dropped but the first few.
    TooLong {
        /// How many bytes the line had.
        len: usize,
        /// Its first [`HEAD_KEPT`] bytes (or fewer), where a request's `id` usually is.
        head: Bytes,
    },
}

/// How much of an over-long line is kept, to find the id of the request it was.
pub const HEAD_KEPT: usize = 4096;

/// Splits a byte stream into lines of at most `max` bytes, without holding more than that.
#[derive(Debug)]
pub struct LineSplitter {
    line: Pieces,
    max: usize,
    /// Bytes of the current over-long line dropped so far; `Some` while skipping to its end.
    skipping: Option<usize>,
    /// The first bytes of the over-long line being skipped.
    head: Bytes,
}

impl LineSplitter {
    /// A splitter for lines of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        LineSplitter {
            line: Pieces::default(),
            max,
            skipping: None,
            head: Bytes::new(),
        }
    }

    /// Takes a chunk and pushes every line it completes.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while !chunk.is_empty() {
            let (part, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (&chunk[..i], true),
                None => (chunk, false),
            };
            chunk = &chunk[(part.len() + usize::from(done))..];
            if let Some(seen) = self.skipping.as_mut() {
                *seen += part.len() + usize::from(done);
                // The head is the line's first bytes however the line arrived in chunks.
                if self.head.len() < HEAD_KEPT && !part.is_empty() {
                    let more = (HEAD_KEPT - self.head.len()).min(part.len());
                    let mut head = Vec::with_capacity(self.head.len() + more);
                    head.extend_from_slice(&self.head);
                    head.extend_from_slice(&part[..more]);
                    self.head = Bytes::from(head);
                }
                if done {
                    let head = std::mem::take(&mut self.head);
                    out.push(Line::TooLong { len: *seen, head });
                    self.skipping = None;
                }
                continue;
            }
            if self.line.len() + part.len() > self.max {
                let seen = self.line.len() + part.len() + usize::from(done);
                let mut head = self.line.take().to_vec();
                head.truncate(HEAD_KEPT);
                let more = HEAD_KEPT.saturating_sub(head.len()).min(part.len());
                head.extend_from_slice(&part[..more]);
                let head = Bytes::from(head);
                match done {
                    true => out.push(Line::TooLong { len: seen, head }),
                    false => {
                        self.skipping = Some(seen);
                        self.head = head;
                    }
                }
                continue;
            }
            self.line.push(Bytes::copy_from_slice(part));
            if done {
                let mut line = self.line.take();
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                out.push(Line::Text(line));
            }
        }
    }

    /// At end of stream: a last line without a newline still counts.
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if let Some(len) = self.skipping.take() {
            let head = std::mem::take(&mut self.head);
            out.push(Line::TooLong { len, head });
        } else if !self.line.is_empty() {
            out.push(Line::Text(self.line.take()));
        }
    }
}

/// What an inherited stdin or stdout is, for serving it on the runtime's own thread.
enum Inherited {
    Fifo(std::fs::File),
    /// Node's child processes get socket pairs as stdio.
    Socket(tokio::net::UnixStream),
}

/// A pipe or socket inherited as stdin or stdout, made non-blocking so the runtime's own thread
/// can serve it: no hand-off to another thread for every message. `None` for terminals and
/// files, which are served by a thread instead.
fn inherited(fd: std::os::fd::BorrowedFd<'_>) -> Option<Inherited> {
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let kind = file.metadata().ok()?.file_type();
    if kind.is_fifo() {
        return Some(Inherited::Fifo(file));
    }
    if kind.is_socket() {
        let sock = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(file));
        sock.set_nonblocking(true).ok()?;
        return tokio::net::UnixStream::from_std(sock)
            .ok()
            .map(Inherited::Socket);
    }
    None
}

/// A byte stream coming in.
pub enum Input {
    /// Served on the runtime.
    Async(Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    /// Served by a thread of its own (terminals, files).
    Blocking(Box<dyn std::io::Read + Send>),
}

/// A byte stream going out.
pub enum Output {
    /// Served on the runtime.
    Async(Box<dyn tokio::io::AsyncWrite + Unpin + Send>),
    /// Served by a thread of its own (terminals, files).
    Blocking(Box<dyn Write + Send>),
}

/// Where `connect` reads the agent's messages and writes the answers.
pub struct Stdio {
    /// The agent's messages.
    pub input: Input,
    /// Where messages for the agent go.
    pub output: Output,
}

impl Stdio {
    /// The process's own stdin and stdout. Must be called inside the runtime.
    pub fn process() -> Stdio {
        let input = match inherited(std::io::stdin().as_fd()) {
            Some(Inherited::Fifo(f)) => tokio::net::unix::pipe::Receiver::from_file(f)
                .ok()
                .map(|r| Input::Async(Box::new(r))),
            Some(Inherited::Socket(s)) => Some(Input::Async(Box::new(s))),
            None => None,
        };
        #[allow(clippy::disallowed_methods)] // the one writer of stdout
        let stdout = std::io::stdout();
        let output = match inherited(stdout.as_fd()) {
            Some(Inherited::Fifo(f)) => tokio::net::unix::pipe::Sender::from_file(f)
                .ok()
                .map(|w| Output::Async(Box::new(w))),
            Some(Inherited::Socket(s)) => Some(Output::Async(Box::new(s))),
            None => None,
        };
        Stdio {
            input: input.unwrap_or_else(|| Input::Blocking(Box::new(std::io::stdin()))),
            output: output.unwrap_or_else(|| Output::Blocking(Box::new(stdout))),
        }
    }

    /// Any pair of async streams, e.g. one end of [`tokio::io::duplex`] (tests run `connect` in
    /// process this way).
    pub fn pipe(
        input: impl tokio::io::AsyncRead + Unpin + Send + 'static,
        output: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
    ) -> Stdio {
        Stdio {
            input: Input::Async(Box::new(input)),
            output: Output::Async(Box::new(output)),
        }
    }
}

/// Reads `input` as lines of at most `max_line` bytes. The receiver closes at EOF or on a read
/// error. Must be called inside the runtime.
pub fn spawn_reader(input: Input, max_line: usize) -> mpsc::Receiver<Line> {
    let (tx, rx) = mpsc::channel(64);
    let mut input = match input {
        Input::Async(input) => input,
        Input::Blocking(input) => {
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || read_blocking(input, max_line, tx))
                .expect("spawning the stdin thread");
            return rx;
        }
    };
    tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        let mut splitter = LineSplitter::new(max_line);
        let mut lines = Vec::new();
        loop {
            let n = match input.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("reading stdin failed: {e}");
                    break;
                }
            };
            splitter.feed(&buf[..n], &mut lines);
            for line in lines.drain(..) {
                if tx.send(line).await.is_err() {
                    return;
                }
            }
        }
        splitter.finish(&mut lines);
        for line in lines {
            let _ = tx.send(line).await;
        }
    });
    rx
}

fn read_blocking(input: Box<dyn std::io::Read + Send>, max_line: usize, tx: mpsc::Sender<Line>) {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let mut splitter = LineSplitter::new(max_line);
    let mut lines = Vec::new();
    loop {
        let n = match input.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => {
                splitter.feed(chunk, &mut lines);
                chunk.len()
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("reading stdin failed: {e}");
                break;
            }
        };
        input.consume(n);
        for line in lines.drain(..) {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    }
    splitter.finish(&mut lines);
    for line in lines {
        let _ = tx.blocking_send(line);
    }
}

/// A handle for writing whole messages to stdout, one per line.
#[derive(Clone, Debug)]
pub struct Stdout {
    tx: mpsc::Sender<Bytes>,
}

/// The task or thread that writes stdout; wait for it with [`Writer::finish`].
pub enum Writer {
    /// The writer of an async stream.
    Task(tokio::task::JoinHandle<()>),
    /// The writer of a blocking stream.
    Thread(std::thread::JoinHandle<()>),
}

impl Writer {
    /// Waits at most `limit` for the writer to flush and end (it ends when every [`Stdout`]
    /// handle is gone).
    pub async fn finish(self, limit: std::time::Duration) {
        let _ = match self {
            Writer::Task(task) => tokio::time::timeout(limit, task).await.map(|_| ()),
            Writer::Thread(thread) => {
                let join = tokio::task::spawn_blocking(move || thread.join());
                tokio::time::timeout(limit, join).await.map(|_| ())
            }
        };
    }
}

impl Stdout {
    /// Starts the writer of `output`. `closed` is cancelled when it can no longer be written (the
    /// reader went away): that is a normal end of the session, not an error. Must be called
    /// inside the runtime.
    pub fn spawn(output: Output, closed: CancellationToken) -> (Stdout, Writer) {
        let sink = match output {
            Output::Async(sink) => sink,
            Output::Blocking(sink) => {
                let (out, thread) = Self::spawn_to(sink, closed);
                return (out, Writer::Thread(thread));
            }
        };
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        let task = tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::with_capacity(64 * 1024, sink);
            let result = async {
                while let Some(msg) = rx.recv().await {
                    write_line_async(&mut out, &msg).await?;
                    // Coalesce whatever is already queued, then flush once the queue is idle.
                    while let Ok(msg) = rx.try_recv() {
                        write_line_async(&mut out, &msg).await?;
                    }
                    out.flush().await?;
                }
                Ok::<_, std::io::Error>(())
            }
            .await;
            report_end(result, &closed);
        });
        (Stdout { tx }, Writer::Task(task))
    }

    /// As [`Stdout::spawn`], writing to any sink (tests).
    pub fn spawn_to<W: Write + Send + 'static>(
        sink: W,
        closed: CancellationToken,
    ) -> (Stdout, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Bytes>(256);
        let handle = std::thread::Builder::new()
            .name("stdout".into())
            .spawn(move || {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, sink);
                let result = (|| -> std::io::Result<()> {
                    while let Some(msg) = rx.blocking_recv() {
                        write_line(&mut out, &msg)?;
                        // Coalesce whatever is already queued, then flush once the queue is idle.
                        while let Ok(msg) = rx.try_recv() {
                            write_line(&mut out, &msg)?;
                        }
                        out.flush()?;
                    }
                    Ok(())
                })();
                report_end(result, &closed);
            })
            .expect("spawning the stdout thread");
        (Stdout { tx }, handle)
    }

    /// Queues one message (no trailing newline). Returns false once stdout is gone.
    pub async fn send(&self, msg: Bytes) -> bool {
        self.tx.send(msg).await.is_ok()
    }
}

fn report_end(result: std::io::Result<()>, closed: &CancellationToken) {
    if let Err(e) = result {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!("writing stdout failed: {e}");
        } else {
            tracing::debug!("stdout closed by the reader");
        }
    }
    closed.cancel();
}

async fn write_line_async<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut W,
    msg: &[u8],
) -> std::io::Result<()> {
    out.write_all(msg).await?;
    out.write_all(b"\n").await
}

fn write_line<W: Write>(out: &mut W, msg: &[u8]) -> std::io::Result<()> {
    out.write_all(msg)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests;
