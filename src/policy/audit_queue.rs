//! The audit log's queue between the request path and the writer thread. Bounded: a full queue
//! refuses the record (the caller counts it as dropped), so logging never waits. Cheap on the
//! request path: a push takes an uncontended lock and wakes the writer only when the queue was
//! empty or reaches half its size; the writer then gathers records for up to [`GATHER`] before
//! it writes them, so a steady stream of requests costs one wake-up and one `write` per batch,
//! not per request (on a 2-core machine a wake-up per request was most of the audit log's cost
//! to a call).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::audit::Record;

/// How long the writer gathers records after the first one of a batch arrives: the most a
/// record waits before it is written, unless a flush, a reopen or a half-full queue hurries it.
pub const GATHER: Duration = Duration::from_millis(5);

/// The queue (shared by the log and its writer thread).
pub(super) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    cap: usize,
}

#[derive(Default)]
struct State {
    records: Vec<Record>,
    flushes: Vec<oneshot::Sender<()>>,
    /// A flush or a reopen is waiting: write now.
    hurry: bool,
    closed: bool,
}

/// What the writer is to do after [`Queue::next`]: besides the records, acknowledge these
/// flushes once written, and stop if closed.
pub(super) struct Batch {
    pub flushes: Vec<oneshot::Sender<()>>,
    pub closed: bool,
}

impl Queue {
    /// A queue of at most `cap` records (at least 1).
    pub fn new(cap: usize) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a record; `false` (and the record is dropped) when the queue is full or closed.
    pub fn push(&self, record: Record) -> bool {
        let mut st = self.lock();
        if st.closed || st.records.len() >= self.cap {
            return false;
        }
        st.records.push(record);
        let n = st.records.len();
        drop(st);
        if n == 1 || n == self.cap.div_ceil(2) {
            self.wake.notify_one();
        }
        true
    }

    /// Asks for everything queued so far to be written; `ack` is answered once it is.
    pub fn flush(&self, ack: oneshot::Sender<()>) {
        let mut st = self.lock();
        st.flushes.push(ack);
        st.hurry = true;
        drop(st);
        self.wake.notify_one();
    }

    /// Wakes the writer now (it has a reopen to do).
    pub fn hurry(&self) {
        self.lock().hurry = true;
        self.wake.notify_one();
    }

    /// Lets the writer write what is queued and stop.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.hurry = true;
        drop(st);
        self.wake.notify_one();
    }

    /// The writer's wait: blocks while there is nothing to do; once a record is queued, gathers
    /// for up to [`GATHER`] (less when hurried or half full); then moves the queued records into
    /// `into` (which must be empty).
    pub fn next(&self, into: &mut Vec<Record>) -> Batch {
        let half = self.cap.div_ceil(2);
        let mut st = self.lock();
        while !st.hurry && st.records.is_empty() {
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let until = Instant::now() + GATHER;
        while !st.hurry && st.records.len() < half {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .wake
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::swap(into, &mut st.records);
        st.hurry = false;
        Batch {
            flushes: std::mem::take(&mut st.flushes),
            closed: st.closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::audit::Outcome;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn record() -> Record {
        Record {
            time: SystemTime::now(),
            client: None,
            peer_uid: None,
            peer_pid: None,
            session: None,
            key: None,
            server: None,
            method: "tools/call".into(),
            name: None,
            duration: Duration::ZERO,
            outcome: Outcome::Ok,
            bytes_in: 0,
            bytes_out: 0,
            request: None,
            answer: None,
        }
    }

    #[test]
    fn a_full_queue_refuses_and_a_closed_one_too() {
        let q = Queue::new(2);
        assert!(q.push(record()));
        assert!(q.push(record()));
        assert!(!q.push(record()), "past its size");
        let mut got = Vec::new();
        let batch = q.next(&mut got);
        assert_eq!(got.len(), 2);
        assert!(!batch.closed);
        q.close();
        assert!(!q.push(record()), "closed");
        got.clear();
        assert!(q.next(&mut got).closed);
    }

    #[test]
    fn records_are_gathered_into_one_batch_then_written_within_the_gather_time() {
        let q = Arc::new(Queue::new(1000));
        let writer = std::thread::spawn({
            let q = q.clone();
            move || {
                let mut got = Vec::new();
                let started = Instant::now();
                q.next(&mut got);
                (got.len(), started.elapsed())
            }
        });
        for _ in 0..10 {
            assert!(q.push(record()));
        }
        let (n, took) = writer.join().unwrap();
        // All ten pushes land within the gather time of the first (they take microseconds).
        assert_eq!(n, 10);
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn a_flush_takes_what_is_queued_with_it_and_is_then_forgotten() {
        let q = Queue::new(1000);
        assert!(q.push(record()));
        let (ack, _done) = oneshot::channel();
        q.flush(ack);
        let mut got = Vec::new();
        let batch = q.next(&mut got);
        assert_eq!((got.len(), batch.flushes.len()), (1, 1));
        assert!(!q.lock().hurry, "the next batch waits for records again");
    }
}
