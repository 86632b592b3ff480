//! Read caches: a TTL cache with single-flight per binding, opt-in (`cache:` on a binding).
//!
//! Only reads are cached ([`Effect::Read`](super::Effect::Read)): a write or a query that is
//! merely free of side effects always reaches the backend. Concurrent calls for the same
//! request wait for one request to the backend (single-flight) instead of each sending their
//! own; failures are never cached. Entries are keyed by the rendered request AND the caller's
//! identity ([`crate::identity::current`]), so one caller's view is never served to another;
//! a binding that acts with each caller's own credentials may refuse caching altogether
//! ([`Kind::cacheable`](super::Kind::cacheable)). The age of a cached answer is reported with
//! the call (the answer's `_meta`), so a model or user can tell how stale it is.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;
use crate::units::parse_duration;

/// A binding's read cache.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSpec {
    /// How long an answer is served from the cache (the original server cached health for
    /// 10 s).
    #[serde(default = "default_ttl")]
    pub ttl: String,
    /// TTLs by class of request, overriding `ttl` (for kubernetes the class is the kind; the
    /// original server cached nodes for 30 s).
    #[serde(default = "default_ttls")]
    pub ttls: IndexMap<String, String>,
    /// Answers kept at most; the least used go first.
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
}

fn default_ttl() -> String {
    "10s".into()
}
fn default_ttls() -> IndexMap<String, String> {
    IndexMap::from([("Node".to_string(), "30s".to_string())])
}
fn default_max_entries() -> u64 {
    64
}

impl Default for CacheSpec {
    fn default() -> Self {
        CacheSpec { ttl: default_ttl(), ttls: default_ttls(), max_entries: default_max_entries() }
    }
}

/// A cached answer and when it was fetched.
#[derive(Clone)]
struct Entry {
    value: Arc<Value>,
    fetched: Instant,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _now: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The live cache of one binding.
pub struct Cache {
    ttl: Duration,
    ttls: IndexMap<String, Duration>,
    entries: moka::future::Cache<String, Entry>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("ttl", &self.ttl).field("entries", &self.entries.entry_count()).finish()
    }
}

/// An answer from [`Cache::get_or_fetch`]: the value, and its age when it came from the cache.
pub struct Cached {
    pub value: Arc<Value>,
    /// None: fetched by this call.
    pub age: Option<Duration>,
    /// The value is held by a read cache (later calls may get the same value).
    pub shared: bool,
}

impl Cache {
    /// Build from a spec; durations are checked here.
    pub fn new(spec: &CacheSpec) -> Result<Cache, String> {
        let dur = |field: &str, s: &str| {
            parse_duration(s)
                .filter(|d| *d > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("cache.{field}: invalid duration `{s}` (e.g. 10s, 500ms)"))
        };
        let ttls = spec
            .ttls
            .iter()
            .map(|(k, v)| Ok((k.clone(), dur(&format!("ttls.{k}"), v)?)))
            .collect::<Result<_, String>>()?;
        Ok(Cache {
            ttl: dur("ttl", &spec.ttl)?,
            ttls,
            entries: moka::future::Cache::builder()
                .max_capacity(spec.max_entries.max(1))
                .expire_after(PerEntryTtl)
                .build(),
        })
    }

    /// The key of a request for the current caller: the rendered request and who asks.
    pub fn key(request: &impl std::fmt::Debug) -> String {
        let who = crate::identity::current()
            .map(|i| serde_json::to_string(&*i).unwrap_or_else(|_| i.subject.clone()))
            .unwrap_or_default();
        // A binding acting with the caller's own Kubernetes token (identity: caller-token) has
        // no validated identity to key by: the forwarded credentials are the caller.
        let creds: Vec<String> = crate::identity::forwarded()
            .map(|f| {
                f.0.iter()
                    .filter(|(k, _)| k.as_str().contains("authorization") || k.as_str().contains("token"))
                    .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v.as_bytes())))
                    .collect()
            })
            .unwrap_or_default();
        format!("{who}\u{0}{}\u{0}{request:?}", creds.join("\u{0}"))
    }

    /// The cached answer for `key` if fresh, else the answer of `fetch` (run once however
    /// many callers ask at the same time; an error is returned to all of them and not kept).
    pub async fn get_or_fetch<F>(&self, key: String, class: Option<&str>, fetch: F) -> Result<Cached, Error>
    where
        F: std::future::Future<Output = Result<Value, Error>>,
    {
        let ttl = class.and_then(|c| self.ttls.get(c)).copied().unwrap_or(self.ttl);
        let started = Instant::now();
        let entry = self
            .entries
            .try_get_with(key, async move {
                let value = fetch.await?;
                Ok::<_, Error>(Entry { value: Arc::new(value), fetched: Instant::now(), ttl })
            })
            .await
            .map_err(|e: Arc<Error>| (*e).clone())?;
        // Fetched by this call (or by a concurrent one it waited for): fresh.
        let age = (entry.fetched < started).then(|| entry.fetched.elapsed());
        Ok(Cached { value: entry.value, age, shared: true })
    }

    /// Answers held now (approximate: expired entries leave lazily).
    pub fn len(&self) -> u64 {
        self.entries.entry_count()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use serde_json::json;

    use super::*;
    use crate::backends::ErrorKind;
    use crate::identity::{Identity, scope};

    fn cache(ttl: &str) -> Cache {
        Cache::new(&CacheSpec { ttl: ttl.into(), ..Default::default() }).unwrap()
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_later_ones_see_the_age() {
        let c = cache("10s");
        let fetches = AtomicU32::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(json!({"items": [1, 2]}))
        };
        let (a, b) = tokio::join!(c.get_or_fetch("k".into(), None, fetch()), c.get_or_fetch("k".into(), None, fetch()));
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "single flight");
        assert!(a.unwrap().age.is_none() && b.unwrap().age.is_none(), "both waited for the fetch: fresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let later = c.get_or_fetch("k".into(), None, fetch()).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(later.age.unwrap() >= Duration::from_millis(20));
        assert_eq!(*later.value, json!({"items": [1, 2]}));
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl_and_errors_are_not_kept() {
        let c = Cache::new(&CacheSpec {
            ttl: "40ms".into(),
            ttls: IndexMap::from([("Node".into(), "1h".into())]),
            ..Default::default()
        })
        .unwrap();
        let fetches = AtomicU32::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            Ok(json!(1))
        };
        c.get_or_fetch("pods".into(), Some("Pod"), fetch()).await.unwrap();
        c.get_or_fetch("nodes".into(), Some("Node"), fetch()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        c.get_or_fetch("pods".into(), Some("Pod"), fetch()).await.unwrap();
        c.get_or_fetch("nodes".into(), Some("Node"), fetch()).await.unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "pods refetched after 40 ms, nodes kept (1h)");
        let failing = || async { Err(Error::new("b", ErrorKind::Unreachable, "down")) };
        assert!(c.get_or_fetch("x".into(), None, failing()).await.is_err());
        let ok = c.get_or_fetch("x".into(), None, fetch()).await.unwrap();
        assert!(ok.age.is_none(), "the failure was not cached");
    }

    #[tokio::test]
    async fn one_callers_answer_is_never_served_to_another() {
        let c = cache("10s");
        let alice = Arc::new(Identity { subject: "alice".into(), ..Identity::anonymous() });
        let bob = Arc::new(Identity { subject: "bob".into(), ..Identity::anonymous() });
        let ka = scope(alice, async { Cache::key(&"list pods") }).await;
        let kb = scope(bob, async { Cache::key(&"list pods") }).await;
        assert_ne!(ka, kb);
        c.get_or_fetch(ka, None, async { Ok(json!("alice's pods")) }).await.unwrap();
        let b = c.get_or_fetch(kb, None, async { Ok(json!("bob's pods")) }).await.unwrap();
        assert_eq!(*b.value, json!("bob's pods"));
    }
}
