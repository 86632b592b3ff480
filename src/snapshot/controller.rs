//! What the Deployment controller would make of a write, done at once: a snapshot has no
//! controllers, yet after a real cluster patches a Deployment's pod template (a raised memory
//! limit, a restart annotation) its pods are replaced by ones from the new template. So when
//! no ReplicaSet of a Deployment matches its template any more, a new ReplicaSet takes over
//! with the Deployment's replicas (pods created from the template, running and ready) and the
//! old ReplicaSets are scaled to zero with their pods removed: the state after the rollout.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Store, Stored, TypeKey};

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const HASH_LABEL: &str = "pod-template-hash";

fn key(group: &str, plural: &str) -> TypeKey {
    (group.to_string(), "v1".to_string(), plural.to_string())
}

/// `n` characters of ALPHABET derived from `seed`.
fn suffix(seed: &str, n: usize) -> String {
    Sha256::digest(seed.as_bytes()).iter().take(n).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// A template without the hash label (a ReplicaSet's template carries it, the Deployment's
/// does not).
fn unhashed(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH_LABEL);
    }
    t
}

fn controlled_by(obj: &Value, kind: &str, name: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true && r["kind"] == kind && r["name"] == name))
}

/// Roll Deployment `ns/name` out if its template changed; answers the new ReplicaSet's name
/// when it did.
pub fn reconcile_deployment(s: &mut Store, ns: &str, name: &str) -> Option<String> {
    let id = (ns.to_string(), name.to_string());
    let deployment = s.objects.get(&key("apps", "deployments"))?.get(&id)?.value();
    let template = deployment.pointer("/spec/template")?.clone();
    let sets = s.objects.entry(key("apps", "replicasets")).or_default();
    let owned: Vec<(String, Value)> = sets
        .iter()
        .filter(|((n, _), _)| n == ns)
        .map(|((_, rs_name), rs)| (rs_name.clone(), rs.value()))
        .filter(|(_, rs)| controlled_by(rs, "Deployment", name))
        .collect();
    if owned.iter().any(|(_, rs)| rs.pointer("/spec/template").map(unhashed).as_ref() == Some(&template)) {
        return None;
    }
    let revision = owned
        .iter()
        .filter_map(|(_, rs)| {
            rs.pointer("/metadata/annotations/deployment.kubernetes.io~1revision")?.as_str()?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
        + 1;
    let hash = suffix(&template.to_string(), 10);
    let rs_name = format!("{name}-{hash}");
    let replicas = deployment.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1).max(0);
    let now = s.captured_at.unwrap_or_else(chrono::Utc::now).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    s.revision += 1;
    let rv = s.revision.to_string();

    // The old ReplicaSets scaled to zero, their pods gone.
    let sets = s.objects.entry(key("apps", "replicasets")).or_default();
    for (old, _) in &owned {
        if let Some(rs) = sets.get_mut(&(ns.to_string(), old.clone())) {
            rs.update(|rs| {
                rs["spec"]["replicas"] = json!(0);
                rs["status"] = json!({"replicas": 0, "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
                rs["metadata"]["resourceVersion"] = json!(rv);
            });
        }
    }
    let pods = s.objects.entry(key("", "pods")).or_default();
    let old_pods: Vec<(String, String)> = pods
        .iter()
        .filter(|((n, _), p)| {
            n == ns && {
                let p = p.value();
                owned.iter().any(|(rs, _)| controlled_by(&p, "ReplicaSet", rs))
            }
        })
        .map(|(k, _)| k.clone())
        .collect();
    let nodes: Vec<Value> =
        old_pods.iter().filter_map(|k| pods.get(k)?.value().pointer("/spec/nodeName").cloned()).collect();
    for k in &old_pods {
        pods.remove(k);
    }

    // The new ReplicaSet and its pods, from the template.
    let mut labels = template.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
    labels.insert(HASH_LABEL.into(), json!(hash));
    let mut rs_template = template.clone();
    rs_template["metadata"]["labels"] = Value::Object(labels.clone());
    let mut selector = deployment.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({"matchLabels": {}}));
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    let rs_uid = format!("{}-rs-{}", suffix(&format!("{ns}/{rs_name}"), 8), revision);
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": rs_name, "namespace": ns, "uid": rs_uid, "resourceVersion": rv, "generation": 1,
            "creationTimestamp": now, "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": revision.to_string(),
                            "deployment.kubernetes.io/desired-replicas": replicas.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                 "uid": deployment.pointer("/metadata/uid"), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
        "status": {"replicas": replicas, "fullyLabeledReplicas": replicas, "readyReplicas": replicas,
                   "availableReplicas": replicas, "observedGeneration": 1},
    });
    s.objects
        .entry(key("apps", "replicasets"))
        .or_default()
        .insert((ns.to_string(), rs_name.clone()), Stored::new(&rs));
    let pods = s.objects.entry(key("", "pods")).or_default();
    for i in 0..replicas {
        let pod_name = format!("{rs_name}-{}", suffix(&format!("{rs_name}/{i}"), 5));
        let pod = new_pod(&template, &labels, ns, &pod_name, &rs_name, &rs_uid, nodes.get(i as usize), &now, &rv);
        pods.insert((ns.to_string(), pod_name), Stored::new(&pod));
    }

    // The Deployment: a new generation, observed, all replicas updated and available.
    if let Some(d) = s.objects.get_mut(&key("apps", "deployments")).and_then(|m| m.get_mut(&id)) {
        d.update(|d| deployment_rolled_out(d, replicas, revision, &rv));
    }
    Some(rs_name)
}

/// The Deployment after its rollout: a new generation, observed, all replicas updated and
/// available.
fn deployment_rolled_out(d: &mut Value, replicas: i64, revision: u64, rv: &str) {
    let generation = d.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1) + 1;
    d["metadata"]["generation"] = json!(generation);
    d["metadata"]["resourceVersion"] = json!(rv);
    if !d["metadata"]["annotations"].is_object() {
        d["metadata"]["annotations"] = json!({});
    }
    d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(revision.to_string());
    for field in ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"] {
        d["status"][field] = json!(replicas);
    }
    d["status"]["observedGeneration"] = json!(generation);
    if let Some(status) = d["status"].as_object_mut() {
        status.remove("unavailableReplicas");
    }
}

/// A pod of the new ReplicaSet as the kubelet reports it once started: running and ready.
#[allow(clippy::too_many_arguments)]
fn new_pod(
    template: &Value,
    labels: &Map<String, Value>,
    ns: &str,
    name: &str,
    rs_name: &str,
    rs_uid: &str,
    node: Option<&Value>,
    now: &str,
    rv: &str,
) -> Value {
    let mut spec = template.pointer("/spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(node) = node {
        spec["nodeName"] = node.clone();
    }
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| {
            json!({"name": c["name"], "image": c["image"], "ready": true, "started": true, "restartCount": 0,
                   "state": {"running": {"startedAt": now}}})
        })
        .collect();
    let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        .iter()
        .map(|t| json!({"type": t, "status": "True", "lastProbeTime": null, "lastTransitionTime": now}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "generateName": format!("{rs_name}-"),
            "uid": format!("{}-pod", suffix(&format!("{ns}/{name}"), 12)), "resourceVersion": rv,
            "creationTimestamp": now, "labels": labels,
            "annotations": template.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({})),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs_uid,
                                 "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": spec,
        "status": {
            "phase": "Running", "startTime": now,
            "conditions": conditions,
            "containerStatuses": statuses,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &[(&str, &str)] = &[(
        "web.yaml",
        r#"
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop, uid: d1, generation: 1, annotations: {deployment.kubernetes.io/revision: "1"}}
  spec:
    replicas: 2
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}}
      spec: {containers: [{name: web, image: web:1, resources: {limits: {memory: 256Mi}, requests: {memory: 128Mi}}}]}
- apiVersion: apps/v1
  kind: ReplicaSet
  metadata:
    name: web-abc
    namespace: shop
    labels: {app: web, pod-template-hash: abc}
    annotations: {deployment.kubernetes.io/revision: "1"}
    ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d1, controller: true}]
  spec:
    replicas: 2
    template:
      metadata: {labels: {app: web, pod-template-hash: abc}}
      spec: {containers: [{name: web, image: web:1, resources: {limits: {memory: 256Mi}, requests: {memory: 128Mi}}}]}
- apiVersion: v1
  kind: Pod
  metadata:
    name: web-abc-x1
    namespace: shop
    labels: {app: web, pod-template-hash: abc}
    ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-abc, controller: true}]
  spec: {nodeName: n1, containers: [{name: web, image: web:1}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: bare, namespace: shop}
  spec: {containers: [{name: bare, image: bare:1}]}
"#,
    )];

    fn pods(s: &Store) -> Vec<String> {
        s.objects[&key("", "pods")].keys().map(|(_, n)| n.clone()).collect()
    }

    #[test]
    fn an_unchanged_template_rolls_nothing() {
        let mut s = Store::from_files(FILES.iter().copied());
        assert_eq!(reconcile_deployment(&mut s, "shop", "web"), None);
        assert_eq!(pods(&s), ["bare", "web-abc-x1"]);
    }

    #[test]
    fn a_changed_template_replaces_the_pods_with_ones_from_a_new_replicaset() {
        let mut s = Store::from_files(FILES.iter().copied());
        let d =
            s.objects.get_mut(&key("apps", "deployments")).unwrap().get_mut(&("shop".into(), "web".into())).unwrap();
        d.update(|d| d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = json!("640Mi"));
        let rs = reconcile_deployment(&mut s, "shop", "web").expect("rolled out");
        let names = pods(&s);
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"bare".to_string()), "a pod no ReplicaSet owns stays");
        let new: Vec<Value> = s.objects[&key("", "pods")]
            .values()
            .map(Stored::value)
            .filter(|p| controlled_by(p, "ReplicaSet", &rs))
            .collect();
        assert_eq!(new.len(), 2);
        for p in &new {
            assert_eq!(p["spec"]["containers"][0]["resources"]["limits"]["memory"], "640Mi");
            assert_eq!(p["spec"]["containers"][0]["resources"]["requests"]["memory"], "128Mi");
            assert_eq!(p["status"]["phase"], "Running");
            assert_eq!(p["metadata"]["labels"][HASH_LABEL], rs.trim_start_matches("web-"));
        }
        assert_eq!(new[0]["spec"]["nodeName"], "n1", "the replaced pod's node is reused");
        let sets = &s.objects[&key("apps", "replicasets")];
        assert_eq!(sets[&("shop".into(), "web-abc".into())].value()["spec"]["replicas"], 0);
        assert_eq!(
            sets[&("shop".into(), rs.clone())].value()["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "2"
        );
        let d = &s.objects[&key("apps", "deployments")][&("shop".into(), "web".into())].value();
        assert_eq!((d["metadata"]["generation"].as_i64(), d["status"]["updatedReplicas"].as_i64()), (Some(2), Some(2)));
        // The template now matches the new ReplicaSet: nothing more to do.
        assert_eq!(reconcile_deployment(&mut s, "shop", "web"), None);
    }
}
