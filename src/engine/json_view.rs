//! A zero-copy view of JSON for templates: backend answers (thousands of pods) are shared,
//! and only the fields an expression touches become template values.

use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use serde_json::Value as Json;

/// One step from a parent node to a child.
#[derive(Debug, Clone)]
enum Seg {
    Key(Arc<str>),
    Index(usize),
}

/// A node inside a shared JSON document.
#[derive(Debug)]
struct Node {
    root: Arc<Json>,
    path: Vec<Seg>,
}

impl Node {
    fn json(&self) -> &Json {
        let mut cur = &*self.root;
        for seg in &self.path {
            cur = match (seg, cur) {
                (Seg::Key(k), Json::Object(m)) => m.get(&**k).unwrap_or(&Json::Null),
                (Seg::Index(i), Json::Array(a)) => a.get(*i).unwrap_or(&Json::Null),
                _ => &Json::Null,
            };
        }
        cur
    }

    fn child(&self, seg: Seg, v: &Json) -> Value {
        match v {
            Json::Array(_) | Json::Object(_) => {
                let mut path = self.path.clone();
                path.push(seg);
                Value::from_object(Node { root: self.root.clone(), path })
            }
            scalar => scalar_value(scalar),
        }
    }
}

fn scalar_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(_) | Json::Object(_) => unreachable!("containers are views"),
    }
}

impl Object for Node {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.json() {
            Json::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match self.json() {
            Json::Object(m) => {
                let k = key.as_str()?;
                m.get(k).map(|v| self.child(Seg::Key(Arc::from(k)), v))
            }
            Json::Array(a) => {
                let i = usize::try_from(key.clone()).ok()?;
                a.get(i).map(|v| self.child(Seg::Index(i), v))
            }
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.json() {
            Json::Array(a) => Enumerator::Seq(a.len()),
            Json::Object(m) => Enumerator::Values(m.keys().map(|k| Value::from(k.as_str())).collect()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.json() {
            Json::Array(a) => Some(a.len()),
            Json::Object(m) => Some(m.len()),
            _ => Some(0),
        }
    }
}

/// A template value viewing `json` without copying it.
pub fn view(json: Arc<Json>) -> Value {
    match &*json {
        Json::Array(_) | Json::Object(_) => Value::from_object(Node { root: json, path: Vec::new() }),
        scalar => scalar_value(scalar),
    }
}

/// Run `f` on the JSON behind a template value: borrowed when the value is a view of a
/// backend answer (no copy), converted otherwise.
pub fn with_json<R>(v: &Value, f: impl FnOnce(&Json) -> R) -> R {
    if let Some(node) = v.downcast_object_ref::<Node>() {
        return f(node.json());
    }
    f(&super::template::to_json(v).unwrap_or(Json::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_behave_like_converted_values() {
        let doc = Arc::new(
            serde_json::json!({"items": [{"n": 1, "s": "a", "f": 1.5, "z": null, "o": {"k": [true]}}, {"n": 2}]}),
        );
        let v = view(doc.clone());
        let env = crate::engine::template::shaping_env();
        let eval = |e: &str| env.compile_expression(e).unwrap().eval(minijinja::context! { d => v.clone() }).unwrap();
        assert_eq!(eval("d.items | length").as_usize(), Some(2));
        assert_eq!(eval("d.items | sum(attribute='n')").as_i64(), Some(3));
        assert_eq!(eval("d.items[0].s").as_str(), Some("a"));
        assert!(eval("d.items[0].o.k[0]").is_true());
        assert!(eval("d.items[0].z is none").is_true());
        assert!(eval("d.items[1].missing is undefined").is_true());
        assert_eq!(eval("d.items | map(attribute='n') | list").to_string(), "[1, 2]");
        assert_eq!(
            crate::engine::template::to_json(&eval("d")).unwrap(),
            *doc,
            "serializing a view gives the document back"
        );
    }
}
