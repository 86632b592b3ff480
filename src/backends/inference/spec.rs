//! The `inference` kind's specs: the binding (a model server's base URL, protocol, auth, TLS,
//! timeout), the step call (an operation on a model: infer, readiness, metadata) and the
//! typed request a call renders to. Auth, TLS and header types are the http kind's.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backends::http::spec::{AuthSpec, HeaderValueSpec, TlsSpec, default_timeout};

/// A model server binding (KServe, Triton, MLServer, any server speaking KServe v1 or the
/// Open Inference Protocol v2).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InferenceBackendSpec {
    /// Base URL of the model server (e.g. an InferenceService's status URL
    /// `http://anomaly-detector.ml.svc.cluster.local`); protocol paths are appended. Ignored
    /// when `inferenceService` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model server as a KServe InferenceService, read through a kubernetes binding at
    /// call time: its `status.address.url`, else `status.url`, else its predictor Service
    /// (`{name}-predictor`). A missing or not-ready InferenceService is an error naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_service: Option<InferenceServiceRef>,
    /// The protocol the server speaks: `v1` (`/v1/models/{m}:predict` with `instances`) or
    /// `v2` (Open Inference Protocol: `/v2/models/{m}/infer` with named tensors).
    #[serde(default)]
    pub protocol: Protocol,
    /// Description (documentation only).
    pub description: Option<String>,
    /// Default timeout per request (e.g. `5s`); a step's `timeout` overrides it.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Authentication.
    pub auth: Option<AuthSpec>,
    /// Headers sent with every request (e.g. `Host` for a KServe ingress).
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

/// A KServe InferenceService that serves a binding's models.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InferenceServiceRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The kubernetes binding that reads it (default `kubernetes`); it must be enabled in
    /// the same mode.
    #[serde(default = "default_kubernetes")]
    pub backend: String,
}

fn default_kubernetes() -> String {
    "kubernetes".into()
}

/// An inference protocol.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// KServe v1 (TensorFlow Serving style): `instances` in, `predictions` out.
    V1,
    /// Open Inference Protocol (KServe v2): named tensors with shape and datatype.
    #[default]
    V2,
}

impl Protocol {
    /// `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::V2 => "v2",
        }
    }
}

/// What a step asks of a model server.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// Run the model on `instances` (v1, or v2 as one tensor) or `inputs` (v2 tensors).
    /// Changes nothing: side-effect free although it is a POST.
    #[default]
    Infer,
    /// Is the server ready? (v2 `GET /v2/health/ready`; v1 `GET /v1/models`, which also
    /// lists the models served.)
    ServerReady,
    /// Is the model loaded and ready? (v2 `GET /v2/models/{m}/ready`, v1 `GET /v1/models/{m}`.)
    /// A model that is loaded but not ready answers `ready: false`, not an error.
    ModelReady,
    /// The model's metadata (v2 `GET /v2/models/{m}`: inputs, outputs, platform, versions;
    /// v1 `GET /v1/models/{m}`: its status).
    Metadata,
}

/// A tensor datatype of the Open Inference Protocol.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Datatype {
    /// 64-bit float.
    #[default]
    Fp64,
    /// 32-bit float.
    Fp32,
    /// 64-bit integer.
    Int64,
    /// 32-bit integer.
    Int32,
    /// Boolean.
    Bool,
    /// Bytes (strings).
    Bytes,
}

/// A named input tensor (v2). String leaves are templates; a leaf that is one `{{ expr }}`
/// keeps the expression's JSON type, so `data: "{{ rows }}"` sends numbers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TensorSpec {
    /// The input's name, as the model's metadata lists it.
    pub name: String,
    /// Element type.
    #[serde(default)]
    pub datatype: Datatype,
    /// Shape (e.g. `[3, 5]`); derived from `data`'s nesting when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Value>,
    /// The elements: a nested list (rows of features) or a flat list with `shape`.
    pub data: Value,
}

/// An inference call. Strings are minijinja templates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InferenceCallSpec {
    /// Name of the inference Backend binding to call.
    pub backend: String,
    /// What to ask: `infer` (default), `serverReady`, `modelReady` or `metadata`.
    #[serde(default)]
    pub operation: Operation,
    /// The model's name on the server (a URL path segment: free text must pass
    /// `path_segment`). Required by every operation but `serverReady`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Rows to score, one list of features (or one object) per row: v1 sends them as
    /// `instances`; v2 sends them as one tensor `input-0` of shape `[rows, features]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Value>,
    /// Named input tensors (v2 only), for models with several inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<TensorSpec>>,
    /// Request parameters passed to the model server as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// A rendered input tensor.
#[derive(Debug, Clone, Deserialize)]
pub struct Tensor {
    /// Name.
    pub name: String,
    /// Element type.
    #[serde(default)]
    pub datatype: Datatype,
    /// Shape, if given.
    #[serde(default)]
    pub shape: Option<Value>,
    /// Elements.
    pub data: Value,
}

/// A rendered inference call.
#[derive(Debug, Clone, Deserialize)]
pub struct InferenceRequest {
    /// The operation.
    #[serde(default)]
    pub operation: Operation,
    /// The model name (empty = none).
    #[serde(default, deserialize_with = "crate::backends::lenient::text")]
    pub model: Option<String>,
    /// Rows to score.
    #[serde(default)]
    pub instances: Option<Value>,
    /// Named tensors.
    #[serde(default)]
    pub inputs: Option<Vec<Tensor>>,
    /// Parameters.
    #[serde(default)]
    pub parameters: Option<Value>,
}
