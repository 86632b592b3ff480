//! Projection: which fields of each listed object a procedure reads, found by reading its
//! expressions and templates, so list answers are parsed keeping only those fields (a pod
//! is ~3 KB of JSON; a health check reads a few hundred bytes of it).
//!
//! The analysis follows values from list steps through attribute lookups, the filters that
//! pass elements through (`selectattr`, `list`, `first`, `map(attribute=...)`, ...) and the
//! ones whose reads are known (`pod_status`, `node_status`, `condition`, `pick`,
//! `count_by`...). Anything it cannot follow (an unknown filter, a value emitted whole,
//! an include or import) keeps the whole subtree, or the whole object: a projection may keep
//! too much, never too little. Only the elements of a list step's `items` are projected;
//! the list itself (its length, `continue`, `remainingItemCount`) is always whole.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt, UnaryOpKind};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The fields kept of a JSON value: everything, or some keys of an object (each with its
/// own projection). Arrays are transparent: a projection applies to each element, and
/// scalars are kept as they are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Projection {
    /// The whole value.
    All,
    /// Only these keys of an object (an empty map keeps an empty object).
    Fields(BTreeMap<String, Projection>),
}

impl Default for Projection {
    fn default() -> Self {
        Projection::Fields(BTreeMap::new())
    }
}

impl Projection {
    /// Keep everything below `path` (dotted segments below an element).
    pub fn keep(&mut self, path: &[String]) {
        let Projection::Fields(fields) = self else { return };
        match path.split_first() {
            None => *self = Projection::All,
            Some((first, rest)) => fields.entry(first.clone()).or_default().keep(rest),
        }
    }

    /// Parse JSON keeping only the projected fields (the rest is skipped while reading).
    pub fn parse<'de, D: Deserializer<'de>>(&self, d: D) -> Result<Value, D::Error> {
        Seed(self).deserialize(d)
    }

    /// Apply to a value already parsed (for answers that are not parsed by the backend).
    pub fn apply(&self, v: Value) -> Value {
        match (self, v) {
            (Projection::All, v) => v,
            (Projection::Fields(f), Value::Object(m)) => {
                Value::Object(m.into_iter().filter_map(|(k, v)| f.get(&k).map(|p| (k.clone(), p.apply(v)))).collect())
            }
            (p, Value::Array(a)) => Value::Array(a.into_iter().map(|v| p.apply(v)).collect()),
            (_, scalar) => scalar,
        }
    }
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Projection::All => f.write_str("*"),
            Projection::Fields(m) => {
                f.write_str("{")?;
                for (i, (k, p)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match p {
                        Projection::All => write!(f, "{k}")?,
                        p => write!(f, "{k}: {p}")?,
                    }
                }
                f.write_str("}")
            }
        }
    }
}

struct Seed<'p>(&'p Projection);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Projection::All => serde::Deserialize::deserialize(d),
            Projection::Fields(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Seed(self.0))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Projection::Fields(fields) = self.0 else { unreachable!("All parses whole values") };
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match fields.get(&key) {
                Some(p) => {
                    let v = map.next_value_seed(Seed(p))?;
                    out.insert(key, v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// The projection of each Kubernetes list step of a procedure, read from everything that
/// may see its answer: other steps' requests and conditions, the structured fields (in
/// order, `_` fields bound for later ones), the text, error and content templates. A step
/// with `select`, or a procedure without structured fields (step answers returned as they
/// are), keeps its objects whole.
pub fn of_procedure(
    steps: &indexmap::IndexMap<String, crate::spec::model::StepSpec>,
    output: &crate::spec::model::OutputSpec,
) -> Reads {
    use crate::backends::CallSpec;
    use crate::backends::kubernetes::KubernetesVerb;
    use crate::spec::model::FieldSpec;
    let lists: Vec<&str> = steps
        .iter()
        .filter(|(_, s)| matches!(&s.call, CallSpec::Kubernetes(c) if c.verb == KubernetesVerb::List))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut a = Analysis::new(lists.iter().copied());
    for (name, step) in steps {
        if step.select.is_some() || output.structured.is_empty() {
            a.keep_all(name);
        }
        if let Some(w) = &step.when {
            a.expr_tested(w);
        }
        let mut leaves = Vec::new();
        string_leaves(&step.call.body_json(), &mut leaves);
        for leaf in leaves {
            a.leaf(&leaf);
        }
    }
    for (name, field) in &output.structured {
        match field {
            FieldSpec::Each(e) => {
                a.bind_elements(&e.as_name, &e.each);
                if let Some(w) = &e.where_ {
                    a.expr_tested(w);
                }
                for expr in e.fields.values() {
                    a.expr_used(expr);
                }
                a.unbind();
                a.bind_fresh(name);
            }
            other if name.starts_with('_') => a.bind_expr(name, other.expr()),
            other => {
                a.expr_used(other.expr());
                a.bind_expr(name, other.expr());
            }
        }
    }
    for t in [&output.text, &output.error].into_iter().flatten() {
        a.template(t);
    }
    for c in &output.content {
        let mut leaves = Vec::new();
        string_leaves(&serde_json::to_value(c).unwrap_or_default(), &mut leaves);
        for leaf in leaves {
            a.leaf(&leaf);
        }
    }
    a.finish()
}

fn string_leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| string_leaves(i, out)),
        Value::Object(m) => m.values().for_each(|i| string_leaves(i, out)),
        _ => {}
    }
}

/// Fields a shaping filter reads of the object it is given (dotted paths, whole below).
fn filter_reads(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "pod_status" => super::k8s::POD_STATUS_READS,
        "node_status" => super::k8s::NODE_STATUS_READS,
        "condition" => &["status.conditions"],
        _ => return None,
    })
}

/// Where a value comes from: a place inside a list step's answer.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    /// The step's answer (`{items, continue, remainingItemCount}`).
    Root,
    /// Its `items` list.
    Items,
    /// Inside an element of `items` (list levels below are transparent).
    Item(Vec<String>),
}

/// What an expression may evaluate to: places in list steps (by step index); anything else
/// is fresh data the projection does not care about.
#[derive(Debug, Clone, Default)]
struct Refs(Vec<(usize, Place)>);

impl Refs {
    fn union(mut self, other: Refs) -> Refs {
        self.0.extend(other.0);
        self
    }
    fn map(&self, f: impl Fn(&Place) -> Option<Place>) -> Refs {
        Refs(self.0.iter().filter_map(|(s, p)| f(p).map(|p| (*s, p))).collect())
    }
}

/// What a procedure reads.
#[derive(Debug, Default)]
pub struct Reads {
    /// The projection of each Kubernetes list step.
    pub projections: HashMap<String, Projection>,
    /// The output reads the clock (`now()`, `age`) or the steps' timings.
    pub volatile: bool,
}

/// The analysis of one procedure.
pub struct Analysis {
    /// List steps by name (index into `found`).
    steps: HashMap<String, usize>,
    found: Vec<Projection>,
    /// Variables bound to places (fields, loop variables, `set`).
    env: Vec<(String, Refs)>,
    /// Something reads the clock or the steps' timings: the same answers may shape
    /// differently from one call to the next.
    volatile: bool,
}

impl Analysis {
    /// Start an analysis for these list steps (all start with nothing kept).
    pub fn new<'a>(list_steps: impl IntoIterator<Item = &'a str>) -> Analysis {
        let mut steps = HashMap::new();
        for (i, s) in list_steps.into_iter().enumerate() {
            steps.insert(s.to_string(), i);
        }
        let found = vec![Projection::default(); steps.len()];
        Analysis { steps, found, env: Vec::new(), volatile: false }
    }

    /// Give up on a step: keep its objects whole.
    pub fn keep_all(&mut self, step: &str) {
        if let Some(&i) = self.steps.get(step) {
            self.found[i] = Projection::All;
        }
    }

    fn give_up(&mut self) {
        self.found.iter_mut().for_each(|p| *p = Projection::All);
    }

    /// The projection of each list step (kind and apiVersion always kept: the backend
    /// fills them in when a list omits them), and whether the output reads the clock.
    pub fn finish(mut self) -> Reads {
        for p in &mut self.found {
            p.keep(&["kind".to_string()]);
            p.keep(&["apiVersion".to_string()]);
        }
        let projections = self.steps.into_iter().map(|(name, i)| (name, self.found[i].clone())).collect();
        Reads { projections, volatile: self.volatile }
    }

    /// An expression whose value is used whole (emitted, returned, sent in a request).
    pub fn expr_used(&mut self, source: &str) {
        match minijinja::machinery::parse_expr(source) {
            Ok(e) => {
                let r = self.eval(&e);
                self.deep(&r);
            }
            Err(_) => self.give_up(),
        }
    }

    /// An expression only tested for truth (`when`, `where`).
    pub fn expr_tested(&mut self, source: &str) {
        match minijinja::machinery::parse_expr(source) {
            Ok(e) => {
                let r = self.eval(&e);
                self.shallow(&r);
            }
            Err(_) => self.give_up(),
        }
    }

    /// An intermediate value bound to a name for later expressions (an `_` field).
    pub fn bind_expr(&mut self, name: &str, source: &str) {
        let r = match minijinja::machinery::parse_expr(source) {
            Ok(e) => self.eval(&e),
            Err(_) => {
                self.give_up();
                Refs::default()
            }
        };
        self.env.push((name.to_string(), r));
    }

    /// Bind a name to fresh data (a field computed row by row, a returned field).
    pub fn bind_fresh(&mut self, name: &str) {
        self.env.push((name.to_string(), Refs::default()));
    }

    /// Bind a row variable to the elements of the list an expression yields.
    pub fn bind_elements(&mut self, name: &str, source: &str) {
        let r = match minijinja::machinery::parse_expr(source) {
            Ok(e) => self.eval(&e),
            Err(_) => {
                self.give_up();
                Refs::default()
            }
        };
        self.env.push((name.to_string(), elements(&r)));
    }

    /// Forget the last binding (a row variable after its rows).
    pub fn unbind(&mut self) {
        self.env.pop();
    }

    /// A text template: everything it emits is used whole.
    pub fn template(&mut self, source: &str) {
        match minijinja::machinery::parse(source, "<projection>", Default::default()) {
            Ok(stmt) => self.stmt(&stmt),
            Err(_) => self.give_up(),
        }
    }

    /// A string leaf that may be `{{ expr }}`, a template, or plain text.
    pub fn leaf(&mut self, source: &str) {
        match super::template::single_expression(source) {
            Some(e) => self.expr_used(e),
            None if source.contains("{{") || source.contains("{%") => self.template(source),
            None => {}
        }
    }

    fn lookup(&mut self, name: &str) -> Refs {
        if name == "timings" || name == "now" {
            self.volatile = true;
        }
        if let Some((_, r)) = self.env.iter().rev().find(|(n, _)| n == name) {
            return r.clone();
        }
        match self.steps.get(name) {
            Some(&i) => Refs(vec![(i, Place::Root)]),
            None => Refs::default(),
        }
    }

    /// Values used whole: keep everything below them.
    fn deep(&mut self, r: &Refs) {
        for (s, p) in &r.0 {
            match p {
                Place::Root | Place::Items => self.found[*s] = Projection::All,
                Place::Item(path) => self.found[*s].keep(path),
            }
        }
    }

    /// Values tested for truth, length or none: the list's own shape is never projected;
    /// inside an element, keep the value whole.
    fn shallow(&mut self, r: &Refs) {
        let inside = Refs(r.0.iter().filter(|(_, p)| matches!(p, Place::Item(_))).cloned().collect());
        self.deep(&inside);
    }

    /// Keep `path` below each element of a list.
    fn reads(&mut self, list: &Refs, path: &str) {
        let elems = elements(list);
        let path: Vec<String> = path.split('.').map(str::to_string).collect();
        let r = elems.map(|p| match p {
            Place::Item(base) => Some(Place::Item(base.iter().cloned().chain(path.iter().cloned()).collect())),
            _ => None,
        });
        self.deep(&r);
        // A list of the answer's root (not of elements) cannot be followed.
        let roots = Refs(list.0.iter().filter(|(_, p)| *p == Place::Root).cloned().collect());
        self.deep(&roots);
    }

    fn stmts(&mut self, body: &[Stmt<'_>]) {
        for s in body {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => {
                let r = self.eval(&e.expr);
                self.deep(&r);
            }
            Stmt::EmitRaw(_) => {}
            Stmt::ForLoop(l) => {
                let iter = self.eval(&l.iter);
                let outer = self.env.len();
                self.bind_target(&l.target, elements(&iter));
                if let Some(f) = &l.filter_expr {
                    let r = self.eval(f);
                    self.shallow(&r);
                }
                self.stmts(&l.body);
                self.env.truncate(outer);
                self.stmts(&l.else_body);
            }
            Stmt::IfCond(c) => {
                let r = self.eval(&c.expr);
                self.shallow(&r);
                self.stmts(&c.true_body);
                self.stmts(&c.false_body);
            }
            Stmt::WithBlock(w) => {
                let outer = self.env.len();
                for (t, v) in &w.assignments {
                    let r = self.eval(v);
                    self.bind_target(t, r);
                }
                self.stmts(&w.body);
                self.env.truncate(outer);
            }
            Stmt::Set(s) => {
                let r = self.eval(&s.expr);
                self.bind_target(&s.target, r);
            }
            Stmt::SetBlock(s) => {
                self.stmts(&s.body);
                if let Some(f) = &s.filter {
                    let r = self.eval(f);
                    self.deep(&r);
                }
                self.bind_target(&s.target, Refs::default());
            }
            Stmt::AutoEscape(a) => self.stmts(&a.body),
            Stmt::FilterBlock(b) => {
                let r = self.eval(&b.filter);
                self.deep(&r);
                self.stmts(&b.body);
            }
            Stmt::Block(b) => self.stmts(&b.body),
            // Macros may read anything in scope, with any argument; imports and includes
            // bring templates this analysis does not see.
            _ => self.give_up(),
        }
    }

    /// Bind a loop or `set` target.
    fn bind_target(&mut self, target: &Expr<'_>, r: Refs) {
        match target {
            Expr::Var(v) => self.env.push((v.id.to_string(), r)),
            Expr::Tuple(t) => {
                // Unpacking pairs or rows: whatever they came from is kept whole.
                self.deep(&r);
                for item in &t.items {
                    if let Expr::Var(v) = item {
                        self.env.push((v.id.to_string(), Refs::default()));
                    }
                }
            }
            _ => self.deep(&r),
        }
    }

    fn args_used(&mut self, args: &[CallArg<'_>]) {
        for a in args {
            let e = match a {
                CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => e,
            };
            let r = self.eval(e);
            self.deep(&r);
        }
    }

    fn eval(&mut self, expr: &Expr<'_>) -> Refs {
        match expr {
            Expr::Var(v) => self.lookup(v.id),
            Expr::Const(_) => Refs::default(),
            Expr::GetAttr(g) => {
                let base = self.eval(&g.expr);
                attr(&base, g.name)
            }
            Expr::GetItem(g) => {
                let base = self.eval(&g.expr);
                match &g.subscript_expr {
                    Expr::Const(c) if c.value.as_str().is_some() => attr(&base, c.value.as_str().unwrap_or_default()),
                    Expr::Const(c) if c.value.as_i64().is_some() => base.map(|p| match p {
                        Place::Root => None,
                        Place::Items => Some(Place::Item(Vec::new())),
                        Place::Item(path) => Some(Place::Item(path.clone())),
                    }),
                    other => {
                        let sub = self.eval(other);
                        self.deep(&sub);
                        self.deep(&base);
                        Refs::default()
                    }
                }
            }
            Expr::Slice(s) => {
                for e in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    let r = self.eval(e);
                    self.deep(&r);
                }
                let base = self.eval(&s.expr);
                self.same_list(base)
            }
            Expr::UnaryOp(u) => {
                let r = self.eval(&u.expr);
                match u.op {
                    UnaryOpKind::Not => self.shallow(&r),
                    UnaryOpKind::Neg => self.deep(&r),
                }
                Refs::default()
            }
            Expr::BinOp(b) => {
                let (l, r) = (self.eval(&b.left), self.eval(&b.right));
                match b.op {
                    // `a or b` / `a and b` evaluate to one of their operands.
                    BinOpKind::ScAnd | BinOpKind::ScOr => {
                        self.shallow(&l);
                        l.union(r)
                    }
                    _ => {
                        self.deep(&l);
                        self.deep(&r);
                        Refs::default()
                    }
                }
            }
            Expr::Compare(c) => {
                let r = self.eval(&c.expr);
                self.deep(&r);
                for op in &c.ops {
                    let r = self.eval(&op.expr);
                    self.deep(&r);
                }
                Refs::default()
            }
            Expr::IfExpr(i) => {
                let t = self.eval(&i.test_expr);
                self.shallow(&t);
                let a = self.eval(&i.true_expr);
                let b = i.false_expr.as_ref().map(|e| self.eval(e)).unwrap_or_default();
                a.union(b)
            }
            Expr::Test(t) => {
                let r = self.eval(&t.expr);
                self.shallow(&r);
                self.args_used(&t.args);
                Refs::default()
            }
            Expr::Filter(f) => {
                let input = f.expr.as_ref().map(|e| self.eval(e)).unwrap_or_default();
                self.filter(f.name, input, &f.args)
            }
            Expr::Call(c) => {
                let callee = self.eval(&c.expr);
                self.deep(&callee);
                if let Expr::GetAttr(g) = &c.expr {
                    let base = self.eval(&g.expr);
                    self.deep(&base);
                }
                self.args_used(&c.args);
                Refs::default()
            }
            Expr::List(l) => {
                for e in &l.items {
                    let r = self.eval(e);
                    self.deep(&r);
                }
                Refs::default()
            }
            Expr::Tuple(t) => {
                for e in &t.items {
                    let r = self.eval(e);
                    self.deep(&r);
                }
                Refs::default()
            }
            Expr::Map(m) => {
                for e in m.keys.iter().chain(&m.values) {
                    let r = self.eval(e);
                    self.deep(&r);
                }
                Refs::default()
            }
        }
    }

    /// A filter that passes (some of) its input's elements through.
    fn same_list(&mut self, input: Refs) -> Refs {
        let roots = Refs(input.0.iter().filter(|(_, p)| *p == Place::Root).cloned().collect());
        self.deep(&roots);
        input.map(|p| (*p != Place::Root).then(|| p.clone()))
    }

    fn filter(&mut self, name: &str, input: Refs, args: &[CallArg<'_>]) -> Refs {
        if matches!(name, "age" | "age_seconds") {
            self.volatile = true;
        }
        let const_str = |i: usize| match args.get(i) {
            Some(CallArg::Pos(Expr::Const(c))) => c.value.as_str().map(str::to_string),
            _ => None,
        };
        let kwarg_str = |k: &str| {
            args.iter().find_map(|a| match a {
                CallArg::Kwarg(n, Expr::Const(c)) if *n == k => c.value.as_str().map(str::to_string),
                _ => None,
            })
        };
        let only_consts = args.iter().all(|a| match a {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) => matches!(e, Expr::Const(_)),
            _ => false,
        });
        match name {
            "length" | "count" => {
                self.shallow(&input);
                Refs::default()
            }
            "list" | "reverse" | "truncate_list" | "batch" => {
                self.args_used(args);
                self.same_list(input)
            }
            "first" | "last" => {
                self.args_used(args);
                let list = self.same_list(input);
                elements(&list)
            }
            "default" | "d" => {
                let other = args.first().map(|a| match a {
                    CallArg::Pos(e) | CallArg::Kwarg(_, e) => self.eval(e),
                    _ => Refs::default(),
                });
                input.union(other.unwrap_or_default())
            }
            "selectattr" | "rejectattr" if const_str(0).is_some() => {
                let attr_path = const_str(0).unwrap_or_default();
                self.reads(&input, &attr_path);
                self.args_used(&args[1..]);
                self.same_list(input)
            }
            "select" | "reject" => {
                self.deep(&elements(&input));
                self.args_used(args);
                self.same_list(input)
            }
            "map" if kwarg_str("attribute").is_some() => {
                let attr_path = kwarg_str("attribute").unwrap_or_default();
                let default_used: Vec<&CallArg<'_>> =
                    args.iter().filter(|a| !matches!(a, CallArg::Kwarg("attribute", _))).collect();
                for a in default_used {
                    self.args_used(std::slice::from_ref(a));
                }
                let roots = Refs(input.0.iter().filter(|(_, p)| *p == Place::Root).cloned().collect());
                self.deep(&roots);
                let mut out = elements(&input);
                for seg in attr_path.split('.') {
                    out = attr(&out, seg);
                }
                out
            }
            "map" if const_str(0).as_deref().and_then(filter_reads).is_some() && only_consts => {
                let reads = const_str(0).as_deref().and_then(filter_reads).unwrap_or_default();
                for r in reads {
                    self.reads(&input, r);
                }
                Refs::default()
            }
            "pick" | "count_by" | "sum_by" | "top" | "sort" if only_consts => {
                let mut paths: Vec<String> = match name {
                    "pick" | "count_by" | "sum_by" => (0..args.len()).filter_map(const_str).collect(),
                    "top" => const_str(1).into_iter().collect(),
                    _ => Vec::new(),
                };
                paths.extend(kwarg_str("attribute"));
                if name == "sort" && paths.is_empty() {
                    self.deep(&input);
                    return Refs::default();
                }
                for p in &paths {
                    self.reads(&input, p);
                }
                if matches!(name, "top" | "sort") { self.same_list(input) } else { Refs::default() }
            }
            other if filter_reads(other).is_some() && only_consts => {
                for r in filter_reads(other).unwrap_or_default() {
                    let path: Vec<String> = r.split('.').map(str::to_string).collect();
                    let at = input.map(|p| match p {
                        Place::Item(base) => {
                            Some(Place::Item(base.iter().cloned().chain(path.iter().cloned()).collect()))
                        }
                        _ => None,
                    });
                    self.deep(&at);
                }
                let lists = Refs(input.0.iter().filter(|(_, p)| !matches!(p, Place::Item(_))).cloned().collect());
                self.deep(&lists);
                Refs::default()
            }
            _ => {
                self.deep(&input);
                self.args_used(args);
                Refs::default()
            }
        }
    }
}

/// The elements of a list value (lists of an element's fields are transparent).
fn elements(r: &Refs) -> Refs {
    r.map(|p| match p {
        Place::Root => None,
        Place::Items => Some(Place::Item(Vec::new())),
        Place::Item(path) => Some(Place::Item(path.clone())),
    })
}

fn attr(base: &Refs, name: &str) -> Refs {
    base.map(|p| match p {
        Place::Root if name == "items" => Some(Place::Items),
        // `continue`, `remainingItemCount`: whole, never projected.
        Place::Root | Place::Items => None,
        Place::Item(path) => {
            let mut path = path.clone();
            path.push(name.to_string());
            Some(Place::Item(path))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn projected(output: &str) -> HashMap<String, String> {
        let steps: indexmap::IndexMap<String, crate::spec::model::StepSpec> =
            serde_json::from_value(serde_json::json!({
                "pods": {"kubernetes": {"verb": "list", "resource": {"apiVersion": "v1", "kind": "Pod"}}},
                "nodes": {"kubernetes": {"verb": "list", "resource": {"apiVersion": "v1", "kind": "Node"}}},
            }))
            .unwrap();
        let output: crate::spec::model::OutputSpec = output_spec(output);
        of_procedure(&steps, &output).projections.into_iter().map(|(k, v)| (k, v.to_string())).collect()
    }

    fn output_spec(yaml: &str) -> crate::spec::model::OutputSpec {
        let v = crate::spec::yaml::parse_values(yaml).unwrap().remove(0);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn fields_read_through_filters_and_rows_are_kept_and_nothing_else() {
        let p = projected(
            r#"
structured:
  _pods: pods.items | map('pod_status') | list
  count: pods.items | length
  names:
    each: nodes.items
    where: item.spec.unschedulable
    fields:
      name: item.metadata.name
      ready: (item | condition('Ready')).status
text: "{{ count }} pods, {{ _pods | selectattr('problem') | list | length }} with problems"
"#,
        );
        assert_eq!(
            p["pods"],
            "{apiVersion, kind, metadata: {deletionTimestamp, name, namespace}, \
             spec: {containers: {name}, initContainers: {name, restartPolicy}, nodeName}, status}"
        );
        assert_eq!(p["nodes"], "{apiVersion, kind, metadata: {name}, spec: {unschedulable}, status: {conditions}}");
    }

    #[test]
    fn values_used_whole_or_through_unknown_filters_keep_everything() {
        assert_eq!(projected("structured: {all: pods.items}")["pods"], "*");
        assert_eq!(projected("structured: {x: \"pods.items | jsonpath('$[*].spec')\"}")["pods"], "*");
        let looped =
            "structured: {n: pods.items | length}\ntext: '{% for p in pods.items %}{{ p.metadata }}{% endfor %}'";
        assert_eq!(projected(looped)["pods"], "{apiVersion, kind, metadata}");
        assert_eq!(projected(looped)["nodes"], "{apiVersion, kind}");
        assert_eq!(projected("structured: {n: pods.items | length}\ntext: '{% include \"x\" %}'")["nodes"], "*");
        // No structured fields: step answers are returned as they are.
        assert_eq!(projected("text: hi")["pods"], "*");
        // `or` passes its operands through; attribute paths below lists are transparent.
        assert_eq!(
            projected("structured: {r: \"pods.items | map(attribute='status.containerStatuses') | first\"}")["pods"],
            "{apiVersion, kind, status: {containerStatuses}}"
        );
    }
}
