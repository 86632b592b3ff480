//! The raw spec model: what admins write in YAML.
//!
//! Every type denies unknown fields and documents each field; schemars turns these docs
//! into the committed JSON Schemas under `schemas/`. Compiled forms live in `engine`.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::backends::BackendSpec;
use crate::backends::CallSpec;

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
document!(
    /// A durable workflow: ordered steps that call registry tools, with conditions,
    /// retries, timeouts, dry-run propagation and approval gates; state lives in a store.
    WorkflowDoc, Workflow, WorkflowSpec
);
pub use super::workflow::WorkflowSpec;
document!(
    /// A REST route: an HTTP method and path bound to a tool, mapping the request to the
    /// tool's arguments and its result to a status and body. Served beside /mcp.
    RouteDoc, Route, RouteSpec
);

document!(
    /// A shared spec library: named expressions and text macros that tools and resources
    /// import (`imports: [k8s]`) and call by name (`k8s.node_counts(nodes.items)`), so pod
    /// status, readiness, conditions and PromQL label filters are written once.
    LibraryDoc, Library, LibrarySpec
);

/// Body of a Library.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LibrarySpec {
    /// What the library holds.
    pub description: Option<String>,
    /// Other libraries its definitions call (no cycles).
    #[serde(default)]
    pub imports: Vec<String>,
    /// Definitions by name. A definition may call those defined before it in the same
    /// library (`self_name.other(...)`) and those of imported libraries.
    #[schemars(length(min = 1))]
    pub define: IndexMap<String, DefinitionSpec>,
}

/// One named definition: an expression (returns any value) or a text macro (returns text).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DefinitionSpec {
    /// What it computes (documentation only).
    pub description: Option<String>,
    /// Parameter names, bound positionally at the call (missing ones are none).
    #[serde(default)]
    pub params: Vec<String>,
    /// A minijinja expression over the parameters (exactly one of `value` and `text`).
    pub value: Option<String>,
    /// A minijinja text template over the parameters (exactly one of `value` and `text`).
    pub text: Option<String>,
}

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
    /// Libraries (`kind: Library`) whose definitions the templates call by
    /// `library.name(...)`.
    #[serde(default)]
    pub imports: Vec<String>,
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

/// One step: a single backend call, named by its key (`kubernetes: {...}`, `prometheus:
/// {...}`, `http: {...}`), plus how the engine runs it.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// What the step fetches (documentation only).
    pub description: Option<String>,
    /// A failure of this step degrades its section instead of failing the call.
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
    pub select_one: bool,
    /// The backend call.
    pub call: CallSpec,
}

/// The fields of a step other than its call (serde and schema helper).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StepOptionsSpec {
    /// What the step fetches (documentation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// A failure of this step degrades its section instead of failing the call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    optional: bool,
    /// Run the step only when this holds: a backend name (`prometheus`: run when that
    /// backend is enabled in the mode) or a minijinja expression over the inputs and
    /// `backends` (a map of enabled backend names).
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<String>,
    /// Per-step timeout (e.g. `5s`, `500ms`); defaults to the backend's timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<String>,
    /// JSONPath (RFC 9535) applied to the response; the step's value becomes the list of
    /// matches (or the single match with `selectOne`).
    #[serde(skip_serializing_if = "Option::is_none")]
    select: Option<String>,
    /// With `select`: keep only the first match (null when none).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    select_one: bool,
}

const STEP_OPTIONS: &[&str] = &["description", "optional", "when", "timeout", "select", "selectOne"];

impl<'de> Deserialize<'de> for StepSpec {
    /// The step's own options, then exactly one remaining key: the call, deserialized as the
    /// externally tagged [`CallSpec`] (serde names the known kinds for an unknown key).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
        let mut options = serde_json::Map::new();
        for key in STEP_OPTIONS {
            if let Some(v) = map.remove(*key) {
                options.insert((*key).to_string(), v);
            }
        }
        let options: StepOptionsSpec = serde_json::from_value(Value::Object(options)).map_err(D::Error::custom)?;
        if map.len() != 1 {
            let found: Vec<&String> = map.keys().collect();
            return Err(D::Error::custom(format!(
                "a step makes exactly one backend call (one of {}); found {}",
                crate::backends::kind_names().join(", "),
                if found.is_empty() { "none".to_string() } else { format!("{found:?}") }
            )));
        }
        let call: CallSpec = serde_json::from_value(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(StepSpec {
            description: options.description,
            optional: options.optional,
            when: options.when,
            timeout: options.timeout,
            select: options.select,
            select_one: options.select_one,
            call,
        })
    }
}

impl Serialize for StepSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let options = StepOptionsSpec {
            description: self.description.clone(),
            optional: self.optional,
            when: self.when.clone(),
            timeout: self.timeout.clone(),
            select: self.select.clone(),
            select_one: self.select_one,
        };
        let mut v = serde_json::to_value(options).map_err(serde::ser::Error::custom)?;
        if let (Value::Object(m), Value::Object(call)) =
            (&mut v, serde_json::to_value(&self.call).map_err(serde::ser::Error::custom)?)
        {
            m.extend(call);
        }
        v.serialize(s)
    }
}

impl JsonSchema for StepSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StepSpec".into()
    }

    /// The options' properties plus one property per backend kind, exactly one of which is
    /// required.
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = StepOptionsSpec::json_schema(generator);
        let calls = CallSpec::json_schema(generator);
        let obj = schema.ensure_object();
        obj.insert(
            "description".into(),
            "One step: a single backend call, named by its key, plus how the engine runs it.".into(),
        );
        let mut one_of = Vec::new();
        if let Some(Value::Array(variants)) = calls.as_value().get("oneOf") {
            for variant in variants {
                if let Some(Value::Object(props)) = variant.get("properties") {
                    for (k, v) in props {
                        if let Some(Value::Object(p)) = obj.get_mut("properties") {
                            p.insert(k.clone(), v.clone());
                        }
                        one_of.push(serde_json::json!({"required": [k]}));
                    }
                }
            }
        }
        obj.insert("oneOf".into(), Value::Array(one_of));
        schema
    }
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
    /// When the response budget cuts this list: keep its `first` entries (default) or its
    /// `last` ones (e.g. log lines, where the newest matter).
    #[serde(default)]
    pub keep: Keep,
}

/// Which end of a list survives a response-budget cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The first entries.
    #[default]
    First,
    /// The last entries.
    Last,
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
    /// Libraries the templates call, as for tools.
    #[serde(default)]
    pub imports: Vec<String>,
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
    /// Also enable, as they are, every binding whose labels include all of these (e.g.
    /// `{toolset: ml}`: a model binding added as one YAML file joins the mode). Empty: none.
    #[serde(default)]
    pub backend_labels: BTreeMap<String, String>,
    /// Which tools are exposed.
    #[serde(default)]
    pub tools: SelectorSpec,
    /// Which resources are exposed.
    #[serde(default)]
    pub resources: SelectorSpec,
    /// Which prompts are exposed.
    #[serde(default)]
    pub prompts: SelectorSpec,
    /// Which REST routes are served (a route is served only when its tool is exposed).
    #[serde(default)]
    pub routes: SelectorSpec,
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

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethodSpec {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethodSpec {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethodSpec::Get => "GET",
            HttpMethodSpec::Post => "POST",
            HttpMethodSpec::Put => "PUT",
            HttpMethodSpec::Patch => "PATCH",
            HttpMethodSpec::Delete => "DELETE",
        }
    }
}

/// Body of a Route.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteSpec {
    /// The HTTP method.
    pub method: HttpMethodSpec,
    /// The path, starting with `/`; `{name}` stands for one whole segment
    /// (e.g. `/api/v1/workflows/{id}`), available to `arguments` as `path.name`.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// The tool the route calls.
    pub tool: String,
    /// One-line summary for the OpenAPI document (defaults to the tool's title or name).
    pub summary: Option<String>,
    /// What the route does (defaults to the tool's description).
    pub description: Option<String>,
    /// The tool's arguments: input name -> minijinja expression over the request's `path`,
    /// `query`, `body` and `headers` (lower-case names), e.g.
    /// `body.affected_resources or body.affectedResources`. A null or undefined value leaves
    /// the input to its default. An input not listed is taken from the path variable of the
    /// same name, else from the query parameter (GET, DELETE) or the body field (POST, PUT,
    /// PATCH) of the same name. Query and path values are converted to the input's type.
    #[serde(default)]
    pub arguments: IndexMap<String, String>,
    /// Other spellings of JSON body fields, field -> alias (e.g. `affected_resources:
    /// affectedResources`, the camelCase the original MCP server sent). A body may give either:
    /// an alias is read as its field; a body giving both is refused with 400.
    /// The OpenAPI body lists both with the field's schema and says "not both".
    #[serde(default)]
    pub aliases: IndexMap<String, String>,
    /// The success response.
    #[serde(default)]
    pub response: RouteResponseSpec,
    /// Error responses, the first matching entry wins. Without a match: invalid arguments,
    /// invalid requests and the tool's own error -> 400, not found -> 404, a backend that is
    /// down, unreachable or slow -> 503, other failures -> 502/500; the body is
    /// `{status: error, error: MESSAGE}`.
    #[serde(default)]
    pub errors: Vec<RouteErrorSpec>,
}

/// An HTTP status: a number, or an expression yielding one.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum StatusSpec {
    /// A fixed status code.
    Code(#[schemars(range(min = 100, max = 599))] u16),
    /// A minijinja expression yielding the code, bare or in `{{ }}` (e.g.
    /// `503 if result.status == 'unhealthy' else 200`).
    Expr(String),
}

impl Default for StatusSpec {
    fn default() -> Self {
        StatusSpec::Code(200)
    }
}

/// How a tool's result becomes the response.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteResponseSpec {
    /// The status on success (default 200).
    #[serde(default)]
    pub status: StatusSpec,
    /// Further statuses an expression `status` may yield (for the OpenAPI document).
    #[serde(default)]
    pub statuses: Vec<u16>,
    /// Content type (default `application/json`; a `text/...` type renders `body` as text).
    pub content_type: Option<String>,
    /// The body: JSON whose string leaves are templates over `result` (the tool's
    /// structured result), `text` (its text) and the request (`path`, `query`, `body`,
    /// `headers`); a leaf that is exactly `{{ expr }}` keeps its JSON type. Default: the
    /// structured result.
    pub body: Option<Value>,
    /// JSON Schema of the body for the OpenAPI document (default: derived from the tool's
    /// output schema).
    pub schema: Option<Value>,
}

/// A failure of a call, as routes name it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FailureSpec {
    /// The arguments do not satisfy the tool's inputs (or the body is not JSON).
    InvalidArguments,
    /// The tool's own `output.error` fired.
    Error,
    /// A backend says the object does not exist.
    NotFound,
    /// The server's identity may not do this.
    Forbidden,
    /// A backend refused the request as malformed.
    InvalidRequest,
    /// A safety check refused the request.
    Refused,
    /// A backend could not be reached.
    Unreachable,
    /// A backend did not answer in time.
    Timeout,
    /// A backend is not configured or not enabled.
    Unavailable,
    /// A backend failed.
    Upstream,
    /// Shaping the output failed.
    Output,
}

/// One error response.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RouteErrorSpec {
    /// The failures this entry answers (empty: any).
    #[serde(default)]
    pub on: Vec<FailureSpec>,
    /// Only when this expression over `error` (`kind`, `message`) and the request holds.
    pub when: Option<String>,
    /// The HTTP status.
    #[schemars(range(min = 400, max = 599))]
    pub status: u16,
    /// Content type (default `application/json`; a `text/...` type renders `body` as text).
    pub content_type: Option<String>,
    /// The body, templates over `error` and the request (default `{status: error, error:
    /// "{{ error.message }}"}`).
    pub body: Option<Value>,
    /// JSON Schema of the body for the OpenAPI document.
    pub schema: Option<Value>,
}
