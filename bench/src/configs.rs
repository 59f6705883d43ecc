//! serve's configurations beyond `serve -- CMD`, each in front of the same stdio server: a
//! gateway file with three servers, the measured one reached by name (and an identical copy);
//! the same with a tool policy of 20 patterns and the audit log on, with each of the two alone,
//! and with `per-key` scope and a session key.
//! Then what each layer costs: the differences between their rows and the bare HTTP round trip.

use crate::gateway::free_port;
use crate::measure::Target;
use crate::paired::{Diff, Paired, signed};
use crate::report::Row;
use crate::targets::{BARE, RELAY, Tools, gateway_at};
use serde_json::{Value, json};
use std::fmt::Write;
use std::path::Path;

/// `serve -- CMD` on `/mcp`: what every configuration is compared with.
pub const PLAIN: &str = "mcp-bridge serve";
/// Three servers in a gateway file, the measured one at `/servers/bench/mcp`.
pub const BY_NAME: &str = "mcp-bridge serve --config (3 servers, by name)";
/// [`BY_NAME`] again, a second process with the same file: the A/A control, whose difference
/// from [`BY_NAME`] is what the method reports for two configurations that cost the same.
pub const TWIN: &str = "mcp-bridge serve --config (3 servers, by name), identical copy";
/// [`BY_NAME`] with a 20-pattern tool policy and the audit log.
pub const POLICY: &str = "mcp-bridge serve --config + policy + audit";
/// [`BY_NAME`] with the 20-pattern tool policy alone: the rules' part of [`POLICY`].
pub const RULES_ONLY: &str = "mcp-bridge serve --config + policy, no audit";
/// [`BY_NAME`] with the audit log alone: the audit line's part of [`POLICY`].
pub const AUDIT_ONLY: &str = "mcp-bridge serve --config + audit, no policy";
/// [`POLICY`] with `per-key` scope, driven with a session key.
pub const PER_KEY: &str = "mcp-bridge serve --config + per-key + policy + audit";

/// The server the driver talks to; the other two are there to be routed past.
const DRIVEN: &str = "bench";
/// The session key sent to the `per-key` configuration.
const KEY: &str = "bench-key";
/// The bridge's session key header (`Mcp-Bridge-Session-Key`, src/wire).
const KEY_HEADER: &str = "mcp-bridge-session-key";

/// Ten allow and ten deny patterns, none of them a plain `*`: `echo` matches no deny pattern
/// and only the last allow one, so every call is checked against all twenty.
const ALLOW: [&str; 10] = [
    "get-*",
    "list_*",
    "read[_-]*",
    "search?",
    "fetch*",
    "[a-d]*-tool",
    "docs.*",
    "query\\*",
    "stat?s",
    "echo",
];
const DENY: [&str; 10] = [
    "delete*", "drop_*", "*-admin", "exec", "shell*", "write_*", "rm", "kill?", "*secret*",
    "[!a-z]*",
];

/// The gateway-file targets, their files written to `dir`.
pub fn serve_configs(tools: &Tools, dir: &Path) -> Vec<Target> {
    // (row, file name, tool policy, audit log, per-key)
    let variants = [
        (BY_NAME, "by-name", false, false, false),
        (TWIN, "by-name-twin", false, false, false),
        (POLICY, "policy", true, true, false),
        (RULES_ONLY, "rules-only", true, false, false),
        (AUDIT_ONLY, "audit-only", false, true, false),
        (PER_KEY, "per-key", true, true, true),
    ];
    variants
        .into_iter()
        .map(|(name, slug, rules, audit, per_key)| {
            let file = dir.join(format!("{slug}.json"));
            let audit = audit.then(|| dir.join(format!("audit-{slug}.jsonl")));
            let text = gateway_file(tools, rules, audit.as_deref(), per_key);
            let cmd = std::fs::write(&file, text.to_string())
                .map_err(|e| format!("cannot write {}: {e}", file.display()))
                .and_then(|()| tools.bridge());
            let port = free_port().unwrap_or(0);
            let args = vec![
                "serve".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--max-sessions".into(),
                "1000".into(),
                "--config".into(),
                file.display().to_string(),
            ];
            let headers = if per_key {
                vec![(KEY_HEADER.into(), KEY.into())]
            } else {
                vec![]
            };
            let path = format!("/servers/{DRIVEN}/mcp");
            gateway_at(name, cmd, port, args, &path, headers)
        })
        .collect()
}

/// A gateway file (README: "The gateway file") with three entries of the stdio server.
fn gateway_file(tools: &Tools, rules: bool, audit: Option<&Path>, per_key: bool) -> Value {
    let server = tools.stdio_server();
    let entry = json!({"command": server.program, "args": server.args});
    let mut driven = serde_json::Map::new();
    let mut bridge = serde_json::Map::new();
    if rules {
        driven.insert(
            "policy".into(),
            json!({"tools": {"allow": ALLOW, "deny": DENY}}),
        );
    }
    if let Some(audit) = audit {
        bridge.insert("audit".into(), json!({ "file": audit }));
    }
    if per_key {
        driven.insert("scope".into(), json!("per-key"));
    }
    bridge.insert("servers".into(), json!({ DRIVEN: driven }));
    json!({
        "mcpServers": {"alpha": entry, DRIVEN: entry, "gamma": entry},
        "mcpBridge": bridge,
    })
}

/// The layer comparisons: (with the layer, without it, what the difference is).
pub const PAIRS: [(&str, &str, &str); 10] = [
    (PLAIN, BARE, "serve − bare HTTP round trip"),
    (
        RELAY,
        BARE,
        "bare relay to the stdio server − bare HTTP round trip",
    ),
    (PLAIN, RELAY, "serve − bare relay to the stdio server"),
    (
        BY_NAME,
        PLAIN,
        "routing by name (3 servers) − `serve -- CMD`",
    ),
    (
        POLICY,
        BY_NAME,
        "policy (20 patterns) + audit − routing by name",
    ),
    (
        RULES_ONLY,
        BY_NAME,
        "policy (20 patterns), no audit − routing by name",
    ),
    (AUDIT_ONLY, BY_NAME, "audit, no policy − routing by name"),
    (PER_KEY, POLICY, "per-key scope − policy + audit"),
    (PER_KEY, PLAIN, "per-key + policy + audit − `serve -- CMD`"),
    (
        BY_NAME,
        TWIN,
        "A/A control: routing by name − an identical copy of it",
    ),
];

/// Lines in a configuration's audit file (each request the gateway handled writes one).
pub fn audit_lines(dir: &Path, slug: &str) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join(format!("audit-{slug}.jsonl"))).ok()?;
    Some(text.lines().count())
}

/// What each layer of serve costs, from the serve table's rows: the differences in p50 and
/// p99, and calls/s as a share of the row compared with; then issue 16's serve targets and
/// issue 13's policy figure, from the paired run when there is one.
pub fn costs(rows: &[Row], paired: Option<&Paired>, dir: &Path, out: &mut String) {
    let find = |name: &str| rows.iter().find(|r| r.target.name == name).map(|r| &r.figs);
    let _ = writeln!(
        out,
        "| comparison | p50 µs | p99 µs | calls/s (32 callers), % of the second |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let diff = |a: Option<f64>, b: Option<f64>| {
        a.zip(b)
            .map_or("n/a".into(), |(a, b)| format!("{:+.0}", a - b))
    };
    for (a, b, what) in PAIRS {
        let (Some(fa), Some(fb)) = (find(a), find(b)) else {
            continue;
        };
        let share = fa
            .throughput
            .zip(fb.throughput)
            .map_or("n/a".into(), |(a, b)| format!("{:.0}%", 100.0 * a / b));
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {share} |",
            diff(fa.latency.map(|l| l.p50), fb.latency.map(|l| l.p50)),
            diff(fa.latency.map(|l| l.p99), fb.latency.map(|l| l.p99)),
        );
    }
    let _ = writeln!(out);
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "n/a",
    };
    // The paired run's figures when it ran: taken side by side, they are the ones above noise.
    let paired_diff = |a, b| paired.and_then(|p| p.diff(a, b));
    let sequential_diff = |a, b| {
        find(a)
            .and_then(|f| f.latency)
            .zip(find(b).and_then(|f| f.latency))
            .map(|(a, b)| a.p50 - b.p50)
    };
    let (above, how, holds) = match (paired, paired_diff(PLAIN, BARE)) {
        (Some(p), Some(d)) => {
            // Each start is a new placement of the processes: when the starts disagree, this
            // run does not settle the target.
            let starts = p.p50_diffs(PLAIN, BARE);
            let how = paired_note(&d, &starts);
            let ok = starts.iter().filter(|&&v| v <= 40.0).count();
            let holds = match ok {
                0 => verdict(Some(false)),
                n if n == starts.len() => verdict(Some(true)),
                _ => "unsettled (the starts disagree)",
            };
            (Some(d.p50), how, holds)
        }
        _ => {
            let above = sequential_diff(PLAIN, BARE);
            (
                above,
                " (rows above)".into(),
                verdict(above.map(|v| v <= 40.0)),
            )
        }
    };
    let _ = writeln!(
        out,
        "- issue 16: serve p50 at most 40 µs above a bare HTTP round trip: {} µs{how}, holds: {holds}",
        above.map_or("n/a".into(), |v| format!("{v:.0}")),
    );
    // What of that distance any gateway to a stdio server has here, and what is serve's own.
    if let (Some(p), Some(floor), Some(own)) =
        (paired, paired_diff(RELAY, BARE), paired_diff(PLAIN, RELAY))
    {
        let _ = writeln!(
            out,
            "- issue 16: of that, the floor of any HTTP gateway to a stdio server (bare relay − bare round trip): {:+.0} µs{}; serve's own part (serve − bare relay): {:+.0} µs{}",
            floor.p50,
            paired_note(&floor, &p.p50_diffs(RELAY, BARE)),
            own.p50,
            paired_note(&own, &p.p50_diffs(PLAIN, RELAY)),
        );
    }
    let paired_share = paired.and_then(|p| p.calls(PER_KEY).zip(p.calls(PLAIN)));
    let (share, how) = match paired_share {
        Some((a, b)) => (Some(100.0 * a / b), " (paired run below, medians)"),
        None => (
            find(PER_KEY)
                .and_then(|f| f.throughput)
                .zip(find(PLAIN).and_then(|f| f.throughput))
                .map(|(a, b)| 100.0 * a / b),
            " (rows above)",
        ),
    };
    let _ = writeln!(
        out,
        "- issue 16: per-key + policy + audit calls/s within 5% of serve: {}{how}, holds: {}",
        share.map_or("n/a".into(), |v| format!("{v:.0}%")),
        verdict(share.map(|v| v >= 95.0)),
    );
    // Two identical gateways are told apart by the method too (where the processes landed, in
    // which order they run): a layer is measurable only beyond that.
    let control = paired_diff(BY_NAME, TWIN);
    let beyond = |d: &Diff| match &control {
        Some(c) if d.ci.0 > c.ci.1 || d.ci.1 < c.ci.0 => "**yes**",
        Some(_) => "no",
        None => "n/a",
    };
    match paired.zip(paired_diff(POLICY, BY_NAME)) {
        Some((p, d)) => {
            let aa = control.as_ref().map_or(String::new(), |c| {
                format!(
                    "; A/A control (routing by name against an identical copy): median {:+.0} µs, 95% interval {:+.0} … {:+.0}",
                    c.median, c.ci.0, c.ci.1
                )
            });
            let apart = beyond(&d);
            let _ = writeln!(
                out,
                "- issue 13: a policy check (20 patterns) + an audit line, over routing by name (paired run below): median of paired differences {:+.0} µs, 95% interval {:+.0} … {:+.0} (p50 − p50: {:+.0} µs; each start {}){aa}; the interval excludes 0: {}; measurable beyond the A/A control (the two intervals are apart): {apart}",
                d.median,
                d.ci.0,
                d.ci.1,
                d.p50,
                signed(&p.p50_diffs(POLICY, BY_NAME)),
                if d.ci.0 > 0.0 || d.ci.1 < 0.0 {
                    "yes"
                } else {
                    "no"
                },
            );
            // Its two parts, each alone over routing by name.
            let part = |name| {
                paired_diff(name, BY_NAME).map_or("n/a".into(), |d: Diff| {
                    format!(
                        "{:+.0} µs (95% interval {:+.0} … {:+.0}; measurable beyond the A/A control: {})",
                        d.median,
                        d.ci.0,
                        d.ci.1,
                        beyond(&d)
                    )
                })
            };
            let _ = writeln!(
                out,
                "- issue 13, the two parts alone over routing by name (medians of paired differences): the policy check {}; the audit line {}",
                part(RULES_ONLY),
                part(AUDIT_ONLY),
            );
        }
        None => {
            let _ = writeln!(
                out,
                "- issue 13: a policy check (20 patterns) + an audit line at p50: {} µs (rows above, not paired: within their noise)",
                sequential_diff(POLICY, BY_NAME).map_or("n/a".into(), |v| format!("{v:+.0}")),
            );
        }
    }
    let lines = |slug| audit_lines(dir, slug).map_or("n/a".into(), |n| n.to_string());
    let _ = writeln!(
        out,
        "- audit lines written (one per request): policy + audit {}, audit alone {}, per-key + policy + audit {}",
        lines("policy"),
        lines("audit-only"),
        lines("per-key"),
    );
}

/// How a paired figure was taken: the median of the paired differences, its interval, and the
/// p50 difference in each start.
fn paired_note(d: &Diff, starts: &[f64]) -> String {
    format!(
        " (paired run below: p50 − p50; median of paired differences {:+.0} µs, 95% interval {:+.0} … {:+.0}; each start {})",
        d.median,
        d.ci.0,
        d.ci.1,
        signed(starts),
    )
}
