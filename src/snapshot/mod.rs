//! Offline cluster snapshots: a directory of manifests (Lists or single objects, YAML or
//! JSON), an OpenShift must-gather, or an Insights archive (extracted or the `.tar.gz` itself),
//! loaded into memory and served
//! through a Kubernetes-API-shaped router (`api`), so the real kube client works against it
//! in-process or over `snapshot serve`. Write verbs change the in-memory copy only.

pub mod api;
pub mod controller;
pub mod generate;
pub mod rbac;
pub mod selector;
pub mod serve;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One resource type the snapshot knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// Logs of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerLogs {
    pub current: Option<String>,
    pub previous: Option<String>,
}

/// (group, version, plural) of a resource type.
pub type TypeKey = (String, String, String);
/// Objects of one type by (namespace, name); cluster-scoped objects have namespace "".
pub type Objects = BTreeMap<(String, String), Stored>;

/// One object as the store keeps it: its compact JSON text (a tree of `Value`s is several
/// times larger: 10,000 pods are ~25 MB of text, ~150 MB of trees) and an index of the
/// fields label and field selectors read, so lists filter without parsing; the text is
/// copied into list answers as it is.
#[derive(Debug, Clone)]
pub struct Stored {
    raw: Box<str>,
    index: Value,
}

/// Fields that field selectors may name for some kind (see `selector::supported_field`).
const INDEXED: &[&str] = &[
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/labels",
    "/spec/nodeName",
    "/spec/restartPolicy",
    "/spec/schedulerName",
    "/spec/serviceAccountName",
    "/spec/hostNetwork",
    "/spec/unschedulable",
    "/spec/clusterIP",
    "/spec/type",
    "/spec/signerName",
    "/status/phase",
    "/status/podIP",
    "/status/podIPs",
    "/status/nominatedNodeName",
    "/status/replicas",
    "/status/successful",
    "/involvedObject",
    "/reason",
    "/reportingComponent",
    "/source",
    "/type",
];

impl Stored {
    /// Store an object.
    pub fn new(obj: &Value) -> Stored {
        let mut index = Value::Object(serde_json::Map::new());
        for ptr in INDEXED {
            if let Some(v) = obj.pointer(ptr) {
                let mut at = &mut index;
                let segs: Vec<&str> = ptr.split('/').skip(1).collect();
                for (i, seg) in segs.iter().enumerate() {
                    let last = i + 1 == segs.len();
                    at = at
                        .as_object_mut()
                        .expect("index nodes are objects")
                        .entry(seg.to_string())
                        .or_insert_with(|| if last { v.clone() } else { Value::Object(serde_json::Map::new()) });
                }
            }
        }
        Stored { raw: obj.to_string().into_boxed_str(), index }
    }

    /// The object (parsed from its text).
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.raw).expect("stored objects are JSON written by serde_json")
    }

    /// Change the object (parsed, changed, stored again with a fresh index).
    pub fn update(&mut self, f: impl FnOnce(&mut Value)) {
        let mut v = self.value();
        f(&mut v);
        *self = Stored::new(&v);
    }

    /// The object's compact JSON text.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The fields selectors read (`metadata.labels`, `status.phase`, ...), shaped as in
    /// the object.
    pub fn index(&self) -> &Value {
        &self.index
    }
}

/// The in-memory cluster.
#[derive(Debug, Default)]
pub struct Store {
    /// Types by (group, version, plural).
    pub types: BTreeMap<(String, String, String), ResourceType>,
    /// Objects by type key, then (namespace, name) ("" namespace for cluster-scoped).
    pub objects: BTreeMap<TypeKey, Objects>,
    /// Container logs by (namespace, pod, container).
    pub logs: HashMap<(String, String, String), ContainerLogs>,
    /// Files that could not be read as Kubernetes objects, with why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Monotonic resourceVersion for writes.
    pub revision: u64,
    /// When the snapshot was taken (a must-gather's `timestamp` file); ages are computed
    /// against it so an old capture reads as it did then.
    pub captured_at: Option<chrono::DateTime<chrono::Utc>>,
    timestamp_depth: usize,
    /// Bearer tokens of the snapshot's users (`tokens.yaml` at its root): when present, every
    /// request must authenticate and is authorized by the snapshot's RBAC ([`rbac`]).
    pub tokens: Option<rbac::TokensFile>,
}

/// Kinds whose objects live outside namespaces (used when a file does not say).
const CLUSTER_SCOPED: &[&str] = &[
    "Node",
    "Namespace",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
    "CustomResourceDefinition",
    "ClusterOperator",
    "ClusterVersion",
    "Infrastructure",
    "MachineConfigPool",
    "MachineConfig",
    "APIService",
    "PriorityClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "IngressClass",
    "RuntimeClass",
    "Project",
    "ClusterServiceVersion",
];

/// Plural resource name of a kind (Kubernetes' lower-case English rules plus exceptions).
pub fn plural_of(kind: &str) -> String {
    let k = kind.to_lowercase();
    match k.as_str() {
        "endpoints" => return k,
        "ingress" => return "ingresses".into(),
        _ => {}
    }
    if k.ends_with('s') || k.ends_with('x') || k.ends_with("ch") || k.ends_with("sh") {
        format!("{k}es")
    } else if k.ends_with('y') && !k.ends_with("ay") && !k.ends_with("ey") && !k.ends_with("oy") {
        format!("{}ies", &k[..k.len() - 1])
    } else {
        format!("{k}s")
    }
}

/// Kind for a directory or plural name used by snapshot layouts that omit `kind`.
fn kind_from_name(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "node" | "nodes" => ("v1", "Node"),
        "pod" | "pods" => ("v1", "Pod"),
        "event" | "events" => ("v1", "Event"),
        "namespace" | "namespaces" => ("v1", "Namespace"),
        "clusteroperator" | "clusteroperators" => ("config.openshift.io/v1", "ClusterOperator"),
        "clusterversion" | "clusterversions" => ("config.openshift.io/v1", "ClusterVersion"),
        "machineconfigpool" | "machineconfigpools" => ("machineconfiguration.openshift.io/v1", "MachineConfigPool"),
        "persistentvolume" | "persistentvolumes" => ("v1", "PersistentVolume"),
        "persistentvolumeclaim" | "persistentvolumeclaims" => ("v1", "PersistentVolumeClaim"),
        "deployment" | "deployments" => ("apps/v1", "Deployment"),
        "infrastructure" | "infrastructures" => ("config.openshift.io/v1", "Infrastructure"),
        "imagestream" | "imagestreams" => ("image.openshift.io/v1", "ImageStream"),
        _ => return None,
    })
}

/// Types every Kubernetes API server serves, present (possibly empty) in every snapshot.
const BUILTIN_TYPES: &[(&str, &str, &str, bool)] = &[
    ("", "v1", "Pod", true),
    ("", "v1", "Node", false),
    ("", "v1", "Namespace", false),
    ("", "v1", "Event", true),
    ("", "v1", "Service", true),
    ("", "v1", "ConfigMap", true),
    ("", "v1", "Secret", true),
    ("", "v1", "PersistentVolumeClaim", true),
    ("", "v1", "PersistentVolume", false),
    ("", "v1", "ResourceQuota", true),
    ("", "v1", "LimitRange", true),
    ("apps", "v1", "Deployment", true),
    ("apps", "v1", "StatefulSet", true),
    ("apps", "v1", "DaemonSet", true),
    ("apps", "v1", "ReplicaSet", true),
    ("batch", "v1", "Job", true),
    ("batch", "v1", "CronJob", true),
];

impl Store {
    /// An empty store that already knows the built-in types.
    pub fn with_builtin_types() -> Store {
        let mut store = Store::default();
        for (group, version, kind, namespaced) in BUILTIN_TYPES {
            let plural = plural_of(kind);
            let key = (group.to_string(), version.to_string(), plural.clone());
            store.types.insert(
                key.clone(),
                ResourceType {
                    group: group.to_string(),
                    version: version.to_string(),
                    kind: kind.to_string(),
                    plural,
                    namespaced: *namespaced,
                },
            );
            store.objects.entry(key).or_default();
        }
        store
    }

    /// Load a snapshot directory, or a `.tar.gz` / `.tgz` archive of one (Insights archives
    /// as the operator uploads them, a packed must-gather). Unreadable files are recorded in
    /// `skipped`, never fatal.
    pub fn load(dir: &Path) -> std::io::Result<Store> {
        if dir.is_file() && is_archive(dir) {
            return Store::load_archive(dir);
        }
        if !dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a directory", dir.display()),
            ));
        }
        let mut store = Store::with_builtin_types();
        let mut files = Vec::new();
        walk(dir, &mut files);
        for file in files {
            store.load_file(dir, &file);
        }
        Ok(store)
    }

    /// Load a gzip-compressed tar archive without extracting it.
    fn load_archive(path: &Path) -> std::io::Result<Store> {
        use std::io::Read;
        /// Larger files are not manifests or logs a tool reads; they are named, not loaded.
        const MAX_FILE: u64 = 256 << 20;
        let mut store = Store::with_builtin_types();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(path)?));
        for entry in archive.entries()? {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    store.skipped.push((path.to_path_buf(), format!("archive unreadable from here on: {e}")));
                    break;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let Ok(name) = entry.path().map(|p| p.into_owned()) else { continue };
            // `./config/pod/...` and `config/pod/...` alike.
            let rel: PathBuf = name.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
            if entry.size() > MAX_FILE {
                store.skipped.push((rel, format!("{} bytes: larger than {MAX_FILE}", entry.size())));
                continue;
            }
            let mut text = String::new();
            match entry.read_to_string(&mut text) {
                Ok(_) => store.load_text(&rel, &text),
                Err(e) => store.skipped.push((rel, e.to_string())),
            }
        }
        Ok(store)
    }

    /// Load in-memory files (path relative to the snapshot root, contents).
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Store {
        let mut store = Store::with_builtin_types();
        for (path, text) in files {
            store.load_text(Path::new(path), text);
        }
        store
    }

    fn load_file(&mut self, root: &Path, file: &Path) {
        let rel = file.strip_prefix(root).unwrap_or(file).to_path_buf();
        match std::fs::read_to_string(file) {
            Ok(text) => self.load_text(&rel, &text),
            Err(e) => self.skipped.push((rel, e.to_string())),
        }
    }

    fn load_text(&mut self, rel: &Path, text: &str) {
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "timestamp" {
            // "2021-08-03 12:14:13.632016778 +0200 CEST m=+138.3": the last line is when
            // gathering finished; the shallowest file wins.
            let depth = rel.components().count();
            let parsed = text.lines().rev().find_map(|l| {
                let parts: Vec<&str> = l.split_whitespace().take(3).collect();
                chrono::DateTime::parse_from_str(&parts.join(" "), "%Y-%m-%d %H:%M:%S%.f %z").ok()
            });
            if let Some(t) = parsed
                && (self.captured_at.is_none() || depth <= self.timestamp_depth)
            {
                self.captured_at = Some(t.with_timezone(&chrono::Utc));
                self.timestamp_depth = depth;
            }
            return;
        }
        if name.ends_with(".log") {
            self.load_log(rel, text);
            return;
        }
        if rel.as_os_str() == rbac::TOKENS_FILE {
            // An unreadable tokens file authenticates nobody (it never falls back to open access).
            self.tokens = Some(rbac::TokensFile::parse(text).unwrap_or_else(|e| {
                self.skipped.push((rel.to_path_buf(), format!("tokens file unreadable, so no token is accepted: {e}")));
                rbac::TokensFile::default()
            }));
            return;
        }
        let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or("");
        let docs: Vec<Value> = match ext {
            "json" => match serde_json::from_str(text) {
                Ok(v) => vec![v],
                Err(e) => return self.skipped.push((rel.to_path_buf(), e.to_string())),
            },
            "yaml" | "yml" => match crate::spec::yaml::parse_values(text) {
                Ok(v) => v,
                Err(e) => {
                    return self
                        .skipped
                        .push((rel.to_path_buf(), format!("{}:{}: {}", e.pos.line, e.pos.col, e.message)));
                }
            },
            _ => return,
        };
        let dir_hint = rel.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("").to_string();
        let file_hint = rel.file_stem().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let mut dropped = Vec::new();
        for doc in docs {
            if doc.is_null() {
                continue;
            }
            if let Err(why) = self.add_document(doc, rel, &dir_hint, &file_hint) {
                dropped.push(why);
            }
        }
        // Name what could not be read: an object silently dropped is a wrong count later.
        if let Some(first) = dropped.first() {
            let why = if dropped.len() == 1 { first.clone() } else { format!("{} objects: {first}", dropped.len()) };
            self.skipped.push((rel.to_path_buf(), why));
        }
    }

    fn add_document(&mut self, mut doc: Value, rel: &Path, dir_hint: &str, file_hint: &str) -> Result<(), String> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
        // Insights archives keep events reduced to namespace, lastTimestamp, reason, message
        // and type (events/<namespace>.json): they become Events without an involved object.
        if kind.is_empty()
            && rel.iter().next().is_some_and(|c| c == "events")
            && let Some(items) = doc.get("items").and_then(Value::as_array)
        {
            for (i, e) in items.iter().enumerate() {
                let ns = e.get("namespace").and_then(Value::as_str).unwrap_or(file_hint);
                let mut event = serde_json::json!({
                    "apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": format!("{file_hint}.insights-{i}"), "namespace": ns},
                    "involvedObject": {"namespace": ns},
                    "count": 1,
                });
                for f in ["type", "reason", "message", "lastTimestamp"] {
                    if let Some(v) = e.get(f) {
                        event[f] = v.clone();
                    }
                }
                self.add_object(event, None, None, file_hint, rel)?;
            }
            return Ok(());
        }
        if doc.get("items").is_some_and(Value::is_array) && (kind.ends_with("List") || kind.is_empty()) {
            let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty()).map(str::to_string);
            let api_version = doc.get("apiVersion").and_then(Value::as_str).map(str::to_string);
            // Items are taken out of the document (one copy of a large List at a time).
            let items = match doc.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            let mut first_err = Ok(());
            for item in items {
                let r = self.add_object(item, item_kind.as_deref(), api_version.as_deref(), file_hint, rel);
                if first_err.is_ok() {
                    first_err = r;
                }
            }
            return first_err;
        }
        // An empty List (`items: null`, as `oc get -o yaml` writes it) holds nothing.
        if kind.ends_with("List") && doc.get("items").is_none_or(Value::is_null) {
            return Ok(());
        }
        self.add_object(doc, None, None, dir_hint, rel)
    }

    fn add_object(
        &mut self,
        mut obj: Value,
        kind_hint: Option<&str>,
        api_hint: Option<&str>,
        name_hint: &str,
        rel: &Path,
    ) -> Result<(), String> {
        if !obj.is_object() {
            return Err("not a Kubernetes object (not a JSON/YAML mapping)".into());
        }
        if obj.pointer("/metadata/name").and_then(Value::as_str).is_none() {
            return Err("not a Kubernetes object (no metadata.name)".into());
        }
        // Objects from Lists or archives may omit apiVersion/kind: infer from the List,
        // the selfLink, the directory name, or a folder above it (Insights archives keep
        // pods as config/pod/<namespace>/<pod>.json).
        if obj.get("kind").and_then(Value::as_str).is_none() {
            let inferred = kind_hint
                .map(|k| (api_hint.unwrap_or("v1").to_string(), k.to_string()))
                .or_else(|| from_self_link(&obj))
                .or_else(|| kind_from_name(name_hint).map(|(a, k)| (a.to_string(), k.to_string())))
                .or_else(|| {
                    // `namespaces/` is the layout's namespace folder, not the object's kind.
                    rel.parent()?
                        .iter()
                        .rev()
                        .filter_map(|c| c.to_str())
                        .filter(|c| *c != "namespaces")
                        .find_map(kind_from_name)
                        .map(|(a, k)| (a.to_string(), k.to_string()))
                });
            let Some((api, kind)) = inferred else {
                return Err("no kind: neither the object, its selfLink nor its path says what it is".into());
            };
            obj["kind"] = Value::String(kind);
            if obj.get("apiVersion").is_none() {
                obj["apiVersion"] = Value::String(api);
            }
        }
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("v1").to_string();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("").to_string();
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let plural = plural_of(&kind);
        let key = (group.clone(), version.clone(), plural.clone());
        let namespaced = !ns.is_empty() || !CLUSTER_SCOPED.contains(&kind.as_str());
        let entry = self.types.entry(key.clone()).or_insert(ResourceType { group, version, kind, plural, namespaced });
        if !ns.is_empty() {
            entry.namespaced = true;
        }
        if obj.pointer("/metadata/resourceVersion").is_none() {
            obj["metadata"]["resourceVersion"] = Value::String("1".into());
        }
        self.objects.entry(key).or_default().insert((ns, name), Stored::new(&obj));
        Ok(())
    }

    fn load_log(&mut self, rel: &Path, text: &str) {
        // must-gather: namespaces/<ns>/pods/<pod>/<container>/<container>/logs/{current,previous}.log
        // insights:    .../namespaces/<ns>/pods/<pod>/containers/<container>/logs/<x>.log
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        // insights:    config/pod/<ns>/logs/<pod>/{errors,messages}.log: excerpts of the pod's
        //              current logs, container not named (served for any container).
        if let [.., "config", "pod", ns, "logs", pod, _file] = parts.as_slice() {
            let logs = self.logs.entry((ns.to_string(), pod.to_string(), String::new())).or_default();
            logs.current = Some(logs.current.take().unwrap_or_default() + text);
            return;
        }
        let Some(i) = parts.iter().position(|p| *p == "namespaces") else { return };
        if parts.get(i + 2) != Some(&"pods") {
            return;
        }
        let (Some(ns), Some(pod)) = (parts.get(i + 1), parts.get(i + 3)) else { return };
        let container = match parts.get(i + 4) {
            Some(&"containers") => parts.get(i + 5),
            other => other,
        };
        let Some(container) = container else { return };
        let logs = self.logs.entry((ns.to_string(), pod.to_string(), container.to_string())).or_default();
        let file = parts.last().copied().unwrap_or("");
        if file.starts_with("previous") {
            logs.previous = Some(text.to_string());
        } else {
            logs.current = Some(text.to_string());
        }
    }

    /// The type for a group/version/plural.
    pub fn type_of(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types.get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// Number of objects of all types.
    pub fn object_count(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }
}

fn from_self_link(obj: &Value) -> Option<(String, String)> {
    let link = obj.pointer("/metadata/selfLink")?.as_str()?;
    let parts: Vec<&str> = link.trim_start_matches('/').split('/').collect();
    let (api, rest) = match *parts.first()? {
        "api" => (parts.get(1)?.to_string(), &parts[2..]),
        "apis" => (format!("{}/{}", parts.get(1)?, parts.get(2)?), &parts[3..]),
        _ => return None,
    };
    let plural = if rest.first() == Some(&"namespaces") && rest.len() >= 4 { rest[2] } else { rest.first()? };
    let kind = kind_from_name(plural).map(|(_, k)| k.to_string())?;
    Some((api, kind))
}

/// Is this an existing `.tar.gz` / `.tgz` file a snapshot can be read from?
pub fn is_archive_file(path: &Path) -> bool {
    path.is_file() && is_archive(path)
}

fn is_archive(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_follow_kubernetes_rules() {
        assert_eq!(plural_of("Pod"), "pods");
        assert_eq!(plural_of("Ingress"), "ingresses");
        assert_eq!(plural_of("NetworkPolicy"), "networkpolicies");
        assert_eq!(plural_of("Endpoints"), "endpoints");
        assert_eq!(plural_of("ClusterOperator"), "clusteroperators");
        assert_eq!(plural_of("Gateway"), "gateways");
    }

    #[test]
    fn lists_single_objects_and_logs_load() {
        let store = Store::from_files([
            (
                "namespaces/a/core/pods.yaml",
                "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: p1, namespace: a}\n",
            ),
            ("cluster-scoped-resources/core/nodes/n1.yaml", "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n"),
            ("config/clusteroperator/ingress.json", r#"{"metadata": {"name": "ingress"}}"#),
            ("namespaces/a/pods/p1/c/c/logs/current.log", "hello\n"),
        ]);
        assert!(store.type_of("", "v1", "pods").unwrap().namespaced);
        assert!(!store.type_of("", "v1", "nodes").unwrap().namespaced);
        assert!(store.type_of("config.openshift.io", "v1", "clusteroperators").is_some());
        assert_eq!(store.logs[&("a".into(), "p1".into(), "c".into())].current.as_deref(), Some("hello\n"));
    }
}
