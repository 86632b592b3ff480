//! The `prometheus` backend: the Prometheus / Thanos querier HTTP API. Relative times,
//! an automatic step within a point budget, per-series summaries of range results, clear
//! errors that quote the failing query, and guardrails for raw PromQL from the model.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::http::{build_client, build_headers, describe_headers, error_chain};
use super::{Error, text_field};
use crate::engine::quantity::parse_duration;
use crate::spec::model::{GuardrailsSpec, PrometheusBackendSpec};

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

static BLANKET: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"=~\s*"\.[*+]"|!~\s*"""#).expect("regex"));
/// A vector selector: optional metric name followed by `{...}`, or a bare metric name.
static SELECTOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}|([a-zA-Z_:][a-zA-Z0-9_:]*)"#).expect("regex")
});

/// PromQL words that are not metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "e",
];

/// Check raw PromQL against guardrails; the error says how to fix the query.
pub fn check_guardrails(query: &str, g: &GuardrailsSpec) -> Result<(), String> {
    // Strings hide their content from the selector scan.
    let unquoted = Regex::new(r#""(?:[^"\\]|\\.)*""#).expect("regex").replace_all(query, "\"\"");
    if g.deny_blanket_regex && BLANKET.is_match(query) {
        return Err("the query uses a matcher that matches everything (=~\".*\"); match specific values instead".into());
    }
    if g.require_label_matcher {
        for c in SELECTOR.captures_iter(&unquoted) {
            let end = c.get(0).map(|m| m.end()).unwrap_or(0);
            let followed_by_paren = unquoted[end..].trim_start().starts_with('(');
            if let Some(matchers) = c.get(2) {
                if matchers.as_str().trim().is_empty() {
                    return Err(format!(
                        "selector `{}` has no label matcher; add one such as {{namespace=\"...\"}}",
                        c.get(0).map(|m| m.as_str()).unwrap_or("")
                    ));
                }
            } else if let Some(name) = c.get(3) {
                let n = name.as_str();
                let is_duration_unit = n.chars().all(|ch| ch.is_ascii_alphabetic())
                    && unquoted[..name.start()].ends_with(|ch: char| ch.is_ascii_digit());
                if followed_by_paren
                    || KEYWORDS.contains(&n)
                    || is_duration_unit
                    || unquoted[..name.start()].trim_end().ends_with(['(', ','])
                        && is_label_list(&unquoted, name.start())
                {
                    continue;
                }
                return Err(format!(
                    "metric `{n}` is selected without a label matcher; add one such as {n}{{namespace=\"...\"}}"
                ));
            }
        }
    }
    Ok(())
}

/// Is the position inside `by (...)` / `without (...)` / `on (...)` / `ignoring (...)`?
fn is_label_list(q: &str, pos: usize) -> bool {
    let before = &q[..pos];
    let open = before.rfind('(').unwrap_or(0);
    let word = before[..open].trim_end();
    ["by", "without", "on", "ignoring", "group_left", "group_right"].iter().any(|w| word.ends_with(w))
}

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
        Error::InvalidRequest { backend: self.name.clone(), message: m.into() }
    }

    /// The API path and query parameters of a rendered request.
    fn plan(&self, req: &Value) -> Result<Plan, Error> {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let endpoint = text_field(req, "endpoint").unwrap_or_else(|| "query".into());
        let query = text_field(req, "query").unwrap_or_default();
        let time = |k: &str, default: &str| -> Result<f64, Error> {
            parse_time(&text_field(req, k).unwrap_or_else(|| default.to_string()), now).map_err(|e| self.invalid(e))
        };
        let need_query = || {
            if query.trim().is_empty() {
                Err(self.invalid(format!("endpoint {endpoint} needs a `query`")))
            } else {
                Ok(())
            }
        };
        if req.get("guarded").and_then(Value::as_bool).unwrap_or(false) && !query.is_empty() {
            check_guardrails(&query, &self.guardrails).map_err(|e| self.invalid(format!("{e} (query: {query})")))?;
        }
        let raw = req.get("raw").is_some_and(|r| r.as_bool().unwrap_or(false) || r.as_str() == Some("true"));
        Ok(match endpoint.as_str() {
            "query" => {
                need_query()?;
                let mut p = vec![("query".into(), query)];
                if let Some(t) = text_field(req, "end").filter(|t| !t.is_empty()) {
                    p.push(("time".into(), format!("{:.3}", parse_time(&t, now).map_err(|e| self.invalid(e))?)));
                }
                ("/api/v1/query".into(), p, raw)
            }
            "query-range" => {
                need_query()?;
                let start = time("start", "-1h")?;
                let end = time("end", "now")?;
                if end <= start {
                    return Err(self.invalid("range end must be after start"));
                }
                let span = end - start;
                let min_step = (span / self.max_points as f64).ceil().max(1.0);
                let asked = match text_field(req, "step").filter(|s| !s.is_empty()) {
                    Some(s) => parse_duration(&s).ok_or_else(|| self.invalid(format!("bad step `{s}`")))?,
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
            "series" => {
                need_query()?;
                let start = time("start", "-1h")?;
                ("/api/v1/series".into(), vec![("match[]".into(), query), ("start".into(), format!("{start:.3}"))], raw)
            }
            "labels" => ("/api/v1/labels".into(), vec![], raw),
            "label-values" => {
                let label = text_field(req, "label")
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| self.invalid("label-values needs a `label`"))?;
                if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.invalid(format!("`{label}` is not a label name")));
                }
                (format!("/api/v1/label/{label}/values"), vec![], raw)
            }
            "metadata" => {
                ("/api/v1/metadata".into(), if query.is_empty() { vec![] } else { vec![("metric".into(), query)] }, raw)
            }
            "alerts" => ("/api/v1/alerts".into(), vec![], raw),
            "rules" => ("/api/v1/rules".into(), vec![], raw),
            "targets" => ("/api/v1/targets".into(), vec![("state".into(), "active".into())], raw),
            other => return Err(self.invalid(format!("unknown endpoint `{other}`"))),
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
    pub fn describe(&self, req: &Value) -> Value {
        match self.plan(req) {
            Ok((path, params, _)) => {
                json!({"method": "GET", "url": self.url(&path, &params).to_string(), "headers": describe_headers(&self.headers)})
            }
            Err(e) => json!({"error": e.to_string()}),
        }
    }

    /// Query and return `data`, with vectors and matrices made readable.
    pub async fn call(&self, req: &Value, timeout: Option<Duration>) -> Result<Value, Error> {
        let (path, params, raw) = self.plan(req)?;
        let query =
            params.iter().find(|(k, _)| k == "query" || k == "match[]").map(|(_, v)| v.clone()).unwrap_or_default();
        let url = self.url(&path, &params);
        // Errors name the URL used (base and path; the query is shown as PromQL).
        let at = self.url(&path, &[]);
        let target = if query.is_empty() { format!("GET {at}") } else { format!("GET {at} `{query}`") };
        let timeout = timeout.unwrap_or(self.timeout);
        let resp = self.client.get(url).headers(self.headers.clone()).timeout(timeout).send().await.map_err(|e| {
            if e.is_timeout() {
                Error::Timeout { backend: self.name.clone(), after: timeout, target: target.clone() }
            } else {
                Error::Transport { backend: self.name.clone(), target: target.clone(), message: error_chain(&e) }
            }
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.map_err(|e| Error::Decode {
            backend: self.name.clone(),
            target: target.clone(),
            message: e.to_string(),
        })?;
        if body.get("status").and_then(Value::as_str) != Some("success") {
            let kind = body.get("errorType").and_then(Value::as_str).unwrap_or("error");
            let msg = body.get("error").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(Error::Status {
                backend: self.name.clone(),
                status: status.as_u16(),
                target,
                body: format!("{kind}: {msg}"),
            });
        }
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        let mut shaped = shape(data, raw);
        // Say which step a range really used: it grows to keep within the point budget.
        if let (Some((_, step)), Value::Object(m)) = (params.iter().find(|(k, _)| k == "step"), &mut shaped) {
            m.insert("stepSeconds".into(), json!(step.parse::<f64>().unwrap_or(0.0)));
        }
        if req.get("guarded").and_then(Value::as_bool).unwrap_or(false)
            && let Some(n) = shaped.get("result").and_then(Value::as_array).map(Vec::len)
            && n > self.guardrails.max_series
        {
            return Err(self.invalid(format!(
                "the query returned {n} series, more than the cap of {}; aggregate (sum by ...) or add label matchers (query: {query})",
                self.guardrails.max_series
            )));
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

    #[test]
    fn guardrails_refuse_blanket_regex_and_bare_metrics() {
        let g = GuardrailsSpec::default();
        assert!(check_guardrails(r#"up{job=~".*"}"#, &g).is_err());
        assert!(check_guardrails("up", &g).is_err());
        assert!(check_guardrails("up{}", &g).is_err());
        assert!(
            check_guardrails(r#"sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="a"}[5m]))"#, &g)
                .is_ok()
        );
        assert!(check_guardrails(r#"topk(5, up{job="x"})"#, &g).is_ok());
        let relaxed = GuardrailsSpec { deny_blanket_regex: false, require_label_matcher: false, max_series: 10 };
        assert!(check_guardrails("up", &relaxed).is_ok());
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
