//! `mcp-bridge doctor`: diagnoses a connection to an MCP server the way a person would, one step
//! at a time (URL, name, socket, TLS, HTTP, auth, Host/Origin, transport, `initialize`, lists,
//! latency), each with a verdict and, on failure, what to do about it. With no URL it is a
//! self-test: the built-in example server behind `serve` on a temporary Unix socket, reached
//! through `connect`. The report goes to stdout (text, or one JSON document with `--json`).

mod http;
mod mcp;
mod net;
mod selftest;

use crate::cli::parse_duration;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `mcp-bridge doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The MCP endpoint to check, e.g. http://127.0.0.1:9000/mcp. Without it: a self-test of
    /// the built-in example server behind `serve` and `connect`.
    pub url: Option<String>,

    /// Reach the server through this Unix domain socket (the URL gives path and Host).
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,

    /// Extra HTTP header, `Name: value`, as for `connect` (`${VAR}` is expanded). Repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Extra PEM CA certificate(s) to trust, as for `connect`.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,

    /// How many pings the latency line measures.
    #[arg(long, value_name = "N", default_value = "20", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub pings: u32,

    /// How long each step may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// A step's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The step worked.
    Pass,
    /// The step found a problem; `detail` says which.
    Fail,
    /// Not run: it depends on a step that failed, or does not apply.
    Skip,
}

/// One step of the diagnosis.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// A short stable name (`url`, `resolve`, `connect`, `tls`, `auth`, …) for scripts.
    pub name: &'static str,
    /// The step's verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Skip,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// The whole diagnosis.
#[derive(Debug, Serialize)]
pub struct Report {
    /// What was checked (the URL, and the socket if any).
    pub target: String,
    /// True when no step failed.
    pub ok: bool,
    /// Every step, in the order run.
    pub checks: Vec<Check>,
}

/// What the steps share.
pub(crate) struct Target {
    pub url: url::Url,
    pub unix: Option<PathBuf>,
    /// The `-H` flags as given, for the `connect` child.
    pub header_specs: Vec<String>,
    pub headers: reqwest::header::HeaderMap,
    pub ca_cert: Option<PathBuf>,
    pub timeout: Duration,
    pub pings: u32,
}

/// Runs every step, prints the report, and says whether all passed.
pub async fn run(args: DoctorArgs) -> anyhow::Result<bool> {
    let report = match args.url.clone() {
        Some(url) => diagnose(&args, &url).await,
        None => selftest::run(&args).await,
    };
    let text = match args.json {
        true => {
            let mut json = serde_json::to_vec_pretty(&report)?;
            json.push(b'\n');
            json
        }
        false => render(&report).into_bytes(),
    };
    crate::cli_out::write_stdout(&text)?;
    Ok(report.ok)
}

/// Diagnoses `url` (through `args.unix` when given).
pub(crate) async fn diagnose(args: &DoctorArgs, url: &str) -> Report {
    let mut checks = Vec::new();
    let target_name = match &args.unix {
        Some(p) => format!("{url} via unix:{}", p.display()),
        None => url.to_owned(),
    };
    if let Some(target) = net::check_url(args, url, &mut checks) {
        run_steps(&target, &mut checks).await;
    }
    finish(target_name, checks)
}

/// Every step after the URL, stopping at the first failure (later steps are listed as skipped).
async fn run_steps(t: &Target, checks: &mut Vec<Check>) {
    let ok = match &t.unix {
        Some(path) => net::check_socket(path, checks).await,
        None => net::check_tcp(t, checks).await,
    };
    let ok = ok && http::check(t, checks).await;
    let ok = ok && mcp::check(t, checks).await;
    if !ok {
        for name in [
            "http",
            "auth",
            "host",
            "transport",
            "initialize",
            "lists",
            "latency",
        ] {
            if !checks.iter().any(|c| c.name == name) {
                checks.push(Check::skip(name, "not run: an earlier step failed"));
            }
        }
    }
}

fn finish(target: String, checks: Vec<Check>) -> Report {
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    Report { target, ok, checks }
}

/// The report for a person.
pub fn render(report: &Report) -> String {
    let mut out = format!("mcp-bridge doctor: {}\n", report.target);
    for c in &report.checks {
        let verdict = match c.status {
            Status::Pass => "ok  ",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        out.push_str(&format!("  {verdict}  {:<10}  {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("        fix: {fix}\n"));
        }
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    match failed {
        0 => out.push_str("all checks passed\n"),
        1 => out.push_str("1 check failed\n"),
        n => out.push_str(&format!("{n} checks failed\n")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_verdicts_and_fixes() {
        let report = finish(
            "http://x/mcp".into(),
            vec![
                Check::pass("url", "fine"),
                Check::fail("connect", "refused", "start serve"),
                Check::skip("http", "not run"),
            ],
        );
        assert!(!report.ok);
        let text = render(&report);
        assert!(text.contains("FAIL  connect") && text.contains("fix: start serve"));
        assert!(text.ends_with("1 check failed\n"));
    }
}
