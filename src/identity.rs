//! The caller of one call: who asked (a validated OAuth token's claims, the static token, or
//! nobody in particular), carried through the call in a tokio task-local so that backends
//! (Kubernetes impersonation), the audit record and refusals can read it without changing
//! any signature. The MCP handler and the REST routes set it around a call with [`scope`];
//! anything inside the call reads it with [`current`].
//!
//! Steps of a call run inside the caller's task (the executor polls them together), so the
//! identity is visible to every backend request; a task spawned inside a call does not
//! inherit it: wrap its future with [`scope`] again.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;

/// How the caller was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// No authentication configured (stdio, loopback HTTP without a token, the CLI).
    Anonymous,
    /// The static bearer token (`http.token_file`): one shared identity.
    StaticToken,
    /// A JWT access token validated against the issuer's keys (`mcp::auth`).
    #[serde(rename = "oauth")]
    OAuth,
    /// The workflow runner, calling a tool for a stored (approved) workflow.
    Workflow,
}

/// A caller's validated identity. Never holds a credential: the token it came from is not
/// kept (no token passthrough).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// How the caller was authenticated.
    pub source: Source,
    /// Stable subject: the token's `sub`, or `static-token` / `anonymous`.
    pub subject: String,
    /// The user name to act as in Kubernetes (impersonation): the configured username claim
    /// (default `preferred_username`), else the subject.
    pub username: String,
    /// Groups from the configured groups claim (default `groups`).
    pub groups: Vec<String>,
    /// Granted OAuth scopes (`scope`, space separated, or `scp`).
    pub scopes: Vec<String>,
    /// Token issuer (`iss`), for OAuth identities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// OAuth client the token was issued to (`azp` or `client_id`), if the token says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Identity {
    /// The caller when no authentication applies.
    pub fn anonymous() -> Identity {
        Identity {
            source: Source::Anonymous,
            subject: "anonymous".into(),
            username: "anonymous".into(),
            groups: Vec::new(),
            scopes: Vec::new(),
            issuer: None,
            client_id: None,
        }
    }

    /// The holder of the static bearer token.
    pub fn static_token() -> Identity {
        Identity {
            source: Source::StaticToken,
            subject: "static-token".into(),
            username: "static-token".into(),
            ..Identity::anonymous()
        }
    }

    /// The workflow runner acting for workflow `id`.
    pub fn workflow(id: &str) -> Identity {
        Identity {
            source: Source::Workflow,
            subject: format!("workflow:{id}"),
            username: "workflow-runner".into(),
            ..Identity::anonymous()
        }
    }

    /// Was this scope granted?
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

tokio::task_local! {
    static CURRENT: Arc<Identity>;
}

/// Run `fut` as `identity`: [`current`] inside it (and inside the steps it polls) returns it.
pub async fn scope<F: Future>(identity: Arc<Identity>, fut: F) -> F::Output {
    CURRENT.scope(identity, fut).await
}

/// The identity of the call being run, if any was set.
pub fn current() -> Option<Arc<Identity>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The headers of the HTTP request that carried a call (credentials among them: never logged
/// or shown). A kubernetes binding with `identity: caller-token` reads the caller's own
/// Kubernetes token from the header it names (OpenShift Lightspeed forwards it); nothing else
/// reads them.
#[derive(Clone, Default)]
pub struct Forwarded(pub http::HeaderMap);

impl std::fmt::Debug for Forwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.keys().map(|k| k.as_str()).collect();
        f.debug_tuple("Forwarded").field(&names).finish()
    }
}

impl Forwarded {
    /// The bearer token in `header`: `Bearer <token>`, or the bare value in a header other than
    /// Authorization.
    pub fn bearer_token(&self, header: &str) -> Option<&str> {
        let value = self.0.get(header)?.to_str().ok()?.trim();
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ if header.eq_ignore_ascii_case("authorization") => return None,
            _ => value,
        };
        (!token.is_empty()).then_some(token)
    }
}

tokio::task_local! {
    static FORWARDED: Arc<Forwarded>;
}

/// Run `fut` with the request headers `headers` visible to [`forwarded`].
pub async fn with_headers<F: Future>(headers: Arc<Forwarded>, fut: F) -> F::Output {
    FORWARDED.scope(headers, fut).await
}

/// The headers of the request the call being run came in (None over stdio and the CLI).
pub fn forwarded() -> Option<Arc<Forwarded>> {
    FORWARDED.try_with(Arc::clone).ok()
}

tokio::task_local! {
    static PEER: rmcp::Peer<rmcp::RoleServer>;
}

/// Run `fut` with the MCP client of the call reachable by [`elicit`].
pub async fn with_peer<F: Future>(peer: rmcp::Peer<rmcp::RoleServer>, fut: F) -> F::Output {
    PEER.scope(peer, fut).await
}

/// Can the call being run ask its user (its MCP client declared form elicitation)?
pub fn can_elicit() -> bool {
    PEER.try_with(|p| p.supported_elicitation_modes().contains(&rmcp::service::ElicitationMode::Form)).unwrap_or(false)
}

/// Ask the user of the call being run through MCP elicitation: the message and a form.
/// Errors say why nobody could be asked (no MCP client, no elicitation capability, no
/// answer within `timeout`).
pub async fn elicit(
    message: String,
    schema: rmcp::model::ElicitationSchema,
    timeout: std::time::Duration,
) -> Result<rmcp::model::ElicitResult, String> {
    let Ok(peer) = PEER.try_with(Clone::clone) else {
        return Err("there is no MCP client to ask: the call did not come over MCP (a REST route, the CLI or a \
                    workflow)"
            .into());
    };
    if !can_elicit() {
        return Err("the MCP client did not declare the elicitation capability (form mode), so the user cannot be \
                    asked"
            .into());
    }
    let params =
        rmcp::model::ElicitRequestParams::FormElicitationParams { meta: None, message, requested_schema: schema };
    match tokio::time::timeout(timeout, peer.create_elicitation(params)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("asking the user failed: {e}")),
        Err(_) => Err(format!("the user gave no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_identity_is_visible_inside_its_scope_only() {
        assert!(current().is_none());
        let who = Arc::new(Identity { subject: "alice".into(), ..Identity::anonymous() });
        let seen = scope(who.clone(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some(&*who));
        assert!(current().is_none());
    }

    #[test]
    fn forwarded_tokens_are_read_from_the_named_header_and_never_printed() {
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer t0k3n".parse().unwrap());
        headers.insert("x-kubernetes-token", "k8s".parse().unwrap());
        let f = Forwarded(headers);
        assert_eq!(f.bearer_token("Authorization"), Some("t0k3n"));
        assert_eq!(f.bearer_token("X-Kubernetes-Token"), Some("k8s"));
        assert_eq!(f.bearer_token("x-other"), None);
        assert!(!format!("{f:?}").contains("t0k3n"));
    }
}
