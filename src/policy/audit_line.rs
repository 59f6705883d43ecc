//! The audit record format: one JSON object per line, members in this order, absent values
//! as `null` so every line has the same shape:
//! `time` (RFC 3339 UTC, milliseconds), `client`, `peerUid`, `peerPid`, `session`, `key`,
//! `server`, `method`, `name` (tool, prompt or resource URI), `durationMs`, `outcome` (`ok`,
//! `error`, `denied`, `bridge-error`), `code` (the error code, for `error`), `reason` (for
//! `denied` and `bridge-error`), `bytesIn`, `bytesOut`; then `arguments` and `result` only when
//! arguments are logged. A line `{"time":…,"event":"audit-dropped","dropped":N}` says N records
//! were lost to a full queue.

use std::borrow::Cow;

use bytes::Bytes;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use super::audit::{Outcome, Record};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    time: &'a str,
    client: Option<&'a str>,
    peer_uid: Option<u32>,
    peer_pid: Option<u32>,
    session: Option<&'a str>,
    key: Option<&'a str>,
    server: Option<&'a str>,
    method: &'a str,
    name: Option<&'a str>,
    duration_ms: f64,
    outcome: &'static str,
    code: Option<i64>,
    reason: Option<&'a str>,
    bytes_in: u64,
    bytes_out: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

impl Outcome {
    /// Largest answer whose outcome is read by the writer thread ([`Outcome::Answer`]).
    pub const DEFERRED_MAX: usize = 2048;

    /// The outcome of `answer`: read now when it is large, else by the writer thread.
    pub fn deferred(answer: &Bytes) -> Outcome {
        if answer.len() <= Self::DEFERRED_MAX {
            Outcome::Answer(answer.clone())
        } else {
            Outcome::of_answer(answer)
        }
    }

    /// The outcome an answer stands for: `ok` for a result, `error` with the code for a
    /// server's error, `bridge-error` or `denied` for an error the bridge made (its `error.data`
    /// names `mcp-bridge` as the source). Reads the whole answer: call it where the answer is
    /// parsed anyway, or accept one more pass over its bytes.
    pub fn of_answer(answer: &[u8]) -> Outcome {
        #[derive(serde::Deserialize)]
        struct Answer {
            error: Option<Error>,
        }
        #[derive(serde::Deserialize)]
        struct Error {
            code: Option<i64>,
            data: Option<Data>,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            source: Option<String>,
            reason: Option<String>,
        }
        let error = match serde_json::from_slice::<Answer>(answer) {
            Ok(Answer { error: None }) => return Outcome::Ok,
            Ok(Answer { error: Some(e) }) => e,
            Err(_) => {
                return Outcome::BridgeError {
                    reason: "unreadable-answer".into(),
                };
            }
        };
        match error.data {
            Some(Data {
                source: Some(s),
                reason,
            }) if s == "mcp-bridge" => match reason.as_deref() {
                Some("policy-denied") => Outcome::Denied {
                    reason: "policy-denied",
                },
                Some("rate-limited") => Outcome::Denied {
                    reason: "rate-limited",
                },
                other => Outcome::BridgeError {
                    reason: other.unwrap_or("bridge-error").to_owned(),
                },
            },
            _ => Outcome::Error {
                code: error.code.unwrap_or(0),
            },
        }
    }
}

/// One record as a line, newline included, appended to `out`.
pub(super) fn render_into(r: &Record, redact: &[String], out: &mut Vec<u8>) {
    let read;
    let outcome = match &r.outcome {
        Outcome::Answer(answer) => {
            read = Outcome::of_answer(answer);
            &read
        }
        other => other,
    };
    let (outcome, code, reason): (_, _, Option<Cow<'_, str>>) = match outcome {
        Outcome::Ok => ("ok", None, None),
        Outcome::Error { code } => ("error", Some(*code), None),
        Outcome::Denied { reason } => ("denied", None, Some((*reason).into())),
        Outcome::BridgeError { reason } => ("bridge-error", None, Some(reason.as_str().into())),
        // Read just above.
        Outcome::Answer(_) => ("ok", None, None),
    };
    let arguments = r.request.as_deref().map(|raw| {
        let params = member(raw, "params");
        let mut v = match params {
            Some(Value::Object(mut p)) if p.contains_key("arguments") => {
                p.remove("arguments").unwrap_or_default()
            }
            Some(other) => other,
            None => Value::Null,
        };
        scrub(&mut v, redact);
        v
    });
    let result = r.answer.as_deref().map(|raw| {
        let mut v = member(raw, "result")
            .or_else(|| member(raw, "error"))
            .unwrap_or(Value::Null);
        scrub(&mut v, redact);
        v
    });
    let stamp = Stamp::new(r.time);
    let line = Line {
        time: stamp.as_str(),
        client: r.client.as_deref(),
        peer_uid: r.peer_uid,
        peer_pid: r.peer_pid,
        session: r.session.as_deref(),
        key: r.key.as_deref(),
        server: r.server.as_deref(),
        method: &r.method,
        name: r.name.as_deref(),
        duration_ms: (r.duration.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        outcome,
        code,
        reason: reason.as_deref(),
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        arguments,
        result,
    };
    serde_json::to_writer(&mut *out, &line).expect("an audit line serialises");
    out.push(b'\n');
}

/// The line saying `n` records were dropped.
pub(super) fn dropped_line(time: SystemTime, n: u64) -> Vec<u8> {
    let mut out = serde_json::to_vec(&serde_json::json!({
        "time": rfc3339(time),
        "event": "audit-dropped",
        "dropped": n,
    }))
    .expect("a JSON value serialises");
    out.push(b'\n');
    out
}

fn member(raw: &[u8], key: &str) -> Option<Value> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(mut m)) => m.remove(key),
        _ => None,
    }
}

/// Replaces, at any depth, the value of every object member whose key is in `keys`
/// (lower-case; matched case-insensitively).
pub(super) fn scrub(v: &mut Value, keys: &[String]) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if keys.iter().any(|r| r.eq_ignore_ascii_case(k)) {
                    *val = Value::String("[redacted]".into());
                } else {
                    scrub(val, keys);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| scrub(i, keys)),
        _ => {}
    }
}

/// `2026-11-30T17:13:32.123Z`.
pub(super) fn rfc3339(t: SystemTime) -> String {
    Stamp::new(t).as_str().to_owned()
}

/// A time as RFC 3339 UTC with milliseconds, `2026-11-30T17:13:32.123Z`, formatted without
/// allocating (the audit writer stamps every record).
struct Stamp([u8; 24]);

impl Stamp {
    fn new(t: SystemTime) -> Stamp {
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil(days as i64);
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        // Years past 9999 are out of RFC 3339's range: show them as 9999.
        put(0, 4, y.clamp(0, 9999) as u64);
        put(5, 2, u64::from(m));
        put(8, 2, u64::from(d));
        put(11, 2, rem / 3600);
        put(14, 2, rem % 3600 / 60);
        put(17, 2, rem % 60);
        put(20, 3, u64::from(since.subsec_millis()));
        Stamp(b)
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a stamp is ASCII digits and punctuation")
    }
}

// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The keys of every audit record (README's format), for the tests that check a record whole.
#[cfg(test)]
pub(crate) const RECORD_FIELDS: &[&str] = &[
    "time",
    "client",
    "peerUid",
    "peerPid",
    "session",
    "key",
    "server",
    "method",
    "name",
    "durationMs",
    "outcome",
    "code",
    "reason",
    "bytesIn",
    "bytesOut",
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| {
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s) + Duration::from_millis(ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_796_058_812, 123), "2026-11-30T17:13:32.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn outcomes_are_read_from_answers() {
        let of = |s: &str| Outcome::of_answer(s.as_bytes());
        assert_eq!(
            of(r#"{"jsonrpc":"2.0","id":1,"result":{"error":1}}"#),
            Outcome::Ok
        );
        assert_eq!(
            of(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#),
            Outcome::Error { code: -32601 }
        );
        let denied = crate::policy::check::Denied {
            subject: crate::policy::check::Subject::Tool,
            name: "x".into(),
            refusal: crate::policy::rules::Refusal::Denied,
        };
        assert_eq!(
            Outcome::of_answer(&denied.response("1")),
            Outcome::Denied {
                reason: "policy-denied"
            }
        );
        let limited = crate::policy::ratelimit::Limited {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(
            Outcome::of_answer(&limited.response("1")),
            Outcome::Denied {
                reason: "rate-limited"
            }
        );
        assert_eq!(
            of(
                r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x","data":{"source":"mcp-bridge","reason":"child-gone"}}}"#
            ),
            Outcome::BridgeError {
                reason: "child-gone".into()
            }
        );
    }

    #[test]
    fn redaction_is_deep_and_case_insensitive() {
        let mut v = serde_json::json!({
            "Password": "p", "user": "u",
            "nested": [{"API_KEY": 1, "ok": {"authorization": {"x": 1}}}]
        });
        scrub(
            &mut v,
            &["password".into(), "api_key".into(), "authorization".into()],
        );
        assert_eq!(
            v,
            serde_json::json!({
                "Password": "[redacted]", "user": "u",
                "nested": [{"API_KEY": "[redacted]", "ok": {"authorization": "[redacted]"}}]
            })
        );
    }
}
