//! A child process driven from a plain (blocking) test, as the example-server, doctor and
//! static-binary tests do: killed when dropped, its output read line by line on threads with
//! bounded waits, and a `serve` whose bound address is read from its log.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use super::BIN;

/// How long any single wait of these tests may take before the test fails (a chrooted or
/// freshly built binary starts slower than [`super::WAIT`] allows on a loaded machine).
pub const WAIT: Duration = Duration::from_secs(30);

/// A child process killed on drop, with its stdout and stderr read line by line on threads.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of<R: std::io::Read + Send + 'static>(r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Proc {
    /// Starts `cmd` with every stdio piped.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the binary");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Proc {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// Writes one line to stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next stdout line, or a panic after [`WAIT`].
    pub fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no stdout line within {WAIT:?}: {e}"))
    }

    /// The next stdout line parsed as JSON.
    pub fn next_json(&self) -> serde_json::Value {
        let line = self.next_line();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Waits for the exit status, killing the process after [`WAIT`].
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stdout line still to come, up to the end of the stream (after the process ended).
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(WAIT) {
            lines.push(line);
        }
        lines
    }

    /// Waits for a stderr line containing `needle` and returns what follows it.
    pub fn stderr_after(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find(needle) {
                        return line[i + needle.len()..].trim().to_owned();
                    }
                    seen.push(line);
                }
                Err(_) => break,
            }
        }
        panic!("no `{needle}` on stderr; it said:\n{}", seen.join("\n"));
    }
}

/// `mcp-bridge serve ARGS…`, running once it logs its address, with that address
/// (`http://127.0.0.1:PORT` or `unix:/path`).
pub fn serve(args: &[&str]) -> (Proc, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("--log-level=info").arg("serve").args(args);
    let p = Proc::spawn(cmd);
    let addr = p.stderr_after("listening on ");
    (p, addr)
}

/// `serve --example` on a Unix socket at `path`.
pub fn serve_example_unix(path: &Path) -> Proc {
    serve(&["--example", &format!("--listen=unix:{}", path.display())]).0
}
