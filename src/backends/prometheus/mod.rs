//! The `prometheus` backend: the Prometheus / Thanos querier HTTP API. Relative times,
//! an automatic step within a point budget, per-series summaries of range results, clear
//! errors that quote the failing query, and guardrails for raw PromQL from the model.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::http::{build_client, build_headers, describe_headers, error_chain};
use super::{Effect, Error, ErrorKind, Kind, TextContext};
use crate::units::parse_duration;

pub mod spec;
mod stream;
pub use spec::{GuardrailsSpec, PrometheusBackendSpec, PrometheusCallSpec, PrometheusEndpoint, PrometheusRequest};

/// The kind: the Prometheus / Thanos querier HTTP API.
pub struct Prometheus;

impl Kind for Prometheus {
    const NAME: &'static str = "prometheus";
    type Binding = PrometheusBackendSpec;
    type Call = PrometheusCallSpec;
    type Request = PrometheusRequest;
    type Client = PrometheusBackend;

    fn cache(binding: &PrometheusBackendSpec) -> Option<&super::cache::CacheSpec> {
        binding.cache.as_ref()
    }

    fn resilience(binding: &PrometheusBackendSpec) -> Option<&super::resilience::ResilienceSpec> {
        Some(&binding.resilience)
    }

    fn binding(call: &PrometheusCallSpec) -> &str {
        &call.backend
    }

    fn effect(_: &PrometheusCallSpec) -> Effect {
        Effect::Read
    }

    fn action(call: &PrometheusCallSpec) -> (&'static str, String) {
        ("/endpoint", format!("endpoint `{}`", call.endpoint.name()))
    }

    fn field(pointer: &str) -> Option<TextContext> {
        Some(match pointer {
            "/query" => TextContext::Promql,
            "/label" => TextContext::PromqlLabelName,
            "/start" | "/end" | "/step" | "/raw" => TextContext::Data,
            _ => return None,
        })
    }

    fn connect(name: &str, binding: &PrometheusBackendSpec) -> Result<PrometheusBackend, String> {
        PrometheusBackend::new(name, binding)
    }

    async fn call(
        client: &PrometheusBackend,
        request: PrometheusRequest,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        client.call(&request, timeout).await
    }

    fn describe(client: &PrometheusBackend, request: &PrometheusRequest) -> Value {
        client.describe(request)
    }
}

/// An API call: path, query parameters, and whether raw points were asked for.
type Plan = (String, Vec<(String, String)>, bool);

/// A configured Prometheus binding.
pub struct PrometheusBackend {
    name: String,
    base: reqwest::Url,
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
    max_points: u32,
    guardrails: GuardrailsSpec,
}

/// Parse a time: `now`, relative (`-1h`, `-30m`), unix seconds, or RFC 3339.
pub fn parse_time(s: &str, now: f64) -> Result<f64, String> {
    let s = s.trim();
    if s.is_empty() || s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix("now-").or_else(|| s.strip_prefix('-')) {
        return parse_duration(rel)
            .map(|d| now - d)
            .ok_or_else(|| format!("bad relative time `{s}` (e.g. -1h, -30m, now-7d)"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok(secs);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .map_err(|_| format!("bad time `{s}`: use now, -1h, unix seconds or RFC 3339"))
}

use crate::guard::promql::{Guardrails, check_guardrails};

impl PrometheusBackend {
    /// Set up from a spec.
    pub fn new(name: &str, spec: &PrometheusBackendSpec) -> Result<Self, String> {
        let base = reqwest::Url::parse(&spec.url).map_err(|e| format!("invalid url `{}`: {e}", spec.url))?;
        let timeout = parse_duration(&spec.timeout).ok_or_else(|| format!("invalid timeout `{}`", spec.timeout))?;
        Ok(PrometheusBackend {
            name: name.to_string(),
            base,
            client: build_client(&spec.tls).map_err(|e| e.to_string())?,
            headers: build_headers(spec.auth.as_ref(), &spec.headers).map_err(|e| e.to_string())?,
            timeout: Duration::from_secs_f64(timeout),
            max_points: spec.max_points.max(2),
            guardrails: spec.guardrails.clone(),
        })
    }

    fn invalid(&self, m: impl Into<String>) -> Error {
        Error::new(&self.name, ErrorKind::InvalidRequest, m)
    }

    fn refused(&self, m: impl Into<String>) -> Error {
        Error::new(&self.name, ErrorKind::Refused, m)
    }

    /// The API path and query parameters of a rendered request.
    fn plan(&self, req: &PrometheusRequest) -> Result<Plan, Error> {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let endpoint = req.endpoint.name();
        let query = req.query.clone().unwrap_or_default();
        let time = |t: &Option<String>, default: &str| -> Result<f64, Error> {
            parse_time(t.as_deref().unwrap_or(default), now).map_err(|e| self.invalid(e))
        };
        let need_query = || {
            if query.trim().is_empty() {
                Err(self.invalid(format!("endpoint {endpoint} needs a `query`")))
            } else {
                Ok(())
            }
        };
        if req.guarded && !query.is_empty() {
            let g = Guardrails {
                deny_blanket_regex: self.guardrails.deny_blanket_regex,
                require_label_matcher: self.guardrails.require_label_matcher,
            };
            check_guardrails(&query, &g).map_err(|e| {
                self.refused(format!("{e} (query: {})", crate::clip::clip(&query, crate::clip::QUOTE_MAX)))
            })?;
        }
        let raw = req.raw;
        Ok(match req.endpoint {
            PrometheusEndpoint::Query => {
                need_query()?;
                let mut p = vec![("query".into(), query)];
                if let Some(t) = &req.end {
                    p.push(("time".into(), format!("{:.3}", parse_time(t, now).map_err(|e| self.invalid(e))?)));
                }
                ("/api/v1/query".into(), p, raw)
            }
            PrometheusEndpoint::QueryRange => {
                need_query()?;
                let end = time(&req.end, "now")?;
                // `end-7d`: a window ending at `end` (a tool's evaluation time).
                let start = match req.start.as_deref().map(str::trim).and_then(|s| s.strip_prefix("end-")) {
                    Some(d) => {
                        end - parse_duration(d).ok_or_else(|| self.invalid(format!("bad duration in `end-{d}`")))?
                    }
                    None => time(&req.start, "-1h")?,
                };
                if end <= start {
                    return Err(self.invalid("range end must be after start"));
                }
                let span = end - start;
                let min_step = (span / self.max_points as f64).ceil().max(1.0);
                let asked = match &req.step {
                    Some(s) => parse_duration(s).ok_or_else(|| self.invalid(format!("bad step `{s}`")))?,
                    None => 0.0,
                };
                let step = asked.max(min_step);
                (
                    "/api/v1/query_range".into(),
                    vec![
                        ("query".into(), query),
                        ("start".into(), format!("{start:.3}")),
                        ("end".into(), format!("{end:.3}")),
                        ("step".into(), format!("{step}")),
                    ],
                    raw,
                )
            }
            PrometheusEndpoint::Series => {
                need_query()?;
                let start = time(&req.start, "-1h")?;
                ("/api/v1/series".into(), vec![("match[]".into(), query), ("start".into(), format!("{start:.3}"))], raw)
            }
            PrometheusEndpoint::Labels => ("/api/v1/labels".into(), vec![], raw),
            PrometheusEndpoint::LabelValues => {
                let label = req.label.clone().ok_or_else(|| self.invalid("label-values needs a `label`"))?;
                if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.invalid(format!("`{label}` is not a label name")));
                }
                (format!("/api/v1/label/{label}/values"), vec![], raw)
            }
            PrometheusEndpoint::Metadata => {
                ("/api/v1/metadata".into(), if query.is_empty() { vec![] } else { vec![("metric".into(), query)] }, raw)
            }
            PrometheusEndpoint::Alerts => ("/api/v1/alerts".into(), vec![], raw),
            PrometheusEndpoint::Rules => ("/api/v1/rules".into(), vec![], raw),
            PrometheusEndpoint::Targets => ("/api/v1/targets".into(), vec![("state".into(), "active".into())], raw),
        })
    }

    fn url(&self, path: &str, params: &[(String, String)]) -> reqwest::Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{path}"));
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        url
    }

    /// What `call` would send.
    pub fn describe(&self, req: &PrometheusRequest) -> Value {
        match self.plan(req) {
            Ok((path, params, _)) => {
                json!({"method": "GET", "url": self.url(&path, &params).to_string(), "headers": describe_headers(&self.headers)})
            }
            Err(e) => json!({"error": e.to_string()}),
        }
    }

    /// Query and return `data`, with vectors and matrices made readable.
    pub async fn call(&self, req: &PrometheusRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        let (path, params, raw) = self.plan(req)?;
        let query =
            params.iter().find(|(k, _)| k == "query" || k == "match[]").map(|(_, v)| v.clone()).unwrap_or_default();
        let url = self.url(&path, &params);
        // Errors name the URL used (base and path; the query is shown as PromQL).
        let at = self.url(&path, &[]);
        let target = if query.is_empty() { format!("GET {at}") } else { format!("GET {at} `{query}`") };
        let timeout = timeout.unwrap_or(self.timeout);
        let resp =
            self.client.get(url.clone()).headers(self.headers.clone()).timeout(timeout).send().await.map_err(|e| {
                if e.is_timeout() {
                    Error::new(&self.name, ErrorKind::Timeout, format!("no answer within {timeout:?}")).at(&target)
                } else {
                    Error::new(
                        &self.name,
                        ErrorKind::Unreachable,
                        format!(
                            "could not be reached at {}: {}; check that Prometheus runs and the backend's URL is right",
                            self.base,
                            error_chain(&e)
                        ),
                    )
                    .at(&target)
                }
            })?;
        let status = resp.status();
        let unreadable = |e: String| {
            Error::new(
                &self.name,
                if status.is_success() { ErrorKind::Upstream } else { ErrorKind::of_status(status.as_u16()) },
                format!("answered HTTP {} with an unreadable body: {e}", status.as_u16()),
            )
            .at(&target)
        };
        // Guarded queries: the series cap is enforced as the body arrives, so an answer with
        // millions of series is refused after the cap plus one, not after downloading them.
        let mut counter = req.guarded.then(stream::SeriesCounter::default);
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| unreadable(error_chain(&e)))? {
            if let Some(c) = &mut counter {
                c.feed(&chunk);
                if c.series > self.guardrails.max_series {
                    return Err(self.refused(format!(
                        "the query matches more than {} series, the cap (reading stopped at series {}; the true count is unknown); aggregate (sum by ...) or add label matchers (query: {})",
                        self.guardrails.max_series,
                        c.series,
                        crate::clip::clip(&query, crate::clip::QUOTE_MAX)
                    )));
                }
            }
            bytes.extend_from_slice(&chunk);
        }
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
        if body.get("status").and_then(Value::as_str) != Some("success") {
            let kind = body.get("errorType").and_then(Value::as_str).unwrap_or("error");
            let msg = body.get("error").and_then(Value::as_str).unwrap_or("unknown error");
            let error_kind = match kind {
                "bad_data" => ErrorKind::InvalidRequest,
                "timeout" | "canceled" => ErrorKind::Timeout,
                _ => ErrorKind::of_status(status.as_u16()),
            };
            return Err(Error::new(&self.name, error_kind, format!("{kind}: {msg}")).at(&target));
        }
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        let mut shaped = shape(data, raw);
        // Say which step a range really used: it grows to keep within the point budget.
        if let (Some((_, step)), Value::Object(m)) = (params.iter().find(|(k, _)| k == "step"), &mut shaped) {
            m.insert("stepSeconds".into(), json!(step.parse::<f64>().unwrap_or(0.0)));
        }
        Ok(shaped)
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64())
}

/// Make query results readable: vector samples become `{metric, value, timestamp}`;
/// matrices become per-series summaries unless `raw`.
fn shape(mut data: Value, raw: bool) -> Value {
    let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(result) = data.get_mut("result").and_then(Value::as_array_mut) else { return data };
    match kind.as_str() {
        "vector" => {
            for s in result.iter_mut() {
                let (ts, v) = (s.pointer("/value/0").cloned(), s.pointer("/value/1").and_then(num));
                *s = json!({"metric": s.get("metric").cloned().unwrap_or(json!({})), "value": v, "timestamp": ts});
            }
        }
        "scalar" | "string" => {}
        "matrix" => {
            for s in result.iter_mut() {
                let points: Vec<(f64, f64)> = s
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| vs.iter().filter_map(|p| Some((p.get(0)?.as_f64()?, num(p.get(1)?)?))).collect())
                    .unwrap_or_default();
                let metric = s.get("metric").cloned().unwrap_or(json!({}));
                if raw {
                    *s = json!({"metric": metric, "points": points.iter().map(|(t, v)| json!([t, v])).collect::<Vec<_>>()});
                } else {
                    *s = summarise(metric, &points);
                }
            }
        }
        _ => {}
    }
    data
}

/// min, max, avg, first, last, count and the least-squares trend per hour.
fn summarise(metric: Value, points: &[(f64, f64)]) -> Value {
    let finite: Vec<(f64, f64)> = points.iter().copied().filter(|(_, v)| v.is_finite()).collect();
    if finite.is_empty() {
        return json!({"metric": metric, "count": 0});
    }
    let n = finite.len() as f64;
    let (min, max) =
        finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| (lo.min(*v), hi.max(*v)));
    let avg = finite.iter().map(|(_, v)| v).sum::<f64>() / n;
    let mt = finite.iter().map(|(t, _)| t).sum::<f64>() / n;
    let (num_, den) =
        finite.iter().fold((0.0, 0.0), |(a, b), (t, v)| (a + (t - mt) * (v - avg), b + (t - mt) * (t - mt)));
    let slope_per_hour = if den > 0.0 { num_ / den * 3600.0 } else { 0.0 };
    json!({"metric": metric, "min": min, "max": max, "avg": avg, "first": finite[0].1, "last": finite[finite.len() - 1].1,
           "count": finite.len(), "trend_per_hour": slope_per_hour})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_relative_absolute_and_now() {
        assert_eq!(parse_time("now", 1000.0).unwrap(), 1000.0);
        assert_eq!(parse_time("-1h", 10000.0).unwrap(), 6400.0);
        assert_eq!(parse_time("now-30m", 10000.0).unwrap(), 8200.0);
        assert_eq!(parse_time("1700000000", 0.0).unwrap(), 1_700_000_000.0);
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0.0).unwrap(), 1_700_000_000.0);
        assert!(parse_time("yesterday", 0.0).is_err());
    }

    /// A loopback "Prometheus" that answers with an endless vector (chunked), counting the
    /// series it managed to send before the client hung up.
    async fn endless_prometheus() -> (String, tokio::task::JoinHandle<usize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4096];
            let _ = sock.read(&mut req).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
            let start = r#"{"status":"success","data":{"resultType":"vector","result":["#;
            if sock.write_all(format!("{head}{}", chunk(start)).as_bytes()).await.is_err() {
                return 0;
            }
            let mut sent = 0usize;
            loop {
                let batch: Vec<String> =
                    (0..100).map(|i| format!(r#"{{"metric":{{"pod":"p{}"}},"value":[1,"1"]}},"#, sent + i)).collect();
                if sock.write_all(chunk(&batch.concat()).as_bytes()).await.is_err() || sent > 50_000_000 {
                    return sent;
                }
                sent += 100;
            }
        });
        (url, server)
    }

    #[tokio::test]
    async fn the_series_cap_stops_reading_an_endless_answer() {
        let (url, server) = endless_prometheus().await;
        let spec: PrometheusBackendSpec =
            serde_json::from_value(json!({"url": url, "timeout": "20s", "guardrails": {"maxSeries": 50}})).unwrap();
        let backend = PrometheusBackend::new("prometheus", &spec).unwrap();
        let req: PrometheusRequest =
            serde_json::from_value(json!({"query": "up{job=\"x\"}", "guarded": true})).unwrap();
        let err = tokio::time::timeout(Duration::from_secs(15), backend.call(&req, None))
            .await
            .expect("the answer is endless: only the streaming cap can end the call")
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Refused, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("more than 50 series") && msg.contains("true count is unknown"), "{msg}");
        // The server saw the connection dropped long before it could send everything.
        let sent = tokio::time::timeout(Duration::from_secs(15), server).await.unwrap().unwrap();
        assert!(sent < 50_000_000, "the client kept reading: {sent} series sent");
    }

    #[test]
    fn ranges_summarise_per_series() {
        let s = summarise(json!({}), &[(0.0, 1.0), (3600.0, 3.0), (7200.0, 5.0)]);
        assert_eq!(s["min"], 1.0);
        assert_eq!(s["max"], 5.0);
        assert_eq!(s["avg"], 3.0);
        assert_eq!(s["last"], 5.0);
        assert!((s["trend_per_hour"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    }
}
