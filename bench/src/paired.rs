//! The paired measurement of serve's layers. Every configuration (the bare HTTP round trip,
//! `serve -- CMD`, by name, + policy + audit, + per-key) is started at once and sampled in
//! turns, so each difference between two of them is taken under the same machine conditions
//! instead of minutes apart; and that [`STARTS`] times, with fresh processes. Latency: rounds in
//! which every target, in an order shuffled each round, gets a short turn of small calls; per
//! layer pair, the difference of the p50s and the median of the paired differences (the same
//! call of the same round), with their spread. Throughput: each target's concurrent phase in
//! turns, once per start; the median per target.

use crate::configs::{self, PAIRS, PLAIN};
use crate::measure::{self, Conn, INIT_PARAMS, Settings, Target};
use crate::targets::{BARE, RELAY};
use anyhow::Context;
use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

/// Timed calls each target gets in a row in its turn of a round, after one untimed call. A
/// target's threads sleep through the others' turns, and its first calls after that run cold
/// (measured: the first of a turn ~40% slower than the eighth, and single calls in turn 30–60%
/// above the sequential rows), which would inflate every difference by the cold cost of the
/// extra code; 8 warm calls keep the figures comparable with the serve table's, and a round
/// (5 targets × 9 calls) still takes only a few ms, far shorter than the noise being cancelled.
const TURN: usize = 8;
/// How many times the targets are started afresh: each start is a new scheduler placement of
/// every process, which pairing within one start cannot cancel. Each start gives a third of
/// the latency calls and one throughput phase per target (its figure is the median of these).
const STARTS: usize = 3;

/// What the paired run measured. Targets that could not be started are left out, with why.
pub struct Paired {
    /// The targets measured.
    pub names: Vec<String>,
    /// Per target, the latency of each timed call, µs; index k is the same round and place in
    /// the turn for every target.
    pub latency: Vec<Vec<f64>>,
    /// Per target, calls/s of each throughput round.
    pub throughput: Vec<Vec<f64>>,
    /// `name: why` for each target left out.
    pub skipped: Vec<String>,
}

/// A layer pair's latency difference (first − second), µs.
#[derive(Clone, Copy, Debug)]
pub struct Diff {
    /// p50 of the first minus p50 of the second.
    pub p50: f64,
    /// Median of the paired differences (call k of one against call k of the other).
    pub median: f64,
    /// An approximate 95% interval for that median (the sign test's order statistics).
    pub ci: (f64, f64),
    /// Interquartile range of the per-round differences: how much a single call varies.
    pub iqr: (f64, f64),
}

impl Paired {
    fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The target's p50 latency, µs.
    pub fn p50(&self, name: &str) -> Option<f64> {
        self.index(name)
            .map(|i| quantile(&sorted(&self.latency[i]), 0.5))
    }

    /// The target's p50 in each start, µs.
    pub fn p50s(&self, name: &str) -> Vec<f64> {
        let Some(l) = self.index(name).map(|i| &self.latency[i]) else {
            return vec![];
        };
        let chunk = (l.len() / STARTS).max(1);
        l.chunks(chunk).map(|c| quantile(&sorted(c), 0.5)).collect()
    }

    /// p50 of `a` − p50 of `b` in each start, µs.
    pub fn p50_diffs(&self, a: &str, b: &str) -> Vec<f64> {
        let (a, b) = (self.p50s(a), self.p50s(b));
        a.iter().zip(&b).map(|(a, b)| a - b).collect()
    }

    fn p99(&self, name: &str) -> Option<f64> {
        self.index(name)
            .map(|i| quantile(&sorted(&self.latency[i]), 0.99))
    }

    /// The target's median calls/s over the throughput rounds.
    pub fn calls(&self, name: &str) -> Option<f64> {
        self.index(name)
            .map(|i| quantile(&sorted(&self.throughput[i]), 0.5))
    }

    /// `a` − `b`, when both were measured.
    pub fn diff(&self, a: &str, b: &str) -> Option<Diff> {
        let (ia, ib) = (self.index(a)?, self.index(b)?);
        let d: Vec<f64> = self.latency[ia]
            .iter()
            .zip(&self.latency[ib])
            .map(|(x, y)| x - y)
            .collect();
        let d = sorted(&d);
        let n = d.len() as f64;
        // The median's rank is Binomial(n, ½): ±1.96 standard deviations (√n / 2) of ranks.
        let lo = ((n / 2.0 - 0.98 * n.sqrt()).floor().max(0.0)) as usize;
        let hi = ((n / 2.0 + 0.98 * n.sqrt()).ceil() as usize).min(d.len().saturating_sub(1));
        Some(Diff {
            p50: self.p50(a)? - self.p50(b)?,
            median: quantile(&d, 0.5),
            ci: (*d.get(lo)?, *d.get(hi)?),
            iqr: (quantile(&d, 0.25), quantile(&d, 0.75)),
        })
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank quantile of sorted values (NaN when empty), as `Latency::from_samples` takes it.
fn quantile(s: &[f64], q: f64) -> f64 {
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    s[i]
}

/// A fixed-seed xorshift: the same visiting orders in every run, no dependency.
struct Shuffle(u64);

impl Shuffle {
    /// 0..n in a fresh random order (Fisher–Yates).
    fn order(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            v.swap(i, (self.0 % (i as u64 + 1)) as usize);
        }
        v
    }
}

/// Runs the paired measurement, [`STARTS`] times over fresh targets from `make` (their files and
/// logs in `dir`), bounded by the settings' per-target limit.
pub async fn run(
    make: impl Fn() -> Vec<Target>,
    s: &Settings,
    dir: &Path,
) -> Result<Paired, String> {
    tokio::time::timeout(s.target_limit, measure_all(make, s, dir))
        .await
        .map_err(|_| format!("timed out after {:?}", s.target_limit))?
        .map_err(|e| format!("{e:#}"))
}

async fn measure_all(
    make: impl Fn() -> Vec<Target>,
    s: &Settings,
    dir: &Path,
) -> anyhow::Result<Paired> {
    let mut p = Paired {
        names: vec![],
        latency: vec![],
        throughput: vec![],
        skipped: vec![],
    };
    let mut shuffle = Shuffle(0x9e37_79b9_7f4a_7c15);
    for round in 0..STARTS {
        let mut conns: Vec<Conn> = Vec::new();
        for t in make() {
            // The first start decides which targets take part; later ones must start them all.
            if round > 0 && !p.names.contains(&t.name) {
                continue;
            }
            let log = dir.join(format!("{}-{round}.stderr", measure::slug(&t.name)));
            let conn = match &t.unavailable {
                Some(why) => Err(anyhow::anyhow!("{why}")),
                None => start(&t, &log).await,
            };
            match conn {
                Ok(c) => conns.push(c),
                Err(e) if round == 0 => p.skipped.push(format!("{}: {e:#}", t.name)),
                Err(e) => return Err(e.context(format!("{}, start {}", t.name, round + 1))),
            }
            if round == 0 && conns.len() > p.names.len() {
                p.names.push(t.name.clone());
                p.latency.push(vec![]);
                p.throughput.push(vec![]);
            }
        }
        anyhow::ensure!(
            conns.len() == p.names.len(),
            "start {}: {} of the {} targets",
            round + 1,
            conns.len(),
            p.names.len()
        );
        let call = async |i: usize| {
            let c = &conns[i].client;
            measure::small_call(c)
                .await
                .with_context(|| p.names[i].clone())
        };
        for _ in 0..s.warmup {
            for i in shuffle.order(conns.len()) {
                call(i).await?;
            }
        }
        let mut timed = vec![vec![]; conns.len()];
        for _ in 0..s.latency_calls.div_ceil(TURN * STARTS) {
            for i in shuffle.order(conns.len()) {
                // Not timed: the target's threads have slept through the others' turns.
                call(i).await?;
                for _ in 0..TURN {
                    let t = Instant::now();
                    call(i).await?;
                    timed[i].push(t.elapsed().as_nanos() as f64 / 1000.0);
                }
            }
        }
        let mut rates = vec![0.0; conns.len()];
        for i in shuffle.order(conns.len()) {
            rates[i] = measure::throughput(&conns[i].client, s)
                .await
                .with_context(|| p.names[i].clone())?;
        }
        for (i, (t, r)) in timed.into_iter().zip(rates).enumerate() {
            p.latency[i].extend(t);
            p.throughput[i].push(r);
        }
    }
    Ok(p)
}

/// Starts a target and opens its MCP session.
async fn start(t: &Target, log: &Path) -> anyhow::Result<Conn> {
    let conn = measure::open(&t.via, log).await?;
    let init = conn.client.request("initialize", INIT_PARAMS).await?;
    measure::expect_result(&init, "initialize")?;
    conn.client.notify("notifications/initialized").await?;
    Ok(conn)
}

/// The paired section of the report: per target, then per layer pair.
pub fn report(p: &Result<Paired, String>, s: &Settings, dir: &Path, out: &mut String) {
    let p = match p {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(out, "The paired run failed: {e}");
            return;
        }
    };
    let _ = writeln!(
        out,
        "All started at once, {STARTS} times afresh. Each start: {} warm-up rounds of one call each; {} rounds in which each target, in a shuffled order, gets one untimed and {TURN} timed small calls; then each target's {} callers × at least {} calls, for at least {:.1} s, in turns. Latency figures pool the {STARTS} starts.\n",
        s.warmup,
        s.latency_calls.div_ceil(TURN * STARTS),
        s.callers,
        s.calls_per_caller,
        s.throughput_time.as_secs_f64(),
    );
    let _ = writeln!(
        out,
        "| target | p50 µs | p50 each start µs | p99 µs | calls/s, median of {STARTS} | calls/s, each start | % of `serve -- CMD` |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---|---:|");
    let us = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.0}"));
    for (i, name) in p.names.iter().enumerate() {
        let list = |v: &[f64]| {
            let v: Vec<String> = v.iter().map(|r| format!("{r:.0}")).collect();
            v.join(", ")
        };
        let share = p
            .calls(name)
            .zip(p.calls(PLAIN))
            .map_or("n/a".into(), |(a, b)| format!("{:.0}%", 100.0 * a / b));
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {share} |",
            us(p.p50(name)),
            list(&p.p50s(name)),
            us(p.p99(name)),
            us(p.calls(name)),
            list(&p.throughput[i]),
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| comparison (first − second) | p50 − p50 µs | p50 − p50 each start µs | median of paired differences µs | its 95% interval µs | paired differences, 25th–75th percentile µs | calls/s, % of the second |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|---:|");
    for (a, b, what) in PAIRS {
        let Some(d) = p.diff(a, b) else { continue };
        let share = p
            .calls(a)
            .zip(p.calls(b))
            .map_or("n/a".into(), |(a, b)| format!("{:.0}%", 100.0 * a / b));
        let _ = writeln!(
            out,
            "| {what} | {:+.0} | {} | {:+.0} | {:+.0} … {:+.0} | {:+.0} … {:+.0} | {share} |",
            d.p50,
            signed(&p.p50_diffs(a, b)),
            d.median,
            d.ci.0,
            d.ci.1,
            d.iqr.0,
            d.iqr.1,
        );
    }
    let lines = |slug| configs::audit_lines(dir, slug).map_or("n/a".into(), |n| n.to_string());
    let _ = writeln!(
        out,
        "\n- audit lines written in the paired run: policy + audit {}, audit alone {}, per-key + policy + audit {}",
        lines("policy"),
        lines("audit-only"),
        lines("per-key"),
    );
    for skip in &p.skipped {
        let _ = writeln!(out, "- left out: {}", skip.replace('\n', " "));
    }
}

/// `+3, -1, +12`: figures in µs, signed, for a cell.
pub fn signed(v: &[f64]) -> String {
    let v: Vec<String> = v.iter().map(|v| format!("{v:+.0}")).collect();
    v.join(", ")
}

/// Whether `name` is one of the paired run's targets.
pub fn is_layer(name: &str) -> bool {
    name == BARE || name == RELAY || PAIRS.iter().any(|(a, b, _)| *a == name || *b == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paired(a: Vec<f64>, b: Vec<f64>) -> Paired {
        Paired {
            names: vec!["a".into(), "b".into()],
            latency: vec![a, b],
            throughput: vec![vec![3.0, 1.0, 2.0], vec![4.0, 4.0, 4.0]],
            skipped: vec![],
        }
    }

    #[test]
    fn paired_differences_cancel_what_both_share() {
        // b follows a's drift exactly, 10 µs lower: every paired difference is 10.
        let a: Vec<f64> = (0..100).map(|k| 100.0 + (k % 7) as f64 * 50.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x - 10.0).collect();
        let d = paired(a, b).diff("a", "b").unwrap();
        assert_eq!((d.median, d.ci, d.iqr), (10.0, (10.0, 10.0), (10.0, 10.0)));
    }

    #[test]
    fn interval_and_medians() {
        let a: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = paired(a, vec![0.0; 100]);
        let d = p.diff("a", "b").unwrap();
        assert_eq!((d.p50, d.median, d.iqr), (50.0, 50.0, (25.0, 75.0)));
        // ranks 50 ± 9.8: values 41 and 61 (1-based values of 0-based ranks 40 and 60).
        assert_eq!(d.ci, (41.0, 61.0));
        assert_eq!(p.calls("a"), Some(2.0));
        assert!(p.diff("a", "missing").is_none());
    }

    #[test]
    fn shuffle_visits_each_once() {
        let mut s = Shuffle(1);
        for _ in 0..50 {
            let mut o = s.order(5);
            o.sort();
            assert_eq!(o, vec![0, 1, 2, 3, 4]);
        }
    }
}
