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

/// What [`fit_structured`] cut, to say in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// One line for the answer's text: what was cut and how to get the rest.
    pub note: String,
    /// How to get the rest (also the hint when the text itself must be cut).
    pub hint: String,
}

fn narrow_hint(narrow: &[String]) -> String {
    if narrow.is_empty() { "ask for less".to_string() } else { format!("narrow the query with {}", narrow.join(", ")) }
}

/// Cut the structured result so it takes at most two thirds of `budget` bytes: the largest
/// list first. Lists keep their first entries, or their last for the fields in `keep_last`
/// (JSON pointers, e.g. `/lines` of a log: the newest lines matter). Scalars (counts,
/// totals) are never touched, so they still describe everything. A `continue` token is
/// kept, and the note says which rows of this page it skips and how to see them.
pub fn fit_structured(structured: &mut Value, budget: usize, narrow: &[String], keep_last: &[String]) -> Option<Cut> {
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
        let last = keep_last.contains(&ptr);
        if let Some(Value::Array(a)) = structured.pointer_mut(&ptr) {
            if last {
                a.drain(..len - keep);
            } else {
                a.truncate(keep);
            }
        }
        let field = ptr.trim_start_matches('/').replace('/', ".");
        // A list cut twice keeps one entry: its original length and what is left.
        match cuts.iter_mut().find(|c: &&mut Value| c["field"] == field.as_str()) {
            Some(c) => c["kept"] = json!(keep),
            None => cuts.push(
                json!({"field": field, "kept": keep, "total": len, "kept_from": if last { "end" } else { "start" }}),
            ),
        }
    }
    let mut hint = narrow_hint(narrow);
    let shown: Vec<String> = cuts
        .iter()
        .map(|c| {
            let which = if c["kept_from"] == "end" { "last" } else { "first" };
            format!("{} {} {} of {}", c["field"].as_str().unwrap_or(""), which, c["kept"], c["total"])
        })
        .collect();
    if let (Some(first), Value::Object(m)) = (cuts.first(), &*structured)
        && m.get("continue").is_some_and(|c| c.as_str().is_some_and(|s| !s.is_empty()))
    {
        let kept = first["kept"].as_u64().unwrap_or(0).max(1);
        let skipped = first["total"].as_u64().unwrap_or(0).saturating_sub(kept);
        hint = format!(
            "`continue` starts after this page and skips the {skipped} rows of it not shown: \
             ask again with limit={kept} to page through everything, or {hint}"
        );
    }
    if let Value::Object(m) = structured {
        m.insert("truncated".into(), json!({"cuts": cuts, "hint": hint, "budget_bytes": budget}));
    }
    let note = format!("[cut to fit the response budget: {} shown; {hint}]", shown.join(", "));
    Some(Cut { note, hint })
}

/// Keep whole lines of `text` within `budget` bytes, with a note that says so. With
/// `keep_tail`, the first line (the summary) and the last lines are kept (logs: the newest
/// lines), else the first lines.
pub fn fit_text(text: &mut String, budget: usize, hint: &str, keep_tail: bool) {
    if text.len() <= budget {
        return;
    }
    let lines: Vec<&str> = text.lines().collect();
    let room = budget.saturating_sub(200);
    if keep_tail && lines.len() > 1 {
        let head = lines[0];
        let mut used = head.len() + 1;
        let mut start = lines.len();
        while start > 1 && used + lines[start - 1].len() < room {
            start -= 1;
            used += lines[start].len() + 1;
        }
        let shown = lines.len() - start;
        let mut kept = format!(
            "{head}\n[cut to fit the response budget: the last {shown} of {} lines shown; {hint}]\n",
            lines.len() - 1
        );
        kept.push_str(&lines[start..].join("\n"));
        *text = kept;
        return;
    }
    let mut kept = String::new();
    let mut n = 0;
    for l in &lines {
        if kept.len() + l.len() + 1 > room {
            break;
        }
        kept.push_str(l);
        kept.push('\n');
        n += 1;
    }
    kept.push_str(&format!("[cut to fit the response budget: {n} of {} lines shown; {hint}]", lines.len()));
    *text = kept;
}

/// Fit an outcome into `budget` bytes (structured JSON plus text). The text says what was
/// cut: the structured cut's note is appended unless the text itself had to be cut.
pub fn enforce(outcome: &mut Outcome, budget: usize, narrow: &[String], keep_last: &[String]) {
    let cut = fit_structured(&mut outcome.structured, budget, narrow, keep_last);
    fit_rendered_text(&mut outcome.text, &outcome.structured, budget, narrow, cut.as_ref(), !keep_last.is_empty());
}

/// Cut the rendered text to what the structured result leaves of the budget, and say in it
/// what was cut.
pub fn fit_rendered_text(
    text: &mut String,
    structured: &Value,
    budget: usize,
    narrow: &[String],
    cut: Option<&Cut>,
    keep_tail: bool,
) {
    let text_budget = budget.saturating_sub(size(structured)).max(budget / 4);
    let hint = cut.map(|c| c.hint.clone()).unwrap_or_else(|| narrow_hint(narrow));
    let before = text.len();
    fit_text(text, text_budget, &hint, keep_tail);
    if let Some(c) = cut
        && text.len() == before
    {
        text.push('\n');
        text.push_str(&c.note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_lists_are_cut_in_order_and_say_so() {
        let rows: Vec<Value> = (0..1000).map(|i| json!({"name": format!("pod-{i:04}"), "phase": "Running"})).collect();
        let text = (0..1000).map(|i| format!("pod-{i:04} Running")).collect::<Vec<_>>().join("\n");
        let mut o = Outcome {
            structured: json!({"pods": rows, "total": 1000}),
            text,
            content: vec![],
            error: None,
            data_age: None,
        };
        enforce(&mut o, 8_000, &["namespace".into(), "limit".into()], &[]);
        let pods = o.structured["pods"].as_array().unwrap();
        assert!(pods.len() < 1000 && !pods.is_empty());
        assert_eq!(pods[0]["name"], "pod-0000", "order kept");
        assert_eq!(o.structured["truncated"]["cuts"][0]["total"], 1000);
        assert!(o.text.ends_with("narrow the query with namespace, limit]"), "{}", &o.text[o.text.len() - 120..]);
        assert!(size(&o.structured) + o.text.len() <= 8_000 + 300);
    }

    #[test]
    fn small_answers_are_untouched() {
        let mut o = Outcome {
            structured: json!({"a": [1, 2, 3]}),
            text: "ok".into(),
            content: vec![],
            error: None,
            data_age: None,
        };
        enforce(&mut o, 8_000, &[], &[]);
        assert_eq!(o.structured, json!({"a": [1, 2, 3]}));
    }
    #[test]
    fn a_cut_page_keeps_its_continue_token_and_says_what_it_skips() {
        let rows: Vec<Value> = (0..500).map(|i| json!({"name": format!("node-{i:04}")})).collect();
        let text = "500 nodes".to_string();
        let mut o = Outcome {
            structured: json!({"nodes": rows, "returned": 500, "continue": "500"}),
            text,
            content: vec![],
            error: None,
            data_age: None,
        };
        enforce(&mut o, 6_000, &["limit".into()], &[]);
        assert_eq!(o.structured["continue"], "500", "token kept");
        assert_eq!(o.structured["returned"], 500, "scalars untouched");
        let kept = o.structured["nodes"].as_array().unwrap().len();
        assert!(o.text.starts_with("500 nodes\n[cut to fit the response budget: nodes first"), "{}", o.text);
        assert!(o.text.contains(&format!("skips the {} rows", 500 - kept)), "{}", o.text);
        assert!(o.text.contains(&format!("limit={kept}")), "{}", o.text);
    }

    #[test]
    fn keep_last_fields_lose_their_oldest_entries_and_the_text_keeps_its_tail() {
        let lines: Vec<Value> = (1..=1000).map(|i| json!(format!("line {i:04}"))).collect();
        let text = std::iter::once("1000 line(s):".to_string())
            .chain((1..=1000).map(|i| format!("line {i:04}")))
            .collect::<Vec<_>>()
            .join("\n");
        let mut o = Outcome { structured: json!({"lines": lines}), text, content: vec![], error: None, data_age: None };
        enforce(&mut o, 6_000, &["tail".into()], &["/lines".into()]);
        let kept = o.structured["lines"].as_array().unwrap();
        assert_eq!(kept.last().unwrap(), "line 1000");
        assert!(kept.len() < 1000);
        assert!(o.text.starts_with("1000 line(s):\n[cut to fit the response budget: the last"), "{}", o.text);
        assert!(o.text.ends_with("line 1000"), "{}", o.text);
    }
}
