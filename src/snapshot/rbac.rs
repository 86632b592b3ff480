//! Authentication and RBAC for snapshots, as an API server does them: bearer tokens mapped to
//! users and groups (`tokens.yaml` at the snapshot's root, the role of kube-apiserver's
//! `--token-auth-file`), impersonation (`Impersonate-User` / `Impersonate-Group`, allowed only
//! to callers who may `impersonate` those users, groups or service accounts), and
//! authorization by the snapshot's own Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings (verbs, API groups, resources and subresources such as `pods/log`,
//! resourceNames, non-resource URLs, ClusterRole aggregation). Denials are 403 Status bodies
//! worded as kube-apiserver words them. A snapshot without `tokens.yaml` serves everyone
//! everything, as before.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Store;
use super::api::Shared;

/// The file at a snapshot's root that turns authentication and RBAC on.
pub const TOKENS_FILE: &str = "tokens.yaml";

/// Group every authenticated user belongs to.
const AUTHENTICATED: &str = "system:authenticated";
/// Group that bypasses authorization (as in every Kubernetes cluster).
const MASTERS: &str = "system:masters";
/// The RBAC API group.
const RBAC: &str = "rbac.authorization.k8s.io";

/// `tokens.yaml`: who each bearer token is.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// One entry per token.
    pub tokens: Vec<TokenEntry>,
}

/// A token and the user it authenticates.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The bearer token (test data: a snapshot's tokens are not secrets of any real cluster).
    pub token: String,
    /// The user name (`system:serviceaccount:<ns>:<name>` for a service account).
    pub user: String,
    /// Groups besides `system:authenticated`.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl std::fmt::Debug for TokensFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Users only: the tokens are credentials.
        let users: Vec<&str> = self.tokens.iter().map(|e| e.user.as_str()).collect();
        f.debug_struct("TokensFile").field("users", &users).finish()
    }
}

impl TokensFile {
    /// Parse `tokens.yaml`.
    pub fn parse(text: &str) -> Result<TokensFile, String> {
        let docs = crate::spec::yaml::parse_values(text)
            .map_err(|e| format!("{}:{}: {}", e.pos.line, e.pos.col, e.message))?;
        let doc = docs.into_iter().find(|d| !d.is_null()).unwrap_or(Value::Null);
        let file: TokensFile = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        if let Some(e) = file.tokens.iter().find(|e| e.token.is_empty() || e.user.is_empty()) {
            return Err(format!("a token entry needs a token and a user (user `{}`)", e.user));
        }
        Ok(file)
    }

    /// The user a token authenticates.
    pub fn user_of(&self, token: &str) -> Option<User> {
        let entry = self.tokens.iter().find(|e| constant_time_eq(e.token.as_bytes(), token.as_bytes()))?;
        Some(User::authenticated(&entry.user, entry.groups.clone()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// A user with its groups plus `system:authenticated` (and a service account's groups).
    pub fn authenticated(name: &str, mut groups: Vec<String>) -> User {
        if let Some((ns, _)) = service_account(name) {
            for g in ["system:serviceaccounts".to_string(), format!("system:serviceaccounts:{ns}")] {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        User { name: name.to_string(), groups }
    }
}

/// `system:serviceaccount:<ns>:<name>` as (ns, name).
fn service_account(user: &str) -> Option<(&str, &str)> {
    user.strip_prefix("system:serviceaccount:")?.split_once(':')
}

/// What a request asks to do (kube-apiserver's authorizer attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    /// API group ("" for the core group).
    pub group: String,
    /// Resource plural; empty for a non-resource request.
    pub resource: String,
    pub subresource: String,
    /// "" for cluster-scoped requests and lists across all namespaces.
    pub namespace: String,
    pub name: String,
    /// The URL path of a non-resource request (`/version`, `/healthz`).
    pub path: String,
}

impl Attributes {
    fn is_resource(&self) -> bool {
        !self.resource.is_empty()
    }

    /// `pods` or `pods/log`.
    fn full_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// From an access review's `resourceAttributes` or `nonResourceAttributes`.
    pub fn from_review(spec: &Value) -> Attributes {
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if let Some(r) = spec.get("resourceAttributes") {
            Attributes {
                verb: s(r, "verb"),
                group: s(r, "group"),
                resource: s(r, "resource"),
                subresource: s(r, "subresource"),
                namespace: s(r, "namespace"),
                name: s(r, "name"),
                path: String::new(),
            }
        } else {
            let n = spec.get("nonResourceAttributes").cloned().unwrap_or_default();
            Attributes { verb: s(&n, "verb"), path: s(&n, "path"), ..Default::default() }
        }
    }
}

/// The attributes of an HTTP request to the snapshot's API.
pub fn attributes(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, tail) = match segs.as_slice() {
        ["api", _v, tail @ ..] => ("", tail),
        ["apis", g, _v, tail @ ..] => (*g, tail),
        _ => {
            let verb = match *method {
                Method::GET | Method::HEAD => "get",
                Method::POST => "post",
                Method::PUT => "put",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "get",
            };
            return Attributes { verb: verb.into(), path: path.to_string(), ..Default::default() };
        }
    };
    let (namespace, resource, name, subresource) = match tail {
        [] => return Attributes { verb: "get".into(), path: path.to_string(), ..Default::default() },
        ["namespaces", ns, plural, rest @ ..] => (*ns, *plural, rest.first().copied(), rest.get(1).copied()),
        // `/api/v1/namespaces/<ns>` is the namespace itself (its own namespace, as the API
        // server records it).
        ["namespaces", ns] => (*ns, "namespaces", Some(*ns), None),
        [plural, rest @ ..] => ("", *plural, rest.first().copied(), rest.get(1).copied()),
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (method, name) {
        (&Method::GET | &Method::HEAD, None) if watch => "watch",
        (&Method::GET | &Method::HEAD, None) => "list",
        (&Method::GET | &Method::HEAD, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, None) => "deletecollection",
        (&Method::DELETE, Some(_)) => "delete",
        _ => "unknown",
    };
    Attributes {
        verb: verb.into(),
        group: group.to_string(),
        resource: resource.to_string(),
        subresource: subresource.unwrap_or("").to_string(),
        namespace: namespace.to_string(),
        name: name.unwrap_or("").to_string(),
        path: String::new(),
    }
}

/// An authorization decision and, when allowed, which binding allowed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// May `user` do `attrs` under the snapshot's RBAC?
pub fn authorize(store: &Store, user: &User, attrs: &Attributes) -> Decision {
    if user.groups.iter().any(|g| g == MASTERS) {
        return Decision { allowed: true, reason: format!("member of group {MASTERS:?}") };
    }
    if let Some(reason) = bootstrap_allows(attrs) {
        return Decision { allowed: true, reason: reason.into() };
    }
    let bindings = |plural: &str| store.objects.get(&(RBAC.to_string(), "v1".to_string(), plural.to_string()));
    // ClusterRoleBindings apply everywhere.
    for crb in bindings("clusterrolebindings").into_iter().flat_map(|m| m.values()).map(super::Stored::value) {
        let crb = &crb;
        if !binds(crb, user, "") {
            continue;
        }
        let role = role_ref(crb);
        if role.0 != "ClusterRole" {
            continue;
        }
        if cluster_role_rules(store, &role.1).iter().any(|r| rule_allows(r, attrs)) {
            return Decision {
                allowed: true,
                reason: format!(
                    "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {:?} to {}",
                    name_of(crb),
                    role.1,
                    subject_label(crb, user)
                ),
            };
        }
    }
    // RoleBindings apply in their namespace.
    if !attrs.namespace.is_empty() {
        let in_ns = bindings("rolebindings")
            .into_iter()
            .flat_map(|m| m.range((attrs.namespace.clone(), String::new())..))
            .take_while(|((ns, _), _)| *ns == attrs.namespace)
            .map(|(_, rb)| rb.value());
        for rb in in_ns {
            let rb = &rb;
            if !binds(rb, user, &attrs.namespace) {
                continue;
            }
            let (kind, role_name) = role_ref(rb);
            let rules = match kind.as_str() {
                "ClusterRole" => cluster_role_rules(store, &role_name),
                "Role" => store
                    .objects
                    .get(&(RBAC.to_string(), "v1".to_string(), "roles".to_string()))
                    .and_then(|m| m.get(&(attrs.namespace.clone(), role_name.clone())))
                    .map(|r| rules_of(&r.value()))
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            if rules.iter().any(|r| rule_allows(r, attrs)) {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by RoleBinding \"{}/{}\" of {kind} {role_name:?} to {}",
                        name_of(rb),
                        attrs.namespace,
                        subject_label(rb, user)
                    ),
                };
            }
        }
    }
    Decision { allowed: false, reason: String::new() }
}

/// What every authenticated user may do in any cluster (system:basic-user, system:discovery,
/// system:public-info-viewer): ask about its own access, read discovery and the version.
fn bootstrap_allows(attrs: &Attributes) -> Option<&'static str> {
    if attrs.is_resource() {
        let own_review = attrs.group == "authorization.k8s.io"
            && matches!(attrs.resource.as_str(), "selfsubjectaccessreviews" | "selfsubjectrulesreviews")
            && attrs.verb == "create";
        return own_review.then_some("RBAC: allowed by ClusterRoleBinding \"system:basic-user\"");
    }
    let p = attrs.path.as_str();
    let discovery = matches!(p, "/api" | "/apis" | "/version" | "/healthz" | "/livez" | "/readyz" | "/openapi/v2")
        || p.starts_with("/api/")
        || p.starts_with("/apis/")
        || p.starts_with("/openapi/");
    (discovery && attrs.verb == "get").then_some("RBAC: allowed by ClusterRoleBinding \"system:discovery\"")
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

fn role_ref(binding: &Value) -> (String, String) {
    let s = |k: &str| binding.pointer(&format!("/roleRef/{k}")).and_then(Value::as_str).unwrap_or("").to_string();
    (s("kind"), s("name"))
}

/// The subject of a binding that matched the user, for the allow reason.
fn subject_label(binding: &Value, user: &User) -> String {
    let ns = binding.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
    subjects(binding)
        .iter()
        .find(|s| subject_matches(s, user, ns))
        .map(|s| {
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            format!("{kind} {name:?}")
        })
        .unwrap_or_default()
}

fn subjects(binding: &Value) -> Vec<Value> {
    binding.get("subjects").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// Does a binding name the user (directly, by a group, or as its service account)?
fn binds(binding: &Value, user: &User, binding_ns: &str) -> bool {
    subjects(binding).iter().any(|s| subject_matches(s, user, binding_ns))
}

fn subject_matches(s: &Value, user: &User, binding_ns: &str) -> bool {
    let name = s.get("name").and_then(Value::as_str).unwrap_or("");
    match s.get("kind").and_then(Value::as_str).unwrap_or("") {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or(binding_ns);
            service_account(&user.name) == Some((ns, name))
        }
        _ => false,
    }
}

fn rules_of(role: &Value) -> Vec<Value> {
    role.get("rules").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// A ClusterRole's rules, with those of the ClusterRoles its aggregationRule selects.
fn cluster_role_rules(store: &Store, name: &str) -> Vec<Value> {
    let Some(roles) = store.objects.get(&(RBAC.to_string(), "v1".to_string(), "clusterroles".to_string())) else {
        return Vec::new();
    };
    let Some(role) = roles.get(&(String::new(), name.to_string())).map(super::Stored::value) else {
        return Vec::new();
    };
    let mut rules = rules_of(&role);
    let selectors =
        role.pointer("/aggregationRule/clusterRoleSelectors").and_then(Value::as_array).cloned().unwrap_or_default();
    for other in roles.values().map(super::Stored::value).filter(|o| name_of(o) != name) {
        let other = &other;
        let labels = other.pointer("/metadata/labels").cloned().unwrap_or_default();
        if selectors.iter().any(|sel| selector_matches(sel, &labels)) {
            rules.extend(rules_of(other));
        }
    }
    rules
}

/// A metav1.LabelSelector (matchLabels and matchExpressions) against labels.
fn selector_matches(sel: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = sel.get("matchLabels").and_then(Value::as_object);
    let exprs = sel.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
        return false; // an empty selector in an aggregation rule selects nothing
    }
    let labels_ok = match_labels.is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let exprs_ok = exprs.is_none_or(|es| {
        es.iter().all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => label(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => label(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

fn strings<'a>(rule: &'a Value, field: &str) -> Vec<&'a str> {
    rule.get(field).and_then(Value::as_array).map(|v| v.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// kube-apiserver's RBAC rule matching.
fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let verbs = strings(rule, "verbs");
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.is_resource() {
        return strings(rule, "nonResourceURLs").iter().any(|u| {
            *u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|prefix| a.path.starts_with(prefix))
        });
    }
    let groups = strings(rule, "apiGroups");
    if !groups.iter().any(|g| *g == "*" || *g == a.group) {
        return false;
    }
    let full = a.full_resource();
    let resources = strings(rule, "resources");
    let resource_ok = resources.iter().any(|r| {
        *r == "*" || *r == full || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strings(rule, "resourceNames");
    names.is_empty() || (!a.name.is_empty() && names.contains(&a.name.as_str()))
}

/// A Status answer like kube-apiserver's.
pub fn status(code: StatusCode, reason: &str, message: String, details: Option<Value>) -> Response {
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()});
    if let Some(d) = details {
        body["details"] = d;
    }
    (code, axum::Json(body)).into_response()
}

/// kube-apiserver's 403 for a denied request.
pub fn forbidden(user: &User, a: &Attributes) -> Response {
    if !a.is_resource() {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("forbidden: User {:?} cannot {} path {:?}", user.name, a.verb, a.path),
            Some(json!({})),
        );
    }
    let what = if a.name.is_empty() { a.resource.clone() } else { format!("{} {:?}", a.resource, a.name) };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    let mut details = json!({"kind": a.resource});
    if !a.name.is_empty() {
        details["name"] = json!(a.name);
    }
    if !a.group.is_empty() {
        details["group"] = json!(a.group);
    }
    status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{what} is forbidden: User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name,
            a.verb,
            a.full_resource(),
            a.group
        ),
        Some(details),
    )
}

fn unauthorized() -> Response {
    status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized".into(), None)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who a request acts as: the token's user, or the user it may and does impersonate.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn authenticate(store: &Store, tokens: &TokensFile, headers: &HeaderMap) -> Result<User, Response> {
    let user = bearer(headers).and_then(|t| tokens.user_of(t)).ok_or_else(unauthorized)?;
    let as_user = headers.get("impersonate-user").map(|v| v.to_str().unwrap_or("").to_string());
    let as_groups: Vec<String> =
        headers.get_all("impersonate-group").iter().map(|v| v.to_str().unwrap_or("").to_string()).collect();
    let unsupported =
        headers.keys().find(|k| k.as_str().starts_with("impersonate-extra-") || k.as_str() == "impersonate-uid");
    if let Some(h) = unsupported {
        return Err(status(StatusCode::BAD_REQUEST, "BadRequest", format!("{h} is not supported by snapshots"), None));
    }
    let Some(as_user) = as_user else {
        if !as_groups.is_empty() {
            return Err(status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("requested {as_groups:?} without impersonating a user"),
                None,
            ));
        }
        return Ok(user);
    };
    // Each impersonated name needs its own `impersonate` permission.
    let mut checks = vec![match service_account(&as_user) {
        Some((ns, name)) => Attributes {
            verb: "impersonate".into(),
            resource: "serviceaccounts".into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        },
        None => Attributes {
            verb: "impersonate".into(),
            resource: "users".into(),
            name: as_user.clone(),
            ..Default::default()
        },
    }];
    for g in &as_groups {
        checks.push(Attributes {
            verb: "impersonate".into(),
            resource: "groups".into(),
            name: g.clone(),
            ..Default::default()
        });
    }
    for check in &checks {
        if !authorize(store, &user, check).allowed {
            return Err(forbidden(&user, check));
        }
    }
    Ok(User::authenticated(&as_user, as_groups))
}

/// Middleware over the snapshot's API: authenticate, impersonate, authorize. The user is
/// put into the request's extensions for the access review handlers. Without a tokens file
/// every request passes untouched.
pub async fn guard(State(store): State<Shared>, mut req: Request, next: Next) -> Response {
    let decided = {
        let s = store.read().unwrap_or_else(|e| e.into_inner());
        decide(&s, &req)
    };
    match decided {
        Ok(user) => {
            if let Some(user) = user {
                req.extensions_mut().insert(user);
            }
            next.run(req).await
        }
        Err(resp) => resp,
    }
}

/// The user a request acts as (None without a tokens file, or for a public path asked
/// anonymously), or the answer refusing it.
#[allow(clippy::result_large_err)] // the error is the HTTP answer itself
fn decide(s: &Store, req: &Request) -> Result<Option<User>, Response> {
    let Some(tokens) = &s.tokens else { return Ok(None) };
    let a = attributes(req.method(), req.uri().path(), req.uri().query());
    // /version and health answer anyone (system:public-info-viewer).
    let public = !a.is_resource() && matches!(a.path.as_str(), "/version" | "/healthz" | "/livez" | "/readyz");
    if public && bearer(req.headers()).is_none() {
        return Ok(None);
    }
    let user = authenticate(s, tokens, req.headers())?;
    if authorize(s, &user, &a).allowed { Ok(Some(user)) } else { Err(forbidden(&user, &a)) }
}

/// Answer a SelfSubjectAccessReview (for the caller) or a SubjectAccessReview (for the
/// subject it names) from the snapshot's RBAC. Without a tokens file every caller may do
/// everything, and a self review says so.
pub fn review(store: &Store, caller: Option<&User>, mut body: Value, self_review: bool) -> Value {
    let spec = body.get("spec").cloned().unwrap_or_default();
    let attrs = Attributes::from_review(&spec);
    let subject = if self_review {
        caller.cloned()
    } else {
        let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
        let groups: Vec<String> = strings(&spec, "groups").into_iter().map(str::to_string).collect();
        Some(User { name: user.to_string(), groups })
    };
    let status = match subject {
        None => json!({"allowed": true, "reason": "snapshot without tokens.yaml: every request is allowed"}),
        Some(user) => {
            let d = authorize(store, &user, &attrs);
            if d.allowed { json!({"allowed": true, "reason": d.reason}) } else { json!({"allowed": false}) }
        }
    };
    body["apiVersion"] = json!("authorization.k8s.io/v1");
    body["kind"] = json!(if self_review { "SelfSubjectAccessReview" } else { "SubjectAccessReview" });
    body["status"] = status;
    if self_review && let Some(user) = caller {
        // Real servers fill in who asked.
        body["spec"]["user"] = json!(user.name);
        body["spec"]["groups"] = json!(user.groups);
    }
    body
}

/// The roles a user has, by binding (for `snapshot info`).
pub fn describe(store: &Store) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for plural in ["clusterrolebindings", "rolebindings"] {
        let Some(m) = store.objects.get(&(RBAC.to_string(), "v1".to_string(), plural.to_string())) else { continue };
        for ((ns, name), b) in m {
            let b = &b.value();
            let (kind, role) = role_ref(b);
            for s in subjects(b) {
                let who = format!(
                    "{} {}",
                    s.get("kind").and_then(Value::as_str).unwrap_or(""),
                    s.get("name").and_then(Value::as_str).unwrap_or("")
                );
                let scope = if ns.is_empty() { "cluster".to_string() } else { format!("namespace {ns}") };
                out.entry(who).or_default().push(format!("{kind} {role} ({scope}, binding {name})"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RBAC_OBJECTS: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: Role
  metadata: {name: pod-reader, namespace: team-a}
  rules:
  - {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list]}
  - {apiGroups: [""], resources: [configmaps], resourceNames: [app-config], verbs: [get]}
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: alice-reads, namespace: team-a}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
  subjects: [{kind: User, name: alice}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: aggregate-view}
  aggregationRule:
    clusterRoleSelectors: [{matchLabels: {example.com/aggregate-to-view: "true"}}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: node-view, labels: {example.com/aggregate-to-view: "true"}}
  rules: [{apiGroups: [""], resources: [nodes], verbs: [get, list]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: ops-view}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: aggregate-view}
  subjects: [{kind: Group, name: ops}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRole
  metadata: {name: impersonator}
  rules: [{apiGroups: [""], resources: [users, groups], verbs: [impersonate]}]
- apiVersion: rbac.authorization.k8s.io/v1
  kind: ClusterRoleBinding
  metadata: {name: mcp-impersonates}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonator}
  subjects: [{kind: ServiceAccount, name: mcp, namespace: chm}]
"#;

    fn store() -> Store {
        Store::from_files([("rbac.yaml", RBAC_OBJECTS)])
    }

    fn get(ns: &str, resource: &str, name: &str, sub: &str, verb: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_role_binding_allows_its_rules_in_its_namespace_only() {
        let s = store();
        let alice = User::authenticated("alice", vec![]);
        assert!(authorize(&s, &alice, &get("team-a", "pods", "", "", "list")).allowed);
        assert!(authorize(&s, &alice, &get("team-a", "pods", "web", "log", "get")).allowed);
        assert!(!authorize(&s, &alice, &get("team-b", "pods", "", "", "list")).allowed);
        assert!(
            !authorize(&s, &alice, &get("", "pods", "", "", "list")).allowed,
            "all namespaces needs a cluster binding"
        );
        assert!(!authorize(&s, &alice, &get("team-a", "pods", "web", "", "delete")).allowed);
        assert!(!authorize(&s, &alice, &get("team-a", "secrets", "db", "", "get")).allowed);
        assert!(authorize(&s, &alice, &get("team-a", "configmaps", "app-config", "", "get")).allowed);
        assert!(!authorize(&s, &alice, &get("team-a", "configmaps", "other", "", "get")).allowed);
        assert!(!authorize(&s, &alice, &get("team-a", "configmaps", "", "", "list")).allowed);
    }

    #[test]
    fn aggregated_cluster_roles_gather_the_rules_they_select() {
        let s = store();
        let ops = User::authenticated("carol", vec!["ops".into()]);
        let d = authorize(&s, &ops, &get("", "nodes", "", "", "list"));
        assert!(d.allowed);
        assert!(d.reason.contains("ClusterRoleBinding \"ops-view\""), "{}", d.reason);
        assert!(!authorize(&s, &ops, &get("", "nodes", "n1", "", "delete")).allowed);
    }

    #[test]
    fn request_paths_become_authorizer_attributes() {
        let a = attributes(&Method::GET, "/api/v1/namespaces/team-a/pods/web/log", Some("container=c"));
        assert_eq!(a, get("team-a", "pods", "web", "log", "get"));
        let a = attributes(&Method::GET, "/apis/apps/v1/deployments", None);
        assert_eq!((a.verb.as_str(), a.group.as_str(), a.namespace.as_str()), ("list", "apps", ""));
        let a = attributes(&Method::PATCH, "/apis/apps/v1/namespaces/x/deployments/d/scale", None);
        assert_eq!((a.verb.as_str(), a.full_resource().as_str()), ("patch", "deployments/scale"));
        assert_eq!(attributes(&Method::GET, "/api/v1/namespaces/x", None), get("x", "namespaces", "x", "", "get"));
        assert_eq!(attributes(&Method::GET, "/apis/apps/v1", None).path, "/apis/apps/v1");
    }

    #[test]
    fn denials_read_like_the_api_servers() {
        let alice = User::authenticated("alice", vec![]);
        let resp = forbidden(&alice, &get("team-b", "secrets", "db", "", "get"));
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let resp = forbidden(&alice, &get("", "nodes", "", "", "list"));
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn service_accounts_match_by_namespace_and_get_their_groups() {
        let s = store();
        let sa = User::authenticated("system:serviceaccount:chm:mcp", vec![]);
        assert!(sa.groups.contains(&"system:serviceaccounts:chm".to_string()));
        let imp = Attributes {
            verb: "impersonate".into(),
            resource: "users".into(),
            name: "alice".into(),
            ..Default::default()
        };
        assert!(authorize(&s, &sa, &imp).allowed);
        let other = User::authenticated("system:serviceaccount:other:mcp", vec![]);
        assert!(!authorize(&s, &other, &imp).allowed);
        assert!(!authorize(&s, &sa, &get("team-a", "pods", "", "", "list")).allowed, "impersonation only");
    }

    #[test]
    fn tokens_file_maps_tokens_to_users() {
        let t = TokensFile::parse("tokens:\n- {token: abc, user: alice, groups: [dev]}\n").unwrap();
        let u = t.user_of("abc").unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["dev".to_string(), AUTHENTICATED.to_string()]);
        assert!(t.user_of("abd").is_none());
        assert!(TokensFile::parse("tokens:\n- {token: '', user: x}\n").is_err());
        assert!(TokensFile::parse("tokens:\n- {token: a, user: x, role: admin}\n").is_err());
    }
}
