//! Kubernetes label selectors (equality and set-based) and field selectors, matched against
//! snapshot objects. Parsing is shared with the run-time request guard
//! (`crate::guard::selector`), so both read a selector as the API server does.

use serde_json::Value;

use crate::guard::selector::{Op, Requirement, parse_fields, parse_labels};

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parse `app=web,tier in (a,b),!canary` as the API server does.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_labels(s).map(LabelSelector)
    }

    /// Does an object's `metadata.labels` satisfy every requirement?
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let int = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
        self.0.iter().all(|r| {
            let (k, vs) = (r.key.as_str(), &r.values);
            let first = vs.first().map(String::as_str).unwrap_or("");
            match r.op {
                Op::Equals | Op::DoubleEquals => get(k) == Some(first),
                Op::NotEquals => get(k) != Some(first),
                Op::In => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
                Op::NotIn => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
                Op::Exists => get(k).is_some(),
                Op::DoesNotExist => get(k).is_none(),
                Op::GreaterThan => int(k).zip(first.parse().ok()).is_some_and(|(x, v): (i64, i64)| x > v),
                Op::LessThan => int(k).zip(first.parse().ok()).is_some_and(|(x, v): (i64, i64)| x < v),
            }
        })
    }
}

/// A parsed field selector (`status.phase=Running,spec.nodeName!=n1`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<Requirement>);

impl FieldSelector {
    /// Parse as the API server does; values may escape `,`, `=` and `\` with a backslash.
    pub fn parse(s: &str) -> Result<Self, String> {
        parse_fields(s).map(FieldSelector)
    }

    /// Refuse the fields the API server does not index for this kind, with its message
    /// (`field label not supported: spec.foo`), so a tool that works on a snapshot works on a
    /// cluster. Pods' legacy `spec.host` becomes `spec.nodeName`, as the server converts it.
    pub fn check_supported(&mut self, group: &str, kind: &str) -> Result<(), String> {
        for r in &mut self.0 {
            if group.is_empty() && kind == "Pod" && r.key == "spec.host" {
                r.key = "spec.nodeName".into();
            }
            if !supported_field(group, kind, &r.key) {
                return Err(format!("field label not supported: {}", r.key));
            }
        }
        Ok(())
    }

    /// Does the object satisfy every field requirement? Missing fields compare as "".
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let pointer = format!("/{}", r.key.replace('.', "/"));
            let actual = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let value = r.values.first().map(String::as_str).unwrap_or("");
            (actual == value) == (r.op != Op::NotEquals)
        })
    }
}

/// The field labels the API server accepts in a field selector for a kind (Kubernetes'
/// field label conversion functions); every other kind (CRDs included) has only
/// `metadata.name` and `metadata.namespace`.
fn supported_field(group: &str, kind: &str, label: &str) -> bool {
    let specific: &[&str] = match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        // Nodes and Namespaces are cluster-scoped: no metadata.namespace.
        ("", "Node") => return matches!(label, "metadata.name" | "spec.unschedulable"),
        ("", "Namespace") => return matches!(label, "metadata.name" | "status.phase"),
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Secret") => &["type"],
        ("", "Service") => &["spec.clusterIP", "spec.type"],
        ("", "ReplicationController") | ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => &["spec.signerName"],
        _ => &[],
    };
    matches!(label, "metadata.name" | "metadata.namespace") || specific.contains(&label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_support_equality_and_sets() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web,tier=front", true),
            ("app!=web", false),
            ("tier in (front, back)", true),
            ("tier notin (front)", false),
            ("app", true),
            ("!canary", true),
            ("canary", false),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&obj), want, "{sel}");
        }
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn field_selectors_compare_dotted_paths() {
        let obj = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}, "spec": {"nodeName": "n1"}});
        assert!(FieldSelector::parse("status.phase=Running,spec.nodeName!=n2").unwrap().matches(&obj));
        assert!(!FieldSelector::parse("metadata.name=q").unwrap().matches(&obj));
        assert!(FieldSelector::parse("spec.missing=").unwrap().matches(&obj));
    }

    #[test]
    fn unsupported_field_labels_are_refused_like_the_api_server() {
        let mut f = FieldSelector::parse("status.phase=Running,spec.nodeName=n1").unwrap();
        assert!(f.check_supported("", "Pod").is_ok());
        let mut f = FieldSelector::parse("status.podIP=10.0.0.1,spec.containers=x").unwrap();
        assert_eq!(f.check_supported("", "Pod").unwrap_err(), "field label not supported: spec.containers");
        let mut f = FieldSelector::parse("status.phase=Running").unwrap();
        assert!(f.check_supported("apps", "Deployment").is_err(), "only metadata fields on other kinds");
        let mut f = FieldSelector::parse("metadata.namespace=a").unwrap();
        assert!(f.check_supported("", "Node").is_err(), "cluster-scoped");
        let mut f = FieldSelector::parse("spec.host=n1").unwrap();
        f.check_supported("", "Pod").unwrap();
        assert!(f.matches(&json!({"spec": {"nodeName": "n1"}})), "spec.host is spec.nodeName");
    }
}
