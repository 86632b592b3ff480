//! The `prometheus` kind's specs: the binding (URL, auth, point budget, guardrails), the
//! step call, and the typed request a call renders to.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::backends::http::spec::{AuthSpec, HeaderValueSpec, TlsSpec, default_timeout};
use crate::backends::lenient;

/// A prometheus backend binding.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusBackendSpec {
    /// Base URL of Prometheus or the Thanos querier.
    pub url: String,
    /// Description (documentation only).
    pub description: Option<String>,
    /// Default timeout per request.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Authentication (on OpenShift: bearer from the service-account token file).
    pub auth: Option<AuthSpec>,
    /// Headers sent with every request (e.g. X-Scope-OrgID).
    #[serde(default)]
    pub headers: IndexMap<String, HeaderValueSpec>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSpec,
    /// Maximum points per series for range queries (the step grows to fit).
    #[serde(default = "default_max_points")]
    pub max_points: u32,
    /// Limits for steps marked `guarded` (raw PromQL from the model). A mode may relax them.
    #[serde(default)]
    pub guardrails: GuardrailsSpec,
    /// Client-side rate limit, circuit breaker and read retries for this binding (defaults:
    /// 50 requests/s, breaker opens after 5 consecutive failures for 30 s, 2 retries of reads).
    #[serde(default, skip_serializing_if = "crate::backends::resilience::ResilienceSpec::is_default")]
    pub resilience: crate::backends::resilience::ResilienceSpec,
    /// Cache reads for a while (opt-in: `cache: {}` takes the defaults, 10 s and nodes 30 s);
    /// answers are keyed by request and caller, their age is reported with the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::backends::cache::CacheSpec>,
}

/// Guardrails for raw PromQL.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardrailsSpec {
    /// Refuse matchers that match everything (`=~".*"`, `=~".+"`, `!~""`).
    #[serde(default = "yes")]
    pub deny_blanket_regex: bool,
    /// Every vector selector needs at least one label matcher besides the metric name.
    #[serde(default = "yes")]
    pub require_label_matcher: bool,
    /// Refuse answers with more series than this.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

impl Default for GuardrailsSpec {
    fn default() -> Self {
        GuardrailsSpec { deny_blanket_regex: true, require_label_matcher: true, max_series: default_max_series() }
    }
}

fn yes() -> bool {
    true
}

fn default_max_series() -> usize {
    200
}

fn default_max_points() -> u32 {
    240
}

/// Prometheus HTTP API endpoints.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PrometheusEndpoint {
    #[default]
    Query,
    QueryRange,
    Series,
    Labels,
    LabelValues,
    Metadata,
    Alerts,
    Rules,
    Targets,
}

impl PrometheusEndpoint {
    /// The endpoint's name in specs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::QueryRange => "query-range",
            Self::Series => "series",
            Self::Labels => "labels",
            Self::LabelValues => "label-values",
            Self::Metadata => "metadata",
            Self::Alerts => "alerts",
            Self::Rules => "rules",
            Self::Targets => "targets",
        }
    }
}

/// A Prometheus HTTP API call. Strings are minijinja templates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusCallSpec {
    /// Prometheus Backend binding (default `prometheus`).
    #[serde(default = "default_prometheus")]
    pub backend: String,
    /// Which API endpoint.
    #[serde(default)]
    pub endpoint: PrometheusEndpoint,
    /// PromQL; spliced values must go through `promql_string`, `promql_regex` or
    /// `promql_duration`. The rendered query is parsed and must keep the template's structure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Range start: RFC 3339, unix seconds, `now`, relative to now (`-1h`) or to the range
    /// end (`end-7d`, for a window ending at a tool's evaluation time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Range end (default `now`); for instant queries, the evaluation time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Range step; computed from the point budget when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Series matchers / label name for label-values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Range queries: return raw points instead of per-series summaries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
    /// Apply the backend's guardrails to `query` (for tools that accept raw PromQL).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guarded: bool,
}

fn default_prometheus() -> String {
    "prometheus".into()
}

/// A rendered Prometheus call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRequest {
    /// Which API endpoint.
    #[serde(default)]
    pub endpoint: PrometheusEndpoint,
    /// The PromQL text.
    #[serde(default, deserialize_with = "lenient::text")]
    pub query: Option<String>,
    /// Range start.
    #[serde(default, deserialize_with = "lenient::text")]
    pub start: Option<String>,
    /// Range end / evaluation time.
    #[serde(default, deserialize_with = "lenient::text")]
    pub end: Option<String>,
    /// Range step.
    #[serde(default, deserialize_with = "lenient::text")]
    pub step: Option<String>,
    /// Label name (label-values).
    #[serde(default, deserialize_with = "lenient::text")]
    pub label: Option<String>,
    /// Raw points for ranges.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub raw: bool,
    /// Guardrails apply.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub guarded: bool,
}
