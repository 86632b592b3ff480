//! Specs: the YAML documents admins write, their schemas and loading (compilation into the
//! registry is `engine::compile`).

pub mod diagnostic;
pub mod embedded;
pub mod load;
pub mod model;
pub mod schema;
pub mod workflow;
pub mod yaml;

pub use diagnostic::Diagnostic;

use serde_json::Value;

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}
