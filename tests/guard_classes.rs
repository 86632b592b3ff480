//! Defence in depth: every injection class of tests/hostile that ends in request text is also
//! refused by the run-time guard alone, as if the static lint had missed it. Each case renders
//! the hostile template twice with the engine's own filters, once with the hostile value and
//! once with the inert sentinel in its place (as `engine::checks` does), and the guard for the
//! field's context must refuse; the same template with an ordinary value passes where the
//! template itself is sound.

use cluster_health_mcp::engine::template::{render_str, to_value};
use cluster_health_mcp::guard::names::{NameKind, header_value, k8s_name};
use cluster_health_mcp::guard::selector::SelectorKind;
use cluster_health_mcp::guard::{GuardError, SENTINEL, path, promql, selector};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Ctx {
    Promql,
    Label,
    FieldSel,
    Path,
}

/// The sentinel form of untrusted data: every non-empty string replaced, shape kept.
fn inert(v: &Value) -> Value {
    match v {
        Value::String(s) if !s.is_empty() => Value::String(SENTINEL.into()),
        Value::Array(a) => Value::Array(a.iter().map(inert).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), inert(v))).collect()),
        other => other.clone(),
    }
}

fn guard(field: Ctx, template: &str, vars: &Value) -> Result<(), GuardError> {
    let actual = render_str(template, &to_value(vars)).unwrap_or_else(|e| panic!("{template}: {e}"));
    let sentinel = render_str(template, &to_value(&inert(vars))).unwrap_or_else(|e| panic!("{template}: {e}"));
    match field {
        Ctx::Promql => promql::same_structure(&actual, &sentinel),
        Ctx::Label => selector::same_structure(SelectorKind::Label, &actual, &sentinel),
        Ctx::FieldSel => selector::same_structure(SelectorKind::Field, &actual, &sentinel),
        Ctx::Path => path::same_segments(&actual, &sentinel),
    }
}

/// (hostile spec, field, template, hostile variables, ordinary variables or None when the
/// template is unsound for every value).
type Case = (&'static str, Ctx, &'static str, Value, Option<Value>);

fn cases() -> Vec<Case> {
    use Ctx::*;
    vec![
        (
            "01-promql-replace-after-escape",
            Promql,
            r#"up{job={{ x | promql_string | replace('\\"', '"') }}}"#,
            json!({"x": "a\"} or vector(1) #"}),
            Some(json!({"x": "node-exporter"})),
        ),
        (
            "02-path-segment-replace",
            Path,
            "/api/v1/namespaces/{{ x | path_segment | replace('%2F', '/') }}/pods",
            json!({"x": "../../admin"}),
            Some(json!({"x": "payments"})),
        ),
        (
            "03-selector-replace",
            Label,
            "app={{ x | selector_value | replace('-', ',') }}",
            json!({"x": "web-admin"}),
            Some(json!({"x": "web"})),
        ),
        (
            // Inside double quotes the sliced body stays escaped; inside single quotes it breaks out.
            "04-promql-slice-escaped",
            Promql,
            "up{job='{{ (x | promql_string)[1:-1] }}'}",
            json!({"x": "a'} or vector(1) #"}),
            Some(json!({"x": "node-exporter"})),
        ),
        ("06-promql-own-quotes", Promql, r#"up{job="{{ x | promql_string }}"}"#, json!({"x": "a"}), None),
        ("08-promql-string-after-regex", Promql, "up{job=~{{ x | promql_string }}}", json!({"x": ".*"}), None),
        (
            "10-macro-call-block",
            Promql,
            r#"{% macro m() %}{{ caller() }}{% endmacro %}up{job="{% call m() %}{{ x }}{% endcall %}"}"#,
            json!({"x": "a\"} or vector(1) #"}),
            Some(json!({"x": "node-exporter"})),
        ),
        (
            "11-macro-default-argument",
            Promql,
            r#"{% macro q(v=x) %}up{job="{{ v }}"}{% endmacro %}{{ q() }}"#,
            json!({"x": "a\"} or vector(1) #"}),
            Some(json!({"x": "node-exporter"})),
        ),
        (
            "12-loop-nextitem",
            Promql,
            r#"{% for p in xs %}{% if loop.first %}up{pod={{ p | promql_string }}, job="{{ loop.nextitem }}"}{% endif %}{% endfor %}"#,
            json!({"xs": ["a", "b\"} or vector(1) #"]}),
            Some(json!({"xs": ["a", "b"]})),
        ),
        (
            "14-namespace-attribute",
            Promql,
            r#"{% set ns = namespace(v='') %}{% set ns.v = x %}up{job="{{ ns.v }}"}"#,
            json!({"x": "a\"} or vector(1) #"}),
            Some(json!({"x": "node-exporter"})),
        ),
        (
            "16-step-result-reused",
            Promql,
            r#"up{pod="{{ first.result[0].metric.pod }}"}"#,
            json!({"first": {"result": [{"metric": {"pod": "p\"} or vector(1) #"}}]}}),
            Some(json!({"first": {"result": [{"metric": {"pod": "web-1"}}]}})),
        ),
        (
            "17-unanchored-pattern",
            Promql,
            r#"up{job="{{ x }}"}"#,
            json!({"x": "a\", job!=\"b"}),
            Some(json!({"x": "node-exporter"})),
        ),
        (
            "18-label-selector-in-promql",
            Promql,
            "sum by ({{ x }}) (up{job=\"a\"})",
            json!({"x": "job) (up{job=\"a\"}) or sum by (instance"}),
            None,
        ),
        (
            "19-field-selector-in-path",
            Path,
            "/api/items/{{ x }}",
            json!({"x": "spec.nodeName=a/b"}),
            Some(json!({"x": "item-1"})),
        ),
        (
            "24-enum-value-breaks-out",
            Promql,
            r#"rate(up{job="a"}[{{ w }}])"#,
            json!({"w": "5m]) or vector(1) or (up{job=\"a\"}[5m"}),
            None,
        ),
        (
            "25-pattern-allows-quote",
            Promql,
            r#"up{job="{{ x }}"}"#,
            json!({"x": "a\", job=\"b"}),
            Some(json!({"x": "node-exporter"})),
        ),
        ("26-pattern-allows-keyword", Promql, r#"up{job="a"} {{ x }} up{job="b"}"#, json!({"x": "or"}), None),
        ("27-raw-promql-unguarded", Promql, "{{ q }}", json!({"q": "sum(up{job=\"a\"})"}), None),
        ("28-label-selector-as-value", Label, "app={{ x }}", json!({"x": "web,tier!=db"}), Some(json!({"x": "web"}))),
        ("29-selector-value-as-key", Label, "{{ x | selector_value }}=web", json!({"x": "app"}), None),
        ("30-path-pattern-dot-dot", Path, "/api/items/{{ x }}/status", json!({"x": ".."}), Some(json!({"x": "a.b"}))),
        (
            "31-if-branch-opens-quote",
            Promql,
            r#"up{job={% if y %}"{% endif %}{{ x | promql_string }}{% if y %}"{% endif %}}"#,
            json!({"x": "a", "y": "on"}),
            Some(json!({"x": "a", "y": ""})),
        ),
        (
            "32-or-fallback-free-text",
            Promql,
            r#"up{job={{ x | promql_string if x else y }}}"#,
            json!({"x": "", "y": "\"a\"} or vector(1) #"}),
            Some(json!({"x": "a", "y": ""})),
        ),
        (
            "33-range-dict-calls",
            Promql,
            r#"up{job="{{ dict(v=x).v }}"}"#,
            json!({"x": "a\"} or vector(1) #"}),
            Some(json!({"x": "node-exporter"})),
        ),
        ("34-array-join-into-promql", Promql, r#"up{pod=~"{{ xs | join('|') }}"}"#, json!({"xs": ["a", ".*"]}), None),
        (
            "36-step-result-in-selector",
            Label,
            "app={{ first.items[0].metadata.labels.app }}",
            json!({"first": {"items": [{"metadata": {"labels": {"app": "web,role!=x"}}}]}}),
            Some(json!({"first": {"items": [{"metadata": {"labels": {"app": "web"}}}]}})),
        ),
        (
            "field selector: a comma adds a requirement",
            FieldSel,
            "spec.nodeName={{ x }}",
            json!({"x": "n1,metadata.namespace!=kube-system"}),
            Some(json!({"x": "n1"})),
        ),
    ]
}

#[test]
fn the_runtime_guard_alone_refuses_every_class_that_reaches_request_text() {
    let mut failures = Vec::new();
    for (class, field, template, hostile, ordinary) in cases() {
        match guard(field, template, &hostile) {
            Ok(()) => failures.push(format!("{class}: hostile {hostile} passed ({field:?}: {template})")),
            Err(e) => assert!(!e.to_string().contains('\n'), "{class}: one-line message: {e}"),
        }
        if let Some(ok) = ordinary
            && let Err(e) = guard(field, template, &ok)
        {
            failures.push(format!("{class}: ordinary {ok} refused: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn values_sent_whole_are_refused_outside_their_grammar() {
    // 20-kubernetes-name-macro: whatever builds the name, the result must be a name.
    for bad in ["web?watch=true", "a,b", "../secrets", "a%2Fb", "a/b"] {
        assert!(k8s_name(bad, NameKind::Object).is_err(), "{bad}");
        assert!(k8s_name(bad, NameKind::Namespace).is_err(), "{bad}");
    }
    // 21-http-header-step-result: a line break would add headers.
    assert!(header_value("token\r\nX-Admin: yes").is_err());
    k8s_name("payments-api-7d4b9", NameKind::Object).unwrap();
    header_value("Bearer abc").unwrap();
}
