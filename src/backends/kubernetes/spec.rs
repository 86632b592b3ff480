//! The `kubernetes` kind's specs: the binding (where the cluster comes from), the step call,
//! and the typed request a call renders to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backends::http::spec::{TlsSpec, default_timeout};
use crate::backends::lenient;
use crate::backends::secret::SecretRef;

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
    /// Client-side rate limit, circuit breaker and read retries for this binding (defaults:
    /// 50 requests/s, breaker opens after 5 consecutive failures for 30 s, 2 retries of reads).
    #[serde(default, skip_serializing_if = "crate::backends::resilience::ResilienceSpec::is_default")]
    pub resilience: crate::backends::resilience::ResilienceSpec,
    /// Cache reads for a while (opt-in: `cache: {}` takes the defaults, 10 s and nodes 30 s);
    /// answers are keyed by request and caller, their age is reported with the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::backends::cache::CacheSpec>,
    /// Whose Kubernetes identity the requests carry: `server` (the binding's own credentials),
    /// `caller-token` (the caller's own Kubernetes token, forwarded by the MCP client in
    /// `tokenHeader`, as OpenShift Lightspeed does) or `impersonate` (the binding's credentials,
    /// which need only `impersonate` rights, acting as the caller's validated OAuth identity
    /// through Impersonate-User / Impersonate-Group). Without the identity a mode needs, a call
    /// fails as forbidden; it never falls back to the server's account.
    #[serde(default)]
    pub identity: IdentityMode,
    /// The request header carrying the caller's Kubernetes token (`identity: caller-token`):
    /// `Authorization: Bearer <token>`, or the bare token in another header.
    #[serde(default = "default_token_header")]
    pub token_header: String,
    /// Resource kinds no request of this binding may touch, whatever the tool, verb or caller:
    /// `Secret` (that kind in every API group), `Application.argoproj.io` (that kind in that
    /// group only) or `*.rbac.authorization.k8s.io` (every kind of a group). A request for one
    /// (a list, get, log, write, or the events of such an object) is refused as forbidden
    /// before anything is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_kinds: Vec<String>,
}

/// One `deniedKinds` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedKind {
    /// The kind, or None for every kind of `group`.
    pub kind: Option<String>,
    /// The API group (`""` is the core group), or None for every group.
    pub group: Option<String>,
    /// The entry as written, for messages.
    pub written: String,
}

impl DeniedKind {
    /// Parse `Kind`, `Kind.group` or `*.group`.
    pub fn parse(entry: &str) -> Result<DeniedKind, String> {
        let written = entry.trim().to_string();
        let (kind, group) = match written.split_once('.') {
            Some((k, g)) => (k, Some(g)),
            None => (written.as_str(), None),
        };
        let name_ok = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric());
        let group_ok =
            |g: &str| g.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let valid = match (kind, group) {
            ("*", Some(g)) => group_ok(g),
            (k, None) => name_ok(k),
            (k, Some(g)) => name_ok(k) && group_ok(g),
        };
        if !valid {
            return Err(format!(
                "deniedKinds entry `{written}` is not `Kind`, `Kind.group` or `*.group` (e.g. `Secret`, \
                 `Application.argoproj.io`, `*.rbac.authorization.k8s.io`)"
            ));
        }
        Ok(DeniedKind { kind: (kind != "*").then(|| kind.to_string()), group: group.map(str::to_owned), written })
    }

    /// Does the entry cover `kind` of `api_version` (`v1`, `apps/v1`)? Kinds compare without
    /// regard to case, so `secret` cannot slip past `Secret`.
    pub fn covers(&self, api_version: &str, kind: &str) -> bool {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        self.kind.as_ref().is_none_or(|k| k.eq_ignore_ascii_case(kind))
            && self.group.as_ref().is_none_or(|g| g.eq_ignore_ascii_case(group))
    }
}

/// Whose identity a kubernetes binding's requests carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMode {
    /// The binding's own credentials (kubeconfig, service account, token).
    #[default]
    Server,
    /// The caller's own Kubernetes token, forwarded in `tokenHeader`.
    CallerToken,
    /// The binding's credentials impersonating the caller's validated OAuth identity.
    Impersonate,
}

impl IdentityMode {
    /// The mode's name in specs.
    pub fn name(self) -> &'static str {
        match self {
            IdentityMode::Server => "server",
            IdentityMode::CallerToken => "caller-token",
            IdentityMode::Impersonate => "impersonate",
        }
    }
}

fn default_token_header() -> String {
    "Authorization".into()
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
    /// Bearer token the binding presents: one of the snapshot's `tokens.yaml` (a snapshot
    /// with that file authenticates every request and applies its RBAC).
    pub token: Option<SecretRef>,
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

    /// The verb's name in specs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Logs => "logs",
            Self::Events => "events",
            Self::Delete => "delete",
            Self::Patch => "patch",
            Self::Scale => "scale",
            Self::RolloutRestart => "rollout-restart",
        }
    }
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
    /// The resource type (`{apiVersion, kind}`); templates may choose it from inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    /// Namespace (empty: all namespaces for list, cluster-scoped otherwise). Must render to an
    /// RFC 1123 label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name. Must render to an RFC 1123 subdomain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Label selector; spliced values must go through `selector_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    /// Field selector; spliced values must go through `selector_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<Value>,
    /// Continue token from a previous page.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// Logs: container name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Logs: number of lines from the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail_lines: Option<Value>,
    /// Logs: only lines newer than this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_seconds: Option<Value>,
    /// Logs: the previous (crashed) container instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Value>,
    /// Patch body (merge patch unless `patchType` says otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
    /// Patch type: merge or strategic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Scale: desired replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Value>,
    /// Logs: keep only lines matching this regular expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grep: Option<String>,
    /// Logs: prefix each line with its timestamp.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<Value>,
    /// Writes (delete, patch, scale, rollout-restart): ask the API server to check and answer
    /// the change without persisting it (`dryRun=All`); the answer is the object as it would
    /// be. A boolean, usually `"{{ dry_run }}"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Value>,
}

fn default_kubernetes() -> String {
    "kubernetes".into()
}

/// The resource type of a rendered request.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// e.g. `v1`, `apps/v1`.
    #[serde(default = "v1")]
    pub api_version: String,
    /// e.g. `Pod`.
    pub kind: String,
}

fn v1() -> String {
    "v1".into()
}

/// A rendered Kubernetes call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesRequest {
    pub verb: KubernetesVerb,
    #[serde(default)]
    pub resource: Option<ResourceRef>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub label_selector: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub field_selector: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub limit: Option<i64>,
    #[serde(default, rename = "continue", deserialize_with = "lenient::text")]
    pub continue_token: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub container: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub tail_lines: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub since_seconds: Option<i64>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub previous: bool,
    #[serde(default)]
    pub patch: Option<Value>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub patch_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub replicas: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub grep: Option<String>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub timestamps: bool,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub dry_run: bool,
    /// List: the fields of each object the tool reads (set by the engine, never rendered).
    #[serde(skip)]
    pub projection: Option<std::sync::Arc<crate::engine::projection::Projection>>,
}

#[cfg(test)]
mod tests {
    use super::DeniedKind;

    #[test]
    fn denied_kinds_match_a_kind_in_every_group_or_in_one_group_or_a_whole_group() {
        let secret = DeniedKind::parse("Secret").unwrap();
        assert!(
            secret.covers("v1", "Secret") && secret.covers("v1", "secret") && secret.covers("other.io/v1", "Secret")
        );
        assert!(!secret.covers("v1", "ConfigMap"));
        let app = DeniedKind::parse("Application.argoproj.io").unwrap();
        assert!(app.covers("argoproj.io/v1alpha1", "Application") && !app.covers("other.io/v1", "Application"));
        let rbac = DeniedKind::parse("*.rbac.authorization.k8s.io").unwrap();
        assert!(rbac.covers("rbac.authorization.k8s.io/v1", "ClusterRole") && !rbac.covers("v1", "Pod"));
        for bad in ["", "*", "Se cret", "Secret..io", "Secret.", "*."] {
            assert!(DeniedKind::parse(bad).is_err(), "{bad:?}");
        }
    }
}
