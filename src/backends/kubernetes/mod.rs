//! The `kubernetes` backend on the kube crate: kubeconfig (context per binding), in-cluster
//! service account, explicit server + token, or an offline snapshot served in-process.
//! Any apiVersion/kind works through API discovery. The client connects lazily: startup
//! never waits for (or fails on) an unreachable cluster.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::discovery::{ApiResource, Scope};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::{Effect, Error, ErrorKind, Kind, TextContext};
use crate::units::parse_duration;

mod list;
pub mod spec;
pub use spec::{
    DeniedKind, IdentityMode, KubeconfigSpec, KubernetesBackendSpec, KubernetesCallSpec, KubernetesRequest,
    KubernetesSourceSpec, KubernetesVerb, ServerSourceSpec, SnapshotSourceSpec,
};

/// The kind: the Kubernetes API through kube (or an offline snapshot).
pub struct Kubernetes;

impl Kind for Kubernetes {
    const NAME: &'static str = "kubernetes";
    type Binding = KubernetesBackendSpec;
    type Call = KubernetesCallSpec;
    type Request = KubernetesRequest;
    type Client = KubernetesBackend;

    fn cache(binding: &KubernetesBackendSpec) -> Option<&super::cache::CacheSpec> {
        binding.cache.as_ref()
    }

    fn cache_class(request: &KubernetesRequest) -> Option<&str> {
        request.resource.as_ref().map(|r| r.kind.as_str())
    }

    fn resilience(binding: &KubernetesBackendSpec) -> Option<&super::resilience::ResilienceSpec> {
        Some(&binding.resilience)
    }

    fn binding(call: &KubernetesCallSpec) -> &str {
        &call.backend
    }

    fn effect(call: &KubernetesCallSpec) -> Effect {
        if call.verb.is_write() { Effect::Write } else { Effect::Read }
    }

    fn action(call: &KubernetesCallSpec) -> (&'static str, String) {
        ("/verb", format!("verb `{}`", call.verb.name()))
    }

    fn field(pointer: &str) -> Option<TextContext> {
        Some(match pointer {
            "/namespace" => TextContext::Namespace,
            "/name" => TextContext::Name,
            "/container" => TextContext::Container,
            "/resource/apiVersion" => TextContext::ApiVersion,
            "/resource/kind" => TextContext::KindName,
            "/labelSelector" => TextContext::LabelSelector,
            "/fieldSelector" => TextContext::FieldSelector,
            "/backend" | "/verb" => return None,
            // Query parameters kube encodes (limit, continue, tailLines, grep...) and patch
            // bodies (JSON).
            _ => TextContext::Data,
        })
    }

    fn connect(name: &str, binding: &KubernetesBackendSpec) -> Result<KubernetesBackend, String> {
        KubernetesBackend::new(name, binding)
    }

    async fn call(
        client: &KubernetesBackend,
        request: KubernetesRequest,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        client.call(&request, timeout).await
    }

    fn describe(client: &KubernetesBackend, request: &KubernetesRequest) -> Value {
        client.describe(request)
    }

    fn reference_time(client: &KubernetesBackend) -> Option<chrono::DateTime<chrono::Utc>> {
        client.reference_time()
    }

    fn acting_as(client: &KubernetesBackend) -> Option<String> {
        use sha2::{Digest, Sha256};
        match client.who() {
            Ok(Some(Who::Token(t))) => {
                let digest: String = Sha256::digest(t.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect();
                Some(format!("caller token sha256:{digest}"))
            }
            Ok(Some(Who::Impersonate(user, groups))) if groups.is_empty() => Some(format!("impersonating {user}")),
            Ok(Some(Who::Impersonate(user, groups))) => {
                Some(format!("impersonating {user} (groups {})", groups.join(", ")))
            }
            Ok(None) => None,
            Err(_) => Some(format!("nobody: identity {} without the caller's identity", client.identity.name())),
        }
    }

    fn audit(_: &KubernetesBackend, request: &KubernetesRequest) -> (String, String) {
        let kind = request.resource.as_ref().map(|r| r.kind.as_str()).unwrap_or("Pod");
        let target = match (request.namespace.as_deref(), request.name.as_deref()) {
            (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
            (None, Some(n)) => format!("{kind} {n}"),
            (Some(ns), None) => format!("{kind} in {ns}"),
            (None, None) => kind.to_string(),
        };
        let dry = if request.dry_run { " (dry run)" } else { "" };
        (format!("{}{dry}", request.verb.name()), target)
    }
}

/// Marker that replaces every Secret value.
pub const MASKED: &str = "<masked>";

/// A configured Kubernetes binding.
pub struct KubernetesBackend {
    name: String,
    source: KubernetesSourceSpec,
    timeout: Duration,
    identity: IdentityMode,
    token_header: String,
    /// Kinds no request may touch (`deniedKinds`).
    denied: Vec<DeniedKind>,
    /// Where the cluster is, the server's own client and the URL it talks to (named in errors).
    client: Box<OnceCell<Result<Connected, String>>>,
    /// Clients by the identity they carry (`caller-token`, `impersonate`): one caller's client
    /// is never used for another.
    callers: Mutex<HashMap<Who, kube::Client>>,
    /// Discovery results by (apiVersion, kind): API metadata, the same for every identity.
    discovered: Mutex<HashMap<(String, String), (ApiResource, bool)>>,
}

/// A connected binding: how to build clients, the server's own client, the URL.
type Connected = (Base, kube::Client, String);

/// How to build a client for an identity.
#[derive(Clone)]
enum Base {
    /// An in-process snapshot, and the binding's own token for it.
    Snapshot(crate::snapshot::api::Shared, Option<String>),
    /// A live cluster's client configuration (the binding's own credentials).
    Live(Box<kube::Config>),
}

/// The identity a per-caller client carries.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Who {
    /// The caller's own bearer token.
    Token(String),
    /// The binding's credentials impersonating a user and groups.
    Impersonate(String, Vec<String>),
}

/// Per-caller clients kept at most (the map is emptied when full: tokens rotate).
const MAX_CALLER_CLIENTS: usize = 256;

impl Base {
    fn client_for(&self, who: &Who) -> Result<kube::Client, String> {
        match self {
            Base::Snapshot(store, own) => {
                let mut headers = http::HeaderMap::new();
                let bearer = |t: &str| {
                    http::HeaderValue::from_str(&format!("Bearer {t}"))
                        .map_err(|_| "the token is not a valid header value".to_string())
                };
                match who {
                    Who::Token(t) => {
                        headers.insert(http::header::AUTHORIZATION, bearer(t)?);
                    }
                    Who::Impersonate(user, groups) => {
                        if let Some(t) = own {
                            headers.insert(http::header::AUTHORIZATION, bearer(t)?);
                        }
                        let value = |v: &str| {
                            http::HeaderValue::from_str(v).map_err(|_| {
                                format!("`{}` cannot be sent in a header", crate::clip::clip(v, crate::clip::QUOTE_MAX))
                            })
                        };
                        headers.insert("impersonate-user", value(user)?);
                        for g in groups {
                            headers.append("impersonate-group", value(g)?);
                        }
                    }
                }
                Ok(crate::snapshot::api::kube_client_with(store.clone(), headers))
            }
            Base::Live(config) => {
                let mut config = (**config).clone();
                match who {
                    // The caller's token replaces every credential of the binding.
                    Who::Token(t) => {
                        config.auth_info =
                            kube::config::AuthInfo { token: Some(t.clone().into()), ..Default::default() };
                    }
                    Who::Impersonate(user, groups) => {
                        config.auth_info.impersonate = Some(user.clone());
                        config.auth_info.impersonate_groups = (!groups.is_empty()).then(|| groups.clone());
                    }
                }
                kube::Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))
            }
        }
    }
}

/// The embedded demo cluster (tests/snapshots/demo-cluster at build time).
mod demo {
    include!(concat!(env!("OUT_DIR"), "/demo_snapshot.rs"));
}

/// Snapshot path that selects the embedded demo cluster.
pub const BUILTIN_DEMO: &str = "builtin:demo";

impl KubernetesBackend {
    /// Set up (nothing is contacted until the first call).
    pub fn new(name: &str, spec: &KubernetesBackendSpec) -> Result<Self, String> {
        let timeout = parse_duration(&spec.timeout).ok_or_else(|| format!("invalid timeout `{}`", spec.timeout))?;
        let denied = spec.denied_kinds.iter().map(|e| DeniedKind::parse(e)).collect::<Result<Vec<_>, _>>()?;
        Ok(KubernetesBackend {
            name: name.to_string(),
            source: spec.source.clone(),
            timeout: Duration::from_secs_f64(timeout),
            identity: spec.identity,
            token_header: spec.token_header.clone(),
            denied,
            client: Box::default(),
            callers: Mutex::new(HashMap::new()),
            discovered: Mutex::new(HashMap::new()),
        })
    }

    fn forbidden(&self, reason: impl Into<String>) -> Error {
        Error::new(&self.name, ErrorKind::Forbidden, reason)
    }

    /// Who this call's requests act as, by the binding's identity mode; None for the server's
    /// own account. A mode whose identity is missing refuses (never the server's account).
    fn who(&self) -> Result<Option<Who>, Error> {
        match self.identity {
            IdentityMode::Server => Ok(None),
            IdentityMode::CallerToken => {
                let forwarded = crate::identity::forwarded();
                let token = forwarded.as_deref().and_then(|f| f.bearer_token(&self.token_header));
                match token {
                    Some(t) => Ok(Some(Who::Token(t.to_string()))),
                    None => Err(self.forbidden(format!(
                        "this binding acts with the caller's own Kubernetes token (identity: caller-token) and the \
                         request carried none in header `{}`; nothing was sent (the server's own account is never \
                         used in its place)",
                        self.token_header
                    ))),
                }
            }
            IdentityMode::Impersonate => {
                let who = crate::identity::current().filter(|i| i.source == crate::identity::Source::OAuth);
                match who {
                    Some(i) => Ok(Some(Who::Impersonate(i.username.clone(), i.groups.clone()))),
                    None => Err(self.forbidden(
                        "this binding impersonates the caller (identity: impersonate) and the call carried no \
                         validated OAuth identity; nothing was sent (the server's own account is never used in its \
                         place)",
                    )),
                }
            }
        }
    }

    /// Refuse a request touching a denied kind (`deniedKinds`), before anything is sent.
    fn refuse_denied(&self, api_version: &str, kind: &str, req: &KubernetesRequest) -> Result<(), Error> {
        match self.denied.iter().find(|d| d.covers(api_version, kind)) {
            None => Ok(()),
            Some(d) => Err(self
                .forbidden(format!(
                    "{kind} ({api_version}) is a denied kind on this binding (deniedKinds: `{}`): no tool may {} it, \
                     whoever asks; nothing was sent",
                    d.written,
                    req.verb.name()
                ))
                .at(describe_target(req))),
        }
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::new(&self.name, ErrorKind::Unavailable, reason)
    }

    /// The client for this call's identity.
    async fn client(&self) -> Result<kube::Client, Error> {
        let who = self.who()?;
        let r = self.client.get_or_init(|| connect(self.source.clone())).await;
        let (base, server, _) = r.as_ref().map_err(|e| self.unavailable(e.clone()))?;
        let Some(who) = who else { return Ok(server.clone()) };
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = callers.get(&who) {
            return Ok(c.clone());
        }
        let client = base.client_for(&who).map_err(|e| self.forbidden(e))?;
        if callers.len() >= MAX_CALLER_CLIENTS {
            callers.clear();
        }
        callers.insert(who, client.clone());
        Ok(client)
    }

    async fn resource(
        &self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), Error> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.discovered.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        // A kind the cluster lacks is the caller's problem; anything else (connection refused,
        // TLS, auth) means the cluster is unavailable.
        let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await.map_err(|e| match &e {
            kube::Error::Discovery(_) => Error::new(
                &self.name,
                ErrorKind::NotFound,
                format!("the cluster does not serve {kind} in {api_version} (is its CRD or operator installed?)"),
            ),
            _ => self.map_error(e, kind, None, None),
        })?;
        let namespaced = caps.scope == Scope::Namespaced;
        self.discovered.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (ar.clone(), namespaced));
        Ok((ar, namespaced))
    }

    /// Perform a rendered request.
    /// The timeout bounds each request to the API server: a whole list read in pages is
    /// several requests (100 for 100,000 pods), and each page gets the whole timeout rather
    /// than a share of one.
    pub async fn call(&self, req: &KubernetesRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        let limit = timeout.unwrap_or(self.timeout);
        if req.verb == KubernetesVerb::List && req.limit.is_none() {
            return self.call_inner(req, limit).await;
        }
        self.within(limit, req, self.call_inner(req, limit)).await
    }

    /// `f`, or a timeout error naming the request's target when it takes longer than `limit`.
    async fn within<T>(
        &self,
        limit: Duration,
        req: &KubernetesRequest,
        f: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
            Err(Error::new(&self.name, ErrorKind::Timeout, format!("no answer within {limit:?}"))
                .at(describe_target(req)))
        })
    }

    async fn call_inner(&self, req: &KubernetesRequest, limit: Duration) -> Result<Value, Error> {
        let verb = req.verb.name();
        let invalid = |m: String| Error::new(&self.name, ErrorKind::InvalidRequest, m);
        let (api_version, kind) = match (req.verb, &req.resource) {
            (KubernetesVerb::Logs, _) => ("v1".to_string(), "Pod".to_string()),
            (_, Some(r)) => (r.api_version.clone(), r.kind.clone()),
            (_, None) => return Err(invalid("`resource` is required".into())),
        };
        // Denied kinds: as asked, and as the cluster names them after discovery (a kind's
        // case or an alias cannot slip past); a request for events reads Events too.
        self.refuse_denied(&api_version, &kind, req)?;
        if req.verb == KubernetesVerb::Events {
            self.refuse_denied("v1", "Event", req)?;
        }
        let client = self.within(limit, req, self.client()).await?;
        let (ar, namespaced) = self.within(limit, req, self.resource(&client, &api_version, &kind)).await?;
        self.refuse_denied(&ar.api_version, &ar.kind, req)?;
        let ns = req.namespace.clone();
        let name = req.name.clone();
        // The engine checks names before calling; this keeps the backend safe on its own.
        for (what, v) in [("namespace", &ns), ("name", &name)] {
            if let Some(v) = v
                && !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
            {
                return Err(Error::new(
                    &self.name,
                    ErrorKind::Refused,
                    format!("`{}` is not a valid {what}", crate::clip::clip(v, crate::clip::QUOTE_MAX)),
                ));
            }
        }
        let api: Api<DynamicObject> = match (&ns, namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let need_name = || name.clone().ok_or_else(|| invalid(format!("verb `{verb}` needs a `name`")));
        let kube_err = |e: kube::Error| self.map_error(e, &kind, ns.as_deref(), name.as_deref());
        // Writes may ask the server to check and answer without persisting (dryRun=All).
        let pp = PatchParams { dry_run: req.dry_run, ..Default::default() };
        let value = match req.verb {
            KubernetesVerb::List => {
                // A tool that sets no limit wants the whole list: it is fetched in pages (so no
                // answer is held whole, as text and parsed), each page parsed keeping only the
                // fields the tool reads. A tool's own limit is one page, its continue returned.
                let paged = req.limit.is_none();
                let mut lp = ListParams {
                    label_selector: req.label_selector.clone(),
                    field_selector: req.field_selector.clone(),
                    limit: match req.limit {
                        Some(l) => Some(u32::try_from(l).map_err(|_| invalid(format!("limit {l} is out of range")))?),
                        None => Some(list::PAGE_SIZE),
                    },
                    continue_token: req.continue_token.clone(),
                    ..Default::default()
                };
                let ns_path = if namespaced { ns.as_deref() } else { None };
                let url = <DynamicObject as kube::Resource>::url_path(&ar, ns_path);
                let mut items = Vec::new();
                let (cont, remaining) = loop {
                    let request = kube::core::Request::new(&url).list(&lp).map_err(|e| invalid(e.to_string()))?;
                    let text =
                        self.within(limit, req, async { client.request_text(request).await.map_err(kube_err) }).await?;
                    let page = list::parse_page(&text, req.projection.as_deref()).map_err(|e| {
                        Error::new(&self.name, ErrorKind::Upstream, format!("the list answer is not a list: {e}"))
                            .at(kind.clone())
                    })?;
                    drop(text);
                    items.extend(page.items);
                    match page.continue_token {
                        Some(c) if paged => lp.continue_token = Some(c),
                        c => break (c, page.remaining),
                    }
                };
                // List items carry no apiVersion/kind on the wire: they are filled in, and
                // Secrets masked.
                for item in &mut items {
                    if item.get("kind").is_none_or(Value::is_null) {
                        item["kind"] = json!(ar.kind);
                        item["apiVersion"] = json!(ar.api_version);
                    }
                    mask_secret(item);
                }
                json!({"items": items, "continue": cont, "remainingItemCount": remaining})
            }
            KubernetesVerb::Get => object_json(api.get(&need_name()?).await.map_err(kube_err)?, &ar),
            KubernetesVerb::Logs => {
                let pods: Api<k8s_openapi::api::core::v1::Pod> = match &ns {
                    Some(ns) => Api::namespaced(client.clone(), ns),
                    None => return Err(invalid("logs need a `namespace`".into())),
                };
                let lp = LogParams {
                    container: req.container.clone(),
                    tail_lines: req.tail_lines,
                    since_seconds: req.since_seconds,
                    previous: req.previous,
                    timestamps: req.timestamps,
                    ..Default::default()
                };
                let text = pods.logs(&need_name()?, &lp).await.map_err(kube_err)?;
                crate::backends::logs::logs_json(text, req.grep.clone()).await.map_err(invalid)?
            }
            KubernetesVerb::Events => {
                let target = need_name()?;
                let events: Api<DynamicObject> = {
                    let (ear, _) = self.resource(&client, "v1", "Event").await?;
                    match &ns {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, &ear),
                        None => Api::all_with(client.clone(), &ear),
                    }
                };
                let lp =
                    ListParams::default().fields(&format!("involvedObject.name={target},involvedObject.kind={kind}"));
                let list = events.list(&lp).await.map_err(kube_err)?;
                json!({"items": list.items.into_iter().map(|o| serde_json::to_value(o).unwrap_or_default()).collect::<Vec<_>>()})
            }
            KubernetesVerb::Delete => {
                let dp = DeleteParams { dry_run: req.dry_run, ..Default::default() };
                api.delete(&need_name()?, &dp).await.map_err(kube_err)?;
                json!({"deleted": {"kind": kind, "namespace": ns, "name": name}, "dryRun": req.dry_run})
            }
            KubernetesVerb::Patch => {
                let patch = req
                    .patch
                    .clone()
                    .filter(|p| !p.is_null())
                    .ok_or_else(|| invalid("patch needs a `patch` body".into()))?;
                let p = match req.patch_type.as_deref() {
                    None | Some("merge") => Patch::Merge(patch),
                    Some("strategic") => Patch::Strategic(patch),
                    Some(other) => {
                        return Err(invalid(format!("unsupported patchType `{other}` (merge or strategic)")));
                    }
                };
                object_json(api.patch(&need_name()?, &pp, &p).await.map_err(kube_err)?, &ar)
            }
            KubernetesVerb::Scale => {
                let replicas =
                    req.replicas.filter(|r| *r >= 0).ok_or_else(|| invalid("scale needs `replicas` >= 0".into()))?;
                let s = api
                    .patch_scale(&need_name()?, &pp, &Patch::Merge(json!({"spec": {"replicas": replicas}})))
                    .await
                    .map_err(kube_err)?;
                serde_json::to_value(s).unwrap_or_default()
            }
            KubernetesVerb::RolloutRestart => {
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let p = Patch::Merge(
                    json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}),
                );
                object_json(api.patch(&need_name()?, &pp, &p).await.map_err(kube_err)?, &ar)
            }
        };
        Ok(value)
    }

    fn map_error(&self, e: kube::Error, kind: &str, ns: Option<&str>, name: Option<&str>) -> Error {
        let object = match (ns, name) {
            (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
            (None, Some(n)) => format!("{kind} {n}"),
            (Some(ns), None) => format!("{kind} in {ns}"),
            (None, None) => kind.to_string(),
        };
        match &e {
            kube::Error::Api(s) => {
                let error_kind = ErrorKind::of_status(s.code);
                let hint = match (error_kind, self.identity) {
                    (ErrorKind::NotFound, _) => " (check the name and namespace, or list first)",
                    (ErrorKind::Forbidden, _) if s.code == 401 => match self.identity {
                        IdentityMode::CallerToken => " (the cluster did not accept the caller's Kubernetes token)",
                        _ => " (the cluster did not accept the server's credentials)",
                    },
                    (ErrorKind::Forbidden, IdentityMode::Server) => {
                        " (the server's service account lacks this permission)"
                    }
                    (ErrorKind::Forbidden, _) => " (the calling user lacks this permission in the cluster's RBAC)",
                    _ => "",
                };
                Error::new(&self.name, error_kind, format!("HTTP {}: {}{hint}", s.code, s.message)).at(object)
            }
            _ => {
                let at = self.client.get().and_then(|r| r.as_ref().ok()).map(|(_, _, url)| url.as_str()).unwrap_or("");
                Error::new(
                    &self.name,
                    ErrorKind::Unreachable,
                    format!("could not be reached at {at} ({}): {}", source_label(&self.source), kube_message(&e)),
                )
                .at(object)
            }
        }
    }

    /// The snapshot's capture time, once its store is loaded (None for live clusters).
    pub fn reference_time(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let KubernetesSourceSpec::Snapshot(s) = &self.source else { return None };
        let snaps = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner());
        snaps.get(&s.path).and_then(|st| st.read().unwrap_or_else(|e| e.into_inner()).captured_at)
    }

    /// What a request would do (for `render`).
    pub fn describe(&self, req: &KubernetesRequest) -> Value {
        let mut out = json!({"kubernetes": describe_request(req), "source": source_label(&self.source)});
        if self.identity != IdentityMode::Server {
            out["identity"] = json!(self.identity.name());
        }
        out
    }
}

fn source_label(s: &KubernetesSourceSpec) -> String {
    match s {
        KubernetesSourceSpec::Kubeconfig(k) => format!(
            "kubeconfig {} (context {})",
            k.path.clone().unwrap_or_else(|| "$KUBECONFIG or ~/.kube/config".into()),
            k.context.clone().unwrap_or_else(|| "current".into())
        ),
        KubernetesSourceSpec::InCluster {} => "in-cluster service account".into(),
        KubernetesSourceSpec::Server(s) => format!("server {}", s.url),
        KubernetesSourceSpec::Snapshot(s) => format!("snapshot {}", s.path),
    }
}

fn describe_target(req: &KubernetesRequest) -> String {
    let kind = req.resource.as_ref().map(|r| r.kind.as_str()).unwrap_or("Pod");
    let ns = req.namespace.as_deref().unwrap_or_default();
    let name = req.name.as_deref().unwrap_or_default();
    format!("{} {kind} {ns}/{name}", req.verb.name())
}

/// A rendered request as the JSON `render` shows (absent fields left out).
fn describe_request(req: &KubernetesRequest) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("verb".into(), json!(req.verb.name()));
    if let Some(r) = &req.resource {
        out.insert("resource".into(), json!({"apiVersion": r.api_version, "kind": r.kind}));
    }
    let texts = [
        ("namespace", &req.namespace),
        ("name", &req.name),
        ("labelSelector", &req.label_selector),
        ("fieldSelector", &req.field_selector),
        ("continue", &req.continue_token),
        ("container", &req.container),
        ("patchType", &req.patch_type),
        ("grep", &req.grep),
    ];
    for (k, v) in texts {
        if let Some(v) = v {
            out.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [
        ("limit", req.limit),
        ("tailLines", req.tail_lines),
        ("sinceSeconds", req.since_seconds),
        ("replicas", req.replicas),
    ] {
        if let Some(v) = v {
            out.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [("previous", req.previous), ("timestamps", req.timestamps), ("dryRun", req.dry_run)] {
        if v {
            out.insert(k.into(), json!(true));
        }
    }
    if let Some(p) = &req.patch {
        out.insert("patch".into(), p.clone());
    }
    Value::Object(out)
}

fn kube_message(e: &kube::Error) -> String {
    super::http::error_chain(e)
}

/// An object as JSON, with apiVersion/kind filled in and Secret values masked.
fn object_json(o: DynamicObject, ar: &ApiResource) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or_default();
    if v.get("kind").is_none_or(Value::is_null) {
        v["kind"] = json!(ar.kind);
        v["apiVersion"] = json!(ar.api_version);
    }
    mask_secret(&mut v);
    v
}

/// Replace every value of a Secret's data and stringData with a marker.
pub fn mask_secret(v: &mut Value) {
    if v.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(Value::Object(m)) = v.get_mut(field) {
            for val in m.values_mut() {
                *val = json!(MASKED);
            }
        }
    }
    if let Some(Value::Object(ann)) = v.pointer_mut("/metadata/annotations") {
        ann.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

static SNAPSHOTS: std::sync::LazyLock<Mutex<HashMap<String, crate::snapshot::api::Shared>>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

/// The shared in-memory store of a snapshot path (loaded once per process).
pub fn snapshot_store(path: &str) -> Result<crate::snapshot::api::Shared, String> {
    if let Some(s) = SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
        return Ok(s.clone());
    }
    let store = if path == BUILTIN_DEMO {
        crate::snapshot::Store::from_files(demo::FILES.iter().copied())
    } else {
        crate::snapshot::Store::load(&PathBuf::from(path)).map_err(|e| format!("cannot load snapshot {path}: {e}"))?
    };
    tracing::info!(snapshot = path, objects = store.object_count(), skipped = store.skipped.len(), "snapshot loaded");
    let shared = Arc::new(RwLock::new(store));
    SNAPSHOTS.lock().unwrap_or_else(|e| e.into_inner()).insert(path.to_string(), shared.clone());
    Ok(shared)
}

async fn connect(source: KubernetesSourceSpec) -> Result<Connected, String> {
    crate::install_crypto_provider();
    let config = match source {
        KubernetesSourceSpec::Snapshot(s) => {
            let path = s.path.clone();
            let store =
                tokio::task::spawn_blocking(move || snapshot_store(&path)).await.map_err(|e| e.to_string())??;
            let token = s.token.as_ref().map(super::secret::resolve).transpose()?.map(|t| t.expose().to_string());
            let mut headers = http::HeaderMap::new();
            if let Some(t) = &token {
                let v = http::HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|_| "the snapshot token is not a valid header value".to_string())?;
                headers.insert(http::header::AUTHORIZATION, v);
            }
            let client = crate::snapshot::api::kube_client_with(store.clone(), headers);
            return Ok((Base::Snapshot(store, token), client, format!("snapshot {}", s.path)));
        }
        KubernetesSourceSpec::Kubeconfig(k) => {
            let options = kube::config::KubeConfigOptions { context: k.context.clone(), ..Default::default() };
            match &k.path {
                Some(p) => {
                    let kc = kube::config::Kubeconfig::read_from(p)
                        .map_err(|e| format!("cannot read kubeconfig {p}: {e}"))?;
                    kube::Config::from_custom_kubeconfig(kc, &options).await
                }
                None => kube::Config::from_kubeconfig(&options).await,
            }
            .map_err(|e| format!("kubeconfig: {}", super::http::error_chain(&e)))?
        }
        KubernetesSourceSpec::InCluster {} => {
            kube::Config::incluster().map_err(|e| format!("in-cluster config: {e}"))?
        }
        KubernetesSourceSpec::Server(s) => {
            let uri: http::Uri = s.url.parse().map_err(|e| format!("invalid server URL {}: {e}", s.url))?;
            let mut c = kube::Config::new(uri);
            if let Some(t) = &s.token {
                let token = super::secret::resolve(t)?;
                c.auth_info.token = Some(token.expose().to_string().into());
            }
            c.accept_invalid_certs = s.tls.insecure_skip_verify;
            c
        }
    };
    let url = config.cluster_url.to_string();
    let client =
        kube::Client::try_from(config.clone()).map_err(|e| format!("cannot build the Kubernetes client: {e}"))?;
    Ok((Base::Live(Box::new(config)), client, url))
}
