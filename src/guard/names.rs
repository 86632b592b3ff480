//! Values sent whole: Kubernetes names and header values are checked against their grammar.
//!
//! kube-core puts a request's name and namespace into the URL path unencoded, so `?`, `/`,
//! `,` or `%2F` in them change the request; an object kind or apiVersion picks the URL too.
//! Header values with a line break would inject further headers.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::{GuardError, quote};

/// Longest header value accepted.
pub const MAX_HEADER_VALUE: usize = 4096;

/// What a Kubernetes name names; each has its grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// RFC 1123 label, at most 63 characters.
    Namespace,
    /// RFC 1123 label, at most 63 characters.
    Container,
    /// RFC 1123 subdomain, at most 253 characters; `:` allowed (RBAC names such as
    /// `system:controller:node-controller`).
    Object,
    /// `v1`, `apps/v1`, `monitoring.coreos.com/v1beta1`.
    ApiVersion,
    /// `Pod`, `ClusterOperator`.
    Kind,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Namespace => "Kubernetes namespace",
            NameKind::Container => "container name",
            NameKind::Object => "Kubernetes object name",
            NameKind::ApiVersion => "Kubernetes apiVersion",
            NameKind::Kind => "Kubernetes kind",
        })
    }
}

static LABEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("regex"));
static OBJECT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$").expect("regex"));
static API_VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+([a-z0-9]+)?$").expect("regex"));
static KIND: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9]*$").expect("regex"));

/// Check a name, namespace, container, apiVersion or kind against its grammar.
pub fn k8s_name(value: &str, kind: NameKind) -> Result<(), GuardError> {
    let (ok, rule) = match kind {
        NameKind::Namespace | NameKind::Container => (
            value.len() <= 63 && LABEL.is_match(value),
            "at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ),
        NameKind::Object => (
            value.len() <= 253 && OBJECT.is_match(value),
            "at most 253 lowercase letters, digits, '-', '.' and ':', starting and ending with a letter or digit",
        ),
        NameKind::ApiVersion => (API_VERSION.is_match(value), "a version such as v1, apps/v1 or example.com/v1beta1"),
        NameKind::Kind => (KIND.is_match(value), "letters and digits starting with a letter, such as Pod"),
    };
    if ok { Ok(()) } else { Err(GuardError::Value { what: kind.to_string(), value: quote(value), rule: rule.into() }) }
}

/// Check a header value: one line, no control characters but tab, at most
/// [`MAX_HEADER_VALUE`] bytes.
pub fn header_value(value: &str) -> Result<(), GuardError> {
    let refuse = |rule: String| GuardError::Value { what: "header value".into(), value: quote(value), rule };
    if value.len() > MAX_HEADER_VALUE {
        return Err(refuse(format!("longer than {MAX_HEADER_VALUE} bytes")));
    }
    if let Some(c) = value.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(refuse(format!(
            "a header value is one line without control characters (found {})",
            c.escape_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_pass() {
        k8s_name("kube-system", NameKind::Namespace).unwrap();
        k8s_name("prometheus", NameKind::Container).unwrap();
        k8s_name("web-7d4b9c-x2x1z", NameKind::Object).unwrap();
        k8s_name("ip-10-0-1-23.ec2.internal", NameKind::Object).unwrap();
        k8s_name("system:controller:node-controller", NameKind::Object).unwrap();
        k8s_name("v1", NameKind::ApiVersion).unwrap();
        k8s_name("apps/v1", NameKind::ApiVersion).unwrap();
        k8s_name("monitoring.coreos.com/v1beta1", NameKind::ApiVersion).unwrap();
        k8s_name("ClusterOperator", NameKind::Kind).unwrap();
        k8s_name(&"a".repeat(63), NameKind::Namespace).unwrap();
    }

    #[test]
    fn names_with_url_or_selector_characters_are_refused() {
        for bad in ["a?b", "a,b", "a/b", "a%2Fb", "..", ".", "", "A", "a b", "-a", "a-", "a\r\nb", "a#b"] {
            for kind in [NameKind::Namespace, NameKind::Container, NameKind::Object] {
                let e = k8s_name(bad, kind).unwrap_err();
                assert!(e.to_string().contains("is not a valid"), "{bad:?}: {e}");
            }
        }
        assert!(k8s_name("a.b", NameKind::Namespace).is_err());
        assert!(k8s_name("a:b", NameKind::Namespace).is_err());
        assert!(k8s_name(&"a".repeat(64), NameKind::Namespace).is_err());
        assert!(k8s_name(&"a".repeat(254), NameKind::Object).is_err());
    }

    #[test]
    fn api_versions_and_kinds_are_refused_outside_their_grammar() {
        for bad in ["v1/../x", "apps/v1?x=1", "apps", "/v1", "apps/v1/x", "V1"] {
            assert!(k8s_name(bad, NameKind::ApiVersion).is_err(), "{bad}");
        }
        for bad in ["pods/x", "Pod?", "1Pod", "Pod s", ""] {
            assert!(k8s_name(bad, NameKind::Kind).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_header_value_with_a_line_break_is_refused() {
        let e = header_value("token\r\nX-Admin: yes").unwrap_err();
        assert!(e.to_string().contains("one line"), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(header_value("x\0").is_err());
        assert!(header_value(&"x".repeat(MAX_HEADER_VALUE + 1)).is_err());
        header_value("Bearer abc.def\tghi").unwrap();
        header_value("").unwrap();
    }
}
