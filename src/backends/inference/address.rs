//! Where a binding's model server is: a fixed `baseUrl`, or a KServe InferenceService read
//! through a kubernetes binding at call time (its `status.address.url`, else `status.url`,
//! else its predictor Service). The kubernetes client is handed over by [`link`] once every
//! backend of a mode is built; a resolved URL is kept for [`CACHE_FOR`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde_json::{Value, json};

use super::spec::InferenceServiceRef;
use crate::backends::{Client, Error, ErrorKind, Request};
use crate::clip::clip;

/// How long a resolved InferenceService URL is reused before it is read again.
pub const CACHE_FOR: Duration = Duration::from_secs(15);

/// A model server's address.
pub enum Address {
    /// A fixed base URL.
    Url(reqwest::Url),
    /// An InferenceService, resolved at call time.
    Service(ServiceAddress),
}

/// An InferenceService reference with the kubernetes client that reads it.
pub struct ServiceAddress {
    /// The reference.
    pub isvc: InferenceServiceRef,
    kube: OnceLock<Arc<Client>>,
    cache: Mutex<Option<(Instant, reqwest::Url)>>,
}

impl ServiceAddress {
    /// An unlinked reference (see [`link`]).
    pub fn new(isvc: InferenceServiceRef) -> ServiceAddress {
        ServiceAddress { isvc, kube: OnceLock::new(), cache: Mutex::new(None) }
    }

    /// `InferenceService `ns/name``, for messages.
    pub fn label(&self) -> String {
        format!("InferenceService `{}/{}`", self.isvc.namespace, self.isvc.name)
    }

    /// The model server's base URL now: from the cache, or read from the cluster.
    pub async fn resolve(&self, binding: &str, timeout: Duration) -> Result<reqwest::Url, Error> {
        if let Some((at, url)) = self.cache.lock().expect("address cache lock").as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(url.clone());
        }
        let url = self.read(binding, timeout).await?;
        *self.cache.lock().expect("address cache lock") = Some((Instant::now(), url.clone()));
        Ok(url)
    }

    async fn read(&self, binding: &str, timeout: Duration) -> Result<reqwest::Url, Error> {
        let who = self.label();
        let err = |kind, msg: String| Error::new(binding, kind, msg);
        let Some(kube) = self.kube.get() else {
            return Err(err(
                ErrorKind::Unavailable,
                format!(
                    "the address of `{binding}` is {who}, read through the kubernetes binding `{}`, which is not \
                     enabled in this mode; enable it or give `{binding}` a baseUrl",
                    self.isvc.backend
                ),
            ));
        };
        let get = |api_version: &str, kind: &str, name: &str| {
            json!({"verb": "get", "resource": {"apiVersion": api_version, "kind": kind},
                   "namespace": self.isvc.namespace, "name": name})
        };
        let isvc = match self
            .get(kube, get("serving.kserve.io/v1beta1", "InferenceService", &self.isvc.name), timeout)
            .await
        {
            Ok(v) => v,
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(err(
                    ErrorKind::NotFound,
                    format!(
                        "{who} (the address of `{binding}`) does not exist; check the binding's inferenceService \
                         or list the models (list-models)"
                    ),
                ));
            }
            Err(e) => {
                return Err(err(
                    e.kind,
                    format!("{who} (the address of `{binding}`) could not be read: {}", e.message),
                ));
            }
        };
        let conditions = isvc.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        let ready = conditions.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
        match ready {
            Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => {}
            Some(c) => {
                let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let why = [text("reason"), text("message")].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
                let why = if why.is_empty() { "no reason given".to_string() } else { clip(&why.join(": "), 300) };
                return Err(err(
                    ErrorKind::Unavailable,
                    format!("{who} (the address of `{binding}`) is not ready: {why}; see get-model-status"),
                ));
            }
            None => {
                return Err(err(
                    ErrorKind::Unavailable,
                    format!("{who} (the address of `{binding}`) is not ready: it has no Ready condition yet"),
                ));
            }
        }
        let status_url = ["/status/address/url", "/status/url"]
            .iter()
            .find_map(|p| isvc.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()));
        let url = match status_url {
            Some(u) => u.to_string(),
            None => {
                // No URL in its status: its predictor Service, by KServe's naming.
                let svc_name = format!("{}-predictor", self.isvc.name);
                let svc = self.get(kube, get("v1", "Service", &svc_name), timeout).await.map_err(|e| {
                    err(
                        if e.kind == ErrorKind::NotFound { ErrorKind::Unavailable } else { e.kind },
                        format!(
                            "{who} (the address of `{binding}`) has no status.address.url or status.url, and its \
                             predictor Service `{svc_name}` could not be read: {}",
                            e.message
                        ),
                    )
                })?;
                let port = svc.pointer("/spec/ports/0/port").and_then(Value::as_u64).unwrap_or(80);
                format!("http://{svc_name}.{}.svc.cluster.local:{port}", self.isvc.namespace)
            }
        };
        let parsed =
            reqwest::Url::parse(&url).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(|| {
                err(
                    ErrorKind::Upstream,
                    format!("{who} (the address of `{binding}`) has an invalid URL `{}`", clip(&url, 200)),
                )
            })?;
        Ok(parsed)
    }

    /// One kubernetes read. Boxed: a kubernetes call inside an inference call is a recursive
    /// future type otherwise.
    fn get<'a>(
        &'a self,
        kube: &'a Client,
        request: Value,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Value, Error>> + Send + 'a>> {
        Box::pin(async move {
            let Client::Kubernetes(_) = kube else {
                return Err(Error::new(
                    &self.isvc.backend,
                    ErrorKind::Unavailable,
                    format!("`{}` is not a kubernetes binding", self.isvc.backend),
                ));
            };
            let request = serde_json::from_value(request)
                .map_err(|e| Error::new(&self.isvc.backend, ErrorKind::InvalidRequest, e.to_string()))?;
            kube.call(&self.isvc.backend, Request::Kubernetes(request), Some(timeout)).await
        })
    }
}

/// Hand every InferenceService address the kubernetes client it names, once a mode's
/// backends are built. A name that is not enabled is left unlinked (each call says so).
pub fn link(clients: &IndexMap<String, Arc<Client>>) {
    for client in clients.values() {
        if let Client::Inference(b) = &**client
            && let Address::Service(s) = &b.address
            && let Some(kube) = clients.get(&s.isvc.backend)
            && matches!(**kube, Client::Kubernetes(_))
        {
            let _ = s.kube.set(kube.clone());
        }
    }
}
