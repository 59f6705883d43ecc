//! What a child process writes: every line is echoed to the test's stderr with a `[name]` prefix
//! (the harness shows it when the test fails) and kept, so tests can wait (bounded) for a line.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The lines of one or more output streams of a child process.
#[derive(Clone, Default)]
pub struct Log {
    inner: Arc<(Mutex<Lines>, Condvar)>,
}

#[derive(Default)]
struct Lines {
    lines: Vec<String>,
    /// Streams still being read.
    open: usize,
}

impl Log {
    /// Reads `stream` on a thread until it ends, echoing and keeping every line.
    pub fn follow(&self, name: &str, stream: impl Read + Send + 'static) {
        self.inner.0.lock().unwrap().open += 1;
        let inner = self.inner.clone();
        let name = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{name}] {line}");
                inner.0.lock().unwrap().lines.push(line);
                inner.1.notify_all();
            }
            inner.0.lock().unwrap().open -= 1;
            inner.1.notify_all();
        });
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.inner.0.lock().unwrap().lines.clone()
    }

    /// Every line so far, joined by newlines.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// The first line that satisfies `pred`, waiting up to `timeout`. `Err` says why there is
    /// none: the time ran out, or every stream ended (the process exited).
    pub fn find(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.inner.0.lock().unwrap();
        loop {
            if let Some(l) = lines.lines.iter().find(|l| pred(l)) {
                return Ok(l.clone());
            }
            if lines.open == 0 {
                return Err("the output ended".into());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("nothing within {timeout:?}"));
            }
            lines = self.inner.1.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// The first line containing `needle`; fails the test after `WAIT` or when the output ends.
    pub fn wait_for(&self, needle: &str) -> String {
        self.find(super::WAIT, |l| l.contains(needle))
            .unwrap_or_else(|why| panic!("no line with {needle:?} ({why}):\n{}", self.text()))
    }
}
