//! Rate limits per client: a token bucket of `calls` per `per` (burst = `calls`), set in
//! `mcpBridge.rateLimit` (every client) or a client's own `rateLimit`. Every JSON-RPC request a
//! client sends costs one call; notifications and responses are free.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::clients::Clients;
use super::{ConfigError, member, object, only_keys};
use crate::jsonrpc::{self, Id};

/// `{"calls": 60, "per": "1m"}`: at most `calls` requests per `per`, in bursts of up to `calls`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests per interval, and the largest burst.
    pub calls: u32,
    /// The interval.
    pub per: Duration,
}

impl Rate {
    /// Parses a rate at JSON path `path`. `per` is `500ms`, `10s`, `1m` or `1h`.
    pub fn parse(v: &Value, path: &str) -> Result<Rate, ConfigError> {
        let obj = object(v, path)?;
        only_keys(obj, path, &["calls", "per"])?;
        let calls = obj
            .get("calls")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                ConfigError::new(
                    member(path, "calls"),
                    "expected a whole number of calls above 0",
                )
            })?;
        let per_path = member(path, "per");
        let per = obj.get("per").and_then(Value::as_str).ok_or_else(|| {
            ConfigError::new(
                &per_path,
                "expected an interval such as \"1m\", \"10s\" or \"500ms\"",
            )
        })?;
        let per = interval(per).map_err(|m| ConfigError::new(&per_path, m))?;
        Ok(Rate { calls, per })
    }
}

fn interval(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not an interval (try \"1m\", \"10s\", \"500ms\")"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("unknown unit in `{s}` (use ms, s, m or h)")),
    };
    if d.is_zero() {
        return Err("the interval must be longer than zero".into());
    }
    Ok(d)
}

/// A request refused by the rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// When the next call will pass.
    pub retry_after: Duration,
}

impl Limited {
    /// The JSON-RPC error answering request `id` (its raw JSON text, kept byte for byte):
    /// code -32000 (the bridge's own errors), `data.reason` = `rate-limited`,
    /// `data.retryAfterMs`, and a message that says when to retry.
    pub fn response(&self, id: &str) -> Bytes {
        let ms = self.retry_after.as_millis().max(1) as u64;
        jsonrpc::error_response(
            Some(&Id(id.into())),
            jsonrpc::BRIDGE_ERROR,
            &format!(
                "rate limit reached for this client: retry in {:.1} s",
                ms as f64 / 1000.0
            ),
            Some(serde_json::json!({
                "source": "mcp-bridge",
                "reason": "rate-limited",
                "retryAfterMs": ms,
                "mayHaveRun": false,
            })),
        )
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u64,
}

#[derive(Default)]
struct State {
    default: Option<Rate>,
    rates: HashMap<Arc<str>, Rate>,
    buckets: HashMap<Arc<str>, Bucket>,
}

/// The buckets of every client. Shared by all sessions (`Arc<RateLimiter>`); one short lock
/// per request.
#[derive(Default)]
pub struct RateLimiter {
    state: Mutex<State>,
    limited: AtomicU64,
}

impl RateLimiter {
    /// Limits from `mcpBridge.rateLimit` (`default`, for clients without their own) and each
    /// client's `rateLimit`.
    pub fn new(default: Option<Rate>, clients: &Clients) -> RateLimiter {
        let limiter = RateLimiter::default();
        limiter.reconfigure(default, clients);
        limiter
    }

    /// Applies reloaded settings. Buckets are kept, so a reload does not hand out a fresh burst;
    /// a bucket above a new, smaller burst is cut down to it.
    pub fn reconfigure(&self, default: Option<Rate>, clients: &Clients) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.default = default;
        state.rates = clients
            .iter()
            .filter_map(|c| c.rate_limit.map(|r| (c.name.clone(), r)))
            .collect();
        let State {
            rates,
            buckets,
            default,
        } = &mut *state;
        buckets.retain(|name, b| match rates.get(name).or(default.as_ref()) {
            Some(rate) => {
                b.tokens = b.tokens.min(f64::from(rate.calls));
                true
            }
            None => false,
        });
    }

    /// Takes one call from `client`'s bucket, or says when to retry.
    pub fn check(&self, client: &str) -> Result<(), Limited> {
        self.check_at(client, Instant::now())
    }

    /// [`check`](Self::check) at a given time (tests drive the clock).
    pub fn check_at(&self, client: &str, now: Instant) -> Result<(), Limited> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(rate) = state.rates.get(client).or(state.default.as_ref()).copied() else {
            return Ok(());
        };
        let burst = f64::from(rate.calls);
        let per_call = rate.per.as_secs_f64() / burst;
        let bucket = match state.buckets.get_mut(client) {
            Some(b) => b,
            None => state.buckets.entry(client.into()).or_insert(Bucket {
                tokens: burst,
                last: now,
                limited: 0,
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed / per_call).min(burst);
        bucket.last = now;
        // The epsilon absorbs float rounding: a caller who waited exactly `retry_after` passes.
        if bucket.tokens >= 1.0 - 1e-9 {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0);
            return Ok(());
        }
        bucket.limited += 1;
        self.limited.fetch_add(1, Ordering::Relaxed);
        let wait_ms = ((1.0 - bucket.tokens) * per_call * 1000.0).ceil().max(1.0);
        Err(Limited {
            retry_after: Duration::from_millis(wait_ms as u64),
        })
    }

    /// Requests refused so far, all clients together (for /metrics).
    pub fn limited_total(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Requests refused so far per client that has been limited at least once (for /metrics).
    pub fn limited_by_client(&self) -> Vec<(Arc<str>, u64)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = state
            .buckets
            .iter()
            .filter(|(_, b)| b.limited > 0)
            .map(|(n, b)| (n.clone(), b.limited))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rate(calls: u32, per: &str) -> Rate {
        Rate::parse(&json!({"calls": calls, "per": per}), "r").unwrap()
    }

    fn clients(v: Value) -> Clients {
        Clients::parse(&v, "mcpBridge.clients", &|_| Some("tok-a".into())).unwrap()
    }

    #[test]
    fn the_call_after_the_burst_waits_and_a_later_one_passes() {
        let limiter = RateLimiter::new(Some(rate(3, "1s")), &Clients::default());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("a", t0), Ok(()));
        }
        let limited = limiter.check_at("a", t0).unwrap_err();
        assert!(limited.retry_after > Duration::from_millis(300));
        assert!(
            limited.retry_after <= Duration::from_millis(334),
            "{limited:?}"
        );
        // Another client has its own bucket.
        assert_eq!(limiter.check_at("b", t0), Ok(()));
        assert_eq!(limiter.check_at("a", t0 + limited.retry_after), Ok(()));
        assert!(limiter.check_at("a", t0 + limited.retry_after).is_err());
        assert_eq!(limiter.check_at("a", t0 + Duration::from_secs(5)), Ok(()));
        assert_eq!(limiter.limited_total(), 2);
        assert_eq!(limiter.limited_by_client(), vec![(Arc::from("a"), 2)]);
    }

    #[test]
    fn a_clients_own_rate_overrides_the_default_and_no_rate_means_unlimited() {
        let table = clients(json!({
            "slow": {"tokenEnv": "A", "servers": "*", "rateLimit": {"calls": 1, "per": "1h"}}
        }));
        let limiter = RateLimiter::new(None, &table);
        let t0 = Instant::now();
        assert!(limiter.check_at("slow", t0).is_ok());
        let l = limiter.check_at("slow", t0).unwrap_err();
        assert!(l.retry_after > Duration::from_secs(3599));
        for _ in 0..1000 {
            assert!(limiter.check_at("other", t0).is_ok());
        }
    }

    #[test]
    fn a_reload_keeps_the_bucket_and_cuts_it_to_the_new_burst() {
        let limiter = RateLimiter::new(Some(rate(10, "1m")), &Clients::default());
        let t0 = Instant::now();
        assert!(limiter.check_at("a", t0).is_ok());
        limiter.reconfigure(Some(rate(2, "1m")), &Clients::default());
        assert!(limiter.check_at("a", t0).is_ok());
        assert!(limiter.check_at("a", t0).is_ok());
        assert!(limiter.check_at("a", t0).is_err());
        limiter.reconfigure(None, &Clients::default());
        assert!(limiter.check_at("a", t0).is_ok());
    }

    #[test]
    fn the_error_says_when_to_retry() {
        let l = Limited {
            retry_after: Duration::from_millis(1500),
        };
        let v: Value = serde_json::from_slice(&l.response("\"x-1\"")).unwrap();
        assert_eq!(v["id"], "x-1");
        assert_eq!(v["error"]["code"], -32000);
        assert_eq!(v["error"]["data"]["reason"], "rate-limited");
        assert_eq!(v["error"]["data"]["retryAfterMs"], 1500);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("retry in 1.5 s")
        );
        assert!(l.response("7").starts_with(br#"{"jsonrpc":"2.0","id":7,"#));
    }

    #[test]
    fn bad_rates_name_their_path() {
        let e = Rate::parse(&json!({"calls": 0, "per": "1m"}), "mcpBridge.rateLimit").unwrap_err();
        assert_eq!(e.path, "mcpBridge.rateLimit.calls");
        let e = Rate::parse(&json!({"calls": 5, "per": "1 minute"}), "x").unwrap_err();
        assert_eq!(e.path, "x.per");
        let e = Rate::parse(&json!({"calls": 5, "per": "0s"}), "x").unwrap_err();
        assert!(e.message.contains("longer than zero"));
        assert_eq!(rate(5, "500ms").per, Duration::from_millis(500));
        assert_eq!(rate(5, "2h").per, Duration::from_secs(7200));
    }
}
