//! Configuration from the binary alone: the catalogue (embedded, plus the user's spec paths,
//! which add to it and replace documents of the same kind and name) and the backend fields
//! that settings override (`backends:` in a config file, `CHM_BACKENDS__<NAME>__<FIELD>`,
//! `--set backends.<name>.<field>=...`, `--snapshot DIR`), and the data directory under which
//! relative `sqlite:` paths of sql bindings are kept (`data_dir`).
//!
//! Overrides work on the raw JSON of a binding: the Backend document's spec, merged with the
//! mode's patch, merged with the settings' patch (all RFC 7396 merge patches), then
//! deserialized into the binding type, so a wrong field is refused exactly as in a spec.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::engine::{Active, Registry};
use crate::settings::Settings;
use crate::spec::Diagnostic;
use crate::spec::load::{Loaded, Located};
use crate::spec::model::BackendSpec;

/// Load and compile the catalogue the settings describe.
pub fn load_catalogue(settings: &Settings) -> Result<Registry, Vec<Diagnostic>> {
    let reg = load_paths(&settings.spec_paths(), settings.embedded_catalogue())?;
    for w in &reg.warnings {
        tracing::warn!("{w}");
    }
    Ok(reg)
}

/// Load `paths` over the embedded catalogue (when `embedded`), then compile: the registry,
/// or every problem found. A user document replaces the embedded document of the same kind
/// and name; duplicates among the user's own files remain errors.
pub fn load_paths(paths: &[PathBuf], embedded: bool) -> Result<Registry, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let user = crate::spec::load::load(paths, &mut diags);
    let loaded = if embedded {
        let base = crate::spec::embedded::load(&mut diags);
        overlay(base, user)
    } else {
        user
    };
    let registry = crate::engine::compile::compile(loaded, &mut diags);
    crate::engine::compile::finish(registry, diags)
}

/// The embedded documents not replaced by the user's, followed by the user's.
fn overlay(base: Loaded, user: Loaded) -> Loaded {
    fn merge<T>(base: Vec<Located<T>>, user: Vec<Located<T>>, name: impl Fn(&T) -> &str) -> Vec<Located<T>> {
        let mine: std::collections::HashSet<String> = user.iter().map(|d| name(&d.doc).to_string()).collect();
        base.into_iter().filter(|d| !mine.contains(name(&d.doc))).chain(user).collect()
    }
    Loaded {
        tools: merge(base.tools, user.tools, |d| &d.metadata.name),
        resources: merge(base.resources, user.resources, |d| &d.metadata.name),
        prompts: merge(base.prompts, user.prompts, |d| &d.metadata.name),
        libraries: merge(base.libraries, user.libraries, |d| &d.metadata.name),
        backends: merge(base.backends, user.backends, |d| &d.metadata.name),
        modes: merge(base.modes, user.modes, |d| &d.metadata.name),
        workflows: merge(base.workflows, user.workflows, |d| &d.metadata.name),
        routes: merge(base.routes, user.routes, |d| &d.metadata.name),
        files: base.files.into_iter().chain(user.files).collect(),
    }
}

/// Activate the settings' mode over a registry, with the settings' backend overrides
/// applied and validated, and the settings' response budget.
pub fn activate(registry: Arc<Registry>, settings: &Settings) -> Result<Active, String> {
    let mut active = Active::new(registry, &settings.mode)?.with_settings(settings);
    let bindings = bindings(&active, settings)?;
    if bindings.iter().any(|(_, b)| b.overridden) {
        for (name, b) in bindings {
            active.mode.backends.insert(name, b.spec);
        }
        active.backends = crate::backends::Backends::build(&active.mode.backends);
        crate::workflows::link(&active);
    }
    refuse_token_passthrough(&active.mode.backends, settings)?;
    Ok(active)
}

/// Refuse a kubernetes binding that would forward the credential this server authenticates
/// its callers with: `identity: caller-token` reading the caller's Kubernetes token from
/// `Authorization` while OAuth (or the static token) is on. That header then carries the
/// token issued for this server, and sending it on to the API server is the token
/// passthrough the MCP authorization specification forbids.
pub fn refuse_token_passthrough(backends: &IndexMap<String, BackendSpec>, settings: &Settings) -> Result<(), String> {
    use crate::backends::kubernetes::IdentityMode;
    let auth = if settings.http.oauth.enabled() {
        "OAuth is on (http.oauth), so Authorization carries the caller's OAuth access token for this server"
    } else if settings.http.token_file.is_some() {
        "the static bearer token is on (http.token_file), so Authorization carries this server's own token"
    } else {
        return Ok(());
    };
    for (name, spec) in backends {
        let BackendSpec::Kubernetes(k) = spec else { continue };
        if k.identity == IdentityMode::CallerToken && k.token_header.eq_ignore_ascii_case("authorization") {
            return Err(format!(
                "kubernetes binding `{name}` has `identity: caller-token` reading the caller's Kubernetes token from \
                 `{}`, but {auth}: forwarding it to the API server is token passthrough, which the MCP \
                 authorization specification forbids. Set the binding's `tokenHeader` to the header your client \
                 forwards the user's Kubernetes token in (e.g. `--set backends.{name}.tokenHeader=X-Kubernetes-Token`, \
                 the header named in OpenShift Lightspeed's mcpServers[].headers), or use `identity: impersonate`",
                k.token_header
            ));
        }
    }
    Ok(())
}

/// One enabled binding after every layer.
struct Binding {
    spec: BackendSpec,
    overridden: bool,
}

/// Every enabled binding of the active mode with the settings' overrides merged in.
fn bindings(active: &Active, settings: &Settings) -> Result<Vec<(String, Binding)>, String> {
    let registry = &active.registry;
    let mode = &active.mode;
    // Each settings key names a known binding (in snake_case or as written).
    let mut patches: IndexMap<String, Value> = IndexMap::new();
    for (key, patch) in &settings.backends {
        let Some(name) = registry.backends.keys().find(|n| same_name(n, key)) else {
            let known: Vec<&str> = registry.backends.keys().map(String::as_str).collect();
            let hint = match crate::spec::load::did_you_mean(key, &known) {
                Some(k) => format!("did you mean `{k}`? "),
                None => String::new(),
            };
            return Err(format!(
                "settings name an unknown backend `{key}` (backends.{key}); {hint}known backends: {}",
                known.join(", ")
            ));
        };
        if !mode.backends.contains_key(name) {
            let enabled: Vec<&str> = mode.backends.keys().map(String::as_str).collect();
            tracing::warn!(
                backend = %name,
                mode = %mode.name,
                "settings override backend `{name}`, which mode {} does not enable (enabled: {}); ignored",
                mode.name,
                enabled.join(", ")
            );
            continue;
        }
        merge_patch(patches.entry(name.clone()).or_insert(Value::Null), &camel_keys(patch));
    }
    if let Some(dir) = &settings.snapshot
        && !dir.starts_with("builtin:")
        && !std::path::Path::new(dir).is_dir()
        && !crate::snapshot::is_archive_file(std::path::Path::new(dir))
    {
        return Err(format!(
            "--snapshot {dir}: not a directory (a directory of manifests, a must-gather, an Insights .tar.gz, or builtin:demo)"
        ));
    }
    let mut snapshot_used = false;
    let mut out = Vec::new();
    for (name, compiled) in &mode.backends {
        let patch = patches.get(name);
        let snapshot = settings.snapshot.as_ref().filter(|_| compiled.type_name() == "kubernetes");
        let sql = compiled.type_name() == "sql";
        if patch.is_none() && snapshot.is_none() && !sql {
            out.push((name.clone(), Binding { spec: compiled.clone(), overridden: false }));
            continue;
        }
        let mut raw = registry.backends.get(name).map(|b| b.raw.clone()).unwrap_or(Value::Null);
        if let Some(m) = mode.spec.backends.get(name).filter(|m| !m.is_null()) {
            merge_patch(&mut raw, m);
        }
        if let Some(p) = patch {
            merge_patch(&mut raw, p);
            // The source is one of kubeconfig/inCluster/server/snapshot: naming one replaces
            // the mode's instead of merging into a source with two keys.
            if let Some(source) = p.get("source").filter(|s| s.is_object()) {
                raw["source"] = source.clone();
            }
        }
        if let Some(dir) = snapshot {
            raw["source"] = json!({"snapshot": {"path": dir}});
            snapshot_used = true;
        }
        if sql {
            under_data_dir(&mut raw, &settings.data_dir());
        }
        let spec = serde_json::from_value::<BackendSpec>(raw).map_err(|e| {
            format!(
                "the settings' override of backend `{name}` is invalid: {e} (set by a --config file's \
                 `backends:`, CHM_BACKENDS__* variables, --set backends.{name}.<field>=... or --snapshot; \
                 fields are those of `cluster-health-mcp schema Backend`)"
            )
        })?;
        out.push((name.clone(), Binding { spec, overridden: true }));
    }
    if let Some(dir) = &settings.snapshot
        && !snapshot_used
    {
        return Err(format!("--snapshot {dir}: mode {} enables no kubernetes backend to read it", mode.name));
    }
    Ok(out)
}

/// A relative SQLite file path (`sqlite:coordination.db`) is made absolute under the data
/// directory, so the file does not depend on the working directory; absolute paths, memory
/// databases and PostgreSQL URLs are kept.
fn under_data_dir(raw: &mut Value, data_dir: &std::path::Path) {
    let Some(url) = raw.get("url").and_then(Value::as_str) else { return };
    let Some(rest) = url.strip_prefix("sqlite:") else { return };
    if rest.starts_with("//") || rest.starts_with(':') || rest.contains("mode=memory") {
        return;
    }
    let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || std::path::Path::new(path).is_absolute() {
        return;
    }
    let file = data_dir.join(path).display().to_string();
    raw["url"] = Value::String(match query {
        Some(q) => format!("sqlite:{file}?{q}"),
        None => format!("sqlite:{file}"),
    });
}

/// Binding names match as written or with `_` for `-`, ignoring case (environment variables
/// cannot carry `-` and are lowercased).
fn same_name(name: &str, key: &str) -> bool {
    name.eq_ignore_ascii_case(key) || name.replace('-', "_").eq_ignore_ascii_case(&key.replace('-', "_"))
}

/// snake_case keys become the spec's camelCase (`base_url` -> `baseUrl`), except the names
/// under `headers`, which are sent as written.
fn camel_keys(v: &Value) -> Value {
    fn walk(v: &Value, verbatim: bool) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let key = if verbatim || !k.contains('_') { k.clone() } else { camel(k) };
                        let child_verbatim = key == "headers";
                        (key, walk(v, child_verbatim))
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    walk(v, false)
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// RFC 7396 JSON merge patch (the same rule as mode overrides).
fn merge_patch(target: &mut Value, patch: &Value) {
    crate::spec::merge_patch(target, patch)
}

/// Where a binding points, for `tools`, `/readyz` and logs: a URL, a snapshot, a kubeconfig.
pub fn endpoint(spec: &BackendSpec) -> String {
    let raw = serde_json::to_value(spec).unwrap_or_default();
    let text = |v: &Value| v.as_str().map(str::to_owned);
    if let (Some(ns), Some(name)) =
        (text(&raw["inferenceService"]["namespace"]), text(&raw["inferenceService"]["name"]))
    {
        return format!("InferenceService {ns}/{name}");
    }
    if let Some(url) = text(&raw["url"]).or_else(|| text(&raw["baseUrl"])) {
        return url;
    }
    let source = &raw["source"];
    if let Some(path) = text(&source["snapshot"]["path"]) {
        return format!("snapshot {path}");
    }
    if let Some(url) = text(&source["server"]["url"]) {
        return url;
    }
    if source.get("inCluster").is_some() {
        return "in-cluster service account".into();
    }
    if let Some(k) = source.get("kubeconfig") {
        let path = text(&k["path"]).unwrap_or_else(|| "$KUBECONFIG or ~/.kube/config".into());
        return match text(&k["context"]) {
            Some(c) => format!("kubeconfig {path}, context {c}"),
            None => format!("kubeconfig {path}, current context"),
        };
    }
    spec.type_name().to_string()
}

/// Every enabled binding of an active mode and where it points.
pub fn endpoints(active: &Active) -> IndexMap<String, String> {
    active.mode.backends.iter().map(|(n, s)| (n.clone(), endpoint(s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(backends: Value, snapshot: Option<&str>) -> Settings {
        Settings {
            mode: "monitoring".into(),
            backends: serde_json::from_value(backends).unwrap(),
            snapshot: snapshot.map(str::to_owned),
            ..Settings::default()
        }
    }

    fn active(s: &Settings) -> Result<Active, String> {
        activate(Arc::new(load_paths(&[], true).unwrap()), s)
    }

    #[test]
    fn settings_override_a_backend_url_over_the_mode() {
        let a = active(&settings(json!({"prometheus": {"url": "http://prom.example:9090"}}), None)).unwrap();
        assert_eq!(endpoints(&a)["prometheus"], "http://prom.example:9090");
        assert!(endpoints(&a)["kubernetes"].starts_with("kubeconfig"));
    }

    #[test]
    fn snake_case_names_and_keys_reach_camel_case_fields() {
        let mut s = settings(json!({"coordination_engine": {"base_url": "http://engine:8080"}}), None);
        s.mode = "full".into();
        let a = active(&s).unwrap();
        assert_eq!(endpoints(&a)["coordination-engine"], "http://engine:8080");
    }

    #[test]
    fn a_misspelt_override_field_is_refused_naming_the_backend() {
        let e = active(&settings(json!({"prometheus": {"ulr": "http://x"}}), None)).err().unwrap();
        assert!(e.contains("backend `prometheus` is invalid") && e.contains("unknown field `ulr`"), "{e}");
    }

    #[test]
    fn an_unknown_backend_in_settings_is_refused() {
        let e = active(&settings(json!({"promethus": {"url": "http://x"}}), None)).err().unwrap();
        assert!(e.contains("unknown backend `promethus`") && e.contains("did you mean `prometheus`?"), "{e}");
    }

    #[test]
    fn a_missing_snapshot_directory_is_refused_before_anything_runs() {
        let e = active(&settings(json!({}), Some("/nonexistent/snap"))).err().unwrap();
        assert!(e.contains("--snapshot /nonexistent/snap: not a directory"), "{e}");
    }

    #[test]
    fn a_source_in_settings_replaces_the_modes_source() {
        let a = active(&settings(json!({"kubernetes": {"source": {"in_cluster": {}}}}), None)).unwrap();
        assert_eq!(endpoints(&a)["kubernetes"], "in-cluster service account");
    }

    #[test]
    fn snapshot_replaces_the_kubernetes_source_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let a = active(&settings(json!({}), Some(path))).unwrap();
        assert_eq!(endpoints(&a)["kubernetes"], format!("snapshot {path}"));
        assert_eq!(endpoints(&a)["prometheus"], "http://127.0.0.1:9090");
    }

    fn with_oauth(mut s: Settings) -> Settings {
        s.http.oauth.issuer = Some("https://issuer.example".into());
        s
    }

    #[test]
    fn caller_token_in_authorization_is_refused_while_oauth_is_on() {
        let s = with_oauth(settings(json!({"kubernetes": {"identity": "caller-token"}}), None));
        let e = active(&s).err().unwrap();
        assert!(e.contains("kubernetes binding `kubernetes`") && e.contains("token passthrough"), "{e}");
        assert!(e.contains("tokenHeader") && e.contains("identity: impersonate"), "{e}");
        // The header name is matched whatever its case.
        let s = with_oauth(settings(
            json!({"kubernetes": {"identity": "caller-token", "token_header": "authorization"}}),
            None,
        ));
        assert!(active(&s).is_err());
    }

    #[test]
    fn caller_token_in_authorization_is_refused_with_the_static_token() {
        let mut s = settings(json!({"kubernetes": {"identity": "caller-token"}}), None);
        s.http.token_file = Some("/run/token".into());
        let e = active(&s).err().unwrap();
        assert!(e.contains("static bearer token") && e.contains("token passthrough"), "{e}");
    }

    #[test]
    fn caller_token_in_its_own_header_or_impersonation_is_accepted_with_oauth() {
        let s = with_oauth(settings(
            json!({"kubernetes": {"identity": "caller-token", "token_header": "X-Kubernetes-Token"}}),
            None,
        ));
        assert!(active(&s).is_ok());
        assert!(active(&with_oauth(settings(json!({"kubernetes": {"identity": "impersonate"}}), None))).is_ok());
        // Without authentication Authorization is the caller's Kubernetes token and nothing else.
        assert!(active(&settings(json!({"kubernetes": {"identity": "caller-token"}}), None)).is_ok());
    }

    #[test]
    fn a_relative_sqlite_path_is_under_the_data_dir_and_others_are_kept() {
        let mut s = settings(json!({}), None);
        s.mode = "full".into();
        s.data_dir = Some(PathBuf::from("/srv/chm"));
        let a = active(&s).unwrap();
        assert_eq!(endpoints(&a)["coordination-store"], "sqlite:/srv/chm/coordination.db");
        let url = |u: &str| {
            let mut raw = json!({"url": u});
            under_data_dir(&mut raw, std::path::Path::new("/srv/chm"));
            raw["url"].as_str().unwrap().to_string()
        };
        assert_eq!(url("sqlite:sub/x.db?mode=rwc"), "sqlite:/srv/chm/sub/x.db?mode=rwc");
        for kept in ["sqlite::memory:", "sqlite:/abs/x.db", "sqlite://abs/x.db", "postgres://u@h/db"] {
            assert_eq!(url(kept), kept);
        }
        s.mode = "demo".into();
        assert_eq!(endpoints(&active(&s).unwrap())["coordination-store"], "sqlite::memory:");
    }

    #[test]
    fn user_documents_replace_embedded_ones_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("prom.yaml"),
            "apiVersion: cluster-health-mcp/v1\nkind: Backend\nmetadata: {name: prometheus}\n\
             spec: {type: prometheus, url: 'http://mine:9090'}\n",
        )
        .unwrap();
        let reg = load_paths(&[dir.path().to_path_buf()], true).unwrap();
        assert!(reg.tools.contains_key("list-pods"));
        let a = activate(Arc::new(reg), &settings(json!({}), None)).unwrap();
        assert_eq!(endpoints(&a)["prometheus"], "http://mine:9090");
    }
}
