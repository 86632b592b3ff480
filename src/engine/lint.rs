//! The static proof that request templates cannot be injected.
//!
//! Request fields (a PromQL query, a URL path, a selector, a header...) are templates in a
//! restricted language: raw text, `{{ expr }}`, `{% if %}` and comments; no `set`, loops,
//! macros, blocks or function calls other than `now()` and `new_id('prefix')`. Every value an expression can emit is
//! tracked from where it comes from (an input with its constraints, a step result, a constant)
//! to the lexical position it lands in (inside PromQL quotes, after `=~`, a selector value, a
//! URL segment), and must be provably safe there: an escaper of that context applied last, or
//! an input whose enum or anchored pattern only allows characters harmless at that position.
//! What cannot be shown safe is refused with the template line and column and the input named.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, LazyLock};

use indexmap::IndexMap;
use std::collections::HashMap;

use minijinja::machinery::ast::{BinOpKind, Call, CallArg, Expr, Stmt, UnaryOpKind};
use minijinja::machinery::{Span, parse, parse_expr};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Where a request field's text goes, which decides what may be spliced into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextContext {
    /// PromQL query text.
    Promql,
    /// A URL path (each templated value must stay inside one segment).
    UrlPath,
    /// A Kubernetes label selector.
    LabelSelector,
    /// A Kubernetes field selector.
    FieldSelector,
    /// A Kubernetes namespace, object or container name: validated as an RFC 1123 name at run
    /// time, so any value passes here statically.
    K8sName,
    /// An HTTP header value: only declared inputs may appear, never step results.
    Header,
    /// Typed JSON leaves, query parameters and bodies: encoded by the backend, safe by
    /// construction.
    Data,
}

impl TextContext {
    /// How messages name the context.
    pub fn name(self) -> &'static str {
        match self {
            TextContext::Promql => "PromQL",
            TextContext::UrlPath => "a URL path",
            TextContext::LabelSelector => "a label selector",
            TextContext::FieldSelector => "a field selector",
            TextContext::K8sName => "a Kubernetes name",
            TextContext::Header => "a header",
            TextContext::Data => "request data",
        }
    }

    /// The escaping filters of this context.
    pub fn escapers(self) -> &'static [&'static str] {
        match self {
            TextContext::Promql => {
                &["promql_string", "promql_regex", "promql_prefix", "promql_duration", "promql_matchers"]
            }
            TextContext::UrlPath => &["path_segment"],
            TextContext::LabelSelector | TextContext::FieldSelector => &["selector_value"],
            TextContext::K8sName | TextContext::Header | TextContext::Data => &[],
        }
    }

    /// The filters to name in a hint (the matcher builder is a function, named apart).
    pub fn hint(self) -> String {
        let filters = self.escapers().iter().filter(|f| **f != "promql_matchers").map(|f| format!("`| {f}`"));
        let mut hint = filters.collect::<Vec<_>>().join(" or ");
        if self == TextContext::Promql {
            hint.push_str(", or build label filters with `promql_matchers(label=value)` after a fixed matcher");
        }
        hint
    }

    /// The lexer state a field of this context starts in (None: not lexed).
    fn start(self) -> Option<Lex> {
        match self {
            TextContext::Promql => Some(Lex::PromRaw { op: Op::Other, pend: Pend::None }),
            TextContext::UrlPath => Some(Lex::Path),
            TextContext::LabelSelector | TextContext::FieldSelector => Some(Lex::SelKey { bang: false }),
            TextContext::K8sName | TextContext::Header | TextContext::Data => None,
        }
    }
}

impl From<crate::backends::TextContext> for TextContext {
    /// The lint's view of a backend field's context: names of every sort are checked at
    /// run time by their grammar, so any value passes statically.
    fn from(c: crate::backends::TextContext) -> TextContext {
        use crate::backends::TextContext as B;
        match c {
            B::Promql => TextContext::Promql,
            // The label-values endpoint puts the label name into the URL path.
            B::UrlPath | B::PathSegment | B::PromqlLabelName => TextContext::UrlPath,
            B::LabelSelector => TextContext::LabelSelector,
            B::FieldSelector => TextContext::FieldSelector,
            B::Namespace | B::Name | B::Container | B::ApiVersion | B::KindName => TextContext::K8sName,
            B::Header => TextContext::Header,
            // Literal fields are refused when templated before the lint runs.
            B::Data | B::Literal => TextContext::Data,
        }
    }
}

/// Patterns implied by the known string formats (the run-time check of the input).
pub fn format_pattern(format: &str) -> Option<&'static str> {
    Some(match format {
        "k8s-name" => r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)?$",
        "k8s-namespace" => r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$",
        "label-selector" => r"^[A-Za-z0-9._/ ,!=()-]*$",
        "field-selector" => r"^[A-Za-z0-9._/ ,!=:-]*$",
        "duration" | "promql-duration" => r"^(([0-9]+(ms|s|m|h|d|w|y))+)?$",
        _ => return None,
    })
}

/// What the lint needs to know about one input.
#[derive(Debug, Clone, Copy)]
pub struct InputFacts<'a> {
    pub kind: InputKind,
    pub enum_values: Option<&'a [serde_json::Value]>,
    pub pattern: Option<&'a str>,
    pub format: Option<&'a str>,
}

/// The JSON type of an input, as far as text safety goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Numbers, integers and booleans: safe in every text.
    Scalar,
    String,
    /// Arrays and objects: their text form is never safe in query text.
    Composite,
}

/// The names a procedure's request templates may read, with what each input's values can be.
pub struct Scope {
    inputs: IndexMap<String, Lang>,
    steps: HashSet<String>,
    /// Every library's definitions (library bodies may call any library they import).
    libraries: HashMap<String, HashMap<String, LibraryDef>>,
    /// The libraries the procedure imports.
    imports: HashSet<String>,
}

/// A library definition as the lint sees it: request templates may call expression
/// definitions, which the lint inlines with the call's arguments bound to the parameters.
#[derive(Debug, Clone)]
pub struct LibraryDef {
    pub params: Vec<String>,
    /// The expression; None for a text macro (not callable from requests).
    pub expr: Option<String>,
}

/// Every `lib.name(...)` call in a template or expression (for `validate`'s did-you-mean).
pub fn library_calls(source: &str, expression: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut found = |e: &Expr<'_>| {
        if let Expr::Call(c) = e
            && let Expr::GetAttr(g) = &c.expr
            && let Expr::Var(v) = &g.expr
        {
            out.push((v.id.to_string(), g.name.to_string()));
        }
    };
    if expression {
        if let Ok(e) = parse_expr(source) {
            visit_expr(&e, &mut found);
        }
    } else if let Ok(stmt) = parse(source, "<template>", Default::default()) {
        visit_stmt(&stmt, &mut found);
    }
    out
}

impl Scope {
    pub fn new<'a>(
        inputs: impl IntoIterator<Item = (&'a str, InputFacts<'a>)>,
        steps: impl IntoIterator<Item = &'a str>,
    ) -> Scope {
        Scope {
            inputs: inputs.into_iter().map(|(n, f)| (n.to_string(), Lang::of_input(&f))).collect(),
            steps: steps.into_iter().map(str::to_string).collect(),
            libraries: HashMap::new(),
            imports: HashSet::new(),
        }
    }

    /// The libraries known (`libraries`) and those the procedure imports.
    pub fn with_libraries(
        mut self,
        libraries: HashMap<String, HashMap<String, LibraryDef>>,
        imports: impl IntoIterator<Item = String>,
    ) -> Scope {
        self.libraries = libraries;
        self.imports = imports.into_iter().collect();
        self
    }
}

/// One reason a request template is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Violation {
    /// 1-based line and column inside the template.
    pub line: usize,
    pub col: usize,
    /// The input or step the problem is about, when there is one.
    pub variable: Option<String>,
    /// What is wrong, ending with the template position.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Check one request field's template. `guarded`: the step applies the backend's guardrails
/// to its query, so raw PromQL inputs (`format: promql`) may reach it.
pub fn lint(source: &str, ctx: TextContext, scope: &Scope, guarded: bool) -> Result<Vec<Violation>, minijinja::Error> {
    if !source.contains('{') {
        return Ok(Vec::new());
    }
    let stmt = parse(source, "<request>", Default::default())?;
    let mut lint = Linter { ctx, scope, guarded, found: BTreeSet::new(), bound: None };
    lint.language(&stmt);
    if ctx == TextContext::Header {
        lint.header_step_results(&stmt);
    }
    if let Some(start) = ctx.start() {
        lint.run(std::slice::from_ref(&stmt), BTreeSet::from([start]));
    }
    Ok(lint.found.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// What a value can be.

/// The set of strings a value may render to, as far as the lint knows.
#[derive(Debug, Clone)]
enum Lang {
    /// Numbers and booleans.
    Scalar,
    /// One of these strings (an enum).
    OneOf(Vec<String>),
    /// What an anchored pattern matches.
    Pattern(Arc<Pattern>),
    /// A whole selector or query, checked as such by its backend.
    Whole(Whole),
    /// Anything.
    Free(Why),
    /// The output of this escaping filter, applied last.
    Escaped(&'static str),
    /// An escaped value changed afterwards by `by`.
    Retainted { escaper: &'static str, by: String },
}

/// Why a value is free text.
#[derive(Debug, Clone)]
enum Why {
    FreeText,
    Unanchored,
    BadPattern,
    UnknownFormat(String),
    Composite,
    StepResult,
    Changed(String),
    Computed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whole {
    LabelSelector,
    FieldSelector,
    Promql,
}

impl Whole {
    fn format(self) -> &'static str {
        match self {
            Whole::LabelSelector => "label-selector",
            Whole::FieldSelector => "field-selector",
            Whole::Promql => "promql",
        }
    }
}

#[derive(Debug)]
struct Pattern {
    source: String,
    hir: Hir,
    regex: regex::Regex,
}

impl Lang {
    fn of_input(f: &InputFacts<'_>) -> Lang {
        match f.kind {
            InputKind::Scalar => Lang::Scalar,
            InputKind::Composite => Lang::Free(Why::Composite),
            InputKind::String => {
                if let Some(values) = f.enum_values {
                    return Lang::OneOf(
                        values
                            .iter()
                            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                            .collect(),
                    );
                }
                if let Some(p) = f.pattern {
                    return Lang::pattern(p);
                }
                match f.format {
                    Some("label-selector") => Lang::Whole(Whole::LabelSelector),
                    Some("field-selector") => Lang::Whole(Whole::FieldSelector),
                    Some("promql") => Lang::Whole(Whole::Promql),
                    Some(other) => match format_pattern(other) {
                        Some(p) => Lang::pattern(p),
                        None => Lang::Free(Why::UnknownFormat(other.to_string())),
                    },
                    None => Lang::Free(Why::FreeText),
                }
            }
        }
    }

    fn pattern(source: &str) -> Lang {
        let (Ok(hir), Ok(regex)) = (regex_syntax::Parser::new().parse(source), regex::Regex::new(source)) else {
            return Lang::Free(Why::BadPattern);
        };
        if !anchored(&hir) {
            return Lang::Free(Why::Unanchored);
        }
        Lang::Pattern(Arc::new(Pattern { source: source.to_string(), hir, regex }))
    }
}

/// `^...$` around the whole pattern (or around every alternative).
fn anchored(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Concat(xs) => {
            matches!(xs.first().map(Hir::kind), Some(HirKind::Look(Look::Start)))
                && matches!(xs.last().map(Hir::kind), Some(HirKind::Look(Look::End)))
        }
        HirKind::Alternation(xs) => xs.iter().all(anchored),
        HirKind::Capture(c) => anchored(&c.sub),
        _ => false,
    }
}

/// The first character the pattern can produce that the slot does not allow.
fn unsafe_char(h: &Hir, slot: Slot) -> Option<char> {
    let range = |a: char, b: char| -> Option<char> {
        let ascii_end = b.min('\x7f');
        if a <= ascii_end
            && let Some(c) = (a..=ascii_end).find(|c| !slot.allows(*c))
        {
            return Some(c);
        }
        (b > '\x7f' && !slot.allows_non_ascii()).then(|| a.max('\u{80}'))
    };
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => None,
        HirKind::Literal(l) => String::from_utf8_lossy(&l.0).chars().find(|c| !slot.allows_char(*c)),
        HirKind::Class(Class::Unicode(u)) => u.ranges().iter().find_map(|r| range(r.start(), r.end())),
        HirKind::Class(Class::Bytes(b)) => {
            b.ranges().iter().find_map(|r| range(char::from(r.start()), char::from(r.end())))
        }
        HirKind::Repetition(r) => unsafe_char(&r.sub, slot),
        HirKind::Capture(c) => unsafe_char(&c.sub, slot),
        HirKind::Concat(xs) | HirKind::Alternation(xs) => xs.iter().find_map(|x| unsafe_char(x, slot)),
    }
}

/// PromQL words that change a query's structure when they appear bare.
const PROMQL_KEYWORDS: &[&str] =
    &["and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"];

/// Every upper/lower-case spelling of a word (PromQL keywords ignore case).
fn case_variants(word: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for c in word.chars() {
        let (lo, up) = (c.to_ascii_lowercase(), c.to_ascii_uppercase());
        out =
            out.into_iter()
                .flat_map(|s| {
                    if lo == up { vec![format!("{s}{lo}")] } else { vec![format!("{s}{lo}"), format!("{s}{up}")] }
                })
                .collect();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Lexical positions.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    /// After `=` or `!=`.
    Eq,
    /// After `=~` or `!~`.
    Regex,
    Other,
}

/// A character that may start a two-character operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pend {
    None,
    Bang,
    Eq,
    Cmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lex {
    PromRaw {
        op: Op,
        pend: Pend,
    },
    PromQuoted {
        quote: char,
        regex: bool,
        escape: bool,
    },
    PromComment,
    /// A selector requirement's key (or `!key`), before its operator.
    SelKey {
        bang: bool,
    },
    /// After `=`, `==` or `!=`.
    SelValue,
    /// Inside `in (...)` / `notin (...)`.
    SelSet,
    Path,
}

/// Where a value lands, for safety purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    PromQuoted { quote: char, regex: bool },
    PromRaw,
    PromComment,
    SelValue,
    SelKey,
    PathSegment,
}

impl Slot {
    fn allows(self, c: char) -> bool {
        match self {
            Slot::PromQuoted { quote, regex: false } => c != quote && !matches!(c, '\\' | '\n' | '\r'),
            Slot::PromQuoted { regex: true, .. } => c.is_ascii_alphanumeric() || "_-:/ ,=@%".contains(c),
            Slot::PromRaw => c.is_ascii_alphanumeric() || "_.:".contains(c),
            Slot::PromComment => !matches!(c, '\n' | '\r'),
            Slot::SelValue => c.is_ascii_alphanumeric() || "._:-".contains(c),
            Slot::SelKey => c.is_ascii_alphanumeric() || "._/-".contains(c),
            Slot::PathSegment => c.is_ascii_alphanumeric() || "._~-".contains(c),
        }
    }

    fn allows_non_ascii(self) -> bool {
        matches!(self, Slot::PromQuoted { regex: false, .. } | Slot::PromComment)
    }

    fn allows_char(self, c: char) -> bool {
        if c.is_ascii() { self.allows(c) } else { self.allows_non_ascii() }
    }

    /// Whole values that are unsafe although every character is allowed.
    fn forbidden(self) -> &'static [String] {
        static KEYWORDS: LazyLock<Vec<String>> =
            LazyLock::new(|| PROMQL_KEYWORDS.iter().flat_map(|k| case_variants(k)).collect());
        static DOTS: LazyLock<Vec<String>> = LazyLock::new(|| vec![".".into(), "..".into()]);
        match self {
            Slot::PromRaw => &KEYWORDS,
            Slot::PathSegment => &DOTS,
            _ => &[],
        }
    }

    fn describe(self) -> String {
        match self {
            Slot::PromQuoted { quote, regex: false } => format!("a {quote}-quoted PromQL string"),
            Slot::PromQuoted { quote, regex: true } => format!("a {quote}-quoted PromQL regex"),
            Slot::PromRaw => "PromQL outside quotes".into(),
            Slot::PromComment => "a PromQL comment".into(),
            Slot::SelValue => "a selector value".into(),
            Slot::SelKey => "a selector key".into(),
            Slot::PathSegment => "a URL path segment".into(),
        }
    }
}

impl Lex {
    fn slot(self) -> Slot {
        match self {
            Lex::PromRaw { .. } => Slot::PromRaw,
            Lex::PromQuoted { quote, regex, .. } => Slot::PromQuoted { quote, regex },
            Lex::PromComment => Slot::PromComment,
            Lex::SelKey { .. } => Slot::SelKey,
            Lex::SelValue | Lex::SelSet => Slot::SelValue,
            Lex::Path => Slot::PathSegment,
        }
    }

    fn step(self, c: char) -> Lex {
        match self {
            Lex::PromRaw { op, pend } => match c {
                '"' | '\'' | '`' => Lex::PromQuoted { quote: c, regex: op == Op::Regex, escape: false },
                '#' => Lex::PromComment,
                '=' => match pend {
                    Pend::Bang => Lex::PromRaw { op: Op::Eq, pend: Pend::None },
                    Pend::Eq | Pend::Cmp => Lex::PromRaw { op: Op::Other, pend: Pend::None },
                    Pend::None => Lex::PromRaw { op: Op::Eq, pend: Pend::Eq },
                },
                '~' if matches!(pend, Pend::Eq | Pend::Bang) => Lex::PromRaw { op: Op::Regex, pend: Pend::None },
                '!' => Lex::PromRaw { op: Op::Other, pend: Pend::Bang },
                '<' | '>' => Lex::PromRaw { op: Op::Other, pend: Pend::Cmp },
                c if c.is_whitespace() => Lex::PromRaw { op, pend: Pend::None },
                _ => Lex::PromRaw { op: Op::Other, pend: Pend::None },
            },
            Lex::PromQuoted { quote, regex, escape } => {
                if escape {
                    Lex::PromQuoted { quote, regex, escape: false }
                } else if c == '\\' && quote != '`' {
                    Lex::PromQuoted { quote, regex, escape: true }
                } else if c == quote {
                    Lex::PromRaw { op: Op::Other, pend: Pend::None }
                } else {
                    self
                }
            }
            Lex::PromComment if c == '\n' => Lex::PromRaw { op: Op::Other, pend: Pend::None },
            Lex::PromComment => self,
            Lex::SelKey { bang } => match c {
                '=' => Lex::SelValue,
                '!' => Lex::SelKey { bang: true },
                '(' => Lex::SelSet,
                _ if bang => Lex::SelKey { bang: false },
                _ => self,
            },
            Lex::SelValue => match c {
                ',' => Lex::SelKey { bang: false },
                _ => self,
            },
            Lex::SelSet => match c {
                ')' => Lex::SelKey { bang: false },
                _ => self,
            },
            Lex::Path => self,
        }
    }

    /// The state after a non-empty value that the slot allows.
    fn after_value(self) -> Lex {
        match self {
            Lex::PromRaw { .. } => Lex::PromRaw { op: Op::Other, pend: Pend::None },
            Lex::PromQuoted { quote, regex, .. } => Lex::PromQuoted { quote, regex, escape: false },
            Lex::SelKey { .. } => Lex::SelKey { bang: false },
            other => other,
        }
    }
}

fn feed(states: BTreeSet<Lex>, text: &str) -> BTreeSet<Lex> {
    states.into_iter().map(|s| text.chars().fold(s, Lex::step)).collect()
}

// ---------------------------------------------------------------------------------------------
// Expressions as trees of emitted pieces.

/// Where a value comes from, for messages.
#[derive(Debug, Clone)]
enum Origin {
    Input(String),
    Step(String),
    Other,
}

#[derive(Debug, Clone)]
struct Piece {
    origin: Origin,
    lang: Lang,
    span: Span,
}

/// What an expression can render to: constant text and values, in sequence or alternatives.
#[derive(Debug, Clone)]
enum Node {
    Lit(String),
    Val(Piece),
    Seq(Vec<Node>),
    Alt(Vec<Node>),
}

impl Node {
    fn pieces<'n>(&'n self, out: &mut Vec<&'n Piece>) {
        match self {
            Node::Lit(_) => {}
            Node::Val(p) => out.push(p),
            Node::Seq(xs) | Node::Alt(xs) => xs.iter().for_each(|x| x.pieces(out)),
        }
    }

    fn is_scalar(&self) -> bool {
        let mut ps = Vec::new();
        self.pieces(&mut ps);
        matches!(self, Node::Val(_) | Node::Seq(_) | Node::Alt(_)) && ps.iter().all(|p| matches!(p.lang, Lang::Scalar))
    }

    /// The first input or step the value mentions.
    fn origin(&self) -> Origin {
        let mut ps = Vec::new();
        self.pieces(&mut ps);
        ps.iter().map(|p| &p.origin).find(|o| !matches!(o, Origin::Other)).cloned().unwrap_or(Origin::Other)
    }

    fn escaper(&self) -> Option<&'static str> {
        let mut ps = Vec::new();
        self.pieces(&mut ps);
        ps.iter().find_map(|p| match p.lang {
            Lang::Escaped(e) => Some(e),
            _ => None,
        })
    }

    /// The value after an operation that is not an escaper: escaped pieces are tainted again,
    /// free text stays free text, and constrained values lose their constraint.
    fn changed(&self, by: &str, span: Span) -> Node {
        let mut ps = Vec::new();
        self.pieces(&mut ps);
        let lang = match (self.escaper(), ps.iter().find(|p| matches!(p.lang, Lang::Free(_)))) {
            (Some(escaper), _) => Lang::Retainted { escaper, by: by.to_string() },
            (None, Some(free)) => return Node::Val(Piece { span, ..(*free).clone() }),
            (None, None) => Lang::Free(Why::Changed(by.to_string())),
        };
        Node::Val(Piece { origin: self.origin(), lang, span })
    }

    /// The same value with every piece placed at `span` (an inlined library call).
    fn placed(self, span: Span) -> Node {
        match self {
            Node::Val(p) => Node::Val(Piece { span, ..p }),
            Node::Seq(xs) => Node::Seq(xs.into_iter().map(|x| x.placed(span)).collect()),
            Node::Alt(xs) => Node::Alt(xs.into_iter().map(|x| x.placed(span)).collect()),
            lit => lit,
        }
    }

    /// `x | default(y)`: `x` unchanged unless escaped.
    fn retaint_escaped(self, by: &str) -> Node {
        match self {
            Node::Val(Piece { origin, lang: Lang::Escaped(escaper), span }) => {
                Node::Val(Piece { origin, lang: Lang::Retainted { escaper, by: by.to_string() }, span })
            }
            Node::Seq(xs) => Node::Seq(xs.into_iter().map(|x| x.retaint_escaped(by)).collect()),
            Node::Alt(xs) => Node::Alt(xs.into_iter().map(|x| x.retaint_escaped(by)).collect()),
            other => other,
        }
    }
}

/// Filters whose result is a number or boolean whatever the input.
const NUMERIC_FILTERS: &[&str] = &[
    "int",
    "float",
    "length",
    "count",
    "abs",
    "round",
    "bool",
    "wordcount",
    "duration_seconds",
    "unix_seconds",
    "percent",
];

/// Functions a request template may call (besides expression definitions of the libraries it
/// imports): `now()`, `new_id` with one literal prefix, and the PromQL matcher builder with
/// keyword arguments.
const ALLOWED_FUNCTIONS: &[&str] = &["now()", "new_id('prefix')", "promql_matchers(label=value)"];

/// The literal prefix of a `new_id('prefix')` call, when it is one and plain.
fn new_id_prefix<'a>(c: &'a minijinja::machinery::ast::Call<'_>) -> Option<&'a str> {
    let Expr::Var(v) = &c.expr else { return None };
    match (v.id, c.args.as_slice()) {
        ("new_id", [CallArg::Pos(Expr::Const(k))]) => k.value.as_str().filter(|p| crate::ids::valid_prefix(p)),
        _ => None,
    }
}

fn escaper_context(name: &str) -> Option<&'static str> {
    ["promql_string", "promql_regex", "promql_prefix", "promql_duration", "path_segment", "selector_value"]
        .into_iter()
        .find(|e| *e == name)
}

static NOW: LazyLock<Lang> =
    LazyLock::new(|| Lang::pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"));

fn at(span: Span) -> (usize, usize) {
    (span.start_line as usize, span.start_col as usize + 1)
}

struct Linter<'a> {
    ctx: TextContext,
    scope: &'a Scope,
    guarded: bool,
    found: BTreeSet<Violation>,
    /// Inside an inlined library definition: its parameters bound to the call's arguments
    /// (nothing else of the caller is visible there).
    bound: Option<HashMap<String, Node>>,
}

impl Linter<'_> {
    fn report(&mut self, span: Span, variable: Option<String>, message: String, hint: String) {
        let (line, col) = at(span);
        self.found.insert(Violation {
            line,
            col,
            variable,
            message: format!("{message} (template line {line}, column {col})"),
            hint,
        });
    }

    fn describe(&self, origin: &Origin) -> (Option<String>, String) {
        match origin {
            Origin::Input(n) => (Some(n.clone()), format!("input `{n}`")),
            Origin::Step(n) => (Some(n.clone()), format!("the result of step `{n}`")),
            Origin::Other => (None, "a computed value".into()),
        }
    }

    // --- the restricted language ---------------------------------------------------------

    fn language(&mut self, stmt: &Stmt<'_>) {
        let refused = match stmt {
            Stmt::Template(t) => {
                t.children.iter().for_each(|s| self.language(s));
                return;
            }
            Stmt::EmitRaw(_) => return,
            Stmt::EmitExpr(e) => {
                self.language_expr(&e.expr);
                return;
            }
            Stmt::IfCond(c) => {
                self.language_expr(&c.expr);
                c.true_body.iter().chain(&c.false_body).for_each(|s| self.language(s));
                return;
            }
            Stmt::ForLoop(_) => "`{% for %}` loops",
            Stmt::WithBlock(_) => "`{% with %}` blocks",
            Stmt::Set(_) | Stmt::SetBlock(_) => "`{% set %}`",
            Stmt::AutoEscape(_) => "`{% autoescape %}`",
            Stmt::FilterBlock(_) => "`{% filter %}` blocks",
            Stmt::Block(_) => "`{% block %}`",
            Stmt::Import(_) | Stmt::FromImport(_) => "`{% import %}`",
            Stmt::Extends(_) => "`{% extends %}`",
            Stmt::Include(_) => "`{% include %}`",
            Stmt::Macro(_) => "macros",
            Stmt::CallBlock(_) => "`{% call %}` blocks",
            Stmt::Do(_) => "`{% do %}`",
            #[allow(unreachable_patterns)]
            _ => "this statement",
        };
        let mut names = BTreeSet::new();
        visit_stmt(stmt, &mut |e| {
            if let Expr::Var(v) = e
                && (self.scope.inputs.contains_key(v.id) || self.scope.steps.contains(v.id))
            {
                names.insert(v.id.to_string());
            }
        });
        let hidden = if names.is_empty() {
            String::new()
        } else {
            format!(
                "; it would hide {} from the escaping check",
                names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            )
        };
        let variable = names.into_iter().next();
        self.report(
            stmt_span(stmt),
            variable,
            format!("request templates may not use {refused}{hidden}"),
            "request fields may use only `{{ expr }}` with filters and `{% if %}`; compute the rest in the output"
                .into(),
        );
    }

    fn language_expr(&mut self, expr: &Expr<'_>) {
        let mut calls = Vec::new();
        visit_expr(expr, &mut |e| {
            if let Expr::Call(c) = e {
                let what = match self.call_refused(c, 0) {
                    None => return,
                    Some(what) => what,
                };
                let mut names = Vec::new();
                visit_expr(e, &mut |inner| {
                    if let Expr::Var(v) = inner
                        && (self.scope.inputs.contains_key(v.id) || self.scope.steps.contains(v.id))
                    {
                        names.push(v.id.to_string());
                    }
                });
                if matches!(&c.expr, Expr::Var(v) if v.id == "debug") {
                    names.extend(self.scope.inputs.keys().cloned());
                }
                calls.push((c.span(), what, names));
            }
        });
        for (span, what, names) in calls {
            let about = match names.first() {
                Some(n) if what == "calling `debug()`" => format!(" (it prints every input, `{n}` included)"),
                Some(n) => format!(" (on `{n}`)"),
                None => String::new(),
            };
            self.report(
                span,
                names.into_iter().next(),
                format!("{what}{about} is not allowed in request templates"),
                format!(
                    "request templates may call only {}; use filters instead",
                    ALLOWED_FUNCTIONS.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }

    /// Why a call may not appear in a request template (None: allowed). Library definitions
    /// are allowed when their own body is (`depth` bounds the inlining).
    fn call_refused(&self, c: &Call<'_>, depth: usize) -> Option<String> {
        let positional = c.args.iter().all(|a| matches!(a, CallArg::Pos(_)));
        let keywords = c.args.iter().all(|a| matches!(a, CallArg::Kwarg(..)));
        match &c.expr {
            Expr::Var(v) if v.id == "now" && c.args.is_empty() => None,
            Expr::Var(_) if new_id_prefix(c).is_some() => None,
            Expr::Var(v) if v.id == "promql_matchers" && keywords => None,
            Expr::Var(v) if v.id == "promql_matchers" => {
                Some("calling `promql_matchers()` with positional arguments (it takes label=value keywords)".into())
            }
            Expr::GetAttr(g) if let Some((lib, def)) = self.library_def(&g.expr, g.name) => {
                let Some(body) = &def.expr else {
                    return Some(format!("calling the text macro `{lib}.{}()`", g.name));
                };
                if !positional {
                    return Some(format!("calling `{lib}.{}()` with keyword arguments", g.name));
                }
                let Ok(body) = parse_expr(body) else { return Some(format!("calling `{lib}.{}()`", g.name)) };
                if depth > 16 {
                    return Some(format!("calling `{lib}.{}()` (library calls nested too deep)", g.name));
                }
                let mut inner = None;
                visit_expr(&body, &mut |e| {
                    if let Expr::Call(ic) = e
                        && inner.is_none()
                    {
                        inner = self.call_refused(ic, depth + 1);
                    }
                });
                inner.map(|why| format!("calling `{lib}.{}()`, whose definition is {why}", g.name))
            }
            Expr::Var(v) => Some(format!("calling `{}()`", v.id)),
            Expr::GetAttr(g) => Some(format!("calling the method `.{}()`", g.name)),
            _ => Some("calling a computed value".to_string()),
        }
    }

    /// The library definition `lib.name` when `lib` is a library visible here: an import of
    /// the procedure, or (inside a definition) any library, since `validate` checked which.
    fn library_def<'s>(&'s self, lib: &Expr<'_>, name: &str) -> Option<(&'s str, &'s LibraryDef)> {
        let Expr::Var(v) = lib else { return None };
        let visible = match &self.bound {
            None => self.scope.imports.contains(v.id),
            Some(bound) => !bound.contains_key(v.id),
        };
        let (lib, defs) = self.scope.libraries.get_key_value(v.id).filter(|_| visible)?;
        Some((lib.as_str(), defs.get(name)?))
    }

    /// An inlined call of a library expression: its body evaluated with the parameters bound
    /// to the arguments; every piece is placed at the call.
    fn inline(&self, def: &LibraryDef, c: &Call<'_>, span: Span) -> Node {
        let refused = || Node::Val(Piece { origin: Origin::Other, lang: Lang::Free(Why::Computed("a call")), span });
        let Some(Ok(body)) = def.expr.as_deref().map(parse_expr) else { return refused() };
        let args: Vec<Node> = c.args.iter().map(|a| self.eval(call_arg(a))).collect();
        let bound = def
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), args.get(i).cloned().unwrap_or(Node::Lit(String::new()))))
            .collect();
        let sub = Linter {
            ctx: self.ctx,
            scope: self.scope,
            guarded: self.guarded,
            found: BTreeSet::new(),
            bound: Some(bound),
        };
        sub.eval(&body).placed(span)
    }

    /// The PromQL matcher builder: its output is whole matchers with escaped values, whatever
    /// the arguments; the label names are keywords (identifiers), checked as label names.
    fn matchers(&self, c: &Call<'_>, span: Span) -> Node {
        let mut origin = Origin::Other;
        for a in &c.args {
            if let CallArg::Kwarg(name, e) = a {
                let label = name.strip_suffix("__not").or_else(|| name.strip_suffix("__prefix")).unwrap_or(name);
                if !crate::engine::template::is_label_name(label) {
                    return Node::Val(Piece {
                        origin: Origin::Other,
                        lang: Lang::Free(Why::Computed("a matcher with an invalid label name")),
                        span,
                    });
                }
                if matches!(origin, Origin::Other) {
                    origin = self.eval(e).origin();
                }
            }
        }
        Node::Alt(vec![
            Node::Lit(String::new()),
            Node::Val(Piece { origin, lang: Lang::Escaped("promql_matchers"), span }),
        ])
    }

    fn header_step_results(&mut self, stmt: &Stmt<'_>) {
        let mut hits = Vec::new();
        visit_stmt(stmt, &mut |e| {
            if let Expr::Var(v) = e
                && self.scope.steps.contains(v.id)
                && !self.scope.inputs.contains_key(v.id)
            {
                hits.push((v.span(), v.id.to_string()));
            }
        });
        for (span, name) in hits {
            self.report(
                span,
                Some(name.clone()),
                format!("the result of step `{name}` may not appear in a header"),
                "header values may use only declared inputs".into(),
            );
        }
    }

    // --- values -----------------------------------------------------------------------------

    fn eval(&self, expr: &Expr<'_>) -> Node {
        let val = |origin, lang, span| Node::Val(Piece { origin, lang, span });
        match expr {
            Expr::Const(c) => match c.value.kind() {
                minijinja::value::ValueKind::Number | minijinja::value::ValueKind::Bool => {
                    val(Origin::Other, Lang::Scalar, c.span())
                }
                minijinja::value::ValueKind::String
                | minijinja::value::ValueKind::None
                | minijinja::value::ValueKind::Undefined => Node::Lit(c.value.to_string()),
                _ => val(Origin::Other, Lang::Free(Why::Computed("a list or map")), c.span()),
            },
            Expr::Var(v) if self.bound.is_some() => match self.bound.as_ref().and_then(|b| b.get(v.id)) {
                Some(node) => node.clone(),
                None => val(Origin::Other, Lang::Free(Why::Computed("an undeclared name")), v.span()),
            },
            Expr::Var(v) => {
                if let Some(lang) = self.scope.inputs.get(v.id) {
                    val(Origin::Input(v.id.to_string()), lang.clone(), v.span())
                } else if self.scope.steps.contains(v.id) {
                    val(Origin::Step(v.id.to_string()), Lang::Free(Why::StepResult), v.span())
                } else {
                    val(Origin::Other, Lang::Free(Why::Computed("an undeclared name")), v.span())
                }
            }
            Expr::Filter(f) => {
                let inner = f.expr.as_ref().map(|e| self.eval(e));
                if let Some(escaper) = escaper_context(f.name) {
                    let origin = inner.as_ref().map(Node::origin).unwrap_or(Origin::Other);
                    return val(origin, Lang::Escaped(escaper), f.span());
                }
                if NUMERIC_FILTERS.contains(&f.name) {
                    return val(Origin::Other, Lang::Scalar, f.span());
                }
                let inner = inner.unwrap_or(Node::Lit(String::new()));
                if matches!(f.name, "default" | "d") {
                    let mut alts = vec![inner.retaint_escaped(f.name)];
                    if let Some(CallArg::Pos(e)) = f.args.first() {
                        alts.push(self.eval(e));
                    }
                    return Node::Alt(alts);
                }
                let args: Vec<Node> = f.args.iter().map(|a| self.eval(call_arg(a))).collect();
                let mut all = vec![inner];
                all.extend(args);
                Node::Seq(all).changed(f.name, f.span())
            }
            Expr::Test(t) => val(Origin::Other, Lang::Scalar, t.span()),
            Expr::Compare(c) => val(Origin::Other, Lang::Scalar, c.span()),
            Expr::UnaryOp(u) => match u.op {
                UnaryOpKind::Not | UnaryOpKind::Neg => val(Origin::Other, Lang::Scalar, u.span()),
            },
            Expr::BinOp(b) => {
                let (l, r) = (self.eval(&b.left), self.eval(&b.right));
                match b.op {
                    BinOpKind::Concat | BinOpKind::Add if !(l.is_scalar() && r.is_scalar()) => Node::Seq(vec![l, r]),
                    BinOpKind::ScAnd | BinOpKind::ScOr => Node::Alt(vec![l, r]),
                    BinOpKind::Mul if !(l.is_scalar() && r.is_scalar()) => Node::Seq(vec![l, r]).changed("*", b.span()),
                    _ => val(Origin::Other, Lang::Scalar, b.span()),
                }
            }
            Expr::IfExpr(i) => Node::Alt(vec![
                self.eval(&i.true_expr),
                i.false_expr.as_ref().map(|e| self.eval(e)).unwrap_or(Node::Lit(String::new())),
            ]),
            Expr::GetAttr(g) => self.eval(&g.expr).changed(&format!("`.{}`", g.name), g.span()),
            Expr::GetItem(g) => self.eval(&g.expr).changed("`[...]`", g.span()),
            Expr::Slice(s) => self.eval(&s.expr).changed("slicing", s.span()),
            Expr::Call(c) => match &c.expr {
                Expr::Var(v) if v.id == "now" && c.args.is_empty() => val(Origin::Other, NOW.clone(), c.span()),
                Expr::Var(v) if v.id == "promql_matchers" && self.call_refused(c, 0).is_none() => {
                    self.matchers(c, c.span())
                }
                Expr::GetAttr(g) if self.call_refused(c, 0).is_none() => match self.library_def(&g.expr, g.name) {
                    Some((_, def)) => self.inline(def, c, c.span()),
                    None => val(self.origin_of(expr), Lang::Free(Why::Computed("a call")), c.span()),
                },
                _ => match new_id_prefix(c) {
                    Some(prefix) => val(
                        Origin::Other,
                        Lang::pattern(&format!("^{}[0-9a-f]{{8}}$", regex::escape(prefix))),
                        c.span(),
                    ),
                    None => val(self.origin_of(expr), Lang::Free(Why::Computed("a call")), c.span()),
                },
            },
            Expr::List(l) => val(Origin::Other, Lang::Free(Why::Computed("a list")), l.span()),
            Expr::Tuple(t) => val(Origin::Other, Lang::Free(Why::Computed("a tuple")), t.span()),
            Expr::Map(m) => val(Origin::Other, Lang::Free(Why::Computed("a map")), m.span()),
        }
    }

    /// The first input or step an expression mentions.
    fn origin_of(&self, expr: &Expr<'_>) -> Origin {
        let mut found = None;
        visit_expr(expr, &mut |e| {
            if let Expr::Var(v) = e
                && found.is_none()
            {
                if self.scope.inputs.contains_key(v.id) {
                    found = Some(Origin::Input(v.id.to_string()));
                } else if self.scope.steps.contains(v.id) {
                    found = Some(Origin::Step(v.id.to_string()));
                }
            }
        });
        found.unwrap_or(Origin::Other)
    }

    // --- emission ---------------------------------------------------------------------------

    fn run(&mut self, stmts: &[Stmt<'_>], mut states: BTreeSet<Lex>) -> BTreeSet<Lex> {
        for stmt in stmts {
            states = match stmt {
                Stmt::Template(t) => self.run(&t.children, states),
                Stmt::EmitRaw(r) => feed(states, r.raw),
                Stmt::EmitExpr(e) => {
                    let node = self.eval(&e.expr);
                    self.feed_node(states, &node)
                }
                Stmt::IfCond(c) => {
                    let mut out = self.run(&c.true_body, states.clone());
                    out.extend(self.run(&c.false_body, states));
                    out
                }
                // Refused by `language`; the state is unknown after them.
                _ => states,
            };
        }
        states
    }

    fn feed_node(&mut self, states: BTreeSet<Lex>, node: &Node) -> BTreeSet<Lex> {
        match node {
            Node::Lit(s) => feed(states, s),
            Node::Seq(xs) => xs.iter().fold(states, |st, x| self.feed_node(st, x)),
            Node::Alt(xs) => xs.iter().flat_map(|x| self.feed_node(states.clone(), x)).collect(),
            Node::Val(p) => {
                let mut out = BTreeSet::new();
                for s in states {
                    out.extend(self.emit(s, p));
                }
                out
            }
        }
    }

    /// Check one value at one position; the positions after it.
    fn emit(&mut self, s: Lex, p: &Piece) -> Vec<Lex> {
        let slot = s.slot();
        let ctx = self.ctx;
        let (variable, who) = self.describe(&p.origin);
        let escape_hint = || format!("pipe it through {}", ctx.hint());
        let refuse = |me: &mut Self, message: String, hint: String| {
            me.report(p.span, variable.clone(), message, hint);
        };
        match &p.lang {
            Lang::Scalar => vec![s.after_value()],
            Lang::OneOf(values) => {
                let forbidden = slot.forbidden();
                let mut next = Vec::new();
                for v in values {
                    let bad = v.chars().find(|c| !slot.allows_char(*c));
                    if bad.is_some() || forbidden.contains(v) {
                        refuse(
                            self,
                            format!(
                                "{who} has the enum value {v:?}, which is unsafe in {} ({}); it is spliced into {} unescaped",
                                slot.describe(),
                                bad.map(|c| format!("character {c:?}")).unwrap_or_else(|| "a reserved word".into()),
                                ctx.name()
                            ),
                            format!("{}, or change the enum", escape_hint()),
                        );
                        next.push(s);
                    } else {
                        next.push(v.chars().fold(s, Lex::step));
                    }
                }
                next
            }
            Lang::Pattern(pat) => {
                let bad = unsafe_char(&pat.hir, slot);
                let reserved = slot.forbidden().iter().find(|f| pat.regex.is_match(f));
                if bad.is_some() || reserved.is_some() {
                    let why = match (bad, reserved) {
                        (Some(c), _) => format!("it allows {c:?}"),
                        (None, Some(r)) => format!("it matches {r:?}"),
                        _ => unreachable!(),
                    };
                    refuse(
                        self,
                        format!(
                            "{who} is constrained by the pattern `{}`, which is not safe in {} ({why}); it is spliced into {} unescaped",
                            pat.source,
                            slot.describe(),
                            ctx.name()
                        ),
                        format!("{}, or narrow the pattern", escape_hint()),
                    );
                }
                vec![s, s.after_value()]
            }
            Lang::Whole(w) => {
                let ok = match w {
                    Whole::LabelSelector => ctx == TextContext::LabelSelector && slot == Slot::SelKey,
                    Whole::FieldSelector => ctx == TextContext::FieldSelector && slot == Slot::SelKey,
                    Whole::Promql => ctx == TextContext::Promql && slot == Slot::PromRaw && self.guarded,
                };
                if !ok {
                    let (message, hint) = match w {
                        Whole::Promql if ctx == TextContext::Promql && !self.guarded => (
                            format!("{who} is raw PromQL (format: promql) in a query without guardrails"),
                            "mark the step `guarded: true`, or constrain the input".to_string(),
                        ),
                        _ => (
                            format!(
                                "{who} has format `{}`, which is safe only as a whole {}, not in {}",
                                w.format(),
                                match w {
                                    Whole::LabelSelector => "label selector",
                                    Whole::FieldSelector => "field selector",
                                    Whole::Promql => "guarded PromQL query",
                                },
                                slot.describe(),
                            ),
                            format!("{}, or use a format meant for this position", escape_hint()),
                        ),
                    };
                    refuse(self, message, hint);
                    return vec![s];
                }
                match ctx.start() {
                    Some(Lex::PromRaw { .. }) => vec![Lex::PromRaw { op: Op::Other, pend: Pend::None }],
                    _ => vec![Lex::SelKey { bang: false }, Lex::SelValue, Lex::SelSet],
                }
            }
            // A refused call: the language check has reported it.
            Lang::Free(Why::Computed("a call")) => vec![s, s.after_value()],
            Lang::Free(why) => {
                let message = match why {
                    Why::FreeText => format!("free-text {who} is spliced into {} unescaped", ctx.name()),
                    Why::Unanchored => format!(
                        "{who} has a pattern that is not anchored (`^...$`), so it constrains nothing; it is spliced into {} unescaped",
                        ctx.name()
                    ),
                    Why::BadPattern => format!(
                        "{who} has a pattern the lint cannot read, so it counts as free text; it is spliced into {} unescaped",
                        ctx.name()
                    ),
                    Why::UnknownFormat(f) => format!(
                        "{who} has format `{f}`, which constrains nothing here; it is spliced into {} unescaped",
                        ctx.name()
                    ),
                    Why::Composite => format!("{who} is a list or object; it is spliced into {} as text", ctx.name()),
                    Why::StepResult => {
                        format!("{who} is untrusted text; it is spliced into {} unescaped", ctx.name())
                    }
                    Why::Changed(by) => format!(
                        "{who} is changed by {} after its constraint was checked; it is spliced into {} unescaped",
                        quoted(by),
                        ctx.name()
                    ),
                    Why::Computed(what) => format!(
                        "{} ({what}) is spliced into {} unescaped",
                        if variable.is_some() { who.clone() } else { "a value".into() },
                        ctx.name()
                    ),
                };
                let hint = match why {
                    Why::FreeText | Why::Unanchored | Why::UnknownFormat(_) | Why::BadPattern => format!(
                        "{}, or constrain the input with enum, an anchored pattern or a format safe here",
                        escape_hint()
                    ),
                    _ => escape_hint(),
                };
                refuse(self, message, hint);
                vec![s, s.after_value()]
            }
            Lang::Retainted { escaper, by } => {
                refuse(
                    self,
                    format!(
                        "{who} is escaped with `{escaper}` but then changed by {}: an escaping filter must be the last operation",
                        quoted(by)
                    ),
                    format!("apply `{escaper}` last"),
                );
                vec![s, s.after_value()]
            }
            Lang::Escaped(escaper) => {
                if !ctx.escapers().contains(escaper) {
                    refuse(
                        self,
                        format!("{who} is escaped with `{escaper}`, which does not escape for {}", ctx.name()),
                        escape_hint(),
                    );
                    return vec![s, s.after_value()];
                }
                let problem = match (*escaper, s) {
                    ("promql_duration" | "path_segment", _) => None,
                    ("promql_matchers", Lex::PromRaw { .. }) => return vec![s, s.after_value()],
                    ("promql_matchers", _) => Some((
                        format!(
                            "{who} goes through `promql_matchers`, which emits whole matchers (`,label=\"value\"`), but sits inside {}",
                            slot.describe()
                        ),
                        "call it inside `{...}` right after a fixed matcher, outside quotes".to_string(),
                    )),
                    ("promql_string" | "promql_regex" | "promql_prefix", Lex::PromQuoted { quote, .. }) => Some((
                        format!(
                            "{who} is escaped with `{escaper}`, which emits its own quotes, but sits inside the template's {quote}-quoted string"
                        ),
                        format!("remove the quotes around it: `label={{{{ x | {escaper} }}}}`"),
                    )),
                    ("promql_string", Lex::PromRaw { op: Op::Regex, .. }) => Some((
                        format!("{who} is escaped with `promql_string` after a regex matcher (`=~` or `!~`)"),
                        "use `promql_regex` (literal match) or `promql_prefix` after `=~`".to_string(),
                    )),
                    ("promql_regex" | "promql_prefix", Lex::PromRaw { op: Op::Eq, .. }) => Some((
                        format!("{who} is escaped with `{escaper}` after an equality matcher (`=` or `!=`)"),
                        "use `promql_string` after `=`, or match with `=~`".to_string(),
                    )),
                    ("selector_value", Lex::SelKey { .. }) => Some((
                        format!("{who} is escaped with `selector_value` but is not in a value position"),
                        "`selector_value` belongs after `=`, `==`, `!=` or inside `in (...)`".to_string(),
                    )),
                    _ => None,
                };
                if let Some((message, hint)) = problem {
                    refuse(self, message, hint);
                    return vec![s];
                }
                vec![s.after_value()]
            }
        }
    }
}

fn quoted(by: &str) -> String {
    if by.starts_with('`') || by == "slicing" { by.to_string() } else { format!("`{by}`") }
}

fn call_arg<'a, 'b>(a: &'b CallArg<'a>) -> &'b Expr<'a> {
    match a {
        CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => e,
    }
}

fn stmt_span(stmt: &Stmt<'_>) -> Span {
    match stmt {
        Stmt::Template(s) => s.span(),
        Stmt::EmitExpr(s) => s.span(),
        Stmt::EmitRaw(s) => s.span(),
        Stmt::ForLoop(s) => s.span(),
        Stmt::IfCond(s) => s.span(),
        Stmt::WithBlock(s) => s.span(),
        Stmt::Set(s) => s.span(),
        Stmt::SetBlock(s) => s.span(),
        Stmt::AutoEscape(s) => s.span(),
        Stmt::FilterBlock(s) => s.span(),
        Stmt::Block(s) => s.span(),
        Stmt::Import(s) => s.span(),
        Stmt::FromImport(s) => s.span(),
        Stmt::Extends(s) => s.span(),
        Stmt::Include(s) => s.span(),
        Stmt::Macro(s) => s.span(),
        Stmt::CallBlock(s) => s.span(),
        Stmt::Do(s) => s.span(),
        #[allow(unreachable_patterns)]
        _ => Span::default(),
    }
}

/// Every expression in a statement, in any position.
fn visit_stmt<'a>(stmt: &Stmt<'a>, f: &mut dyn FnMut(&Expr<'a>)) {
    let body = |stmts: &[Stmt<'a>], f: &mut dyn FnMut(&Expr<'a>)| {
        for s in stmts {
            visit_stmt(s, f);
        }
    };
    match stmt {
        Stmt::Template(t) => body(&t.children, f),
        Stmt::EmitExpr(e) => visit_expr(&e.expr, f),
        Stmt::EmitRaw(_) => {}
        Stmt::ForLoop(l) => {
            visit_expr(&l.target, f);
            visit_expr(&l.iter, f);
            if let Some(e) = &l.filter_expr {
                visit_expr(e, f);
            }
            body(&l.body, f);
            body(&l.else_body, f);
        }
        Stmt::IfCond(c) => {
            visit_expr(&c.expr, f);
            body(&c.true_body, f);
            body(&c.false_body, f);
        }
        Stmt::WithBlock(w) => {
            for (t, v) in &w.assignments {
                visit_expr(t, f);
                visit_expr(v, f);
            }
            body(&w.body, f);
        }
        Stmt::Set(s) => {
            visit_expr(&s.target, f);
            visit_expr(&s.expr, f);
        }
        Stmt::SetBlock(s) => {
            visit_expr(&s.target, f);
            if let Some(e) = &s.filter {
                visit_expr(e, f);
            }
            body(&s.body, f);
        }
        Stmt::AutoEscape(a) => {
            visit_expr(&a.enabled, f);
            body(&a.body, f);
        }
        Stmt::FilterBlock(b) => {
            visit_expr(&b.filter, f);
            body(&b.body, f);
        }
        Stmt::Block(b) => body(&b.body, f),
        Stmt::Import(i) => {
            visit_expr(&i.expr, f);
            visit_expr(&i.name, f);
        }
        Stmt::FromImport(i) => visit_expr(&i.expr, f),
        Stmt::Extends(e) => visit_expr(&e.name, f),
        Stmt::Include(i) => visit_expr(&i.name, f),
        Stmt::Macro(m) => {
            m.args.iter().chain(&m.defaults).for_each(|e| visit_expr(e, f));
            body(&m.body, f);
        }
        Stmt::CallBlock(c) => {
            visit_expr(&c.call.expr, f);
            c.call.args.iter().for_each(|a| visit_expr(call_arg(a), f));
            c.macro_decl.args.iter().chain(&c.macro_decl.defaults).for_each(|e| visit_expr(e, f));
            body(&c.macro_decl.body, f);
        }
        Stmt::Do(d) => {
            visit_expr(&d.call.expr, f);
            d.call.args.iter().for_each(|a| visit_expr(call_arg(a), f));
        }
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// Every sub-expression, parents first.
fn visit_expr<'a>(expr: &Expr<'a>, f: &mut dyn FnMut(&Expr<'a>)) {
    fn go<'a>(expr: &Expr<'a>, f: &mut dyn FnMut(&Expr<'a>)) {
        f(expr);
        match expr {
            Expr::Var(_) | Expr::Const(_) => {}
            Expr::Slice(s) => {
                go(&s.expr, f);
                for e in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    go(e, f);
                }
            }
            Expr::UnaryOp(u) => go(&u.expr, f),
            Expr::BinOp(b) => {
                go(&b.left, f);
                go(&b.right, f);
            }
            Expr::Compare(c) => {
                go(&c.expr, f);
                c.ops.iter().for_each(|o| go(&o.expr, f));
            }
            Expr::IfExpr(i) => {
                go(&i.test_expr, f);
                go(&i.true_expr, f);
                if let Some(e) = &i.false_expr {
                    go(e, f);
                }
            }
            Expr::Filter(x) => {
                if let Some(e) = &x.expr {
                    go(e, f);
                }
                x.args.iter().for_each(|a| go(call_arg(a), f));
            }
            Expr::Test(t) => {
                go(&t.expr, f);
                t.args.iter().for_each(|a| go(call_arg(a), f));
            }
            Expr::GetAttr(g) => go(&g.expr, f),
            Expr::GetItem(g) => {
                go(&g.expr, f);
                go(&g.subscript_expr, f);
            }
            Expr::Call(c) => {
                go(&c.expr, f);
                c.args.iter().for_each(|a| go(call_arg(a), f));
            }
            Expr::List(l) => l.items.iter().for_each(|e| go(e, f)),
            Expr::Tuple(t) => t.items.iter().for_each(|e| go(e, f)),
            Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| go(e, f)),
        }
    }
    go(expr, f)
}

#[cfg(test)]
mod tests {
    use super::TextContext::*;
    use super::*;

    /// An input for the tests: name, kind, enum, pattern, format.
    struct In(&'static str, InputKind, Option<Vec<serde_json::Value>>, Option<&'static str>, Option<&'static str>);

    fn free(n: &'static str) -> In {
        In(n, InputKind::String, None, None, None)
    }
    fn pattern(n: &'static str, p: &'static str) -> In {
        In(n, InputKind::String, None, Some(p), None)
    }
    fn format(n: &'static str, f: &'static str) -> In {
        In(n, InputKind::String, None, None, Some(f))
    }
    fn one_of(n: &'static str, vs: &[&str]) -> In {
        In(n, InputKind::String, Some(vs.iter().map(|v| serde_json::json!(v)).collect()), None, None)
    }
    fn number(n: &'static str) -> In {
        In(n, InputKind::Scalar, None, None, None)
    }

    /// Lint with a step named `prev` in scope.
    fn check(src: &str, ctx: TextContext, inputs: &[In], guarded: bool) -> Vec<Violation> {
        let scope = Scope::new(
            inputs
                .iter()
                .map(|i| (i.0, InputFacts { kind: i.1, enum_values: i.2.as_deref(), pattern: i.3, format: i.4 })),
            ["prev"],
        );
        lint(src, ctx, &scope, guarded).unwrap()
    }

    fn refused(src: &str, ctx: TextContext, inputs: &[In]) -> String {
        let v = check(src, ctx, inputs, false);
        assert!(!v.is_empty(), "{src} should be refused");
        v.iter().map(|v| v.message.clone()).collect::<Vec<_>>().join("\n")
    }

    fn accepted(src: &str, ctx: TextContext, inputs: &[In]) {
        let v = check(src, ctx, inputs, false);
        assert!(v.is_empty(), "{src} should be accepted: {v:#?}");
    }

    /// Lint with a library `lib` imported: `workload(ns, pod, dep)` builds matchers, `raw(x)`
    /// returns its argument, `quote(x)` escapes it, `text(x)` is a text macro.
    fn check_with_library(src: &str, inputs: &[In]) -> Vec<Violation> {
        let def = |params: &[&str], expr: Option<&str>| LibraryDef {
            params: params.iter().map(|p| p.to_string()).collect(),
            expr: expr.map(str::to_string),
        };
        let lib: HashMap<String, LibraryDef> = [
            (
                "workload",
                def(
                    &["ns", "pod", "dep"],
                    Some("promql_matchers(namespace=ns, pod=pod, pod__prefix=(dep ~ '-') if dep else '')"),
                ),
            ),
            ("raw", def(&["x"], Some("x"))),
            ("quote", def(&["x"], Some("x | promql_string"))),
            ("indirect", def(&["x"], Some("lib.raw(x)"))),
            ("text", def(&["x"], None)),
            ("calls", def(&["x"], Some("x.upper()"))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let scope = Scope::new(
            inputs
                .iter()
                .map(|i| (i.0, InputFacts { kind: i.1, enum_values: i.2.as_deref(), pattern: i.3, format: i.4 })),
            ["prev"],
        )
        .with_libraries([("lib".to_string(), lib)].into_iter().collect(), ["lib".to_string()]);
        lint(src, Promql, &scope, false).unwrap()
    }

    #[test]
    fn the_matcher_builder_is_safe_after_a_fixed_matcher_whatever_the_values() {
        accepted(r#"up{job="x"{{ promql_matchers(namespace=ns, pod__prefix=prev) }}}"#, Promql, &[free("ns")]);
        let m = refused(r#"up{job="{{ promql_matchers(namespace=ns) }}"}"#, Promql, &[free("ns")]);
        assert!(m.contains("emits whole matchers"), "{m}");
        let m = refused(r#"up{job="x"{{ promql_matchers(ns) }}}"#, Promql, &[free("ns")]);
        assert!(m.contains("positional arguments"), "{m}");
    }

    #[test]
    fn library_definitions_are_inlined_into_the_proof() {
        let ok = |src: &str| {
            let v = check_with_library(src, &[free("ns"), free("d")]);
            assert!(v.is_empty(), "{src} should be accepted: {v:#?}");
        };
        let bad = |src: &str| {
            let v = check_with_library(src, &[free("ns"), free("d")]);
            assert!(!v.is_empty(), "{src} should be refused");
            v.iter().map(|v| v.message.clone()).collect::<Vec<_>>().join("\n")
        };
        ok(r#"rate(x{container!=""{{ lib.workload(ns, "", d) }}}[5m])"#);
        ok(r#"up{job={{ lib.quote(ns) }}}"#);
        // What a definition returns unescaped is as unsafe as the argument itself.
        let m = bad(r#"up{job="{{ lib.raw(ns) }}"}"#);
        assert!(m.contains("input `ns`") && m.contains("unescaped"), "{m}");
        bad(r#"up{job="{{ lib.indirect(ns) }}"}"#);
        // An escaped result lands in the wrong spot all the same.
        bad(r#"up{job="{{ lib.quote(ns) }}"}"#);
        let m = bad(r#"up{job="x"{{ lib.text(ns) }}}"#);
        assert!(m.contains("text macro"), "{m}");
        let m = bad(r#"up{job="x"{{ lib.calls(ns) }}}"#);
        assert!(m.contains("whose definition is calling the method `.upper()`"), "{m}");
        // A library the procedure does not import is not callable.
        bad(r#"up{job="x"{{ other.workload(ns, "", "") }}}"#);
    }

    #[test]
    fn raw_free_text_in_promql_is_refused_and_names_the_input() {
        let v = check(r#"up{namespace="{{ ns }}"}"#, Promql, &[free("ns")], false);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].variable.as_deref(), Some("ns"));
        assert!(v[0].message.contains("(template line 1, column 18)"), "{}", v[0].message);
    }

    #[test]
    fn the_shipped_concatenation_style_is_accepted() {
        accepted(
            r#"rate(x{container!=""{{ ",namespace=" ~ (ns | promql_string) if ns else "" }}{{ ",pod=~" ~ ((d ~ "-") | promql_prefix) if d else "" }}}[{{ w | promql_duration }}])"#,
            Promql,
            &[free("ns"), free("d"), free("w")],
        );
    }

    #[test]
    fn a_filter_after_an_escaper_taints_again() {
        let m = refused(r#"up{job={{ x | promql_string | replace('\\', '') }}}"#, Promql, &[free("x")]);
        assert!(m.contains("escaped with `promql_string` but then changed by `replace`"), "{m}");
        refused("/api/{{ (x | path_segment) | replace('%2F', '/') }}", UrlPath, &[free("x")]);
        refused("app={{ x | selector_value | replace('-', ',') }}", LabelSelector, &[free("x")]);
    }

    #[test]
    fn slicing_or_indexing_an_escaped_value_taints_again() {
        refused(r#"up{job="{{ (x | promql_string)[1:-1] }}"}"#, Promql, &[free("x")]);
        refused("up{job={{ (x | promql_string)[0] }}}", Promql, &[free("x")]);
    }

    #[test]
    fn method_calls_are_refused_even_on_escaped_values() {
        let m = refused("app={{ (x | selector_value).upper() }}", LabelSelector, &[free("x")]);
        assert!(m.contains("calling the method `.upper()`"), "{m}");
    }

    #[test]
    fn an_escaped_string_inside_the_authors_quotes_is_refused() {
        let m = refused(r#"up{job="{{ x | promql_string }}"}"#, Promql, &[free("x")]);
        assert!(m.contains("emits its own quotes"), "{m}");
        refused(r#"up{job={{ '"' ~ (x | promql_string) ~ '"' }}}"#, Promql, &[free("x")]);
        refused("up{job='{{ x | promql_regex }}'}", Promql, &[free("x")]);
    }

    #[test]
    fn regex_matchers_need_the_regex_escapers_and_equality_the_string_escaper() {
        let m = refused("up{job=~{{ x | promql_string }}}", Promql, &[free("x")]);
        assert!(m.contains("after a regex matcher"), "{m}");
        refused("up{job!={{ x | promql_prefix }}}", Promql, &[free("x")]);
        accepted("up{job!~{{ x | promql_regex }}, a={{ x | promql_string }}}", Promql, &[free("x")]);
    }

    #[test]
    fn statements_other_than_if_are_refused() {
        for src in [
            "{% set y = x %}{{ y }}",
            "{% for c in x %}{{ c }}{% endfor %}",
            "{% macro m(v=x) %}{{ v }}{% endmacro %}{{ m() }}",
            "{% macro m() %}{{ caller() }}{% endmacro %}{% call m() %}{{ x }}{% endcall %}",
            "{% with y = x %}{{ y }}{% endwith %}",
            "{% filter upper %}{{ x | promql_string }}{% endfilter %}",
            "{% autoescape false %}{{ x }}{% endautoescape %}",
            "{% include 'other' %}",
            "{% import 'other' as o %}{{ o.q(x) }}",
            "{% from 'other' import q %}{{ q(x) }}",
            "{% extends 'other' %}",
            "{% block b %}{{ x }}{% endblock %}",
            "{% do x.append(1) %}",
        ] {
            let v = check(src, Promql, &[free("x")], false);
            assert!(v.iter().any(|v| v.message.contains("request templates may not use")), "{src}: {v:#?}");
        }
        let m = refused("{% set y = x %}{{ y }}", Promql, &[free("x")]);
        assert!(m.contains("it would hide `x`"), "{m}");
    }

    #[test]
    fn only_now_may_be_called() {
        for f in ["namespace()", "debug()", "range(3)", "dict(a=x)", "lipsum()", "cycler(x)", "joiner()"] {
            let m = refused(&format!("{{{{ {f} }}}}"), Data, &[free("x")]);
            assert!(m.contains("is not allowed in request templates"), "{f}: {m}");
        }
        accepted("-{{ now() }}", Data, &[]);
    }

    #[test]
    fn new_id_may_be_called_with_one_plain_literal_prefix() {
        accepted("{{ new_id('inc-') }}", Data, &[]);
        // Its value is the prefix and hex digits: harmless even as a URL segment.
        accepted("/incidents/{{ new_id('inc-') }}", UrlPath, &[]);
        for f in ["new_id(x)", "new_id('a/b')", "new_id()", "new_id('a', 'b')", "new_id(prefix='a')"] {
            let m = refused(&format!("{{{{ {f} }}}}"), Data, &[free("x")]);
            assert!(m.contains("is not allowed in request templates"), "{f}: {m}");
        }
    }

    #[test]
    fn escapers_are_refused_outside_their_context() {
        let m = refused(r#"up{job={{ x | selector_value }}}"#, Promql, &[free("x")]);
        assert!(m.contains("does not escape for PromQL"), "{m}");
        refused("/api/{{ x | promql_string }}", UrlPath, &[free("x")]);
    }

    #[test]
    fn an_unanchored_pattern_constrains_nothing() {
        let m = refused(r#"up{job="{{ x }}"}"#, Promql, &[pattern("x", "[a-z]+")]);
        assert!(m.contains("not anchored"), "{m}");
        accepted(r#"up{job="{{ x }}"}"#, Promql, &[pattern("x", "^[a-z]+$")]);
    }

    #[test]
    fn an_anchored_pattern_is_checked_against_the_position_it_lands_in() {
        let m = refused(r#"up{job="{{ x }}"}"#, Promql, &[pattern("x", r#"^[a-z"]+$"#)]);
        assert!(m.contains("it allows '\"'"), "{m}");
        refused("up{job=~\"{{ x }}\"}", Promql, &[pattern("x", "^[a-z.*]+$")]);
        refused("sum by ({{ x }}) (up)", Promql, &[pattern("x", "^[a-z ]+$")]);
        accepted("sum by ({{ x }}) (up)", Promql, &[pattern("x", "^[0-9]+$")]);
    }

    #[test]
    fn promql_keywords_are_refused_outside_quotes() {
        let m = refused("up {{ x }} vector(1)", Promql, &[one_of("x", &["and", "OR"])]);
        assert!(m.contains("reserved word"), "{m}");
        let m = refused("up {{ x }} vector(1)", Promql, &[pattern("x", "^[a-z]{2,3}$")]);
        assert!(m.contains("it matches"), "{m}");
    }

    #[test]
    fn enum_values_are_checked_one_by_one() {
        accepted("[{{ w }}:5m]", Promql, &[one_of("w", &["1d", "7d"])]);
        let m = refused("[{{ w }}:5m]", Promql, &[one_of("w", &["1d", "1d] or vector(1) #"])]);
        assert!(m.contains("enum value"), "{m}");
        accepted("status.phase={{ p }}", FieldSelector, &[one_of("p", &["", "Running"])]);
    }

    #[test]
    fn formats_are_safe_only_where_they_belong() {
        refused("up{ {{ s }} }", Promql, &[format("s", "label-selector")]);
        refused("/api/{{ s }}", UrlPath, &[format("s", "field-selector")]);
        refused("{{ s }}", LabelSelector, &[format("s", "field-selector")]);
        refused("app={{ s }}", LabelSelector, &[format("s", "label-selector")]);
        accepted("{{ s }}", LabelSelector, &[format("s", "label-selector")]);
        accepted(r#"up{namespace="{{ n }}"}"#, Promql, &[format("n", "k8s-namespace")]);
        refused("up{namespace={{ n }}}", Promql, &[format("n", "k8s-namespace")]);
        accepted("/api/{{ n }}/x", UrlPath, &[format("n", "k8s-name")]);
        accepted("rate(x[{{ w }}])", Promql, &[format("w", "promql-duration")]);
    }

    #[test]
    fn a_pattern_that_matches_dot_dot_is_refused_in_a_url_path() {
        let m = refused("/api/{{ x }}", UrlPath, &[pattern("x", "^[a-z.]+$")]);
        assert!(m.contains("it matches \".\""), "{m}");
    }

    #[test]
    fn step_results_are_untrusted_text() {
        let m = refused(r#"up{pod={{ prev.result[0].metric.pod }}}"#, Promql, &[]);
        assert!(m.contains("the result of step `prev`"), "{m}");
        accepted(r#"up{pod={{ prev.result[0].metric.pod | promql_string }}}"#, Promql, &[]);
        accepted("{{ prev.items[0].metadata.name }}", K8sName, &[]);
    }

    #[test]
    fn step_results_may_not_appear_in_headers() {
        let m = refused("Bearer {{ prev.token }}", Header, &[]);
        assert!(m.contains("may not appear in a header"), "{m}");
        accepted("{{ x }}", Header, &[free("x")]);
    }

    #[test]
    fn raw_promql_inputs_need_a_guarded_step() {
        let m = refused("{{ q }}", Promql, &[format("q", "promql")]);
        assert!(m.contains("without guardrails"), "{m}");
        assert!(check("{{ q }}", Promql, &[format("q", "promql")], true).is_empty());
    }

    #[test]
    fn numbers_comparisons_and_numeric_filters_are_clean() {
        accepted("topk({{ n }}, up) > {{ x | length }} + {{ (x == 'a') }}", Promql, &[number("n"), free("x")]);
        accepted("up > {{ x | int }}", Promql, &[free("x")]);
    }

    #[test]
    fn selector_value_outside_a_value_position_is_refused() {
        let m = refused("{{ k | selector_value }}=x", LabelSelector, &[free("k")]);
        assert!(m.contains("not in a value position"), "{m}");
        accepted("tier in (a, {{ k | selector_value }}),app!={{ k | selector_value }}", LabelSelector, &[free("k")]);
    }

    #[test]
    fn if_blocks_and_branches_are_followed_on_every_path() {
        refused(r#"up{job={% if x %}"{% endif %}{{ x | promql_string }}}"#, Promql, &[free("x")]);
        refused(r#"up{job={{ x | promql_string if x else y }}}"#, Promql, &[free("x"), free("y")]);
        refused("up{job={{ x | promql_string or y }}}", Promql, &[free("x"), free("y")]);
    }

    #[test]
    fn a_raw_value_in_a_promql_comment_cannot_contain_a_newline() {
        refused("up # {{ x }}", Promql, &[pattern("x", "^[a-z\\n]*$")]);
        accepted("up # {{ x | promql_string }}", Promql, &[free("x")]);
    }

    #[test]
    fn data_and_name_fields_take_any_value_but_keep_the_language_rules() {
        accepted("{{ x }}", Data, &[free("x")]);
        accepted("{{ x }}", K8sName, &[free("x")]);
        refused("{% for i in x %}{{ i }}{% endfor %}", Data, &[free("x")]);
    }
}
