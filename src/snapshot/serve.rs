//! `snapshot serve` hardening: Secret values masked in the served copy (unless asked
//! otherwise), a Host check (loopback names only, against DNS rebinding), and an optional
//! bearer token that the printed kubeconfig carries.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Store;
use crate::backends::kubernetes::MASKED;

/// Replace every Secret's `data` and `stringData` values with the marker and drop its
/// last-applied annotation (which repeats them). Returns how many Secrets were masked.
pub fn mask_secrets(store: &mut Store) -> usize {
    let mut masked = 0;
    for (key, objects) in store.objects.iter_mut() {
        if store.types.get(key).is_none_or(|t| t.kind != "Secret") {
            continue;
        }
        for obj in objects.values_mut() {
            let mut v = obj.value();
            mask(&mut v);
            *obj = super::Stored::new(&v);
            masked += 1;
        }
    }
    masked
}

fn mask(obj: &mut Value) {
    for field in ["data", "stringData"] {
        if let Some(Value::Object(m)) = obj.get_mut(field) {
            m.values_mut().for_each(|v| *v = json!(MASKED));
        }
    }
    if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations") {
        ann.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The API router behind the Host check and, when given, the token.
pub fn guarded(api: Router, token: Option<String>) -> Router {
    api.layer(middleware::from_fn_with_state(Arc::new(token), guard))
}

async fn guard(State(token): State<Arc<Option<String>>>, req: Request, next: Next) -> Response {
    if !loopback_host(req.headers()) {
        return status(StatusCode::FORBIDDEN, "Forbidden", "the Host header must name this machine (localhost)");
    }
    if let Some(token) = token.as_deref() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let ok = given.is_some_and(|g| {
            g.len() == token.len() && g.bytes().zip(token.bytes()).fold(0, |a, (x, y)| a | (x ^ y)) == 0
        });
        if !ok {
            return status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "a bearer token is required (see the printed kubeconfig)",
            );
        }
    }
    next.run(req).await
}

/// Host is localhost, 127.0.0.1 or [::1], any port.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
    let host = host.trim().to_ascii_lowercase();
    let bare = if host.starts_with('[') {
        host.find(']').map(|i| &host[..=i]).unwrap_or(&host)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(&host)
    };
    matches!(bare, "localhost" | "127.0.0.1" | "[::1]")
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    (code, axum::Json(body)).into_response()
}

/// A kubeconfig pointing at a served snapshot, with the token when one is required.
pub fn kubeconfig(url: &str, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("{{token: \"{t}\"}}"),
        None => "{}".into(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: snapshot\n  cluster:\n    server: {url}\ncontexts:\n- name: snapshot\n  context:\n    cluster: snapshot\n    user: snapshot\n    namespace: default\ncurrent-context: snapshot\nusers:\n- name: snapshot\n  user: {user}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_and_their_last_applied_copy_are_masked() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"k\":\"c2VjcmV0\"}}"}},
            "data": {"k": "c2VjcmV0"}, "stringData": {"p": "plain"}});
        let text = secret.to_string();
        let mut store = Store::from_files([("secret.json", text.as_str())]);
        assert_eq!(mask_secrets(&mut store), 1);
        let objects: Vec<Value> =
            store.objects.values().flat_map(|m| m.values()).map(super::super::Stored::value).collect();
        let text = serde_json::to_string(&objects).unwrap();
        assert!(!text.contains("c2VjcmV0") && !text.contains("plain"), "{text}");
        assert!(text.contains(MASKED));
    }

    #[test]
    fn only_loopback_hosts_pass() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, v.parse().unwrap());
            loopback_host(&m)
        };
        assert!(h("127.0.0.1:6443") && h("localhost") && h("[::1]:1"));
        assert!(!h("evil.example.com") && !h("127.0.0.1.evil.example.com:80"));
    }
}
