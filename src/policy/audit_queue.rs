//! The audit log's queue between the request path and the writer thread. Bounded: a full queue
//! refuses the record (the caller counts it as dropped), so logging never waits. Cheap on the
//! request path: a push takes an uncontended lock and wakes nobody (unless it fills the queue
//! half). The writer looks at the queue every [`PERIOD`] while records keep coming, and every
//! [`IDLE`] once they stop. A push that woke an idle writer cost each call after a pause (an
//! agent's calls are seconds apart) a system call and a thread scheduled next to it, on the
//! request's path; on a 2-core machine a wake-up per request was most of the audit log's cost.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::audit::Record;

/// How often the writer takes what is queued while records keep coming.
pub const PERIOD: Duration = Duration::from_millis(10);

/// How often an idle writer looks for records: a record is written within about this long
/// (sooner while records keep coming, or when a flush, a reopen or a half-full queue hurries
/// the writer).
pub const IDLE: Duration = Duration::from_secs(1);

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
    /// The writer is idle: it saw a whole period without a record. Nothing on the push side
    /// needs it (a push never wakes the writer); tests read it to know the writer got there.
    idle: bool,
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
        let wake = st.records.len() == self.cap.div_ceil(2);
        drop(st);
        if wake {
            self.wake.notify_one();
        }
        true
    }

    /// Asks for everything queued so far to be written; `ack` is answered once it is.
    pub fn flush(&self, ack: oneshot::Sender<()>) {
        let mut st = self.lock();
        if st.closed {
            // The writer is gone or going: dropping `ack` answers the waiter at once.
            return;
        }
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

    /// The writer's wait: takes what is queued after one [`PERIOD`] (less when hurried or half
    /// full); after a period that brought nothing, looks again every [`IDLE`] until there is
    /// something. Moves the queued records into `into` (which must be empty).
    pub fn next(&self, into: &mut Vec<Record>) -> Batch {
        let mut st = self.gather(self.lock());
        while !st.hurry && st.records.is_empty() {
            st.idle = true;
            st = self
                .wake
                .wait_timeout(st, IDLE)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.idle = false;
        std::mem::swap(into, &mut st.records);
        st.hurry = false;
        Batch {
            flushes: std::mem::take(&mut st.flushes),
            closed: st.closed,
        }
    }

    /// Waits up to one period, or until hurried or half full.
    fn gather<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let half = self.cap.div_ceil(2);
        let until = Instant::now() + PERIOD;
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
        st
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
    fn a_flush_of_a_closed_queue_is_answered_at_once() {
        let q = Queue::new(4);
        q.close();
        let (ack, mut done) = oneshot::channel();
        q.flush(ack);
        // Closed (the sender was dropped), not merely empty: the waiter is not left waiting.
        assert_eq!(
            done.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed)
        );
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

    /// How long a test waits for the writer thread before it fails.
    const BOUND: Duration = Duration::from_secs(5);

    /// What the writer thread reported within [`BOUND`]; then closes the queue, which ends the
    /// writer whatever happened, and joins it (so the join cannot hang).
    fn reported<T>(
        q: &Queue,
        writer: std::thread::JoinHandle<()>,
        rx: &std::sync::mpsc::Receiver<T>,
    ) -> Result<T, std::sync::mpsc::RecvTimeoutError> {
        let seen = rx.recv_timeout(BOUND);
        q.close();
        writer.join().unwrap();
        seen
    }

    #[test]
    fn records_pushed_while_the_writer_waits_all_reach_it() {
        let q = Arc::new(Queue::new(1000));
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn({
            let q = q.clone();
            move || {
                let (mut total, mut got) = (0, Vec::new());
                loop {
                    let batch = q.next(&mut got);
                    total += got.len();
                    got.clear();
                    if total == 10 {
                        let _ = tx.send(total);
                    }
                    if batch.closed {
                        return;
                    }
                }
            }
        });
        for _ in 0..10 {
            assert!(q.push(record()));
        }
        assert_eq!(
            reported(&q, writer, &rx),
            Ok(10),
            "the ten records did not all reach the writer"
        );
    }

    #[test]
    fn an_idle_writer_finds_a_push_at_its_next_look() {
        let q = Arc::new(Queue::new(1000));
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn({
            let q = q.clone();
            move || {
                let mut got = Vec::new();
                q.next(&mut got);
                let _ = tx.send(got.len());
            }
        });
        // Wait (bounded) until the writer has given up on its first period and is idle.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !q.lock().idle {
            assert!(Instant::now() < deadline, "the writer never went idle");
            std::thread::yield_now();
        }
        // Nobody wakes it: its next look, within IDLE (well inside BOUND), finds the record.
        assert!(q.push(record()));
        assert_eq!(
            reported(&q, writer, &rx),
            Ok(1),
            "the idle writer did not find the record"
        );
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
