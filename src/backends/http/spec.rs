//! The `http` kind's specs: the binding (base URL, auth, headers, TLS), the step call, and
//! the typed request a call renders to. Auth, TLS and header specs are shared by the other
//! HTTP-based kinds.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backends::secret::SecretRef;

/// An http backend binding.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpBackendSpec {
    /// Base URL; step paths are appended.
    pub base_url: String,
    /// Description (documentation only).
    pub description: Option<String>,
    /// Default timeout per request (e.g. `10s`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Authentication.
    pub auth: Option<AuthSpec>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: IndexMap<String, HeaderValueSpec>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSpec,
    /// Client-side rate limit, circuit breaker and read retries for this binding (defaults:
    /// 50 requests/s, breaker opens after 5 consecutive failures for 30 s, 2 retries of reads).
    #[serde(default, skip_serializing_if = "crate::backends::resilience::ResilienceSpec::is_default")]
    pub resilience: crate::backends::resilience::ResilienceSpec,
}

/// Default timeout of a binding.
pub fn default_timeout() -> String {
    "10s".into()
}

/// Authentication for an HTTP-based backend.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum AuthSpec {
    /// `Authorization: Bearer <token>`.
    Bearer(SecretRef),
    /// HTTP basic auth.
    Basic(BasicAuthSpec),
}

/// HTTP basic credentials.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuthSpec {
    /// User name.
    pub username: String,
    /// Password.
    pub password: SecretRef,
}

/// A header value: plain text or a secret reference.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum HeaderValueSpec {
    /// A literal value.
    Plain(String),
    /// A secret.
    Secret(SecretRef),
}

/// TLS settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsSpec {
    /// PEM CA bundle to trust (e.g. the service CA on OpenShift).
    pub ca_file: Option<String>,
    /// Skip certificate verification (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// HTTP method.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    /// The method as reqwest knows it.
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Head => reqwest::Method::HEAD,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
            HttpMethod::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A JSON-over-HTTP call. Strings are minijinja templates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCallSpec {
    /// Name of the http Backend binding to call.
    pub backend: String,
    /// HTTP method. Any method but GET and HEAD is a write: the tool must be annotated
    /// destructive, unless the step declares `sideEffectFree`.
    #[serde(default)]
    pub method: HttpMethod,
    /// The call changes nothing although its method is not GET (a POST to a query or
    /// inference API); shown by `tools`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub side_effect_free: bool,
    /// Path appended to the backend's base URL. Values spliced in must go through
    /// `path_segment`; each templated segment must stay one segment.
    pub path: String,
    /// Query parameters (values are data: URL-encoded automatically; empty values are
    /// dropped).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub query: IndexMap<String, Value>,
    /// Extra request headers (single-line values, from declared inputs only).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<String, String>,
    /// JSON body; string leaves are templates, a leaf that is one `{{ expr }}` keeps the
    /// expression's JSON type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// A rendered http call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequest {
    /// The method.
    #[serde(default)]
    pub method: HttpMethod,
    /// The rendered path (starts with `/`).
    pub path: String,
    /// Query parameters: null and empty values are dropped, arrays repeat the key.
    #[serde(default)]
    pub query: IndexMap<String, Value>,
    /// Extra headers.
    #[serde(default)]
    pub headers: IndexMap<String, Value>,
    /// JSON body.
    #[serde(default)]
    pub body: Option<Value>,
}
