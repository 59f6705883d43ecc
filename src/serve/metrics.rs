//! Counters, gauges and a latency histogram for `/metrics`, in the Prometheus text format.
//! Lock-free atomics: the message path only increments.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Takes one away.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    /// The value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// A cumulative histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sessions open now.
    pub sessions: Gauge,
    /// Sessions opened since start.
    pub sessions_total: Counter,
    /// Sessions refused at --max-sessions.
    pub sessions_rejected: Counter,
    /// Child processes running now.
    pub children: Gauge,
    /// Child processes started since start.
    pub children_total: Counter,
    /// Children that ended on their own.
    pub child_crashes: Counter,
    /// Messages sent to children.
    pub to_child: Counter,
    /// Messages read from children.
    pub from_child: Counter,
    /// HTTP requests answered with a 4xx or 5xx status.
    pub http_errors: Counter,
    /// Time from a client's request arriving to the child's answer being queued for the client.
    pub latency: Histogram,
}

impl Metrics {
    /// Renders the Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            "mcp_bridge_sessions",
            "gauge",
            "Open MCP sessions.",
            self.sessions.get().to_string(),
        );
        one(
            "mcp_bridge_sessions_created_total",
            "counter",
            "Sessions created.",
            self.sessions_total.get().to_string(),
        );
        one(
            "mcp_bridge_sessions_rejected_total",
            "counter",
            "Sessions refused at --max-sessions.",
            self.sessions_rejected.get().to_string(),
        );
        one(
            "mcp_bridge_children",
            "gauge",
            "Running child processes.",
            self.children.get().to_string(),
        );
        one(
            "mcp_bridge_children_started_total",
            "counter",
            "Child processes started.",
            self.children_total.get().to_string(),
        );
        one(
            "mcp_bridge_child_crashes_total",
            "counter",
            "Child processes that ended on their own.",
            self.child_crashes.get().to_string(),
        );
        one(
            "mcp_bridge_http_errors_total",
            "counter",
            "HTTP requests answered with a 4xx or 5xx status.",
            self.http_errors.get().to_string(),
        );
        let _ = writeln!(
            s,
            "# HELP mcp_bridge_messages_total JSON-RPC messages relayed.\n# TYPE mcp_bridge_messages_total counter\n\
             mcp_bridge_messages_total{{direction=\"to_child\"}} {}\nmcp_bridge_messages_total{{direction=\"from_child\"}} {}",
            self.to_child.get(),
            self.from_child.get()
        );
        let name = "mcp_bridge_request_duration_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Time from a client request to the child's answer.\n# TYPE {name} histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.latency.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(s, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let count = self.latency.count.load(Ordering::Relaxed);
        let sum = self.latency.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            s,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.sessions.inc();
        m.to_child.inc();
        m.latency.observe(Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("mcp_bridge_sessions 1\n"));
        assert!(text.contains("mcp_bridge_messages_total{direction=\"to_child\"} 1\n"));
        assert!(text.contains("mcp_bridge_request_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("mcp_bridge_request_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(text.contains("mcp_bridge_request_duration_seconds_count 1\n"));
    }
}
