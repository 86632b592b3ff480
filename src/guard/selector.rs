//! Kubernetes label and field selectors: one parser, written after the API server's
//! (apimachinery `labels.Parse` and `fields.ParseSelector`), used by the run-time guard and
//! by the snapshot API server (`crate::snapshot::selector`) alike.
//!
//! The guard's fingerprint of a selector is its list of (key, operator, number of values);
//! the values themselves are slots. A selector whose real rendering does not parse is
//! refused, as the API server would refuse it, before anything is sent.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::{Context, GuardError, quote, structure_error};

/// Which selector grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    /// `labelSelector`: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`, `a>1`.
    Label,
    /// `fieldSelector`: `a=b`, `a==b`, `a!=b`, comma-joined; `\,` `\=` `\\` escape values.
    Field,
}

/// A requirement's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value`
    NotEquals,
    /// `key in (values)`
    In,
    /// `key notin (values)`
    NotIn,
    /// `key>integer`
    GreaterThan,
    /// `key<integer`
    LessThan,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Exists => "exists",
            Op::DoesNotExist => "!",
            Op::Equals => "=",
            Op::DoubleEquals => "==",
            Op::NotEquals => "!=",
            Op::In => "in",
            Op::NotIn => "notin",
            Op::GreaterThan => ">",
            Op::LessThan => "<",
        })
    }
}

/// One requirement of a selector. `values` keeps duplicates as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key or field path.
    pub key: String,
    /// The operator.
    pub op: Op,
    /// The values (none for `Exists`/`DoesNotExist`, one for the comparisons).
    pub values: Vec<String>,
}

/// Check that `actual` (real arguments) has the structure of `sentinel` (inert arguments).
pub fn same_structure(kind: SelectorKind, actual: &str, sentinel: &str) -> Result<(), GuardError> {
    let context = match kind {
        SelectorKind::Label => Context::LabelSelector,
        SelectorKind::Field => Context::FieldSelector,
    };
    let parse = |s: &str| match kind {
        SelectorKind::Label => parse_labels(s),
        SelectorKind::Field => parse_fields(s),
    };
    let got = parse(actual).map_err(|message| GuardError::Invalid { context, message, text: quote(actual) })?;
    let want = parse(sentinel).map_err(|message| GuardError::Template { context, message, text: quote(sentinel) })?;
    let (want, got) = (fingerprint(&want), fingerprint(&got));
    if want != got {
        return Err(structure_error(context, &want, &got, actual));
    }
    Ok(())
}

fn fingerprint(reqs: &[Requirement]) -> Vec<String> {
    reqs.iter()
        .map(|r| match r.op {
            Op::Exists => format!("the requirement `{}`", r.key),
            Op::DoesNotExist => format!("the requirement `!{}`", r.key),
            _ => format!("the requirement `{} {}` with {} value(s)", r.key, r.op, r.values.len()),
        })
        .collect()
}

// --- label selectors ---

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    Bang,
    Open,
    Close,
    Comma,
    End,
}

impl Tok {
    /// In value position the keywords are plain identifiers.
    fn as_value(&self) -> Tok {
        match self {
            Tok::In => Tok::Ident("in".into()),
            Tok::NotIn => Tok::Ident("notin".into()),
            t => t.clone(),
        }
    }

    fn shown(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::In => "in".into(),
            Tok::NotIn => "notin".into(),
            Tok::Equals => "=".into(),
            Tok::DoubleEquals => "==".into(),
            Tok::NotEquals => "!=".into(),
            Tok::GreaterThan => ">".into(),
            Tok::LessThan => "<".into(),
            Tok::Bang => "!".into(),
            Tok::Open => "(".into(),
            Tok::Close => ")".into(),
            Tok::Comma => ",".into(),
            Tok::End => "end of string".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The API server's lexer: special symbols take the longest match, anything else up to
/// whitespace or a special symbol is an identifier (or the keyword `in`/`notin`).
fn lex(s: &str) -> Vec<Tok> {
    let chars: Vec<char> = s.chars().collect();
    let (mut i, mut out) = (0, Vec::new());
    while i < chars.len() {
        let c = chars[i];
        if is_space(c) {
            i += 1;
        } else if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('!', Some('=')) => (Tok::NotEquals, 2),
                ('=', Some('=')) => (Tok::DoubleEquals, 2),
                ('=', _) => (Tok::Equals, 1),
                ('!', _) => (Tok::Bang, 1),
                ('(', _) => (Tok::Open, 1),
                (')', _) => (Tok::Close, 1),
                (',', _) => (Tok::Comma, 1),
                ('>', _) => (Tok::GreaterThan, 1),
                _ => (Tok::LessThan, 1),
            };
            out.push(tok);
            i += len;
        } else {
            let start = i;
            while i < chars.len() && !is_space(chars[i]) && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident(word),
            });
        }
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Tok {
        self.toks.get(self.pos).cloned().unwrap_or(Tok::End)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut tok = self.next().as_value();
        let negated = tok == Tok::Bang;
        if negated {
            tok = self.next().as_value();
        }
        let Tok::Ident(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.shown()));
        };
        check_label_key(&key)?;
        if negated || matches!(self.peek(), Tok::End | Tok::Comma) {
            let op = if negated { Op::DoesNotExist } else { Op::Exists };
            return Ok(Requirement { key, op, values: vec![] });
        }
        let op = match self.next() {
            Tok::In => Op::In,
            Tok::NotIn => Op::NotIn,
            Tok::Equals => Op::Equals,
            Tok::DoubleEquals => Op::DoubleEquals,
            Tok::NotEquals => Op::NotEquals,
            Tok::GreaterThan => Op::GreaterThan,
            Tok::LessThan => Op::LessThan,
            t => return Err(format!("found '{}', expected: in, notin, =, ==, !=, gt, lt", t.shown())),
        };
        let values = match op {
            Op::In | Op::NotIn => self.set()?,
            _ => match self.peek().as_value() {
                Tok::End | Tok::Comma => vec![String::new()],
                Tok::Ident(v) => {
                    self.pos += 1;
                    vec![v]
                }
                t => return Err(format!("found '{}', expected: identifier", t.shown())),
            },
        };
        if matches!(op, Op::GreaterThan | Op::LessThan) && values[0].parse::<i64>().is_err() {
            return Err(format!("for 'Gt', 'Lt' operators, the value must be an integer, not '{}'", values[0]));
        }
        for v in &values {
            check_label_value(v)?;
        }
        Ok(Requirement { key, op, values })
    }

    /// `(a, b)`; empty entries (`(,a)`, `()`) are the empty value, as on the API server.
    fn set(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Tok::Open => {}
            t => return Err(format!("found '{}', expected: '('", t.shown())),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next().as_value() {
                Tok::Ident(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                Tok::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Tok::Close => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => return Err(format!("found '{}', expected: ',', ')' or identifier", t.shown())),
            }
        }
    }
}

/// Parse a label selector as the API server does; the empty selector has no requirements.
pub fn parse_labels(s: &str) -> Result<Vec<Requirement>, String> {
    let mut p = Parser { toks: lex(s), pos: 0 };
    let mut out = Vec::new();
    loop {
        match p.peek().as_value() {
            Tok::End => return Ok(out),
            Tok::Ident(_) | Tok::Bang => out.push(p.requirement()?),
            t => return Err(format!("found '{}', expected: !, identifier, or 'end of string'", t.shown())),
        }
        match p.next() {
            Tok::End => return Ok(out),
            Tok::Comma if matches!(p.peek().as_value(), Tok::Ident(_) | Tok::Bang) => {}
            Tok::Comma => return Err(format!("found '{}', expected: identifier after ','", p.peek().shown())),
            t => return Err(format!("found '{}', expected: ',' or 'end of string'", t.shown())),
        }
    }
}

static LABEL_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").expect("regex"));
static DNS_SUBDOMAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("regex"));

/// A qualified name: `[prefix/]name`, name at most 63 characters, prefix a DNS subdomain.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.len() > 253 || !DNS_SUBDOMAIN.is_match(p))
    {
        return Err(format!("invalid label key \"{key}\": the prefix must be a DNS subdomain"));
    }
    if name.len() > 63 || !LABEL_NAME.is_match(name) {
        return Err(format!(
            "invalid label key \"{key}\": a name is at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 letters, digits, `-_.`, alphanumeric at both ends.
fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || (v.len() <= 63 && LABEL_NAME.is_match(v)) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value \"{v}\": at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit"
        ))
    }
}

// --- field selectors ---

/// Parse a field selector as the API server does: terms split on unescaped commas, each at
/// its first `!=`, `==` or `=`; values unescape `\,` `\=` `\\` and may not hold a bare `,`
/// or `=`.
pub fn parse_fields(s: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    for term in split_terms(s) {
        if term.is_empty() {
            continue;
        }
        let Some((field, op, value)) = split_term(term) else {
            return Err(format!("invalid selector: '{term}'; can't understand '{term}'"));
        };
        let field = field.trim();
        if field.is_empty() {
            return Err(format!("invalid selector: '{term}': no field name"));
        }
        out.push(Requirement { key: field.to_string(), op, values: vec![unescape(value)?] });
    }
    Ok(out)
}

fn split_terms(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut escaped) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn split_term(term: &str) -> Option<(&str, Op, &str)> {
    (0..term.len()).filter(|&i| term.is_char_boundary(i)).find_map(|i| {
        let rest = &term[i..];
        [("!=", Op::NotEquals), ("==", Op::DoubleEquals), ("=", Op::Equals)]
            .into_iter()
            .find(|(op, _)| rest.starts_with(op))
            .map(|(op, kind)| (&term[..i], kind, &term[i + op.len()..]))
    })
}

fn unescape(v: &str) -> Result<String, String> {
    let (mut out, mut escaped) = (String::with_capacity(v.len()), false);
    for c in v.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid escape sequence \\{c} in field selector value \"{v}\""));
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' || c == '=' {
            return Err(format!("invalid field selector value \"{v}\": unescaped '{c}'"));
        } else {
            out.push(c);
        }
    }
    if escaped {
        return Err(format!("invalid field selector value \"{v}\": ends with a lone backslash"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(actual: &str, sentinel: &str) -> Result<(), GuardError> {
        same_structure(SelectorKind::Label, actual, sentinel)
    }

    fn field(actual: &str, sentinel: &str) -> Result<(), GuardError> {
        same_structure(SelectorKind::Field, actual, sentinel)
    }

    #[test]
    fn every_label_selector_form_parses_like_the_api_server() {
        let reqs =
            parse_labels("app=web,tier==front, env!=prod,zone in (a, b),x notin (c),canary,!legacy,n>3").unwrap();
        let ops: Vec<Op> = reqs.iter().map(|r| r.op).collect();
        use Op::*;
        assert_eq!(ops, [Equals, DoubleEquals, NotEquals, In, NotIn, Exists, DoesNotExist, GreaterThan]);
        assert_eq!(reqs[3].values, ["a", "b"]);
        assert_eq!(parse_labels("").unwrap(), []);
        assert_eq!(parse_labels("a=").unwrap()[0].values, [""]);
        assert_eq!(parse_labels("a in ()").unwrap()[0].values, [""]);
        assert_eq!(parse_labels("example.com/role=in").unwrap()[0].values, ["in"]);
        for bad in ["a in b", "a=b=c", "a,", ",a", "a b", "a=(b)", "a>b", "!a=b", "a=b c", "-a=b", "a=b!"] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors_split_on_unescaped_commas_only() {
        let reqs = parse_fields(r"metadata.name=a\,b,status.phase!=Running").unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].values, ["a,b"]);
        assert_eq!(reqs[1].op, Op::NotEquals);
        assert!(parse_fields("a=b=c").is_err());
        assert!(parse_fields(r"a=b\x").is_err());
        assert!(parse_fields("status.phase").is_err());
    }

    #[test]
    fn a_value_in_its_slot_keeps_the_structure() {
        label("app=web", "app=chm.sentinel").unwrap();
        label("tier in (a,b)", "tier in (chm.sentinel,chm.sentinel)").unwrap();
        label("app=", "app=").unwrap();
        field("involvedObject.name=web-1", "involvedObject.name=chm.sentinel").unwrap();
        field(r"metadata.name=a\,b", "metadata.name=chm.sentinel").unwrap();
    }

    #[test]
    fn a_comma_in_a_label_value_adds_a_requirement() {
        // Template: app={{ v }}, v = `a,b!=c`.
        let e = label("app=a,b!=c", "app=chm.sentinel").unwrap_err();
        assert!(matches!(e, GuardError::Structure { context: Context::LabelSelector, .. }), "{e}");
        assert!(e.to_string().contains("adds the requirement `b !=`"), "{e}");
    }

    #[test]
    fn a_smuggled_set_requirement_is_refused() {
        // Template: tier={{ v }}, v = `x,a in (x)`.
        assert!(matches!(label("tier=x,a in (x)", "tier=chm.sentinel"), Err(GuardError::Structure { .. })));
        // Template: tier in ({{ v }}), v = `x),b in (y`.
        assert!(matches!(label("tier in (x),b in (y)", "tier in (chm.sentinel)"), Err(GuardError::Structure { .. })));
        // Template: tier in ({{ v }}), v = `x,y`: one slot became two values.
        let e = label("tier in (x,y)", "tier in (chm.sentinel)").unwrap_err();
        assert!(e.to_string().contains("with 1 value(s)"), "{e}");
    }

    #[test]
    fn an_operator_in_a_value_does_not_parse() {
        // Template: app={{ v }}, v = `=x` or `!x`.
        for actual in ["app==x=", "app=!x", "app=x y", "app=(x)"] {
            let e = label(actual, "app=chm.sentinel").unwrap_err();
            assert!(matches!(e, GuardError::Invalid { .. }), "{actual}: {e}");
        }
    }

    #[test]
    fn a_comma_in_a_field_value_adds_a_requirement() {
        // Template: spec.nodeName={{ v }}, v = `n1,metadata.namespace!=x`.
        let e = field("spec.nodeName=n1,metadata.namespace!=x", "spec.nodeName=chm.sentinel").unwrap_err();
        assert!(matches!(e, GuardError::Structure { context: Context::FieldSelector, .. }), "{e}");
        // v = `a=b`: a bare `=` in a value does not parse.
        assert!(matches!(field("spec.nodeName=a=b", "spec.nodeName=chm.sentinel"), Err(GuardError::Invalid { .. })));
    }

    #[test]
    fn a_template_whose_inert_rendering_does_not_parse_is_a_template_error() {
        // Template: {{ key }}=x with a free-text key: the sentinel `chm.sentinel` is a valid
        // key, so this passes only when the structure is the same; a key in an operator slot
        // does not parse.
        assert!(matches!(label("a=b", "a chm.sentinel b"), Err(GuardError::Template { .. })));
    }

    #[test]
    fn an_argument_as_a_key_is_a_spec_error() {
        // Template: {{ key | selector_value }}=x.
        assert!(matches!(label("app=x", "chm.sentinel=x"), Err(GuardError::ArgumentInStructure { .. })));
    }
}
