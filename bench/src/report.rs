//! The markdown report: figures per target, added latency over the direct connection, ratios of
//! each peer to mcp-bridge, and which of issue 5's targets hold.

use crate::measure::{Figures, Target};
use std::fmt::Write;
use std::time::Duration;

/// A measured target.
pub struct Row {
    pub target: Target,
    pub figs: Figures,
}

const MIB: f64 = 1024.0 * 1024.0;

fn ms(d: Option<Duration>) -> String {
    d.map_or("n/a".into(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}

fn us(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0}"))
}

fn mib(v: Option<u64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1}", v as f64 / MIB))
}

fn find<'a>(rows: &'a [Row], name: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.target.name == name)
}

/// The transport in a target's name: `Streamable HTTP` or `legacy SSE`.
fn transport(name: &str) -> &str {
    name.rsplit_once('(')
        .map_or("", |(_, t)| t.trim_end_matches(')'))
}

fn payload(f: &Figures, label: &str) -> Option<Duration> {
    f.payloads
        .iter()
        .find(|p| p.label == label)
        .and_then(|p| p.outcome.as_ref().ok().copied())
}

/// The bridges' table: one row per target, then the peer ratios and the targets check.
pub fn connect(rows: &[Row], labels: &[String], out: &mut String) {
    let _ = writeln!(
        out,
        "| target | startup ms | spawn→1st request ms | p50 µs | p90 µs | p99 µs | max µs | added p50 µs | added p99 µs | calls/s (32 callers) | % of direct |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let f = &r.figs;
        let direct = find(rows, &format!("direct ({})", transport(&r.target.name)));
        let d = direct.and_then(|d| d.figs.latency);
        let l = f.latency;
        let added = |pick: fn(&crate::measure::Latency) -> f64| match (l, d) {
            (Some(l), Some(d)) => Some(pick(&l) - pick(&d)),
            _ => None,
        };
        let share = match (f.throughput, direct.and_then(|d| d.figs.throughput)) {
            (Some(t), Some(d)) => format!("{:.0}%", 100.0 * t / d),
            _ => "n/a".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target.name,
            ms(f.startup),
            ms(f.first_post),
            us(l.map(|l| l.p50)),
            us(l.map(|l| l.p90)),
            us(l.map(|l| l.p99)),
            us(l.map(|l| l.max)),
            us(added(|l| l.p50)),
            us(added(|l| l.p99)),
            f.throughput.map_or("n/a".into(), |t| format!("{t:.0}")),
            share,
        );
    }
    let _ = writeln!(out);
    let _ = write!(out, "| target |");
    for l in labels {
        let _ = write!(out, " {l} ms |");
    }
    let _ = writeln!(
        out,
        " peak RSS after latency MiB | peak RSS after 10 MiB MiB |"
    );
    let _ = writeln!(out, "|---|{}---:|---:|", "---:|".repeat(labels.len()));
    for r in rows {
        let _ = write!(out, "| {} |", r.target.name);
        for l in labels {
            let cell = match r.figs.payloads.iter().find(|p| &p.label == l) {
                Some(p) => match &p.outcome {
                    Ok(d) => ms(Some(*d)),
                    Err(_) => "failed".into(),
                },
                None => "n/a".into(),
            };
            let _ = write!(out, " {cell} |");
        }
        let _ = writeln!(
            out,
            " {} | {} |",
            mib(r.figs.rss_latency),
            mib(r.figs.rss_big)
        );
    }
    notes(rows, out);
}

fn notes(rows: &[Row], out: &mut String) {
    let failed: Vec<&Row> = rows.iter().filter(|r| r.figs.error.is_some()).collect();
    if failed.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nn/a and failures:");
    for r in failed {
        let mut e = r.figs.error.clone().unwrap_or_default();
        e.truncate(400);
        let _ = writeln!(out, "- {}: {}", r.target.name, e.replace('\n', " "));
    }
}

/// How many times worse each peer is than mcp-bridge on the same transport (above 1: mcp-bridge
/// wins). Returns whether mcp-bridge beat every peer on every figure measured for both (None:
/// nothing to compare).
pub fn ratios(rows: &[Row], labels: &[String], out: &mut String) -> Option<bool> {
    let _ = write!(out, "| peer ÷ mcp-bridge | startup | p50 | p99 | calls/s |");
    for l in labels {
        let _ = write!(out, " {l} |");
    }
    let _ = writeln!(out, " RSS latency | RSS 10 MiB |");
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|{}---:|---:|",
        "---:|".repeat(labels.len())
    );
    let mut all = None;
    for peer in rows.iter().filter(|r| {
        !r.target.name.starts_with("direct") && !r.target.name.starts_with("mcp-bridge")
    }) {
        let t = transport(&peer.target.name);
        let Some(ours) = find(rows, &format!("mcp-bridge connect ({t})")) else {
            continue;
        };
        let (p, o) = (&peer.figs, &ours.figs);
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let mut cells = vec![
            ratio(secs(p.startup), secs(o.startup)),
            ratio(p.latency.map(|l| l.p50), o.latency.map(|l| l.p50)),
            ratio(p.latency.map(|l| l.p99), o.latency.map(|l| l.p99)),
            ratio(o.throughput, p.throughput),
        ];
        for l in labels {
            cells.push(ratio(secs(payload(p, l)), secs(payload(o, l))));
        }
        let bytes = |v: Option<u64>| v.map(|v| v as f64);
        cells.push(ratio(bytes(p.rss_latency), bytes(o.rss_latency)));
        cells.push(ratio(bytes(p.rss_big), bytes(o.rss_big)));
        let _ = write!(out, "| {} |", peer.target.name);
        for (text, won) in cells {
            if let Some(won) = won {
                all = Some(all.unwrap_or(true) && won);
            }
            let _ = write!(out, " {text} |");
        }
        let _ = writeln!(out);
    }
    all
}

/// `theirs / ours` as `3.2×`, and whether ours is better (None when either is missing).
fn ratio(theirs: Option<f64>, ours: Option<f64>) -> (String, Option<bool>) {
    match (theirs, ours) {
        (Some(t), Some(o)) if o > 0.0 => {
            let r = t / o;
            (format!("{r:.1}×"), Some(r > 1.0))
        }
        _ => ("n/a".into(), None),
    }
}

/// Issue 5's targets for `mcp-bridge connect`, each with the figure and whether it holds.
pub fn targets(rows: &[Row], beats_peers: Option<bool>, big: usize, out: &mut String) {
    let _ = writeln!(out, "| target | figure | holds |");
    let _ = writeln!(out, "|---|---|---|");
    let mut line = |what: String, fig: String, ok: Option<bool>| {
        let verdict = match ok {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(out, "| {what} | {fig} | {verdict} |");
    };
    for t in ["Streamable HTTP", "legacy SSE"] {
        let ours = find(rows, &format!("mcp-bridge connect ({t})")).map(|r| &r.figs);
        let direct = find(rows, &format!("direct ({t})")).map(|r| &r.figs);
        let lat = ours
            .and_then(|f| f.latency)
            .zip(direct.and_then(|f| f.latency));
        let p50 = lat.map(|(o, d)| o.p50 - d.p50);
        let p99 = lat.map(|(o, d)| o.p99 - d.p99);
        line(
            format!("{t}: added p50 ≤ 60 µs"),
            us(p50),
            p50.map(|v| v <= 60.0),
        );
        line(
            format!("{t}: added p99 ≤ 300 µs"),
            us(p99),
            p99.map(|v| v <= 300.0),
        );
        let share = ours
            .and_then(|f| f.throughput)
            .zip(direct.and_then(|f| f.throughput))
            .map(|(o, d)| 100.0 * o / d);
        line(
            format!("{t}: throughput ≥ 90% of direct"),
            share.map_or("n/a".into(), |s| format!("{s:.0}%")),
            share.map(|s| s >= 90.0),
        );
        let rss = ours.and_then(|f| f.rss_latency);
        line(
            format!("{t}: peak RSS after latency ≤ 10 MiB"),
            format!("{} MiB", mib(rss)),
            rss.map(|v| v as f64 <= 10.0 * MIB),
        );
        let rss = ours.and_then(|f| f.rss_big);
        let limit = 3.0 * big as f64 + 10.0 * MIB;
        line(
            format!(
                "{t}: peak RSS after {} ≤ {:.0} MiB",
                crate::measure::human_size(big),
                limit / MIB
            ),
            format!("{} MiB", mib(rss)),
            rss.map(|v| v as f64 <= limit),
        );
        let first = ours.and_then(|f| f.first_post);
        line(
            format!("{t}: spawn to first request ≤ 10 ms"),
            format!("{} ms", ms(first)),
            first.map(|d| d <= Duration::from_millis(10)),
        );
    }
    line(
        "every peer beaten on every figure".into(),
        "see ratios".into(),
        beats_peers,
    );
}

/// The gateways' table: each against the stdio server driven directly.
pub fn serve(rows: &[Row], big_label: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "| target | startup ms | p50 µs | p99 µs | added p50 µs | added p99 µs | calls/s (32 callers) | {big_label} ms | peak RSS after latency MiB | peak RSS after 10 MiB MiB | per idle session: gateway KiB | per idle session: with child KiB |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let direct = rows.first().and_then(|r| r.figs.latency);
    for r in rows {
        let f = &r.figs;
        let l = f.latency;
        let added = |pick: fn(&crate::measure::Latency) -> f64| {
            l.zip(direct).map(|(l, d)| pick(&l) - pick(&d))
        };
        let kib = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.0}", v / 1024.0));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.target.name,
            ms(f.startup),
            us(l.map(|l| l.p50)),
            us(l.map(|l| l.p99)),
            us(added(|l| l.p50)),
            us(added(|l| l.p99)),
            f.throughput.map_or("n/a".into(), |t| format!("{t:.0}")),
            ms(payload(f, big_label)),
            mib(f.rss_latency),
            mib(f.rss_big),
            kib(f.per_session.map(|p| p.0)),
            kib(f.per_session.map(|p| p.1)),
        );
    }
    notes(rows, out);
}
