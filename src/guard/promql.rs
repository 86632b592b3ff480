//! PromQL guards on the parsed query (the `promql-parser` crate, not regexes over text).
//!
//! - [`same_structure`]: the query rendered with real arguments must have the same
//!   structural fingerprint as the template rendered with inert values. Leaf *values* are
//!   slots (string and number literals, durations, offsets, `@` times, label-matcher values,
//!   the metric name); everything else is structure (node kinds, function names and arity,
//!   aggregation operators with their `by`/`without` labels, binary operators with their
//!   `bool`/`on`/`ignoring`/`group_*` modifiers, label-matcher names and operators, range,
//!   subquery, offset and `@` presence). A regex matcher (`=~`, `!~`) or a `label_replace`
//!   regex that carries an argument must carry it regex-escaped (`promql_regex`).
//! - [`check_guardrails`]: raw PromQL written by the model must narrow every selector and
//!   must not use blanket matchers, whatever their spelling.
//!
//! What "blanket" means (a matcher that restricts nothing):
//! - `label!=""` and `label!~R` where `R` can match nothing but the empty string (`!~""`,
//!   `!~"()"`, `!~"^$"`): every series carrying the label passes;
//! - `label=~R` where `R` matches every non-empty value. Decided two ways, either suffices:
//!   exactly, on the regex's syntax tree (`.*`, `.+`, `.{0,}`, `(.*)`, `..*`, `.*|x`,
//!   `[\s\S]*`, ... with `.` taken to match newlines too), and by probing: a pattern that
//!   matches every one of a diverse set of realistic label values (namespaces, pod names,
//!   addresses, versions, URLs, non-ASCII, 300 characters) is blanket in practice.
//!
//! A blanket regex (`=~`) is refused wherever it stands: it narrows nothing. A presence
//! filter (`label!=""`, `label!~""`) is refused only when nothing else narrows its selector
//! (`container!=""` beside `namespace="a"` is the usual cAdvisor idiom).
//!
//! A selector is narrowed only by a matcher on a label other than `__name__` that rejects
//! the empty value and is not blanket: `label!="x"` or `label=~"a|"` also select every series
//! without the label, so they do not count (they remain allowed beside a narrowing matcher).

use std::sync::LazyLock;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, LabelModifier, VectorMatchCardinality, VectorSelector};
use regex_syntax::hir::{Class, Hir, HirKind};

use super::{Context, GuardError, SENTINEL, quote, structure_error};

/// Check that `actual` (real arguments) has the structure of `sentinel` (inert arguments).
pub fn same_structure(actual: &str, sentinel: &str) -> Result<(), GuardError> {
    let got = parser::parse(actual).map_err(|message| GuardError::Invalid {
        context: Context::Promql,
        message,
        text: quote(actual),
    })?;
    let want = parser::parse(sentinel).map_err(|message| GuardError::Template {
        context: Context::Promql,
        message,
        text: quote(sentinel),
    })?;
    let (want_print, got_print) = (fingerprint(&want), fingerprint(&got));
    if want_print != got_print {
        return Err(structure_error(Context::Promql, &want_print, &got_print, actual));
    }
    if let Some(matcher) = unescaped_regex(&want) {
        return Err(GuardError::UnescapedRegex { matcher: quote(&matcher), text: quote(actual) });
    }
    Ok(())
}

/// Visit every node, parents first.
fn walk<'a>(e: &'a Expr, f: &mut dyn FnMut(&'a Expr)) {
    f(e);
    match e {
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, f);
            }
            walk(&a.expr, f);
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, f)),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => {}
    }
}

/// Every vector selector, including those inside range selectors.
fn selectors(e: &Expr) -> Vec<&VectorSelector> {
    let mut out = Vec::new();
    walk(e, &mut |n| match n {
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        _ => {}
    });
    out
}

fn all_matchers(vs: &VectorSelector) -> impl Iterator<Item = &Matcher> {
    vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten())
}

/// The structural fingerprint: one readable token per structural element, slots omitted.
fn fingerprint(e: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    print(e, &mut out);
    out
}

fn labels(m: &LabelModifier) -> String {
    match m {
        LabelModifier::Include(l) => format!(" by ({l})"),
        LabelModifier::Exclude(l) => format!(" without ({l})"),
    }
}

fn print(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Aggregate(a) => {
            out.push(format!("aggregation `{}{}`", a.op, a.modifier.as_ref().map(labels).unwrap_or_default()));
            if let Some(p) = &a.param {
                out.push("a parameter".into());
                print(p, out);
            }
            print(&a.expr, out);
            out.push(format!("the end of `{}`", a.op));
        }
        Expr::Unary(u) => {
            out.push("a unary minus".into());
            print(&u.expr, out);
        }
        Expr::Binary(b) => {
            let mut op = b.op.to_string();
            if let Some(m) = &b.modifier {
                if m.return_bool {
                    op.push_str(" bool");
                }
                match &m.matching {
                    Some(LabelModifier::Include(l)) => op.push_str(&format!(" on ({l})")),
                    Some(LabelModifier::Exclude(l)) => op.push_str(&format!(" ignoring ({l})")),
                    None => {}
                }
                match &m.card {
                    VectorMatchCardinality::ManyToOne(l) => op.push_str(&format!(" group_left ({l})")),
                    VectorMatchCardinality::OneToMany(l) => op.push_str(&format!(" group_right ({l})")),
                    VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {}
                }
                if m.fill_values.lhs.is_some() {
                    op.push_str(" fill_left");
                }
                if m.fill_values.rhs.is_some() {
                    op.push_str(" fill_right");
                }
            }
            out.push(format!("operator `{op}`"));
            print(&b.lhs, out);
            out.push(format!("the right operand of `{}`", b.op));
            print(&b.rhs, out);
            out.push(format!("the end of `{}`", b.op));
        }
        Expr::Paren(p) => {
            out.push("`(`".into());
            print(&p.expr, out);
            out.push("`)`".into());
        }
        Expr::Subquery(s) => {
            out.push(format!(
                "a subquery{}{}{}",
                if s.step.is_some() { " with a step" } else { "" },
                if s.offset.is_some() { " with an offset" } else { "" },
                if s.at.is_some() { " with @" } else { "" }
            ));
            print(&s.expr, out);
            out.push("the end of the subquery".into());
        }
        Expr::NumberLiteral(_) => out.push("a number".into()),
        Expr::StringLiteral(_) => out.push("a string".into()),
        Expr::VectorSelector(vs) => print_selector(vs, out),
        Expr::MatrixSelector(ms) => {
            out.push("a range selector".into());
            print_selector(&ms.vs, out);
        }
        Expr::Call(c) => {
            out.push(format!("function `{}` with {} argument(s)", c.func.name, c.args.args.len()));
            c.args.args.iter().for_each(|a| print(a, out));
            out.push(format!("the end of `{}`", c.func.name));
        }
        Expr::Extension(_) => out.push("an extension expression".into()),
    }
}

fn print_selector(vs: &VectorSelector, out: &mut Vec<String>) {
    out.push(if vs.name.is_some() { "a selector with a metric name" } else { "a selector" }.into());
    let matcher = |m: &Matcher| format!("the matcher `{}{}`", m.name, m.op);
    out.extend(vs.matchers.matchers.iter().map(matcher));
    for group in &vs.matchers.or_matchers {
        out.push("`or` in the selector".into());
        out.extend(group.iter().map(matcher));
    }
    if vs.offset.is_some() {
        out.push("an offset".into());
    }
    if vs.at.is_some() {
        out.push("an @ modifier".into());
    }
    out.push("the end of the selector".into());
}

/// A regex matcher, or `label_replace`'s regex argument, that carries the raw sentinel:
/// the value reached it without `promql_regex` (which would have made it `chm\.sentinel`).
fn unescaped_regex(sentinel_ast: &Expr) -> Option<String> {
    let mut found = None;
    walk(sentinel_ast, &mut |n| {
        if found.is_some() {
            return;
        }
        match n {
            Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {
                let vs = match n {
                    Expr::MatrixSelector(ms) => &ms.vs,
                    Expr::VectorSelector(vs) => vs,
                    _ => unreachable!("matched above"),
                };
                found = all_matchers(vs)
                    .find(|m| matches!(m.op, MatchOp::Re(_) | MatchOp::NotRe(_)) && carries_sentinel(&m.value))
                    .map(ToString::to_string);
            }
            Expr::Call(c) if c.func.name == "label_replace" => {
                if let Some(Expr::StringLiteral(s)) = c.args.args.get(4).map(|a| a.as_ref())
                    && carries_sentinel(&s.val)
                {
                    found = Some(format!("label_replace(..., \"{}\")", s.val));
                }
            }
            _ => {}
        }
    });
    found
}

/// The raw sentinel, in any case (`| upper` after `promql_string` must not hide it).
fn carries_sentinel(value: &str) -> bool {
    value.to_lowercase().contains(SENTINEL)
}

/// The guardrails for raw PromQL from the model (a Prometheus binding's `guardrails`).
#[derive(Debug, Clone, Copy)]
pub struct Guardrails {
    /// Refuse matchers that match everything.
    pub deny_blanket_regex: bool,
    /// Every vector selector needs a label matcher that narrows it.
    pub require_label_matcher: bool,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails { deny_blanket_regex: true, require_label_matcher: true }
    }
}

/// Check raw PromQL against guardrails; the error says how to fix the query.
pub fn check_guardrails(query: &str, g: &Guardrails) -> Result<(), String> {
    let ast = parser::parse(query).map_err(|e| format!("the query does not parse: {e}"))?;
    for vs in selectors(&ast) {
        let shown = quote(&vs.to_string());
        if g.deny_blanket_regex {
            // A regex that matches everything narrows nothing: refused wherever it stands.
            if let Some(m) = all_matchers(vs).find(|m| matches!(m.op, MatchOp::Re(_)) && is_blanket(m)) {
                return Err(format!(
                    "the matcher `{m}` in `{shown}` matches every value, so it selects every series; \
                     match specific values instead (e.g. namespace=\"...\")"
                ));
            }
            // A presence filter (`label!=""`) is fine beside a narrowing matcher, blanket alone.
            if !is_narrowed(vs)
                && let Some(m) = all_matchers(vs).find(|m| is_blanket(m))
            {
                return Err(format!(
                    "the matcher `{m}` in `{shown}` matches every value and nothing else narrows the selector, \
                     so it selects every series; match specific values instead (e.g. namespace=\"...\")"
                ));
            }
        }
        if g.require_label_matcher && !is_narrowed(vs) {
            let name = vs.name.as_deref().unwrap_or("metric");
            return Err(format!(
                "selector `{shown}` has no label matcher that narrows it (matchers on __name__, negative \
                 matchers and matchers that accept an empty value do not count); add one such as \
                 {name}{{namespace=\"...\"}}"
            ));
        }
    }
    Ok(())
}

/// Does every alternative of the selector carry a narrowing label matcher?
fn is_narrowed(vs: &VectorSelector) -> bool {
    let narrows = |m: &Matcher| m.name != "__name__" && !m.is_match("") && !is_blanket(m);
    let common = vs.matchers.matchers.iter().any(narrows);
    if vs.matchers.or_matchers.is_empty() {
        common
    } else {
        common || vs.matchers.or_matchers.iter().all(|group| group.iter().any(narrows))
    }
}

/// Does the matcher let every (non-empty) value through? See the module docs.
fn is_blanket(m: &Matcher) -> bool {
    match &m.op {
        MatchOp::Equal => false,
        MatchOp::NotEqual => m.value.is_empty(),
        MatchOp::Re(re) => hir(&m.value).is_some_and(|h| all_nonempty(&h)) || PROBES.iter().all(|p| re.is_match(p)),
        MatchOp::NotRe(_) => hir(&m.value).is_some_and(|h| {
            let p = h.properties();
            p.minimum_len().is_none() || p.maximum_len() == Some(0)
        }),
    }
}

/// Realistic label values: a regex matching all of them matches everything in practice.
static PROBES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut p: Vec<String> = [
        "kube-system",
        "openshift-monitoring",
        "node-exporter",
        "prometheus-k8s-0",
        "10.128.2.15:9100",
        "Running",
        "my_app",
        "v1.29.3",
        "ip-10-0-1-23.ec2.internal",
        "a/b",
        "Ωmega 日本",
        "Hello World",
        "https://example.com/x?y=1",
        SENTINEL,
        "00",
        "ZZ",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    p.push("x".repeat(300));
    p
});

/// The syntax tree of a PromQL regex, with `.` matching newlines; `None` when the Rust
/// parser rejects Go-only syntax (the probes still apply).
fn hir(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new().dot_matches_new_line(true).build().parse(pattern).ok()
}

/// A class containing every character.
fn any_char(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Class(Class::Unicode(c)) => {
            let mut rest = c.clone();
            rest.negate();
            rest.ranges().is_empty()
        }
        HirKind::Class(Class::Bytes(c)) => {
            let mut rest = c.clone();
            rest.negate();
            rest.ranges().is_empty()
        }
        HirKind::Capture(c) => any_char(&c.sub),
        _ => false,
    }
}

/// Matches every string, the empty one included.
fn all_strings(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Repetition(r) => {
            (r.min == 0 && r.max.is_none() && (any_char(&r.sub) || all_nonempty(&r.sub)))
                || (r.max != Some(0) && all_strings(&r.sub))
        }
        HirKind::Capture(c) => all_strings(&c.sub),
        HirKind::Alternation(alts) => {
            alts.iter().any(all_strings)
                || (alts.iter().any(all_nonempty) && alts.iter().any(|a| a.properties().minimum_len() == Some(0)))
        }
        HirKind::Concat(parts) => parts.iter().all(all_strings),
        _ => false,
    }
}

/// Matches every non-empty string.
fn all_nonempty(h: &Hir) -> bool {
    if all_strings(h) {
        return true;
    }
    match h.kind() {
        HirKind::Repetition(r) => r.max.is_none() && r.min <= 1 && (any_char(&r.sub) || all_nonempty(&r.sub)),
        HirKind::Capture(c) => all_nonempty(&c.sub),
        HirKind::Alternation(alts) => alts.iter().any(all_nonempty),
        HirKind::Concat(parts) => {
            let rest: Vec<&Hir> = parts.iter().filter(|p| !all_strings(p)).collect();
            rest.len() == 1 && (all_nonempty(rest[0]) || (any_char(rest[0]) && parts.len() > 1))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::template::render_str;

    fn refused(actual: &str, sentinel: &str) -> GuardError {
        same_structure(actual, sentinel).expect_err(actual)
    }

    // --- same_structure ---

    #[test]
    fn an_escaped_value_keeps_the_structure() {
        same_structure(r#"up{job="a\"} or vector(1) #"}"#, r#"up{job="chm.sentinel"}"#).unwrap();
    }

    #[test]
    fn closing_the_author_quote_changes_the_structure() {
        // Template: up{job="{{ job }}"}, job = `"} or vector(1) #`.
        let e = refused(r#"up{job=""} or vector(1) #"}"#, r#"up{job="chm.sentinel"}"#);
        assert!(matches!(e, GuardError::Structure { .. }), "{e}");
        assert!(e.to_string().contains("operator `or`"), "{e}");
    }

    #[test]
    fn a_smuggled_matcher_changes_the_structure() {
        // Template: up{namespace="{{ ns }}"}, ns = `a", job="b`.
        let e = refused(r#"up{namespace="a", job="b"}"#, r#"up{namespace="chm.sentinel"}"#);
        assert!(e.to_string().contains("adds the matcher `job=`"), "{e}");
    }

    #[test]
    fn escaped_value_inside_the_authors_quotes_does_not_parse() {
        // Template: up{job="{{ job | promql_string }}"}: the escaper's quotes meet the author's.
        let e = refused(r#"up{job=""x""}"#, r#"up{job=""chm.sentinel""}"#);
        assert!(matches!(e, GuardError::Invalid { context: Context::Promql, .. }), "{e}");
        assert!(e.to_string().starts_with("rendered PromQL query does not parse"), "{e}");
    }

    #[test]
    fn a_template_that_only_parses_with_the_real_value_is_a_template_error() {
        // Template: rate(up{job="a"}[{{ window }}]) with a free-text window.
        let e = refused(r#"rate(up{job="a"}[5m])"#, r#"rate(up{job="a"}[chm.sentinel])"#);
        assert!(matches!(e, GuardError::Template { .. }), "{e}");
    }

    #[test]
    fn a_value_in_a_regex_matcher_without_promql_regex_is_refused() {
        // Template: up{job=~{{ job | promql_string }}}, job = `.*`: same structure, but the
        // sentinel shows the value reaches the regex unescaped.
        let e = refused(r#"up{job=~".*"}"#, r#"up{job=~"chm.sentinel"}"#);
        assert!(matches!(e, GuardError::UnescapedRegex { .. }), "{e}");
        assert!(e.to_string().contains("without promql_regex"), "{e}");
        let e = refused(r#"up{job=~"A.*"}"#, r#"up{job=~"CHM.SENTINEL"}"#);
        assert!(matches!(e, GuardError::UnescapedRegex { .. }), "an upper-cased sentinel: {e}");
        // With promql_regex the sentinel is escaped and the call passes.
        same_structure(r#"up{job=~"\\.\\*"}"#, r#"up{job=~"chm\\.sentinel"}"#).unwrap();
        // The prefix escaper too.
        same_structure(r#"up{pod=~"web\\-.*"}"#, r#"up{pod=~"chm\\.sentinel.*"}"#).unwrap();
    }

    #[test]
    fn label_replace_regex_needs_promql_regex() {
        let sentinel = r#"label_replace(up{job="a"}, "x", "$1", "instance", "chm.sentinel")"#;
        let actual = r#"label_replace(up{job="a"}, "x", "$1", "instance", ".*")"#;
        assert!(matches!(refused(actual, sentinel), GuardError::UnescapedRegex { .. }));
    }

    #[test]
    fn values_are_slots_and_everything_else_is_structure() {
        let base = r#"sum by (pod) (rate(c{namespace="chm.sentinel"}[5m] offset 1h)) > 0.5"#;
        same_structure(r#"sum by (pod) (rate(c{namespace="other"}[1h] offset 2d)) > 7"#, base).unwrap();
        for changed in [
            r#"sum by (node) (rate(c{namespace="x"}[5m] offset 1h)) > 0.5"#,
            r#"max by (pod) (rate(c{namespace="x"}[5m] offset 1h)) > 0.5"#,
            r#"sum without (pod) (rate(c{namespace="x"}[5m] offset 1h)) > 0.5"#,
            r#"sum by (pod) (irate(c{namespace="x"}[5m] offset 1h)) > 0.5"#,
            r#"sum by (pod) (rate(c{namespace!="x"}[5m] offset 1h)) > 0.5"#,
            r#"sum by (pod) (rate(c{ns="x"}[5m] offset 1h)) > 0.5"#,
            r#"sum by (pod) (rate(c{namespace="x"}[5m])) > 0.5"#,
            r#"sum by (pod) (rate(c{namespace="x"}[5m] offset 1h)) < 0.5"#,
            r#"sum by (pod) (rate(c{namespace="x"}[5m] offset 1h)) > bool 0.5"#,
            r#"sum by (pod) (rate(c{namespace="x"}[5m] offset 1h)) > 0.5 or vector(1)"#,
            r#"sum by (pod) (rate(c{namespace="x"}[5m:1m] offset 1h)) > 0.5"#,
        ] {
            refused(changed, base);
        }
    }

    #[test]
    fn an_argument_in_a_label_name_position_is_a_spec_error() {
        // Template: count by ({{ label | promql_string }}) (up{job="a"}): quoted label names
        // are identifiers, not values.
        let e = refused(r#"count by ("job") (up{job="a"})"#, r#"count by ("chm.sentinel") (up{job="a"})"#);
        assert!(matches!(e, GuardError::ArgumentInStructure { .. }), "{e}");
        let e = refused(r#"up{job="a", "ns"="b"}"#, r#"up{job="a", "chm.sentinel"="b"}"#);
        assert!(e.to_string().contains("a spec error"), "{e}");
    }

    #[test]
    fn or_in_a_selector_is_structure() {
        let e = refused(r#"up{job="a" or job="b"}"#, r#"up{job="chm.sentinel"}"#);
        assert!(matches!(e, GuardError::Structure { .. }), "{e}");
    }

    // --- property-style: escaped fragments always pass, raw ones only when benign ---

    /// Deterministic pseudo-random printable strings (xorshift), biased towards the
    /// characters that matter in PromQL.
    fn samples(n: usize) -> Vec<String> {
        const SPECIAL: &[char] = &['"', '\\', '{', '}', '(', ')', ',', '=', '~', '!', '#', '\'', '`', '.', '*', '|'];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|_| {
                let len = (next() % 24) as usize;
                (0..len)
                    .map(|_| {
                        let r = next();
                        match r % 4 {
                            0 => SPECIAL[(r / 4 % SPECIAL.len() as u64) as usize],
                            1 => ['é', '日', ' ', '\n', '\t'][(r / 4 % 5) as usize],
                            _ => char::from(b' ' + (r / 4 % 95) as u8),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn render(source: &str, s: &str) -> String {
        render_str(source, &minijinja::context! { s => s }).unwrap()
    }

    fn sentinel_for(s: &str) -> &'static str {
        if s.is_empty() { "" } else { SENTINEL }
    }

    #[test]
    fn escaped_fragments_keep_their_structure_for_any_value() {
        for template in [
            "up{job={{ s | promql_string }}}",
            "up{job=~{{ s | promql_regex }}}",
            "up{job=~{{ s | promql_prefix }}, namespace=\"a\"}",
            "count_values({{ s | promql_string }}, up{job=\"a\"})",
        ] {
            for s in samples(400) {
                let actual = render(template, &s);
                let sentinel = render(template, sentinel_for(&s));
                if let Err(e) = same_structure(&actual, &sentinel) {
                    panic!("{template} with {s:?} refused: {e}");
                }
            }
        }
    }

    #[test]
    fn raw_fragments_pass_only_for_benign_values() {
        let template = "up{job=\"{{ s }}\"}";
        let (mut passed, mut refused) = (0, 0);
        let mut values = samples(400);
        values.extend(["\"} or vector(1) #", "a\", job=\"b", "x\"}[5m]", "\\"].map(String::from));
        for s in values {
            let actual = render(template, &s);
            let sentinel = render(template, sentinel_for(&s));
            let benign = !s.contains(['"', '\\', '\n']);
            match same_structure(&actual, &sentinel) {
                Ok(()) => {
                    passed += 1;
                    assert!(benign, "hostile {s:?} passed as {actual}");
                }
                Err(_) => {
                    refused += 1;
                    assert!(!benign, "benign {s:?} refused");
                }
            }
        }
        assert!(passed > 20 && refused > 20, "passed {passed}, refused {refused}");
    }

    #[test]
    fn promql_string_in_a_regex_matcher_is_refused_for_every_value() {
        for s in samples(100).into_iter().filter(|s| !s.is_empty()) {
            let t = "up{job=~{{ s | promql_string }}}";
            let e = same_structure(&render(t, &s), &render(t, SENTINEL)).expect_err(&s);
            assert!(matches!(e, GuardError::UnescapedRegex { .. } | GuardError::Invalid { .. }), "{s:?}: {e}");
        }
    }

    // --- check_guardrails: the behaviour of the regex-based version, then stronger ---

    #[test]
    fn guardrails_refuse_blanket_regex_and_bare_metrics() {
        let g = Guardrails::default();
        assert!(check_guardrails(r#"up{job=~".*"}"#, &g).is_err());
        assert!(check_guardrails("up", &g).is_err());
        assert!(check_guardrails("up{}", &g).is_err());
        assert!(
            check_guardrails(r#"sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="a"}[5m]))"#, &g)
                .is_ok()
        );
        assert!(check_guardrails(r#"topk(5, up{job="x"})"#, &g).is_ok());
        let relaxed = Guardrails { deny_blanket_regex: false, require_label_matcher: false };
        assert!(check_guardrails("up", &relaxed).is_ok());
    }

    fn blanket_refused(q: &str) {
        let g = Guardrails::default();
        let e = check_guardrails(q, &g).expect_err(q);
        assert!(e.contains("matches every value"), "{q}: {e}");
    }

    #[test]
    fn name_not_empty_is_blanket() {
        blanket_refused(r#"{__name__!=""}"#);
    }

    #[test]
    fn name_dot_dot_star_is_blanket() {
        blanket_refused(r#"{__name__=~"..*"}"#);
    }

    #[test]
    fn captured_dot_star_is_blanket() {
        blanket_refused(r#"up{job=~"(.*)"}"#);
    }

    #[test]
    fn counted_repetition_from_zero_is_blanket() {
        blanket_refused(r#"up{job=~".{0,}"}"#);
    }

    #[test]
    fn alternation_with_dot_star_is_blanket() {
        blanket_refused(r#"up{job=~".*|x"}"#);
    }

    #[test]
    fn not_matching_the_empty_regex_is_blanket() {
        blanket_refused(r#"up{job!~""}"#);
    }

    #[test]
    fn not_equal_to_empty_is_blanket() {
        blanket_refused(r#"up{job!=""}"#);
    }

    #[test]
    fn a_presence_filter_beside_a_narrowing_matcher_is_allowed() {
        let g = Guardrails::default();
        for q in [
            r#"sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="a", container!=""}[5m]))"#,
            r#"up{namespace="a", job!~""}"#,
        ] {
            check_guardrails(q, &g).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        // A blanket regex stays refused beside a narrowing matcher: it narrows nothing.
        blanket_refused(r#"up{namespace="a", job=~".*"}"#);
    }

    #[test]
    fn other_spellings_of_everything_are_blanket() {
        for q in [
            r#"up{job=~".+"}"#,
            r#"up{job=~"^.*$"}"#,
            r#"up{job=~"[\\s\\S]*"}"#,
            r#"up{job=~"(?s).*"}"#,
            r#"up{job=~"(.|\n)+"}"#,
            r#"up{job=~".*.*"}"#,
            r#"up{job=~".*.{0,3}"}"#,
            r#"up{job=~"(|.+)"}"#,
            r#"up{job=~".{2,}"}"#,
            r#"up{job!~"^$"}"#,
            r#"up{job!~"()"}"#,
            r#"rate(up{namespace="a", job=~".*"}[5m])"#,
            r#"sum(up{namespace="a"}) / sum(kube_pod_info{pod=~".+"})"#,
        ] {
            blanket_refused(q);
        }
    }

    #[test]
    fn specific_regexes_and_exclusions_are_not_blanket() {
        let g = Guardrails::default();
        for q in [
            r#"up{job=~"node-.*"}"#,
            r#"up{job=~"a|b"}"#,
            r#"up{namespace="a", job!="x"}"#,
            r#"up{namespace="a", job!~"kube-.*"}"#,
            r#"kube_pod_info{namespace="a", node=""}"#,
            r#"{__name__=~"node_.*", job="x"}"#,
            r#"up{namespace=~"openshift-.+"}"#,
        ] {
            check_guardrails(q, &g).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn matchers_that_do_not_narrow_do_not_count() {
        let g = Guardrails::default();
        for q in [
            r#"up{job!="x"}"#,
            r#"up{job=""}"#,
            r#"up{job=~"a|"}"#,
            r#"{__name__="up"}"#,
            r#"rate(node_cpu_seconds_total[5m])"#,
            r#"sum(up{job="a"}) + sum(node_load1)"#,
            r#"up{job="a" or instance!="b"}"#,
        ] {
            let e = check_guardrails(q, &g).expect_err(q);
            assert!(e.contains("no label matcher that narrows it"), "{q}: {e}");
        }
        check_guardrails(r#"up{job="a" or instance="b"}"#, &g).unwrap();
    }

    #[test]
    fn label_lists_durations_and_keywords_are_not_selectors() {
        let g = Guardrails::default();
        for q in [
            r#"sum by (namespace, pod) (rate(c{namespace="a"}[5m] offset 1h))"#,
            r#"a{job="x"} / on (instance) group_left (node) b{job="y"}"#,
            r#"histogram_quantile(0.9, sum by (le) (rate(h_bucket{job="x"}[5m])))"#,
            r#"max_over_time(up{job="x"}[1h:5m])"#,
            r#"vector(1)"#,
            r#"time() - process_start_time_seconds{job="x"}"#,
        ] {
            check_guardrails(q, &g).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn modern_promql_parses_and_passes_the_guardrails() {
        let g = Guardrails::default();
        for q in [
            r#"histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{job="api"}[5m])))"#,
            r#"limitk(3, up{job="a"})"#,
            r#"sort_by_label(up{job="a"}, "instance")"#,
            r#"up{job="a"} @ start()"#,
            r#"up{job="a"} offset -5m"#,
            r#"rate(up{job="a"}[5m:30s] @ 1700000000)"#,
            r#"absent_over_time(up{job="a"}[1h])"#,
            r#"label_join(up{job="a"}, "foo", ",", "job", "instance")"#,
            r#"predict_linear(node_filesystem_avail_bytes{mountpoint="/"}[6h], 4 * 3600) < 0"#,
            r#"quantile_over_time(0.9, up{job="a"}[1h])"#,
            r#"info(up{job="a"})"#,
            r#"{"my.metric", job="a"}"#,
            r#"sum by ("service.name") (up{"service.name"="a"})"#,
            "up{job=\"a\"} # a comment\n + 1",
            r#"time() - kube_pod_start_time{namespace="a"} > 3600"#,
            r#"max without (instance) (up{job="a"}) unless on (job) up{job="b"}"#,
            r#"-up{job="a"} > bool 0"#,
            r#"scalar(sum(up{job="a"})) + vector(time())"#,
            r#"sum(rate(x{a="b"}[5m])) by (pod)"#,
            r#"mad_over_time(up{job="a"}[1h])"#,
            r#"histogram_avg(rate(h{job="a"}[5m]))"#,
        ] {
            check_guardrails(q, &g).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn a_query_that_does_not_parse_is_refused_with_the_parser_message() {
        let e = check_guardrails(r#"up{job="a""#, &Guardrails::default()).unwrap_err();
        assert!(e.starts_with("the query does not parse"), "{e}");
    }
}
