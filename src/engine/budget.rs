//! Output economy: answers larger than the response budget are cut deterministically (the
//! largest list first, keeping order) and say what was cut and how to narrow the query.

use serde_json::{Value, json};

use super::invoke::Outcome;

fn size(v: &Value) -> usize {
    serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
}

/// The pointer and length of the largest array (by serialized size) up to two levels deep.
fn largest_array(v: &Value) -> Option<(String, usize, usize)> {
    let mut best: Option<(String, usize, usize)> = None;
    let mut consider = |ptr: String, a: &Vec<Value>| {
        if a.len() > 1 {
            let sz = size(&Value::Array(a.clone()));
            if best.as_ref().is_none_or(|b| sz > b.2) {
                best = Some((ptr, a.len(), sz));
            }
        }
    };
    if let Value::Object(m) = v {
        for (k, child) in m {
            match child {
                Value::Array(a) => consider(format!("/{k}"), a),
                Value::Object(inner) => {
                    for (k2, c2) in inner {
                        if let Value::Array(a) = c2 {
                            consider(format!("/{k}/{k2}"), a);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    best
}

/// Cut the structured result so it takes at most two thirds of `budget` bytes: the largest
/// list first, keeping order. Returns the hint to show when anything was cut. A `continue`
/// token is dropped when its page was cut (following it would skip the rows not shown).
pub fn fit_structured(structured: &mut Value, budget: usize, narrow: &[String]) -> Option<String> {
    let json_budget = budget * 2 / 3;
    if size(structured) <= json_budget {
        return None;
    }
    let mut cuts = Vec::new();
    while size(structured) > json_budget {
        let Some((ptr, len, sz)) = largest_array(structured) else { break };
        let other = size(structured) - sz;
        let per_item = (sz / len).max(1);
        let keep = (json_budget.saturating_sub(other) / per_item).min(len - 1);
        if let Some(Value::Array(a)) = structured.pointer_mut(&ptr) {
            a.truncate(keep);
        }
        let field = ptr.trim_start_matches('/').replace('/', ".");
        // A list cut twice keeps one entry: its original length and what is left.
        match cuts.iter_mut().find(|c: &&mut Value| c["field"] == field.as_str()) {
            Some(c) => c["kept"] = json!(keep),
            None => cuts.push(json!({"field": field, "kept": keep, "total": len})),
        }
    }
    let mut hint = if narrow.is_empty() {
        "ask for less".to_string()
    } else {
        format!("narrow the query with {}", narrow.join(", "))
    };
    if let (Some(first), Value::Object(m)) = (cuts.first(), &mut *structured)
        && m.get("continue").is_some_and(|c| !c.is_null())
    {
        m.insert("continue".into(), Value::Null);
        let kept = first["kept"].as_u64().unwrap_or(0).max(1);
        hint =
            format!("this page was cut to {kept} rows: ask again with limit={kept} to page through everything; {hint}");
    }
    if let Value::Object(m) = structured {
        m.insert("truncated".into(), json!({"cuts": cuts, "hint": hint, "budget_bytes": budget}));
    }
    Some(hint)
}

/// Keep whole lines of `text` within `budget` bytes, ending with a note that says so.
pub fn fit_text(text: &mut String, budget: usize, hint: &str) {
    if text.len() <= budget {
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = String::new();
    let mut n = 0;
    for l in &lines {
        if kept.len() + l.len() + 1 > budget.saturating_sub(200) {
            break;
        }
        kept.push_str(l);
        kept.push('\n');
        n += 1;
    }
    kept.push_str(&format!("[truncated: {n} of {} lines shown to fit the response budget; {hint}]", lines.len()));
    *text = kept;
}

/// Fit an outcome into `budget` bytes (structured JSON plus text).
pub fn enforce(outcome: &mut Outcome, budget: usize, narrow: &[String]) {
    let hint = fit_structured(&mut outcome.structured, budget, narrow);
    let text_budget = budget.saturating_sub(size(&outcome.structured)).max(budget / 4);
    let default_hint = if narrow.is_empty() {
        "ask for less".to_string()
    } else {
        format!("narrow the query with {}", narrow.join(", "))
    };
    fit_text(&mut outcome.text, text_budget, hint.as_deref().unwrap_or(&default_hint));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_lists_are_cut_in_order_and_say_so() {
        let rows: Vec<Value> = (0..1000).map(|i| json!({"name": format!("pod-{i:04}"), "phase": "Running"})).collect();
        let text = (0..1000).map(|i| format!("pod-{i:04} Running")).collect::<Vec<_>>().join("\n");
        let mut o = Outcome { structured: json!({"pods": rows, "total": 1000}), text, content: vec![], error: None };
        enforce(&mut o, 8_000, &["namespace".into(), "limit".into()]);
        let pods = o.structured["pods"].as_array().unwrap();
        assert!(pods.len() < 1000 && !pods.is_empty());
        assert_eq!(pods[0]["name"], "pod-0000", "order kept");
        assert_eq!(o.structured["truncated"]["cuts"][0]["total"], 1000);
        assert!(o.text.ends_with("narrow the query with namespace, limit]"), "{}", &o.text[o.text.len() - 120..]);
        assert!(size(&o.structured) + o.text.len() <= 8_000 + 300);
    }

    #[test]
    fn small_answers_are_untouched() {
        let mut o = Outcome { structured: json!({"a": [1, 2, 3]}), text: "ok".into(), content: vec![], error: None };
        enforce(&mut o, 8_000, &[]);
        assert_eq!(o.structured, json!({"a": [1, 2, 3]}));
    }
}
