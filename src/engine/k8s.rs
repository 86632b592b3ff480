//! Kubernetes object semantics written once: a pod's STATUS as kubectl prints it (with the
//! last termination reason kept, so OOMKilled stays visible behind CrashLoopBackOff), and
//! condition lookup. Used by the shaping filters `pod_status` and `condition` and by the
//! snapshot's kubectl table, so every tool and `kubectl get pods` agree about a pod.

use serde::Serialize;
use serde_json::Value as Json;

/// What a pod looks like at a glance, following kubectl's `printPod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodStatus {
    /// `namespace/name`.
    pub name: String,
    /// `spec.nodeName`, if scheduled.
    pub node: Option<String>,
    /// `status.phase` (`Unknown` when absent).
    pub phase: String,
    /// kubectl's STATUS column: `Running`, `CrashLoopBackOff`, `OOMKilled`, `Init:0/1`,
    /// `Completed`, `Terminating`, `Evicted`, ...
    pub status: String,
    /// The pod's Ready condition is True (a Succeeded pod counts as ready: nothing to fix).
    pub ready: bool,
    /// kubectl's READY column: ready containers / containers.
    pub containers: String,
    /// Restarts of all containers (and restartable init containers), as kubectl sums them.
    pub restarts: i64,
    /// Reason of the most recent termination of a container that restarted (`OOMKilled`,
    /// `Error`, `ExitCode:137`), or none.
    pub last_termination: Option<String>,
    /// For health reports: none when the pod is fine, else one word saying what is wrong.
    /// A pod that is not ready and whose container was last OOMKilled is `OOMKilled` even
    /// when kubectl says CrashLoopBackOff; a pod that cannot be scheduled is `Unschedulable`;
    /// a running pod that is not ready is `NotReady`; a Failed pod with a pod-level reason
    /// (`Evicted`) has that reason.
    pub problem: Option<String>,
}

fn str_at<'a>(v: &'a Json, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Json::as_str).filter(|s| !s.is_empty())
}

fn arr<'a>(v: &'a Json, ptr: &str) -> &'a [Json] {
    v.pointer(ptr).and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The condition of `type` in `obj.status.conditions`, if any.
pub fn condition<'a>(obj: &'a Json, ty: &str) -> Option<&'a Json> {
    arr(obj, "/status/conditions").iter().find(|c| c["type"] == ty)
}

fn condition_true(obj: &Json, ty: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c["status"] == "True")
}

/// `Signal:9` / `ExitCode:1` for a terminated state without a reason, as kubectl writes.
fn terminated_reason(t: &Json) -> String {
    if let Some(r) = str_at(t, "/reason") {
        return r.to_string();
    }
    match t["signal"].as_i64() {
        Some(s) if s != 0 => format!("Signal:{s}"),
        _ => format!("ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
    }
}

/// What [`pod_status`] reads of a pod (dotted paths, whole below): list answers are
/// projected to these when a tool only looks at pods through it. Keep in step with the code.
pub const POD_STATUS_READS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.deletionTimestamp",
    "spec.nodeName",
    "spec.containers.name",
    "spec.initContainers.name",
    "spec.initContainers.restartPolicy",
    "status",
];

/// kubectl's STATUS, READY and RESTARTS for a pod, plus the last termination and a problem.
pub fn pod_status(pod: &Json) -> PodStatus {
    let phase = str_at(pod, "/status/phase").unwrap_or("Unknown").to_string();
    let mut reason = str_at(pod, "/status/reason").unwrap_or(&phase).to_string();
    if arr(pod, "/status/conditions").iter().any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }
    let init_specs = arr(pod, "/spec/initContainers");
    let restartable = |name: &Json| init_specs.iter().any(|s| s["name"] == *name && s["restartPolicy"] == "Always");
    let containers =
        arr(pod, "/spec/containers").len() + init_specs.iter().filter(|s| s["restartPolicy"] == "Always").count();
    let mut ready_containers = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut initializing = false;
    let init_statuses = arr(pod, "/status/initContainerStatuses");
    for (i, c) in init_statuses.iter().enumerate() {
        let n = c["restartCount"].as_i64().unwrap_or(0);
        restarts += n;
        if restartable(&c["name"]) {
            sidecar_restarts += n;
        }
        let terminated = c.pointer("/state/terminated");
        if terminated.is_some_and(|t| t["exitCode"].as_i64() == Some(0)) {
            continue;
        }
        if restartable(&c["name"]) && c["started"] == true {
            if c["ready"] == true {
                ready_containers += 1;
            }
            continue;
        }
        initializing = true;
        reason = match (terminated, str_at(c, "/state/waiting/reason")) {
            (Some(t), _) => format!("Init:{}", terminated_reason(t)),
            (None, Some(w)) if w != "PodInitializing" => format!("Init:{w}"),
            _ => format!("Init:{i}/{}", init_specs.len()),
        };
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            if let Some(w) = str_at(c, "/state/waiting/reason") {
                reason = w.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                reason = terminated_reason(t);
            } else if c["ready"] == true && c.pointer("/state/running").is_some() {
                has_running = true;
                ready_containers += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some_and(|d| !d.is_null()) {
        if str_at(pod, "/status/reason") == Some("NodeLost") {
            reason = "Unknown".into();
        } else if !matches!(phase.as_str(), "Succeeded" | "Failed") {
            reason = "Terminating".into();
        }
    }

    // The most recent termination of a container that was restarted.
    let last_termination = init_statuses
        .iter()
        .chain(arr(pod, "/status/containerStatuses"))
        .filter_map(|c| c.pointer("/lastState/terminated").filter(|t| t.is_object()))
        .fold(None::<(&str, String)>, |best, t| {
            let at = str_at(t, "/finishedAt").unwrap_or("");
            match best {
                Some((b, _)) if b >= at => best,
                _ => Some((at, terminated_reason(t))),
            }
        })
        .map(|(_, r)| r);

    let ready = phase == "Succeeded" || condition_true(pod, "Ready");
    let problem = if phase == "Succeeded" || (ready && reason == "Running") {
        None
    } else if phase == "Failed"
        && let Some(r) = str_at(pod, "/status/reason")
    {
        // kubectl shows the container's reason (often `Error`); the pod's says why (Evicted).
        Some(r.to_string())
    } else if reason == "OOMKilled" || (!ready && last_termination.as_deref() == Some("OOMKilled")) {
        Some("OOMKilled".to_string())
    } else if reason == "Pending"
        && let Some(c) = condition(pod, "PodScheduled").filter(|c| c["status"] == "False")
    {
        Some(str_at(c, "/reason").unwrap_or("Unschedulable").to_string())
    } else if reason == "Running" {
        Some("NotReady".to_string())
    } else if ready && reason == "Completed" {
        None
    } else {
        Some(reason.clone())
    };
    PodStatus {
        name: format!(
            "{}/{}",
            str_at(pod, "/metadata/namespace").unwrap_or(""),
            str_at(pod, "/metadata/name").unwrap_or("")
        ),
        node: str_at(pod, "/spec/nodeName").map(str::to_string),
        phase,
        status: reason,
        ready,
        containers: format!("{ready_containers}/{containers}"),
        restarts,
        last_termination,
        problem,
    }
}

/// What a node looks like at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// `metadata.name`.
    pub name: String,
    /// The Ready condition's status: `True`, `False` or `Unknown` (also when absent).
    pub ready: String,
    /// Pressure conditions that are True (`MemoryPressure`, `DiskPressure`, `PIDPressure`).
    pub pressure: Vec<String>,
    /// `spec.unschedulable` (cordoned).
    pub cordoned: bool,
    /// Roles from `node-role.kubernetes.io/<role>` labels, comma-separated (empty if none).
    pub roles: String,
}

/// What [`node_status`] reads of a node (dotted paths, whole below).
pub const NODE_STATUS_READS: &[&str] = &["metadata.name", "metadata.labels", "spec.unschedulable", "status.conditions"];

/// Readiness, pressure, cordon and roles of a node; missing fields never fail.
pub fn node_status(node: &Json) -> NodeStatus {
    let ready = condition(node, "Ready").and_then(|c| str_at(c, "/status")).unwrap_or("Unknown").to_string();
    let pressure = arr(node, "/status/conditions")
        .iter()
        .filter(|c| c["status"] == "True")
        .filter_map(|c| c["type"].as_str())
        .filter(|t| t.ends_with("Pressure"))
        .map(str::to_string)
        .collect();
    let mut roles: Vec<&str> = node
        .pointer("/metadata/labels")
        .and_then(Json::as_object)
        .map(|l| l.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).collect())
        .unwrap_or_default();
    roles.sort_unstable();
    NodeStatus {
        name: str_at(node, "/metadata/name").unwrap_or("").to_string(),
        ready,
        pressure,
        cordoned: node.pointer("/spec/unschedulable") == Some(&Json::Bool(true)),
        roles: roles.join(","),
    }
}

/// `pod | pod_status`: [`PodStatus`] as a map (status, ready, containers, restarts,
/// last_termination, problem, phase).
pub fn pod_status_filter(pod: minijinja::Value) -> minijinja::Value {
    super::template::to_value(&super::json_view::with_json(&pod, pod_status))
}

/// `node | node_status`: [`NodeStatus`] as a map (ready, pressure, cordoned, roles).
pub fn node_status_filter(node: minijinja::Value) -> minijinja::Value {
    super::template::to_value(&super::json_view::with_json(&node, node_status))
}

/// `obj | condition('Ready')`: that entry of `status.conditions`, undefined when absent (so
/// `(obj | condition('Ready')).status` is undefined, never an error).
pub fn condition_filter(obj: minijinja::Value, ty: &str) -> minijinja::Value {
    super::json_view::with_json(&obj, |j| {
        condition(j, ty).map(super::template::to_value).unwrap_or(minijinja::Value::UNDEFINED)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: Json) -> Json {
        json!({"spec": {"containers": [{"name": "a"}]}, "status": status})
    }

    #[test]
    fn crashloop_after_oomkill_is_an_oomkilled_problem_with_kubectls_status() {
        let p = pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "a", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2026-01-01T00:00:00Z"}}}]}));
        let s = pod_status(&p);
        assert_eq!(s.status, "CrashLoopBackOff");
        assert_eq!(s.last_termination.as_deref(), Some("OOMKilled"));
        assert_eq!(s.problem.as_deref(), Some("OOMKilled"));
        assert_eq!((s.containers.as_str(), s.restarts), ("0/1", 4));
    }

    #[test]
    fn healthy_running_and_completed_pods_have_no_problem() {
        let running = pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}));
        let s = pod_status(&running);
        assert_eq!((s.status.as_str(), s.problem.clone(), s.containers.as_str()), ("Running", None, "1/1"));
        assert_eq!(s.last_termination.as_deref(), Some("OOMKilled"), "history kept even when healthy");
        let done = pod(json!({"phase": "Succeeded", "containerStatuses": [{"name": "a", "ready": false,
            "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}));
        assert_eq!((pod_status(&done).status.as_str(), pod_status(&done).problem), ("Completed", None));
    }

    #[test]
    fn init_containers_evicted_unschedulable_and_terminating_follow_kubectl() {
        let init = json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "restartCount": 2,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
                "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}});
        assert_eq!(pod_status(&init).status, "Init:CrashLoopBackOff");
        assert_eq!(pod_status(&init).restarts, 2);
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted", "containerStatuses": [{"name": "a",
            "state": {"terminated": {"reason": "Error", "exitCode": 137}}}]}));
        assert_eq!(pod_status(&evicted).status, "Error", "kubectl prints the container's reason");
        assert_eq!(pod_status(&evicted).problem.as_deref(), Some("Evicted"));
        let unsched = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}),
        );
        assert_eq!(
            (pod_status(&unsched).status.as_str(), pod_status(&unsched).problem.as_deref()),
            ("Pending", Some("Unschedulable"))
        );
        let mut term = pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}));
        term["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        assert_eq!(pod_status(&term).status, "Terminating");
        let signal = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"signal": 9}}}]}),
        );
        assert_eq!(pod_status(&signal).status, "Signal:9");
    }
}
