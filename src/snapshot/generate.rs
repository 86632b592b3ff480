//! Synthetic clusters for benchmarks: deterministic (seeded), realistic object shapes,
//! a realistic mix of failures, written as JSON Lists in the must-gather layout.

use std::path::Path;

use serde_json::{Value, json};

/// splitmix64: tiny, deterministic, good enough to pick states.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const T0: &str = "2026-11-20T08:00:00Z";
const NOW: &str = "2026-11-25T12:00:00Z";

fn node(i: usize, rng: &mut Rng) -> Value {
    let name = format!("worker-{i:04}.synthetic.example.com");
    let not_ready = rng.below(100) < 2;
    let ready = if not_ready {
        ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    } else {
        ("True", "KubeletReady", "kubelet is posting ready status")
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("00000000-0000-4000-8000-{i:012}"), "creationTimestamp": T0,
            "labels": {"kubernetes.io/hostname": name, "node-role.kubernetes.io/worker": "", "kubernetes.io/os": "linux",
                "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "spec": {"providerID": format!("aws:///zone-{}/i-{i:08x}", i % 3)},
        "status": {
            "capacity": {"cpu": "16", "memory": "65842284Ki", "pods": "250", "ephemeral-storage": "125293548Ki"},
            "allocatable": {"cpu": "15500m", "memory": "64691308Ki", "pods": "250", "ephemeral-storage": "114396791822"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastTransitionTime": T0, "lastHeartbeatTime": NOW},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastTransitionTime": T0, "lastHeartbeatTime": NOW},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastTransitionTime": T0, "lastHeartbeatTime": NOW},
                {"type": "Ready", "status": ready.0, "reason": ready.1, "message": ready.2, "lastTransitionTime": T0, "lastHeartbeatTime": NOW}
            ],
            "addresses": [{"type": "InternalIP", "address": format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256)}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.29.8+f10c92d", "containerRuntimeVersion": "cri-o://1.29.8", "osImage": "Red Hat Enterprise Linux CoreOS 416", "architecture": "amd64", "operatingSystem": "linux", "kernelVersion": "5.14.0-427.el9.x86_64"}
        }
    })
}

fn pod(ns: &str, i: usize, nodes: usize, rng: &mut Rng) -> Value {
    let app = format!("app-{}", i % 40);
    let name = format!("{app}-{:08x}-{:05x}", rng.next() as u32, rng.below(0xfffff));
    let node = format!("worker-{:04}.synthetic.example.com", rng.below(nodes as u64));
    let roll = rng.below(1000);
    let (phase, ready, restarts, state, last) = match roll {
        0..=929 => ("Running", true, rng.below(3), json!({"running": {"startedAt": T0}}), json!({})),
        930..=949 => ("Pending", false, 0, json!({"waiting": {"reason": "ContainerCreating"}}), json!({})),
        950..=959 => (
            "Running",
            false,
            20 + rng.below(60),
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}}),
            json!({"terminated": {"reason": "Error", "exitCode": 1, "startedAt": T0, "finishedAt": NOW}}),
        ),
        960..=969 => (
            "Running",
            false,
            3 + rng.below(10),
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            json!({"terminated": {"reason": "OOMKilled", "exitCode": 137, "startedAt": T0, "finishedAt": NOW}}),
        ),
        970..=979 => (
            "Pending",
            false,
            0,
            json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
            json!({}),
        ),
        980..=989 => (
            "Succeeded",
            false,
            0,
            json!({"terminated": {"reason": "Completed", "exitCode": 0, "startedAt": T0, "finishedAt": NOW}}),
            json!({}),
        ),
        _ => (
            "Failed",
            false,
            0,
            json!({"terminated": {"reason": "Error", "exitCode": 2, "startedAt": T0, "finishedAt": NOW}}),
            json!({}),
        ),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("10000000-0000-4000-8000-{i:012}"), "creationTimestamp": T0,
            "labels": {"app": app, "pod-template-hash": "7d9c8b6f5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d9c8b6f5"), "uid": "20000000-0000-4000-8000-000000000000", "controller": true}]},
        "spec": {"nodeName": node, "restartPolicy": "Always", "serviceAccountName": "default",
            "containers": [{"name": "main", "image": format!("quay.io/synthetic/{app}:1.{}", i % 7),
                "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
                "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]},
        "status": {"phase": phase, "hostIP": "10.0.0.1", "podIP": format!("10.128.{}.{}", i / 256 % 256, i % 256), "startTime": T0, "qosClass": "Burstable",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": T0},
                           {"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}],
            "containerStatuses": [{"name": "main", "ready": ready, "restartCount": restarts, "state": state, "lastState": last,
                "image": format!("quay.io/synthetic/{app}:1.{}", i % 7), "imageID": "", "started": ready}]}
    })
}

/// Write the cluster; returns the number of objects written.
pub fn write(out: &Path, nodes: usize, pods: usize, namespaces: usize, seed: u64) -> std::io::Result<usize> {
    let mut rng = Rng(seed);
    let namespaces = namespaces.max(1);
    let nodes_dir = out.join("cluster-scoped-resources/core");
    std::fs::create_dir_all(&nodes_dir)?;
    let node_items: Vec<Value> = (0..nodes).map(|i| node(i, &mut rng)).collect();
    std::fs::write(
        nodes_dir.join("nodes.json"),
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "NodeList", "items": node_items}))?,
    )?;
    let mut written = nodes;
    for n in 0..namespaces {
        let ns = format!("team-{n:03}");
        let dir = out.join("namespaces").join(&ns).join("core");
        std::fs::create_dir_all(&dir)?;
        let count = pods / namespaces + usize::from(n < pods % namespaces);
        let items: Vec<Value> = (0..count).map(|i| pod(&ns, n * 100_000 + i, nodes.max(1), &mut rng)).collect();
        written += items.len();
        std::fs::write(
            dir.join("pods.json"),
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "PodList", "items": items}))?,
        )?;
        std::fs::write(
            out.join("namespaces").join(&ns).join(format!("{ns}.json")),
            serde_json::to_vec(
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "creationTimestamp": T0}, "status": {"phase": "Active"}}),
            )?,
        )?;
        written += 1;
    }
    Ok(written)
}
