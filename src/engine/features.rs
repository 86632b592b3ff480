//! Feature shaping for models: turn query results into aligned rows and zip answers back.
//!
//! - `[cpu.result, mem.result] | align('metric.pod', 'value')`: one row per key present in
//!   every list (an inner join), `{key, values: [cpu, mem]}`, in the first list's order.
//!   The same filter aligns range points on timestamps: `[a.points, b.points] | align(0, 1)`.
//!   Values that are numeric text become numbers; a row with a missing or non-finite value
//!   is dropped (a model cannot score it).
//! - `rows | zip(scored.predictions, scored.outputs.scores)`: `[[row0, p0, s0], ...]`, as long
//!   as the shortest list.

use std::collections::HashMap;

use minijinja::value::Rest;
use minijinja::{Error, ErrorKind, Value};

use super::template::lookup;

/// A key or value path: a dotted attribute path, or an index into a pair (`0`, `1`).
fn path_of(v: &Value) -> Result<String, Error> {
    match v.as_str() {
        Some(s) => Ok(s.to_string()),
        None if v.as_i64().is_some() => Ok(v.to_string()),
        None => Err(Error::new(ErrorKind::InvalidOperation, "align: key and value are attribute paths or indexes")),
    }
}

/// A finite number from a number or numeric text.
fn number(v: &Value) -> Option<f64> {
    let n = match v.as_str() {
        Some(s) => s.trim().parse::<f64>().ok()?,
        None => f64::try_from(v.clone()).ok()?,
    };
    n.is_finite().then_some(n)
}

/// `lists | align(key, value)`: see the module docs.
pub fn align(lists: Value, key: Value, value: Value) -> Result<Value, Error> {
    let (key, value) = (path_of(&key)?, path_of(&value)?);
    let mut order: Vec<String> = Vec::new();
    let mut keys: HashMap<String, Value> = HashMap::new();
    let mut columns: Vec<HashMap<String, f64>> = Vec::new();
    for (i, list) in lists.try_iter()?.enumerate() {
        let mut col = HashMap::new();
        if list.is_none() || list.is_undefined() {
            columns.push(col);
            continue;
        }
        for item in list.try_iter()? {
            let k = lookup(&item, &key);
            if k.is_undefined() || k.is_none() {
                continue;
            }
            let ks = k.to_string();
            if let Some(n) = number(&lookup(&item, &value)) {
                if i == 0 && !col.contains_key(&ks) {
                    order.push(ks.clone());
                    keys.insert(ks.clone(), k);
                }
                col.insert(ks, n);
            }
        }
        columns.push(col);
    }
    let rows: Vec<Value> = order
        .into_iter()
        .filter_map(|k| {
            let values: Option<Vec<Value>> = columns.iter().map(|c| c.get(&k).map(|n| Value::from(*n))).collect();
            let key = keys.remove(&k)?;
            Some(Value::from_object(std::collections::BTreeMap::from([("key", key), ("values", Value::from(values?))])))
        })
        .collect();
    Ok(Value::from(rows))
}

/// `a | zip(b, c)`: see the module docs.
pub fn zip(first: Value, rest: Rest<Value>) -> Result<Value, Error> {
    let mut lists: Vec<Vec<Value>> = vec![iter_or_empty(&first)?];
    for l in rest.iter() {
        lists.push(iter_or_empty(l)?);
    }
    let n = lists.iter().map(Vec::len).min().unwrap_or(0);
    Ok(Value::from(
        (0..n).map(|i| Value::from(lists.iter().map(|l| l[i].clone()).collect::<Vec<_>>())).collect::<Vec<_>>(),
    ))
}

fn iter_or_empty(v: &Value) -> Result<Vec<Value>, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(Vec::new());
    }
    Ok(v.try_iter()?.collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::template;

    fn eval(expr: &str, ctx: serde_json::Value) -> serde_json::Value {
        let e = template::shaping_env().compile_expression(expr).unwrap();
        template::to_json(&e.eval(template::to_value(&ctx)).unwrap()).unwrap()
    }

    #[test]
    fn instant_results_align_on_a_label_as_an_inner_join() {
        let ctx = json!({
            "cpu": [{"metric": {"pod": "a"}, "value": 0.5}, {"metric": {"pod": "b"}, "value": 2.0}, {"metric": {"pod": "c"}, "value": 1.0}],
            "mem": [{"metric": {"pod": "b"}, "value": "3.5"}, {"metric": {"pod": "a"}, "value": 1.0}, {"metric": {"pod": "c"}, "value": "NaN"}],
        });
        assert_eq!(
            eval("[cpu, mem] | align('metric.pod', 'value')", ctx),
            json!([{"key": "a", "values": [0.5, 1.0]}, {"key": "b", "values": [2.0, 3.5]}])
        );
    }

    #[test]
    fn range_points_align_on_timestamps() {
        let ctx = json!({"a": [[60, 1.0], [120, 2.0], [180, 3.0]], "b": [[120, 20.0], [180, 30.0]]});
        assert_eq!(
            eval("[a, b] | align(0, 1)", ctx),
            json!([{"key": 120, "values": [2.0, 20.0]}, {"key": 180, "values": [3.0, 30.0]}])
        );
    }

    #[test]
    fn zip_pairs_rows_with_answers_up_to_the_shortest() {
        assert_eq!(
            eval("[1, 2, 3] | zip(['a', 'b'], [true, false, true])", json!({})),
            json!([[1, "a", true], [2, "b", false]])
        );
        assert_eq!(eval("[1] | zip(none)", json!({})), json!([]));
    }
}
