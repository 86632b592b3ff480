//! Backends: the services steps call. A closed set of types, each built from its
//! `kind: Backend` spec when a mode is activated.

pub mod http;
pub mod kubernetes;
pub mod prometheus;
pub mod secret;

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;

use crate::spec::model::BackendSpec;

/// Why a backend call failed. Messages are written for the model reading them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend cannot be used at all (misconfigured, missing secret, not built).
    #[error("backend `{backend}` is unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    /// No answer within the timeout.
    #[error("backend `{backend}` did not answer within {after:?} ({target})")]
    Timeout { backend: String, after: Duration, target: String },
    /// The server answered with a non-2xx status.
    #[error("backend `{backend}` answered HTTP {status} for {target}: {body}")]
    Status { backend: String, status: u16, target: String, body: String },
    /// Connecting or transferring failed.
    #[error(
        "backend `{backend}` could not be reached ({target}): {message}; check that the service runs and the backend's URL is right"
    )]
    Transport { backend: String, target: String, message: String },
    /// The rendered request is not acceptable.
    #[error("invalid request for backend `{backend}`: {message}")]
    InvalidRequest { backend: String, message: String },
    /// The response could not be read.
    #[error("backend `{backend}` sent an unreadable response ({target}): {message}")]
    Decode { backend: String, target: String, message: String },
}

/// A constructed backend client.
pub enum Client {
    Http(http::HttpBackend),
    Kubernetes(kubernetes::KubernetesBackend),
    Prometheus(prometheus::PrometheusBackend),
    /// A backend type this build cannot call yet, or one whose setup failed.
    Unavailable {
        name: String,
        reason: String,
    },
}

impl Client {
    /// Build a client from a (mode-merged) spec. Failures become an unavailable client so
    /// that startup never blocks or dies on one bad backend.
    pub fn build(name: &str, spec: &BackendSpec) -> Client {
        let unavailable = |reason: String| Client::Unavailable { name: name.to_string(), reason };
        match spec {
            BackendSpec::Http(h) => match http::HttpBackend::new(name, h) {
                Ok(c) => Client::Http(c),
                Err(e) => unavailable(e.to_string()),
            },
            BackendSpec::Kubernetes(k) => match kubernetes::KubernetesBackend::new(name, k) {
                Ok(c) => Client::Kubernetes(c),
                Err(e) => unavailable(e),
            },
            BackendSpec::Prometheus(p) => match prometheus::PrometheusBackend::new(name, p) {
                Ok(c) => Client::Prometheus(c),
                Err(e) => unavailable(e),
            },
        }
    }

    /// Perform a rendered request.
    pub async fn call(&self, request: &Value, timeout: Option<Duration>) -> Result<Value, Error> {
        match self {
            Client::Http(h) => h.call(request, timeout).await,
            Client::Kubernetes(k) => k.call(request, timeout).await,
            Client::Prometheus(p) => p.call(request, timeout).await,
            Client::Unavailable { name, reason } => {
                Err(Error::Unavailable { backend: name.clone(), reason: reason.clone() })
            }
        }
    }

    /// The exact request that would be sent, secrets redacted (for `render`).
    pub fn describe(&self, request: &Value) -> Value {
        match self {
            Client::Http(h) => h.describe(request),
            Client::Kubernetes(k) => k.describe(request),
            Client::Prometheus(p) => p.describe(request),
            Client::Unavailable { reason, .. } => serde_json::json!({"request": request, "unavailable": reason}),
        }
    }
}

/// The clients of a mode's enabled backends.
#[derive(Default, Clone)]
pub struct Backends {
    pub clients: IndexMap<String, Arc<Client>>,
}

impl Backends {
    /// Build every enabled backend.
    pub fn build(enabled: &IndexMap<String, BackendSpec>) -> Backends {
        Backends { clients: enabled.iter().map(|(n, s)| (n.clone(), Arc::new(Client::build(n, s)))).collect() }
    }

    /// The time "now" means for ages: a snapshot's capture time, else None (the clock).
    pub fn reference_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.clients.values().find_map(|c| match c.as_ref() {
            Client::Kubernetes(k) => k.reference_time(),
            _ => None,
        })
    }

    /// The client for a binding, or an unavailable error naming why.
    pub fn get(&self, name: &str) -> Result<&Arc<Client>, Error> {
        self.clients.get(name).ok_or_else(|| Error::Unavailable {
            backend: name.to_string(),
            reason: "not enabled in the active mode".into(),
        })
    }
}

/// Read a string field of a rendered request (numbers and booleans are accepted as text).
pub fn text_field(request: &Value, key: &str) -> Option<String> {
    match request.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}
