//! The raw spec model: what admins write in YAML.
//!
//! Every type denies unknown fields and documents each field; schemars turns these docs
//! into the committed JSON Schemas under `schemas/`. Compiled forms live in `engine`.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only apiVersion understood today.
pub const API_VERSION: &str = "cluster-health-mcp/v1";

/// The apiVersion of a spec document.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ApiVersion {
    #[serde(rename = "cluster-health-mcp/v1")]
    V1,
}

/// Name and labels of a spec document.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Unique name within its kind; letters, digits, `-`, `_` and `.` (the shipped catalogue
    /// uses kebab-case, e.g. `list-pods`).
    #[schemars(regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$"), length(max = 64))]
    pub name: String,
    /// Free labels used by modes to select documents (e.g. `toolset: core`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

macro_rules! document {
    ($(#[$doc:meta])* $name:ident, $kind:ident, $spec:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct $name {
            /// Always `cluster-health-mcp/v1`.
            pub api_version: ApiVersion,
            /// The document kind.
            pub kind: $kind,
            /// Name and labels.
            pub metadata: Metadata,
            /// The kind-specific body.
            pub spec: $spec,
        }

        #[doc = concat!("The kind tag `", stringify!($kind), "`.")]
        #[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
        pub enum $kind {
            $kind,
        }
    };
}

document!(
    /// An MCP tool: typed inputs, steps that call backends, and an output shape.
    ToolDoc, Tool, ToolSpec
);
document!(
    /// An MCP resource backed by the same step machinery as tools.
    ResourceDoc, Resource, ResourceSpec
);
document!(
    /// An MCP prompt whose messages are minijinja templates over its arguments.
    PromptDoc, Prompt, PromptSpec
);
document!(
    /// A named backend binding (kubernetes, prometheus, http).
    BackendDoc, Backend, BackendSpec
);
document!(
    /// A deployment mode: enabled backends and exposed tools, resources and prompts.
    ModeDoc, Mode, ModeSpec
);

/// MCP tool annotations (hints for clients).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnnotationsSpec {
    /// The tool does not modify its environment. Defaults to true unless `destructive`.
    pub read_only: Option<bool>,
    /// The tool may perform destructive updates (required for Kubernetes write verbs).
    #[serde(default)]
    pub destructive: bool,
    /// Calling the tool twice with the same arguments has no additional effect.
    pub idempotent: Option<bool>,
    /// The tool talks to an open world of external entities.
    pub open_world: Option<bool>,
}

/// Body of a Tool.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolSpec {
    /// Human-friendly title shown by clients.
    pub title: Option<String>,
    /// What the tool does and when a model should use it.
    #[schemars(length(min = 1))]
    pub description: String,
    /// Behaviour hints.
    #[serde(default)]
    pub annotations: AnnotationsSpec,
    /// Backends the tool needs. Backends of required (non-optional, unconditional) steps
    /// are added automatically; a tool is exposed only when all of them are enabled.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Typed inputs (a JSON Schema subset); they become the MCP inputSchema.
    #[serde(default)]
    pub input: IndexMap<String, InputSpec>,
    /// Named steps, each bound to one backend. Steps that do not refer to each other run
    /// concurrently; a step that mentions another step's name runs after it.
    #[serde(default)]
    pub steps: IndexMap<String, StepSpec>,
    /// How to shape the result.
    #[serde(default)]
    pub output: OutputSpec,
}

/// JSON type of an input.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

/// One typed input (JSON Schema subset).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InputSpec {
    /// JSON type.
    #[serde(rename = "type")]
    pub ty: InputType,
    /// What the input means; shown to the model.
    pub description: Option<String>,
    /// Value used when the caller omits the input.
    pub default: Option<Value>,
    /// The caller must supply the input.
    #[serde(default)]
    pub required: bool,
    /// Allowed values.
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<Value>>,
    /// Inclusive minimum for numbers.
    pub minimum: Option<f64>,
    /// Inclusive maximum for numbers.
    pub maximum: Option<f64>,
    /// Minimum string length.
    pub min_length: Option<u64>,
    /// Maximum string length.
    pub max_length: Option<u64>,
    /// Regular expression the whole string must match (anchor it with ^...$).
    pub pattern: Option<String>,
    /// A named format. Known formats constrain the value: k8s-name, k8s-namespace,
    /// label-selector, field-selector, duration, promql-duration. `promql` marks raw PromQL
    /// from the model, allowed only in steps marked `guarded`. Others are advisory.
    pub format: Option<String>,
    /// Item schema for arrays.
    pub items: Option<Box<InputSpec>>,
    /// Property schemas for objects.
    pub properties: Option<IndexMap<String, InputSpec>>,
    /// Maximum number of items for arrays.
    pub max_items: Option<u64>,
}

/// One step: a single backend call. Exactly one of `http`, `kubernetes`, `prometheus`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepSpec {
    /// What the step fetches (documentation only).
    pub description: Option<String>,
    /// A failure of this step degrades its section instead of failing the call.
    #[serde(default)]
    pub optional: bool,
    /// Run the step only when this holds: a backend name (`prometheus`: run when that
    /// backend is enabled in the mode) or a minijinja expression over the inputs and
    /// `backends` (a map of enabled backend names).
    pub when: Option<String>,
    /// Per-step timeout (e.g. `5s`, `500ms`); defaults to the backend's timeout.
    pub timeout: Option<String>,
    /// JSONPath (RFC 9535) applied to the response; the step's value becomes the list of
    /// matches (or the single match with `selectOne`).
    pub select: Option<String>,
    /// With `select`: keep only the first match (null when none).
    #[serde(default)]
    pub select_one: bool,
    /// A generic JSON-over-HTTP call.
    pub http: Option<HttpCallSpec>,
    /// A Kubernetes API call.
    pub kubernetes: Option<KubernetesCallSpec>,
    /// A Prometheus HTTP API call.
    pub prometheus: Option<PrometheusCallSpec>,
}

/// HTTP method.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// A JSON-over-HTTP request. Strings are minijinja templates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpCallSpec {
    /// Name of the http Backend binding to call.
    pub backend: String,
    /// HTTP method.
    #[serde(default)]
    pub method: HttpMethod,
    /// Path appended to the backend's base URL. Values spliced in must go through
    /// `urlencode` or `path_segment`.
    pub path: String,
    /// Query parameters (values are data: URL-encoded automatically; empty values are
    /// dropped).
    #[serde(default)]
    pub query: IndexMap<String, Value>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// JSON body; string leaves are templates, a leaf that is one `{{ expr }}` keeps the
    /// expression's JSON type.
    pub body: Option<Value>,
}

/// Kubernetes API verbs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum KubernetesVerb {
    Get,
    List,
    Logs,
    Events,
    Delete,
    Patch,
    Scale,
    RolloutRestart,
}

impl KubernetesVerb {
    /// Verbs that change the cluster: only tools annotated destructive may use them.
    pub fn is_write(self) -> bool {
        matches!(self, Self::Delete | Self::Patch | Self::Scale | Self::RolloutRestart)
    }
}

/// apiVersion and kind of a Kubernetes resource.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceRefSpec {
    /// e.g. `v1`, `apps/v1`, `config.openshift.io/v1`.
    pub api_version: String,
    /// e.g. `Pod`, `Deployment`, `ClusterOperator`.
    pub kind: String,
}

/// A Kubernetes API call. Strings are minijinja templates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesCallSpec {
    /// Kubernetes Backend binding (default `kubernetes`).
    #[serde(default = "default_kubernetes")]
    pub backend: String,
    /// What to do.
    pub verb: KubernetesVerb,
    /// The resource type; a template may choose it from inputs.
    pub resource: Option<Value>,
    /// Namespace (empty: all namespaces for list, cluster-scoped otherwise).
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
    /// Label selector; spliced values must go through `selector_value`.
    pub label_selector: Option<String>,
    /// Field selector; spliced values must go through `selector_value`.
    pub field_selector: Option<String>,
    /// Page size.
    pub limit: Option<Value>,
    /// Continue token from a previous page.
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    /// Logs: container name.
    pub container: Option<String>,
    /// Logs: number of lines from the end.
    pub tail_lines: Option<Value>,
    /// Logs: only lines newer than this many seconds.
    pub since_seconds: Option<Value>,
    /// Logs: the previous (crashed) container instance.
    pub previous: Option<Value>,
    /// Patch body (merge patch unless `patchType` says otherwise).
    pub patch: Option<Value>,
    /// Patch type: merge, strategic or json.
    pub patch_type: Option<String>,
    /// Scale: desired replicas.
    pub replicas: Option<Value>,
    /// Logs: keep only lines matching this regular expression.
    pub grep: Option<String>,
    /// Logs: prefix each line with its timestamp.
    pub timestamps: Option<Value>,
}

fn default_kubernetes() -> String {
    "kubernetes".into()
}

fn default_prometheus() -> String {
    "prometheus".into()
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
    /// `promql_duration`.
    pub query: Option<String>,
    /// Range start: RFC 3339, unix seconds, `now` or relative (`-1h`).
    pub start: Option<String>,
    /// Range end (default `now`).
    pub end: Option<String>,
    /// Range step; computed from the point budget when absent.
    pub step: Option<String>,
    /// Series matchers / label name for label-values.
    pub label: Option<String>,
    /// Range queries: return raw points instead of per-series summaries.
    pub raw: Option<Value>,
    /// Apply the backend's guardrails to `query` (for tools that accept raw PromQL).
    #[serde(default)]
    pub guarded: bool,
}

/// Output shaping.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutputSpec {
    /// Structured result fields: name -> minijinja expression over inputs, step results and
    /// earlier fields. Becomes MCP structuredContent; fields named `_...` are intermediate
    /// (usable by later fields and the text, not returned).
    #[serde(default)]
    pub structured: IndexMap<String, FieldSpec>,
    /// Compact text rendering (minijinja template over inputs, steps and fields). Defaults
    /// to the structured result as JSON.
    pub text: Option<String>,
    /// Further content blocks after the text (images, audio, embedded resources); string
    /// leaves are templates.
    #[serde(default)]
    pub content: Vec<ContentSpec>,
    /// When this template renders non-empty text, the call fails with that text as the
    /// error message (e.g. "pod {{ name }} not found; list pods first").
    pub error: Option<String>,
}

/// One MCP content block, in MCP's own JSON shape. String leaves are templates.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ContentSpec {
    /// Text.
    Text {
        /// The text (template).
        text: String,
    },
    /// An image, base64-encoded.
    Image {
        /// Base64 data (template).
        data: String,
        /// e.g. image/png.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// Audio, base64-encoded.
    Audio {
        /// Base64 data (template).
        data: String,
        /// e.g. audio/wav.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// An embedded resource.
    Resource {
        /// The resource contents.
        resource: EmbeddedResourceSpec,
    },
}

/// Contents of an embedded resource: text or base64 blob.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmbeddedResourceSpec {
    /// Resource URI (template).
    pub uri: String,
    /// MIME type.
    pub mime_type: Option<String>,
    /// Text contents (template).
    pub text: Option<String>,
    /// Base64 contents (template).
    pub blob: Option<String>,
}

/// A structured field: an expression, or an expression with its JSON Schema.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum FieldSpec {
    /// A minijinja expression.
    Expr(String),
    /// An expression with a declared schema for the output schema.
    Typed(TypedFieldSpec),
    /// One row per element of a list, each row's fields computed by expressions.
    Each(EachFieldSpec),
}

/// Rows shaped from a list: `each` yields the list; for every element (named `as`,
/// default `item`) that passes `where`, `fields` are evaluated. Inputs are in scope too.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EachFieldSpec {
    /// Expression yielding a list (e.g. `pods.items`).
    pub each: String,
    /// Name of the element variable.
    #[serde(rename = "as", default = "default_item")]
    pub as_name: String,
    /// Keep only elements for which this expression is true.
    #[serde(rename = "where")]
    pub where_: Option<String>,
    /// Row fields: name -> expression over the element and the inputs.
    pub fields: IndexMap<String, String>,
    /// Description of the rows.
    pub description: Option<String>,
}

fn default_item() -> String {
    "item".into()
}

/// A structured field with a declared schema.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TypedFieldSpec {
    /// A minijinja expression.
    pub value: String,
    /// JSON Schema of the value, merged into the tool's outputSchema.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Description of the field.
    pub description: Option<String>,
}

impl FieldSpec {
    /// The expression source.
    pub fn expr(&self) -> &str {
        match self {
            FieldSpec::Expr(e) => e,
            FieldSpec::Typed(t) => &t.value,
            FieldSpec::Each(e) => &e.each,
        }
    }
}

/// Body of a Resource.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceSpec {
    /// A fixed URI (e.g. `cluster://health`), or a URI template with `{var}` parameters
    /// (e.g. `cluster://namespaces/{namespace}/pods`); parameters become string inputs.
    pub uri: String,
    /// Human-friendly title.
    pub title: Option<String>,
    /// What the resource holds.
    pub description: Option<String>,
    /// MIME type of the contents (default application/json when text is absent).
    pub mime_type: Option<String>,
    /// Backends needed (as for tools).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Serve a tool's structured result (or its text, with mimeType text/plain) instead of
    /// own steps; URI parameters become the tool's arguments.
    pub tool: Option<ToolRefSpec>,
    /// Typed constraints for URI template parameters.
    #[serde(default)]
    pub input: IndexMap<String, InputSpec>,
    /// Steps, as for tools.
    #[serde(default)]
    pub steps: IndexMap<String, StepSpec>,
    /// Output, as for tools: `text` is the content; without it the structured JSON is.
    #[serde(default)]
    pub output: OutputSpec,
}

/// A tool call that backs a resource.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolRefSpec {
    /// Tool name.
    pub name: String,
    /// Fixed arguments (URI parameters are added).
    #[serde(default)]
    pub args: serde_json::Map<String, Value>,
}

/// Body of a Prompt.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromptSpec {
    /// Human-friendly title.
    pub title: Option<String>,
    /// What the prompt helps with.
    pub description: Option<String>,
    /// Prompt arguments (strings).
    #[serde(default)]
    pub arguments: IndexMap<String, PromptArgumentSpec>,
    /// Messages; `text` is a minijinja template over the arguments.
    #[schemars(length(min = 1))]
    pub messages: Vec<PromptMessageSpec>,
}

/// A prompt argument.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromptArgumentSpec {
    /// What the argument means.
    pub description: Option<String>,
    /// The caller must supply it.
    #[serde(default)]
    pub required: bool,
    /// Value used when omitted.
    pub default: Option<String>,
}

/// Role of a prompt message.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One prompt message: `text`, or one `content` block.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromptMessageSpec {
    /// Who speaks.
    pub role: Role,
    /// minijinja template over the arguments.
    pub text: Option<String>,
    /// A non-text content block (image, audio, embedded resource).
    pub content: Option<ContentSpec>,
}

/// A secret value: read from a file or an environment variable after parsing, never
/// substituted into YAML and never printed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum SecretRef {
    /// Path of a file whose (trimmed) contents are the secret.
    File(String),
    /// Name of an environment variable holding the secret.
    Env(String),
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

/// Body of a Backend: a closed set of backend types.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackendSpec {
    /// Generic JSON over HTTP (coordination engine, KServe, custom ML services).
    Http(HttpBackendSpec),
    /// The Kubernetes API (or an offline snapshot).
    Kubernetes(KubernetesBackendSpec),
    /// The Prometheus (or Thanos querier) HTTP API.
    Prometheus(PrometheusBackendSpec),
}

impl BackendSpec {
    /// The type name (`http`, `kubernetes`, `prometheus`).
    pub fn type_name(&self) -> &'static str {
        match self {
            BackendSpec::Http(_) => "http",
            BackendSpec::Kubernetes(_) => "kubernetes",
            BackendSpec::Prometheus(_) => "prometheus",
        }
    }
}

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
}

/// Where the kubernetes backend gets its cluster.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum KubernetesSourceSpec {
    /// A kubeconfig file (default: $KUBECONFIG or ~/.kube/config) and optional context.
    Kubeconfig(KubeconfigSpec),
    /// The pod's service account.
    InCluster {},
    /// An explicit API server URL and token.
    Server(ServerSourceSpec),
    /// An offline snapshot: a directory of manifests or an OpenShift must-gather.
    Snapshot(SnapshotSourceSpec),
}

/// Kubeconfig selection.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeconfigSpec {
    /// Path of the kubeconfig file.
    pub path: Option<String>,
    /// Context to use (default: current-context).
    pub context: Option<String>,
}

/// An explicit API server.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSourceSpec {
    /// API server URL.
    pub url: String,
    /// Bearer token.
    pub token: Option<SecretRef>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsSpec,
}

/// A snapshot directory.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotSourceSpec {
    /// Directory of manifests or a must-gather.
    pub path: String,
}

/// A kubernetes backend binding.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesBackendSpec {
    /// Where the cluster comes from.
    pub source: KubernetesSourceSpec,
    /// Description (documentation only).
    pub description: Option<String>,
    /// Default timeout per request.
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

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

fn default_timeout() -> String {
    "10s".into()
}

fn default_max_points() -> u32 {
    240
}

/// Body of a Mode.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModeSpec {
    /// What the mode is for.
    pub description: Option<String>,
    /// Enabled backends by binding name; each value may override fields of the Backend
    /// document (JSON merge patch), e.g. `prometheus: {url: https://...}`.
    #[serde(default)]
    pub backends: IndexMap<String, Value>,
    /// Which tools are exposed.
    #[serde(default)]
    pub tools: SelectorSpec,
    /// Which resources are exposed.
    #[serde(default)]
    pub resources: SelectorSpec,
    /// Which prompts are exposed.
    #[serde(default)]
    pub prompts: SelectorSpec,
}

/// Include/exclude by name or label. Empty include means everything.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectorSpec {
    /// Names to expose (`*` or empty: all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Names never exposed.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Expose only documents carrying all these labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Names listed in include that may be absent without an error (tools added by later
    /// catalogues).
    #[serde(default)]
    pub optional: bool,
}
