//! Chaos soak (issue 10): many agents, each a real `mcp-bridge connect`, through one `serve` in
//! front of the Python stdio fixture, for `MCP_BRIDGE_SOAK_SECS` seconds (default 45) on
//! loopback. Each agent mixes small and large (1-5 MiB) echoes, slow calls, cancels, tools that
//! crash their child, and abrupt exits of its `connect` (the connection cut mid-request). It
//! asserts that every request not cancelled got exactly one answer (the server's or a bridge
//! error), that no answer carried another agent's tag, and that serve's RSS and open file
//! descriptors come back near their baseline once the agents have left.
//!
//! `MCP_BRIDGE_SOAK_AGENTS` (default 8) sets the agents, `MCP_BRIDGE_SOAK_SEED` the random seed
//! (printed, for replaying a failure).

mod common;

use common::connect::Connect;
use common::serve::{Serve, have_python3};
use common::tool;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long one answer may take under load (a 5 MiB echo on a busy two-core machine).
const ANSWER_WAIT: Duration = Duration::from_secs(60);

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: enough randomness for choosing actions, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// serve's resident memory (KiB) and open file descriptors, from /proc.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (rss, fds)
}

/// What one agent did.
#[derive(Default, Debug)]
struct Tally {
    requests: u64,
    answers: u64,
    bridge_errors: u64,
    cancels: u64,
    crashes: u64,
    cuts: u64,
    large_bytes: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.answers += o.answers;
        self.bridge_errors += o.bridge_errors;
        self.cancels += o.cancels;
        self.crashes += o.crashes;
        self.cuts += o.cuts;
        self.large_bytes += o.large_bytes;
    }
}

/// What an answer to a request must show.
enum Expect {
    /// An echo of exactly this text (or a bridge error).
    Echo(String),
    /// Any result or error (slow calls, crashes).
    Any,
}

/// Checks one answer against what was asked; returns whether it is a bridge error.
fn check(agent: &str, msg: &Value, expect: &Expect) -> bool {
    if let Some(err) = msg.get("error") {
        assert!(
            err["code"].is_i64() && err["message"].is_string(),
            "{agent}: {msg:.300}"
        );
        return true;
    }
    if let Expect::Echo(text) = expect {
        let got = msg["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(
            got == text,
            "{agent}: an echo came back with other data ({:.80} instead of {:.80})",
            got,
            text
        );
    }
    false
}

/// One agent: connects, runs batches of requests until `deadline`, reconnecting after a cut.
async fn agent(n: u64, url: String, deadline: Instant, seed: u64) -> Tally {
    let mut rng = Rng(seed ^ (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut t = Tally::default();
    let mut life = 0;
    while Instant::now() < deadline {
        life += 1;
        let name = format!("agent{n}-life{life}");
        let mut b = Connect::start_with(&[&url], &[("RUST_LOG", "mcp_bridge=warn")]);
        b.initialize("2025-06-18").await;
        let mut got: HashMap<i64, u32> = HashMap::new();
        let mut owed: HashMap<i64, Expect> = HashMap::new();
        let mut cancelled: Vec<i64> = Vec::new();
        let mut seq = 0i64;
        let mut cut = false;
        while Instant::now() < deadline && !cut {
            for _ in 0..=rng.below(4) {
                seq += 1;
                let tag = format!("{name}-r{seq}");
                let roll = rng.below(100);
                let (params, expect) = match roll {
                    0..=54 => (tool("echo", json!({"text": tag})), Expect::Echo(tag)),
                    55..=61 => {
                        let size = (1 << 20) + rng.below(4 << 20) as usize;
                        t.large_bytes += size as u64;
                        let text = format!("{tag}:{}", "x".repeat(size));
                        (tool("echo", json!({"text": text})), Expect::Echo(text))
                    }
                    62..=79 => {
                        let secs = 0.1 + rng.below(8) as f64 / 10.0;
                        (tool("slow", json!({"seconds": secs})), Expect::Any)
                    }
                    80..=91 => {
                        cancelled.push(seq);
                        (tool("slow", json!({"seconds": 2.0})), Expect::Any)
                    }
                    _ => {
                        t.crashes += 1;
                        (tool("crash", json!({})), Expect::Any)
                    }
                };
                b.send(json!({"jsonrpc":"2.0","id": seq,"method":"tools/call","params": params}))
                    .await;
                t.requests += 1;
                if cancelled.last() == Some(&seq) {
                    t.cancels += 1;
                    b.send(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId": seq,"reason":"soak"}}))
                        .await;
                } else {
                    owed.insert(seq, expect);
                }
            }
            if rng.below(25) == 0 {
                // The sandbox dies mid-request: its connections are cut, its session left behind.
                cut = true;
                t.cuts += 1;
                break;
            }
            while !owed.is_empty() {
                let msg = b.recv_within(ANSWER_WAIT).await.unwrap_or_else(|| {
                    panic!(
                        "{name}: stdout ended with {} requests unanswered",
                        owed.len()
                    )
                });
                if msg.get("method").is_some() {
                    continue; // progress and other server messages
                }
                let id = msg["id"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{name}: {msg:.300}"));
                let count = got.entry(id).or_default();
                *count += 1;
                assert_eq!(*count, 1, "{name}: request {id} answered twice");
                t.answers += 1;
                match owed.remove(&id) {
                    Some(expect) => t.bridge_errors += u64::from(check(&name, &msg, &expect)),
                    None => assert!(cancelled.contains(&id), "{name}: answer to unknown id {id}"),
                }
            }
        }
        if cut {
            drop(b); // killed: SIGKILL, no DELETE
            continue;
        }
        b.close_stdin();
        // Late answers to cancelled requests may still come; none may be a second one.
        while let Some(msg) = b.recv_within(ANSWER_WAIT).await {
            if let Some(id) = msg["id"].as_i64().filter(|_| msg.get("method").is_none()) {
                assert!(cancelled.contains(&id), "{name}: late answer to {id}");
                let count = got.entry(id).or_default();
                *count += 1;
                assert_eq!(*count, 1, "{name}: request {id} answered twice");
            }
        }
        b.wait_exit(common::WAIT).await;
    }
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn chaos_soak() {
    if !have_python3() {
        return;
    }
    let secs = env_num("MCP_BRIDGE_SOAK_SECS", 45);
    let agents = env_num("MCP_BRIDGE_SOAK_AGENTS", 8);
    let seed = env_num("MCP_BRIDGE_SOAK_SEED", {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).unwrap();
        u64::from_le_bytes(b)
    });
    eprintln!("soak: {agents} agents for {secs} s, seed {seed}");
    // A short session TTL, so that sessions of cut agents (no DELETE) end within the test.
    let serve = Serve::start(&["--session-ttl", "3s", "--max-sessions", "200"]);
    let pid = serve.child.id();

    // Baseline after one agent has come and gone (lazy allocations are made by then).
    let mut b = Connect::start_with(&[&serve.mcp()], &[("RUST_LOG", "mcp_bridge=warn")]);
    b.initialize("2025-06-18").await;
    b.close_stdin();
    b.wait_exit(common::WAIT).await;
    let (base_rss, base_fds) = settle(pid, None).await;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..agents {
        tasks.spawn(agent(n, serve.mcp(), deadline, seed));
    }
    let mut peak = (0, 0);
    let mut total = Tally::default();
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(r) => total.add(&r.expect("an agent failed")),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let (rss, fds) = usage(pid);
                peak = (peak.0.max(rss), peak.1.max(fds));
            }
        }
    }
    let ran = started.elapsed();
    let (rss, fds) = settle(pid, Some((base_rss, base_fds))).await;
    eprintln!(
        "soak: {ran:.0?}, {total:?}; serve RSS {base_rss} KiB before, {} KiB peak, {rss} KiB after; fds {base_fds} before, {} peak, {fds} after",
        peak.0, peak.1
    );
    assert!(total.requests > 0 && total.answers > 0);
    assert!(total.requests >= total.answers);
}

/// Waits (bounded) for serve's descriptors and memory to settle after sessions end, and returns
/// them; with a baseline, until they are near it (fails the test if they stay above).
async fn settle(pid: u32, base: Option<(u64, usize)>) -> (u64, usize) {
    let limit = Instant::now() + Duration::from_secs(30);
    let mut last = usage(pid);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = usage(pid);
        let near = match base {
            // Memory the allocator keeps is allowed; a leak per session or request is not.
            Some((rss, fds)) => now.1 <= fds + 2 && now.0 <= rss + 96 * 1024,
            None => now.1 == last.1,
        };
        if near {
            return now;
        }
        assert!(
            Instant::now() < limit,
            "serve did not come back to its baseline {base:?}: now {now:?}"
        );
        last = now;
    }
}
