//! Backends: the services steps call, one folder per kind.
//!
//! A kind (`http/`, `kubernetes/`, `prometheus/`) holds its binding spec (a `kind: Backend`
//! document), its step call spec, the typed request rendered from a call, which request
//! fields carry text and in which context, which calls write, the call itself and its
//! `render` description, by implementing [`Kind`]. The [`kinds!`] line at the bottom is the
//! one registration point: it generates the binding and call enums (serde + JSON Schema), the
//! typed request and client enums and their dispatch.

pub mod cache;
pub mod client;
#[cfg(test)]
pub mod echo;
pub mod http;
pub mod inference;
pub mod kubernetes;
pub mod logs;
pub mod prometheus;
pub mod resilience;
pub mod secret;
pub mod server;
pub mod sql;
pub mod workflows;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clip::{MESSAGE_MAX, QUOTE_MAX, clip};

/// What kind of failure a backend call had: each kind gets its own advice to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The object or path does not exist (HTTP 404).
    NotFound,
    /// The server's identity may not do this (HTTP 401/403).
    Forbidden,
    /// The request is malformed or names something the backend does not serve (4xx).
    InvalidRequest,
    /// A safety check refused the request before anything was sent.
    Refused,
    /// Connecting or transferring failed.
    Unreachable,
    /// No answer within the timeout.
    Timeout,
    /// The backend is not configured or not enabled, or its setup failed.
    Unavailable,
    /// The backend answered with a server error (5xx) or an unreadable body.
    Upstream,
}

impl ErrorKind {
    /// What the model should do about a failure of this kind.
    pub fn advice(self) -> &'static str {
        match self {
            ErrorKind::NotFound => {
                "It does not exist: check the name and namespace (list first to find the right one), then call again."
            }
            ErrorKind::Forbidden => {
                "The server's identity is not allowed to do this; tell the user which permission is missing."
            }
            ErrorKind::InvalidRequest => "Fix the arguments (see the message) and call again.",
            ErrorKind::Refused => {
                "A safety check refused the request and nothing was sent; change the arguments instead of retrying the same call."
            }
            ErrorKind::Unreachable | ErrorKind::Unavailable => {
                "The data source is unavailable; tell the user, or try again later or with other tools."
            }
            ErrorKind::Timeout => {
                "The data source is slow; narrow the query (namespace, limit, shorter range) or try later."
            }
            ErrorKind::Upstream => "The data source failed; tell the user, or try again later.",
        }
    }

    /// The kind of an HTTP status code.
    pub fn of_status(status: u16) -> ErrorKind {
        match status {
            404 | 410 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::Forbidden,
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::Upstream,
        }
    }
}

/// Why a backend call failed. The message is written for the model reading it and quotes
/// request values clipped (see [`crate::clip`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("backend `{backend}`{}: {message}", target.as_deref().map(|t| format!(" ({t})")).unwrap_or_default())]
pub struct Error {
    /// The binding name.
    pub backend: String,
    /// What failed, by kind.
    pub kind: ErrorKind,
    /// What was asked (method and URL, verb and object), clipped.
    pub target: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl Error {
    /// An error of `kind` for `backend`.
    pub fn new(backend: &str, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { backend: backend.to_string(), kind, target: None, message: clip(&message.into(), MESSAGE_MAX) }
    }

    /// The same error, naming what was asked.
    pub fn at(mut self, target: impl Into<String>) -> Error {
        self.target = Some(clip(&target.into(), QUOTE_MAX));
        self
    }
}

/// What a call does to the world: decides the tool's hints and whether it must be annotated
/// destructive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Reads only.
    Read,
    /// A non-GET method the step declares free of side effects (a query or inference API).
    SideEffectFree,
    /// Writes only to the server's own store (an sql binding): not a cluster write, so the
    /// tool need not be annotated destructive, but it is not read-only either.
    Store,
    /// Changes something.
    Write,
}

/// The text context of a templated request field: which escaping the static lint demands
/// and which structural check runs on the rendered value before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextContext {
    /// PromQL query text.
    Promql,
    /// A Prometheus label name.
    PromqlLabelName,
    /// A URL path (each templated segment must stay one segment).
    UrlPath,
    /// One URL path segment sent whole (a model name the backend places in its own path).
    PathSegment,
    /// A Kubernetes label selector.
    LabelSelector,
    /// A Kubernetes field selector.
    FieldSelector,
    /// A Kubernetes namespace (RFC 1123 label).
    Namespace,
    /// A Kubernetes object name (RFC 1123 subdomain).
    Name,
    /// A container name (RFC 1123 label).
    Container,
    /// A Kubernetes apiVersion.
    ApiVersion,
    /// A Kubernetes kind.
    KindName,
    /// An HTTP header value (single line, only from declared inputs).
    Header,
    /// Typed data (query parameters, JSON bodies, numbers, continue tokens): encoded by the
    /// client, so text cannot change the request's structure.
    Data,
    /// Literal text (SQL): a template here is a validate error; values travel separately.
    Literal,
}

/// A backend kind. Implemented by a unit type in each backend folder.
pub trait Kind: 'static {
    /// The name used as a Backend's `type` and as a step's call key.
    const NAME: &'static str;
    /// The spec of a `kind: Backend` document of this kind.
    type Binding: Clone + std::fmt::Debug + Serialize + DeserializeOwned + JsonSchema;
    /// The call a step makes (string leaves are templates).
    type Call: Clone + std::fmt::Debug + Serialize + DeserializeOwned + JsonSchema;
    /// A rendered call with typed values.
    type Request: std::fmt::Debug + Clone + DeserializeOwned + Send + Sync;
    /// A connected client.
    type Client: Send + Sync;

    /// The binding a call names.
    fn binding(call: &Self::Call) -> &str;
    /// What a call does to the world.
    fn effect(call: &Self::Call) -> Effect;
    /// The field that decides the effect (JSON pointer inside the call) and the action in
    /// words, for messages (`/verb`, "verb `delete`").
    fn action(call: &Self::Call) -> (&'static str, String);
    /// The context of a templated field, by its JSON pointer inside the call (`/namespace`,
    /// `/resource/kind`, `/headers/X-Org`, `/body/a/0`). None: the field is not a template.
    fn field(pointer: &str) -> Option<TextContext>;
    /// Problems with a call that the kind itself sees (JSON pointer inside the call, message),
    /// reported by `validate`.
    fn check(_call: &Self::Call) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Build a client (nothing is contacted yet).
    fn connect(name: &str, binding: &Self::Binding) -> Result<Self::Client, String>;
    /// Perform a request.
    fn call(
        client: &Self::Client,
        request: Self::Request,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Value, Error>> + Send;
    /// What a request would do, secrets redacted (for `render`).
    fn describe(client: &Self::Client, request: &Self::Request) -> Value;
    /// The time "now" means for this backend's data (a snapshot's capture time).
    fn reference_time(_client: &Self::Client) -> Option<chrono::DateTime<chrono::Utc>> {
        None
    }
    /// A request's verb and target for the audit record (no bodies, no credentials): by
    /// default the method and URL `describe` shows (without its query), else the kind's name.
    fn audit(client: &Self::Client, request: &Self::Request) -> (String, String) {
        let d = Self::describe(client, request);
        let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        let verb = text("method").or_else(|| text("op")).unwrap_or_else(|| Self::NAME.to_string());
        let target = text("url").map(|u| u.split('?').next().unwrap_or_default().to_string()).unwrap_or_default();
        (verb, target)
    }
    /// Whose identity a request of this binding carries now, for the audit record (None: the
    /// binding's own credentials). Never a credential: a caller's token appears as a digest.
    fn acting_as(_client: &Self::Client) -> Option<String> {
        None
    }
    /// The binding's rate limit, breaker and retries (see [`resilience`]); None: defaults.
    fn resilience(_binding: &Self::Binding) -> Option<&resilience::ResilienceSpec> {
        None
    }
    /// The binding's read cache (see [`cache`]); None: reads are not cached. A binding that
    /// acts with each caller's own credentials must return None unless its answers depend
    /// only on [`crate::identity::current`] (the cache keys by it).
    fn cache(_binding: &Self::Binding) -> Option<&cache::CacheSpec> {
        None
    }
    /// The class of a request for per-class cache TTLs (kubernetes: the kind).
    fn cache_class(_request: &Self::Request) -> Option<&str> {
        None
    }
}

/// Generate the enums over all kinds and their dispatch. One line per kind.
macro_rules! kinds {
    ($($(#[$cfg:meta])* $variant:ident => $module:ident :: $kind:ident),+ $(,)?) => {
        /// Body of a Backend document: its `type` names the kind.
        #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
        #[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
        pub enum BackendSpec {
            $(
                #[doc = concat!("A `", stringify!($module), "` backend.")]
                $(#[$cfg])*
                $variant(<$module::$kind as Kind>::Binding),
            )+
        }

        /// The backend call of a step: exactly one kind, named by its key
        /// (`kubernetes: {...}`), so serde itself refuses zero or two calls.
        #[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
        #[serde(rename_all = "lowercase")]
        #[allow(clippy::large_enum_variant)] // one per step, built once at load
        pub enum CallSpec {
            $(
                #[doc = concat!("A `", stringify!($module), "` call.")]
                $(#[$cfg])*
                $variant(<$module::$kind as Kind>::Call),
            )+
        }

        /// A rendered call, typed by its kind (cloned when a read is retried).
        #[derive(Debug, Clone)]
        pub enum Request {
            $( $(#[$cfg])* $variant(<$module::$kind as Kind>::Request), )+
        }

        /// A constructed backend client.
        pub enum Client {
            $( $(#[$cfg])* $variant(<$module::$kind as Kind>::Client), )+
            /// A backend whose setup failed: every call says why.
            Unavailable { name: String, reason: String },
        }

        /// The names of every kind, in registration order.
        #[allow(clippy::vec_init_then_push)] // each push may be compiled out by its cfg
        pub fn kind_names() -> Vec<&'static str> {
            let mut names = Vec::new();
            $( $(#[$cfg])* names.push(<$module::$kind as Kind>::NAME); )+
            names
        }

        impl BackendSpec {
            /// The kind name (`http`, `kubernetes`, `prometheus`).
            pub fn type_name(&self) -> &'static str {
                match self { $( $(#[$cfg])* Self::$variant(_) => <$module::$kind as Kind>::NAME, )+ }
            }
            /// The binding's rate limit, breaker and retries.
            pub fn resilience(&self) -> resilience::ResilienceSpec {
                let spec = match self { $( $(#[$cfg])* Self::$variant(b) => <$module::$kind as Kind>::resilience(b), )+ };
                spec.cloned().unwrap_or_default()
            }
            /// The binding's read cache, if it has one.
            pub fn cache(&self) -> Option<cache::CacheSpec> {
                match self { $( $(#[$cfg])* Self::$variant(b) => <$module::$kind as Kind>::cache(b).cloned(), )+ }
            }
        }

        impl Request {
            /// The class of the request for per-class cache TTLs.
            pub fn cache_class(&self) -> Option<&str> {
                match self { $( $(#[$cfg])* Self::$variant(r) => <$module::$kind as Kind>::cache_class(r), )+ }
            }
        }

        impl CallSpec {
            /// The kind name.
            pub fn kind_name(&self) -> &'static str {
                match self { $( $(#[$cfg])* Self::$variant(_) => <$module::$kind as Kind>::NAME, )+ }
            }
            /// The binding the call names.
            pub fn binding(&self) -> &str {
                match self { $( $(#[$cfg])* Self::$variant(c) => <$module::$kind as Kind>::binding(c), )+ }
            }
            /// What the call does to the world.
            pub fn effect(&self) -> Effect {
                match self { $( $(#[$cfg])* Self::$variant(c) => <$module::$kind as Kind>::effect(c), )+ }
            }
            /// The field deciding the effect and the action in words.
            pub fn action(&self) -> (&'static str, String) {
                match self { $( $(#[$cfg])* Self::$variant(c) => <$module::$kind as Kind>::action(c), )+ }
            }
            /// Problems with the call the kind sees (pointer inside the call, message).
            pub fn check(&self) -> Vec<(String, String)> {
                match self { $( $(#[$cfg])* Self::$variant(c) => <$module::$kind as Kind>::check(c), )+ }
            }
            /// The context of a templated field of this call.
            pub fn field(&self, pointer: &str) -> Option<TextContext> {
                match self { $( $(#[$cfg])* Self::$variant(_) => <$module::$kind as Kind>::field(pointer), )+ }
            }
            /// The call's own JSON (the body under its kind key): its string leaves are the
            /// templates.
            pub fn body_json(&self) -> Value {
                match self {
                    $( $(#[$cfg])* Self::$variant(c) => serde_json::to_value(c).expect("call specs serialize"), )+
                }
            }
            /// Type a rendered body (the call's JSON with its templates filled in).
            pub fn typed(&self, rendered: Value) -> Result<Request, serde_json::Error> {
                Ok(match self {
                    $( $(#[$cfg])* Self::$variant(_) => Request::$variant(serde_json::from_value(rendered)?), )+
                })
            }
        }

        impl Client {
            /// Build a client from a (mode-merged) spec. Failures become an unavailable
            /// client so that startup never blocks or dies on one bad backend.
            pub fn build(name: &str, spec: &BackendSpec) -> Client {
                let built = match spec {
                    $( $(#[$cfg])* BackendSpec::$variant(b) => <$module::$kind as Kind>::connect(name, b).map(Client::$variant), )+
                };
                built.unwrap_or_else(|reason| Client::Unavailable { name: name.to_string(), reason })
            }

            /// Perform a rendered request.
            pub async fn call(&self, name: &str, request: Request, timeout: Option<Duration>) -> Result<Value, Error> {
                match (self, request) {
                    $( $(#[$cfg])* (Client::$variant(c), Request::$variant(r)) => <$module::$kind as Kind>::call(c, r, timeout).await, )+
                    (Client::Unavailable { reason, .. }, _) => Err(Error::new(name, ErrorKind::Unavailable, reason.clone())),
                    #[allow(unreachable_patterns)]
                    _ => Err(Error::new(name, ErrorKind::InvalidRequest, "the step's call is of another backend kind")),
                }
            }

            /// The exact request that would be sent, secrets redacted (for `render`).
            pub fn describe(&self, request: &Request) -> Value {
                match (self, request) {
                    $( $(#[$cfg])* (Client::$variant(c), Request::$variant(r)) => <$module::$kind as Kind>::describe(c, r), )+
                    (Client::Unavailable { reason, .. }, r) => serde_json::json!({"request": format!("{r:?}"), "unavailable": reason}),
                    #[allow(unreachable_patterns)]
                    _ => serde_json::json!({"error": "the step's call is of another backend kind"}),
                }
            }

            /// A request's kind, verb, target and acting identity for the audit record.
            pub fn audit(&self, request: &Request) -> (&'static str, String, String, Option<String>) {
                match (self, request) {
                    $( $(#[$cfg])* (Client::$variant(c), Request::$variant(r)) => {
                        let (verb, target) = <$module::$kind as Kind>::audit(c, r);
                        (<$module::$kind as Kind>::NAME, verb, target, <$module::$kind as Kind>::acting_as(c))
                    } )+
                    (Client::Unavailable { .. }, _) => ("unavailable", String::new(), String::new(), None),
                    #[allow(unreachable_patterns)]
                    _ => ("unknown", String::new(), String::new(), None),
                }
            }

            /// The time "now" means for this backend's data, if not the clock.
            pub fn reference_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
                match self {
                    $( $(#[$cfg])* Client::$variant(c) => <$module::$kind as Kind>::reference_time(c), )+
                    Client::Unavailable { .. } => None,
                }
            }
        }
    };
}

kinds! {
    Client => client::Client,
    Http => http::Http,
    Inference => inference::Inference,
    Kubernetes => kubernetes::Kubernetes,
    Prometheus => prometheus::Prometheus,
    Sql => sql::Sql,
    Workflows => workflows::Workflows,
    Server => server::Server,
    #[cfg(test)]
    Echo => echo::Echo,
}

/// The clients of a mode's enabled backends, each behind its rate limit and breaker.
#[derive(Default, Clone)]
pub struct Backends {
    pub clients: IndexMap<String, Arc<Client>>,
    /// Rate limit, breaker and retries by binding (see [`resilience`]).
    pub resilience: IndexMap<String, Arc<resilience::Resilience>>,
    /// Read caches of the bindings that have one (see [`cache`]).
    pub caches: IndexMap<String, Arc<cache::Cache>>,
}

impl Backends {
    /// Build every enabled backend.
    pub fn build(enabled: &IndexMap<String, BackendSpec>) -> Backends {
        let mut out = Backends::default();
        for (name, spec) in enabled {
            let built = resilience::Resilience::new(&spec.resilience())
                .and_then(|r| Ok((r, spec.cache().map(|c| cache::Cache::new(&c)).transpose()?)));
            let (client, guard) = match built {
                Ok((r, cache)) => {
                    if let Some(c) = cache {
                        out.caches.insert(name.clone(), Arc::new(c));
                    }
                    (Client::build(name, spec), r)
                }
                Err(reason) => (
                    Client::Unavailable { name: name.clone(), reason },
                    resilience::Resilience::new(&resilience::ResilienceSpec::default()).expect("defaults are valid"),
                ),
            };
            out.clients.insert(name.clone(), Arc::new(client));
            out.resilience.insert(name.clone(), Arc::new(guard));
        }
        // Bindings that read their address through another binding (inference -> kubernetes).
        inference::link(&out.clients);
        out
    }

    /// Perform a rendered request on a binding through its rate limit and circuit breaker;
    /// reads (`effect` [`Effect::Read`]) that fail with an unreachable or failing backend
    /// are retried with backoff.
    pub async fn call(
        &self,
        name: &str,
        request: Request,
        timeout: Option<Duration>,
        effect: Effect,
    ) -> Result<Value, Error> {
        let cached = self.call_shared(name, request, timeout, effect).await?;
        Ok(Arc::try_unwrap(cached.value).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// [`Backends::call`], with reads served from the binding's cache when it has one: the
    /// answer is shared, with its age when it came from the cache.
    pub async fn call_shared(
        &self,
        name: &str,
        request: Request,
        timeout: Option<Duration>,
        effect: Effect,
    ) -> Result<cache::Cached, Error> {
        let client = self.get(name)?;
        // The audit record names every request of the call (described before it is sent).
        let audited = crate::audit::collecting().then(|| client.audit(&request));
        let answer = self.call_guarded(name, client, request, timeout, effect).await;
        if let Some((kind, verb, target, acting_as)) = audited {
            let outcome = match &answer {
                Ok(_) => "ok".to_string(),
                Err(e) => {
                    serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                }
            };
            let cached = answer.as_ref().is_ok_and(|a| a.age.is_some());
            crate::audit::note(crate::audit::BackendRequest {
                backend: name.to_string(),
                kind,
                verb,
                target,
                acting_as,
                cached,
                outcome,
            });
        }
        answer
    }

    /// [`Backends::call_shared`] without the audit note.
    async fn call_guarded(
        &self,
        name: &str,
        client: &Arc<Client>,
        request: Request,
        timeout: Option<Duration>,
        effect: Effect,
    ) -> Result<cache::Cached, Error> {
        let guard = self.resilience.get(name).filter(|_| !matches!(**client, Client::Unavailable { .. }));
        let send = |request: Request| async move {
            match guard {
                Some(g) => g.run(name, effect, || client.call(name, request.clone(), timeout)).await,
                None => client.call(name, request, timeout).await,
            }
        };
        match self.caches.get(name).filter(|_| effect == Effect::Read) {
            Some(cache) => {
                let key = cache::Cache::key(&request);
                let class = request.cache_class().map(str::to_owned);
                cache.get_or_fetch(key, class.as_deref(), send(request)).await
            }
            None => Ok(cache::Cached { value: Arc::new(send(request).await?), age: None, shared: false }),
        }
    }

    /// The time "now" means for ages: a snapshot's capture time, else None (the clock).
    pub fn reference_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.clients.values().find_map(|c| c.reference_time())
    }

    /// The client for a binding, or an unavailable error naming why.
    pub fn get(&self, name: &str) -> Result<&Arc<Client>, Error> {
        self.clients.get(name).ok_or_else(|| Error::new(name, ErrorKind::Unavailable, "not enabled in the active mode"))
    }
}

/// Serde helpers for typed requests: template leaves render numbers and booleans as JSON
/// values, but a literal in YAML may be a string (`limit: "50"`); empty strings mean absent.
pub mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// An optional non-empty string (numbers are taken as their text).
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => return Err(serde::de::Error::custom(format!("expected text, got {other}"))),
        })
    }

    /// An optional integer: a JSON integer or integer text; `1.0` is refused, never dropped.
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Value::deserialize(d)?;
        let bad = |v: &Value| serde::de::Error::custom(format!("expected an integer, got {v}"));
        Ok(match &v {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.trim().parse().map_err(|_| bad(&v))?),
            Value::Number(n) => Some(n.as_i64().ok_or_else(|| bad(&v))?),
            _ => return Err(bad(&v)),
        })
    }

    /// A boolean: JSON true/false or the text `true`/`false`; null and "" are false.
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => false,
            Value::Bool(b) => b,
            Value::String(s) if s.is_empty() || s == "false" => false,
            Value::String(s) if s == "true" => true,
            other => return Err(serde::de::Error::custom(format!("expected true or false, got {other}"))),
        })
    }
}
