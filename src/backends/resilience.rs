//! Backpressure and breakers around every backend, whatever its kind: a client-side rate
//! limit (token bucket), a circuit breaker, and retries with backoff for reads only.
//!
//! [`Backends::call`](super::Backends::call) wraps each request of a step in the binding's
//! [`Resilience`], the same way for every kind, as tower layers wrap kube's client. A binding
//! tunes it with its `resilience:` field (kinds that do not declare one get the defaults).
//! State and counters are exported on /metrics (`mcp_circuit_breaker_state`, 0 closed, 1
//! open, 2 half-open, like the original server) and in the /readyz detail.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Effect, Error, ErrorKind};
use crate::units::parse_duration;

/// Rate limit, circuit breaker and retries for one binding.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResilienceSpec {
    /// Requests per second this server sends to the backend at most (a token bucket; calls
    /// over it wait for a token). 0 = no limit.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Requests that may go at once before the rate applies (the bucket's size). Default: the
    /// rate rounded up, at least 1.
    pub burst: Option<u32>,
    /// Consecutive failures (unreachable, timeout, server error) that open the circuit
    /// breaker; while open, calls fail at once without reaching the backend. 0 = no breaker.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// How long an open breaker refuses calls before letting one trial call through (success
    /// closes it, failure opens it again).
    #[serde(default = "default_reset")]
    pub reset: String,
    /// Retries of a failed read (unreachable or server error), with exponential backoff.
    /// Writes are never retried.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first retry's delay; each next retry waits twice as long.
    #[serde(default = "default_backoff")]
    pub backoff: String,
}

fn default_rate() -> f64 {
    50.0
}
fn default_failures() -> u32 {
    5
}
fn default_reset() -> String {
    "30s".into()
}
fn default_retries() -> u32 {
    2
}
fn default_backoff() -> String {
    "100ms".into()
}

impl Default for ResilienceSpec {
    fn default() -> Self {
        ResilienceSpec {
            rate: default_rate(),
            burst: None,
            failures: default_failures(),
            reset: default_reset(),
            retries: default_retries(),
            backoff: default_backoff(),
        }
    }
}

impl ResilienceSpec {
    /// True when every field has its default (bindings leave the field out when serialized).
    pub fn is_default(&self) -> bool {
        *self == ResilienceSpec::default()
    }
}

/// Breaker state, as exported (0 closed, 1 open, 2 half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast until the reset time.
    Open,
    /// One trial call is in flight; others fail fast.
    HalfOpen,
}

impl BreakerState {
    fn code(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[derive(Debug)]
struct Breaker {
    state: BreakerState,
    /// Consecutive failures while closed.
    failures: u32,
    /// When an open breaker lets a trial call through.
    retry_at: Option<Instant>,
    /// The failure that opened it (for the fast error).
    last_error: Option<String>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Counters for /metrics.
#[derive(Debug, Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    /// Time spent waiting for a token, microseconds.
    waited_us: AtomicU64,
}

/// The live rate limit, breaker and counters of one binding.
#[derive(Debug)]
pub struct Resilience {
    rate: f64,
    burst: f64,
    threshold: u32,
    reset: Duration,
    retries: u32,
    backoff: Duration,
    bucket: Mutex<Bucket>,
    breaker: Mutex<Breaker>,
    counters: Counters,
}

/// What a failure says about the backend's health: only these count toward the breaker and
/// are retried (a 404 or a refused request says nothing about the backend).
fn unhealthy(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unreachable | ErrorKind::Timeout | ErrorKind::Upstream)
}

/// Failures worth retrying: a timeout already used the whole budget, so it is not retried.
fn retriable(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unreachable | ErrorKind::Upstream)
}

impl Resilience {
    /// Build from a spec; durations are checked here.
    pub fn new(spec: &ResilienceSpec) -> Result<Resilience, String> {
        let dur = |field: &str, s: &str| {
            parse_duration(s)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("resilience.{field}: invalid duration `{s}` (e.g. 30s, 500ms)"))
        };
        if !(spec.rate >= 0.0 && spec.rate.is_finite()) {
            return Err(format!("resilience.rate: must be a number >= 0, got {}", spec.rate));
        }
        let burst = spec.burst.map(f64::from).unwrap_or(spec.rate.ceil()).max(1.0);
        Ok(Resilience {
            rate: spec.rate,
            burst,
            threshold: spec.failures,
            reset: dur("reset", &spec.reset)?,
            retries: spec.retries,
            backoff: dur("backoff", &spec.backoff)?,
            bucket: Mutex::new(Bucket { tokens: burst, last: Instant::now() }),
            breaker: Mutex::new(Breaker { state: BreakerState::Closed, failures: 0, retry_at: None, last_error: None }),
            counters: Counters::default(),
        })
    }

    /// Run `attempt` under the rate limit and the breaker, retrying reads.
    pub async fn run<F, Fut>(&self, backend: &str, effect: Effect, mut attempt: F) -> Result<Value, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Value, Error>>,
    {
        let retries = if effect == Effect::Read { self.retries } else { 0 };
        let mut tried = 0;
        loop {
            self.admit(backend)?;
            self.throttle().await;
            let result = attempt().await;
            self.record(&result);
            match result {
                Err(e) if tried < retries && retriable(e.kind) && self.state() == BreakerState::Closed => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(self.backoff * 2u32.saturating_pow(tried)).await;
                    tried += 1;
                }
                other => return other,
            }
        }
    }

    /// Refuse at once while the breaker is open (or a trial call is in flight); move an open
    /// breaker whose time is up to half-open and let this call be the trial.
    fn admit(&self, backend: &str) -> Result<(), Error> {
        if self.threshold == 0 {
            return Ok(());
        }
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match b.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open if b.retry_at.is_some_and(|t| now >= t) => {
                b.state = BreakerState::HalfOpen;
                Ok(())
            }
            state => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                let wait = b.retry_at.map(|t| t.saturating_duration_since(now)).unwrap_or_default();
                let at = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let when = if state == BreakerState::HalfOpen {
                    "a trial call is in flight now".to_string()
                } else {
                    format!(
                        "it lets a trial call through at {} (in {} s)",
                        at.format("%H:%M:%S UTC"),
                        wait.as_secs() + 1
                    )
                };
                Err(Error::new(
                    backend,
                    ErrorKind::Unavailable,
                    format!(
                        "circuit breaker open after {} consecutive failures (last: {}); nothing was sent, {when}",
                        self.threshold,
                        b.last_error.as_deref().unwrap_or("unknown"),
                    ),
                ))
            }
        }
    }

    /// Wait for a token of the rate limit.
    async fn throttle(&self) {
        if self.rate <= 0.0 {
            return;
        }
        let wait = {
            let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * self.rate).min(self.burst);
            b.last = now;
            b.tokens -= 1.0;
            // A negative balance is this call's place in the queue.
            if b.tokens >= 0.0 { None } else { Some(Duration::from_secs_f64(-b.tokens / self.rate)) }
        };
        if let Some(w) = wait {
            self.counters.throttled.fetch_add(1, Ordering::Relaxed);
            self.counters.waited_us.fetch_add(w.as_micros() as u64, Ordering::Relaxed);
            tokio::time::sleep(w).await;
        }
    }

    fn record(&self, result: &Result<Value, Error>) {
        let failed = match result {
            Ok(_) => None,
            Err(e) if unhealthy(e.kind) => Some(e),
            Err(_) => None,
        };
        let c = if failed.is_some() { &self.counters.failed } else { &self.counters.ok };
        c.fetch_add(1, Ordering::Relaxed);
        if self.threshold == 0 {
            return;
        }
        let mut b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        match failed {
            None => {
                b.state = BreakerState::Closed;
                b.failures = 0;
                b.retry_at = None;
            }
            Some(e) => {
                b.failures = b.failures.saturating_add(1);
                if b.state == BreakerState::HalfOpen || b.failures >= self.threshold {
                    b.state = BreakerState::Open;
                    b.retry_at = Some(Instant::now() + self.reset);
                    b.last_error = Some(crate::clip::clip(&e.message, crate::clip::QUOTE_MAX));
                    b.failures = b.failures.max(self.threshold);
                }
            }
        }
    }

    /// The breaker's state now (an open breaker past its reset time still reads open until
    /// the next call tries).
    pub fn state(&self) -> BreakerState {
        self.breaker.lock().unwrap_or_else(|e| e.into_inner()).state
    }

    /// The /readyz detail of this binding.
    pub fn status(&self) -> Value {
        let b = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let retry_in = b.retry_at.filter(|_| b.state == BreakerState::Open).map(|t| {
            let wait = t.saturating_duration_since(Instant::now());
            format!("{}s", wait.as_secs())
        });
        json!({
            "breaker": b.state.name(),
            "consecutiveFailures": b.failures,
            "retryIn": retry_in,
            "lastError": if b.state == BreakerState::Closed { None } else { b.last_error.clone() },
            "rateLimit": if self.rate > 0.0 { json!({"perSecond": self.rate, "burst": self.burst}) } else { Value::Null },
        })
    }
}

/// Render the metrics of every binding (Prometheus text format).
pub fn render_metrics<'a>(bindings: impl Iterator<Item = (&'a String, &'a Resilience)> + Clone) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Resilience) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (n, r) in bindings.clone() {
            let _ = writeln!(out, "{name}{{backend=\"{n}\"}} {}", value(r));
        }
    };
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
    family("mcp_circuit_breaker_state", "gauge", "Circuit breaker by backend: 0 closed, 1 open, 2 half-open.", &|r| {
        r.state().code().to_string()
    });
    family("mcp_backend_requests_total", "counter", "Requests sent to the backend (retries included).", &|r| {
        (r.counters.ok.load(Ordering::Relaxed) + r.counters.failed.load(Ordering::Relaxed)).to_string()
    });
    family(
        "mcp_backend_failures_total",
        "counter",
        "Requests that failed in a way that counts toward the breaker (unreachable, timeout, server error).",
        &|r| load(&r.counters.failed),
    );
    family("mcp_backend_rejected_total", "counter", "Calls refused at once by an open circuit breaker.", &|r| {
        load(&r.counters.rejected)
    });
    family("mcp_backend_retries_total", "counter", "Reads retried after a failure.", &|r| load(&r.counters.retries));
    family("mcp_backend_throttled_total", "counter", "Requests that waited for the client-side rate limit.", &|r| {
        load(&r.counters.throttled)
    });
    family("mcp_backend_throttle_wait_seconds_total", "counter", "Time requests waited for the rate limit.", &|r| {
        format!("{}", r.counters.waited_us.load(Ordering::Relaxed) as f64 / 1e6)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(failures: u32, reset: &str, retries: u32) -> ResilienceSpec {
        ResilienceSpec {
            rate: 0.0,
            failures,
            reset: reset.into(),
            retries,
            backoff: "1ms".into(),
            ..Default::default()
        }
    }

    fn fail(kind: ErrorKind) -> Result<Value, Error> {
        Err(Error::new("b", kind, "boom"))
    }

    #[tokio::test]
    async fn five_consecutive_failures_open_the_breaker_and_calls_fail_fast_naming_the_backend() {
        let r = Resilience::new(&spec(5, "30s", 0)).unwrap();
        let calls = std::sync::atomic::AtomicU32::new(0);
        for _ in 0..5 {
            let e = r
                .run("prom", Effect::Read, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    fail(ErrorKind::Unreachable)
                })
                .await
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unreachable);
        }
        assert_eq!(r.state(), BreakerState::Open);
        let e = r
            .run("prom", Effect::Read, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Value::Null)
            })
            .await
            .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 5, "the open breaker sent nothing");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert_eq!(e.backend, "prom");
        assert!(e.message.contains("circuit breaker open after 5 consecutive failures"), "{}", e.message);
        assert!(e.message.contains("(in 30 s)"), "{}", e.message);
        assert!(
            render_metrics([(&"prom".to_string(), &r)].into_iter())
                .contains("mcp_circuit_breaker_state{backend=\"prom\"} 1")
        );
    }

    #[tokio::test]
    async fn an_open_breaker_lets_one_trial_through_after_the_reset_and_closes_on_success() {
        let r = Resilience::new(&spec(2, "50ms", 0)).unwrap();
        for _ in 0..2 {
            let _ = r.run("b", Effect::Read, || async { fail(ErrorKind::Timeout) }).await;
        }
        assert_eq!(r.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(60)).await;
        r.run("b", Effect::Read, || async { Ok(json!(1)) }).await.unwrap();
        assert_eq!(r.state(), BreakerState::Closed);
        // a failed trial opens it again at once
        for _ in 0..2 {
            let _ = r.run("b", Effect::Read, || async { fail(ErrorKind::Upstream) }).await;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        let _ = r.run("b", Effect::Read, || async { fail(ErrorKind::Upstream) }).await;
        assert_eq!(r.state(), BreakerState::Open);
    }

    #[tokio::test]
    async fn errors_that_say_nothing_about_the_backend_neither_open_the_breaker_nor_retry() {
        let r = Resilience::new(&spec(2, "30s", 3)).unwrap();
        let calls = std::sync::atomic::AtomicU32::new(0);
        for _ in 0..4 {
            let _ = r
                .run("b", Effect::Read, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    fail(ErrorKind::NotFound)
                })
                .await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert_eq!(r.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn reads_are_retried_with_backoff_and_writes_never() {
        let r = Resilience::new(&spec(0, "30s", 2)).unwrap();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let flaky = || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 { fail(ErrorKind::Unreachable) } else { Ok(json!("ok")) }
        };
        assert_eq!(r.run("b", Effect::Read, flaky).await.unwrap(), json!("ok"));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        calls.store(0, Ordering::SeqCst);
        assert!(r.run("b", Effect::Write, flaky).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a write is sent once");
        calls.store(0, Ordering::SeqCst);
        assert!(r.run("b", Effect::SideEffectFree, flaky).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "only plain reads are retried");
        calls.store(0, Ordering::SeqCst);
        assert!(r.run("b", Effect::Store, flaky).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a store write (an SQL insert, a workflow start) is sent once");
    }

    #[tokio::test]
    async fn the_rate_limit_spaces_requests_beyond_the_burst() {
        let r = Resilience::new(&ResilienceSpec { rate: 100.0, burst: Some(2), ..spec(0, "30s", 0) }).unwrap();
        let t0 = Instant::now();
        for _ in 0..6 {
            r.run("b", Effect::Read, || async { Ok(Value::Null) }).await.unwrap();
        }
        // 2 at once, then 4 at 10 ms each
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(35), "{took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
        // 4 waited, fewer only if the machine was so slow that tokens refilled meanwhile
        let throttled = r.counters.throttled.load(Ordering::Relaxed);
        assert!((1..=4).contains(&throttled), "{throttled}");
        let text = render_metrics([(&"b".to_string(), &r)].into_iter());
        assert!(text.contains(&format!("mcp_backend_throttled_total{{backend=\"b\"}} {throttled}")), "{text}");
    }

    #[test]
    fn invalid_durations_are_reported_with_their_field() {
        let e = Resilience::new(&ResilienceSpec { reset: "soon".into(), ..Default::default() }).unwrap_err();
        assert!(e.contains("resilience.reset"), "{e}");
    }
}
