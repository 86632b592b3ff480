//! Feature shaping for models: turn query results into aligned rows and zip answers back.
//!
//! - `[cpu.result, mem.result] | align('metric.pod', 'value')`: one row per key present in
//!   every list (an inner join), `{key, values: [cpu, mem]}`, in the first list's order.
//!   The same filter aligns range points on timestamps: `[a.points, b.points] | align(0, 1)`.
//!   Values that are numeric text become numbers; a row with a missing or non-finite value
//!   is dropped (a model cannot score it).
//! - `rows | zip(scored.predictions, scored.outputs.scores)`: `[[row0, p0, s0], ...]`, as long
//!   as the shortest list.
//!
//! - `[a.result, b.result] | align_series('metric.key')`: raw range results (series
//!   `{metric, points}`) joined on (series key, timestamp): one row `{key, t, values: [a, b]}`
//!   per point present in every list, in the first list's order (series, then time). This
//!   turns per-metric series into a feature matrix, one row per (pod, time). `only` (a list,
//!   or a map's keys) keeps just the series with those keys.
//!
//! Series filters work on one series' points `[[t, v], ...]` (a raw range query's `points`),
//! in order; "k points earlier" assumes the range step's regular grid. Each answers points
//! `[[t, x], ...]` (so they align on `t` with `align(0, 1)`), leaving out points without
//! enough history or with a non-finite result. Given a series object instead (`{metric,
//! points}`), they answer the same object with its points transformed, so a whole range
//! result is mapped with `rcpu.result | map('rolling', 5, 'mean') | list`:
//! - `points | lag(k)`: the value k points earlier; `diff(k=1)`: v - that value;
//!   `pct_change(k=1, zero=none)`: 100 * (v - that) / |that|; when that is 0 the `zero`
//!   value (e.g. 0 for a counter that stays at 0), left out without one.
//! - `[a.result, b.result] | derive(specs)`: each range result once per spec, metric-major
//!   (`a` by every spec, then `b`), a spec being `'value'` (as is) or `[filter, args...]` with
//!   one of the series filters here, e.g. `['rolling', 5, 'std']`, `['pct_change', 1, 0]`.
//!   With `align_series` this builds a feature matrix from a few queries and one list of
//!   feature specs (analyze-anomalies: 5 metrics x 9 features).
//! - `points | rolling(n, stat)`: stat over the last n points (this one included), stat one of
//!   `mean`, `std` (population), `min`, `max`, `median`, `mad` (median absolute deviation).
//! - `points | score(window, gap=0, method='zscore', tag=none)`: `[[t, v, s], ...]` (`[[t, v,
//!   s, tag], ...]` with a tag, so the points of several series flatten into one list), s the
//!   score of v against the points of the `window` seconds ending `gap` seconds before it (so
//!   a burst is not its own baseline; points whose window starts before the series' first
//!   point, or holds fewer than 3 points, are not scored):
//!   `zscore` (v - mean) / std, or `mad` (v - median) / (1.4826 MAD), the robust z-score
//!   (falling back to 1.2533 x the mean absolute deviation when the MAD is 0; a baseline with
//!   no spread at all scores nothing).

use std::collections::{BTreeMap, HashMap};

use minijinja::value::{Rest, ValueKind};
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

/// `lists | align_series(key, only)`: see the module docs.
pub fn align_series(lists: Value, key: Value, only: Option<Value>) -> Result<Value, Error> {
    let key = path_of(&key)?;
    let only: Option<std::collections::HashSet<String>> = match only {
        Some(o) if !(o.is_none() || o.is_undefined()) => Some(o.try_iter()?.map(|k| k.to_string()).collect()),
        _ => None,
    };
    let mut order: Vec<(String, f64)> = Vec::new();
    let mut keys: HashMap<String, Value> = HashMap::new();
    let mut columns: Vec<HashMap<(String, u64), f64>> = Vec::new();
    for (i, list) in lists.try_iter()?.enumerate() {
        let mut col = HashMap::new();
        for series in iter_or_empty(&list)? {
            let k = lookup(&series, &key);
            if k.is_undefined() || k.is_none() {
                continue;
            }
            let ks = k.to_string();
            if only.as_ref().is_some_and(|o| !o.contains(&ks)) {
                continue;
            }
            for (t, x) in points_of(&series.get_attr("points")?, "align_series")? {
                let t = number(&t).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, "align_series: timestamps must be numbers (unix seconds)")
                })?;
                let cell = (ks.clone(), t.to_bits());
                if i == 0 && !col.contains_key(&cell) {
                    order.push((ks.clone(), t));
                    keys.entry(ks.clone()).or_insert_with(|| k.clone());
                }
                col.insert(cell, x);
            }
        }
        columns.push(col);
    }
    let rows: Vec<Value> = order
        .into_iter()
        .filter_map(|(k, t)| {
            let cell = (k, t.to_bits());
            let values: Option<Vec<Value>> = columns.iter().map(|c| c.get(&cell).map(|n| Value::from(*n))).collect();
            Some(Value::from_object(BTreeMap::from([
                ("key", keys.get(&cell.0)?.clone()),
                ("t", Value::from(t)),
                ("values", Value::from(values?)),
            ])))
        })
        .collect();
    Ok(Value::from(rows))
}

/// `lists | derive(specs)`: see the module docs.
pub fn derive(lists: Value, specs: Value) -> Result<Value, Error> {
    let specs: Vec<Value> = specs.try_iter()?.collect();
    let mut out = Vec::new();
    for list in lists.try_iter()? {
        let series = iter_or_empty(&list)?;
        for spec in &specs {
            let derived: Result<Vec<Value>, Error> = series.iter().map(|s| derive_one(s.clone(), spec)).collect();
            out.push(Value::from(derived?));
        }
    }
    Ok(Value::from(out))
}

fn derive_one(series: Value, spec: &Value) -> Result<Value, Error> {
    let args: Vec<Value> = if spec.kind() == ValueKind::Seq { spec.try_iter()?.collect() } else { vec![spec.clone()] };
    let bad = || {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "derive: `{spec}` is not a feature ('value', ['lag', k], ['diff', k], ['pct_change', k, zero], ['rolling', n, stat])"
            ),
        )
    };
    let int = |i: usize| args.get(i).and_then(Value::as_i64);
    match args.first().and_then(|a| a.as_str()).ok_or_else(bad)? {
        "value" if args.len() == 1 => Ok(series),
        "lag" => lag(series, int(1)),
        "diff" => diff(series, int(1)),
        "pct_change" => pct_change(series, int(1), args.get(2).and_then(number)),
        "rolling" => {
            let stat = args.get(2).and_then(|v| v.as_str()).ok_or_else(bad)?.to_string();
            rolling(series, int(1).ok_or_else(bad)?, &stat)
        }
        _ => Err(bad()),
    }
}

/// A points -> points filter applied to a series' points, or to a series object (`{metric,
/// points}`), which keeps its other fields.
fn on_series(v: Value, f: impl FnOnce(&Value) -> Result<Value, Error>) -> Result<Value, Error> {
    if v.kind() == ValueKind::Map {
        let points = v.get_attr("points")?;
        if !points.is_undefined() {
            let mut out: BTreeMap<String, Value> = BTreeMap::new();
            for k in v.try_iter()? {
                out.insert(k.to_string(), v.get_item(&k)?);
            }
            out.insert("points".into(), f(&points)?);
            return Ok(Value::from(out));
        }
    }
    f(&v)
}

fn iter_or_empty(v: &Value) -> Result<Vec<Value>, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(Vec::new());
    }
    Ok(v.try_iter()?.collect())
}

/// The finite points `[[t, v], ...]` of a series (numeric text accepted).
fn points_of(v: &Value, filter: &str) -> Result<Vec<(Value, f64)>, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for p in v.try_iter()? {
        let (t, x) = (p.get_item(&Value::from(0))?, p.get_item(&Value::from(1))?);
        if t.is_undefined() {
            return Err(Error::new(ErrorKind::InvalidOperation, format!("{filter}: points are [t, v] pairs")));
        }
        if let Some(n) = number(&x) {
            out.push((t, n));
        }
    }
    Ok(out)
}

fn pairs(points: impl IntoIterator<Item = (Value, f64)>) -> Value {
    Value::from(
        points
            .into_iter()
            .filter(|(_, x)| x.is_finite())
            .map(|(t, x)| Value::from(vec![t, Value::from(x)]))
            .collect::<Vec<_>>(),
    )
}

fn count(n: Option<i64>, default: i64, filter: &str) -> Result<usize, Error> {
    let n = n.unwrap_or(default);
    if !(0..=100_000).contains(&n) {
        return Err(Error::new(ErrorKind::InvalidOperation, format!("{filter}: {n} is out of range")));
    }
    Ok(n as usize)
}

/// `points | lag(k)`: see the module docs.
pub fn lag(series: Value, k: Option<i64>) -> Result<Value, Error> {
    on_series(series, |points| {
        let (p, k) = (points_of(points, "lag")?, count(k, 1, "lag")?);
        Ok(pairs((k..p.len()).map(|i| (p[i].0.clone(), p[i - k].1))))
    })
}

/// `points | diff(k)`: see the module docs.
pub fn diff(series: Value, k: Option<i64>) -> Result<Value, Error> {
    on_series(series, |points| {
        let (p, k) = (points_of(points, "diff")?, count(k, 1, "diff")?.max(1));
        Ok(pairs((k..p.len()).map(|i| (p[i].0.clone(), p[i].1 - p[i - k].1))))
    })
}

/// `points | pct_change(k)`: see the module docs.
pub fn pct_change(series: Value, k: Option<i64>, zero: Option<f64>) -> Result<Value, Error> {
    on_series(series, |points| {
        let (p, k) = (points_of(points, "pct_change")?, count(k, 1, "pct_change")?.max(1));
        Ok(pairs((k..p.len()).filter_map(|i| {
            let (now, then) = (p[i].1, p[i - k].1);
            let change = if then != 0.0 { Some(100.0 * (now - then) / then.abs()) } else { zero };
            change.map(|c| (p[i].0.clone(), c))
        })))
    })
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn std(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
}

fn mad(xs: &[f64]) -> f64 {
    let m = median(xs);
    median(&xs.iter().map(|x| (x - m).abs()).collect::<Vec<_>>())
}

/// `points | rolling(n, stat)`: see the module docs.
pub fn rolling(series: Value, n: i64, stat: &str) -> Result<Value, Error> {
    on_series(series, |points| rolling_points(points, n, stat))
}

fn rolling_points(points: &Value, n: i64, stat: &str) -> Result<Value, Error> {
    let (p, n) = (points_of(points, "rolling")?, count(Some(n), 1, "rolling")?.max(1));
    let f: fn(&[f64]) -> f64 = match stat {
        "mean" => mean,
        "std" => std,
        "min" => |xs| xs.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => |xs| xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "median" => median,
        "mad" => mad,
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("rolling: unknown statistic `{other}` (mean, std, min, max, median, mad)"),
            ));
        }
    };
    let xs: Vec<f64> = p.iter().map(|(_, x)| *x).collect();
    Ok(pairs((n.saturating_sub(1)..p.len()).map(|i| (p[i].0.clone(), f(&xs[i + 1 - n..=i])))))
}

/// `points | score(window, gap, method, tag)`: see the module docs.
pub fn score(
    points: Value,
    window: f64,
    gap: Option<f64>,
    method: Option<&str>,
    tag: Option<Value>,
) -> Result<Value, Error> {
    let p = points_of(&points, "score")?;
    let gap = gap.unwrap_or(0.0);
    if !(window > 0.0 && window.is_finite() && gap >= 0.0 && gap.is_finite()) {
        return Err(Error::new(ErrorKind::InvalidOperation, "score: window > 0 and gap >= 0 seconds"));
    }
    let robust = match method.unwrap_or("zscore") {
        "zscore" => false,
        "mad" => true,
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("score: unknown method `{other}` (zscore, mad)"),
            ));
        }
    };
    let ts: Vec<f64> = p.iter().map(|(t, _)| number(t).unwrap_or(f64::NAN)).collect();
    if ts.iter().any(|t| t.is_nan()) {
        return Err(Error::new(ErrorKind::InvalidOperation, "score: timestamps must be numbers (unix seconds)"));
    }
    let xs: Vec<f64> = p.iter().map(|(_, x)| *x).collect();
    let first = ts.first().copied().unwrap_or(0.0);
    let mut out = Vec::new();
    for i in 0..p.len() {
        let (hi, lo) = (ts[i] - gap, ts[i] - gap - window);
        // Only points whose whole baseline window lies within the series' data.
        if lo < first {
            continue;
        }
        let base: Vec<f64> = (0..i).filter(|&j| ts[j] > lo && ts[j] <= hi).map(|j| xs[j]).collect();
        if base.len() < MIN_BASELINE {
            continue;
        }
        let (center, scale) = if robust {
            let m = median(&base);
            let spread = 1.4826 * mad(&base);
            let spread = if spread > 0.0 {
                spread
            } else {
                1.2533 * mean(&base.iter().map(|x| (x - m).abs()).collect::<Vec<_>>())
            };
            (m, spread)
        } else {
            (mean(&base), std(&base))
        };
        if scale > 0.0 && scale.is_finite() {
            let s = (xs[i] - center) / scale;
            let mut row = vec![p[i].0.clone(), Value::from(xs[i]), Value::from(s)];
            row.extend(tag.clone());
            out.push(Value::from(row));
        }
    }
    Ok(Value::from(out))
}

/// Fewest baseline points a score is computed from.
const MIN_BASELINE: usize = 3;

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

    #[test]
    fn lags_differences_and_percent_changes_count_points_back() {
        let ctx = json!({"p": [[60, 1.0], [120, 2.0], [180, "4"], [240, 0.0], [300, 3.0]]});
        assert_eq!(eval("p | lag(1)", ctx.clone()), json!([[120, 1.0], [180, 2.0], [240, 4.0], [300, 0.0]]));
        assert_eq!(eval("p | lag(3)", ctx.clone()), json!([[240, 1.0], [300, 2.0]]));
        assert_eq!(eval("p | diff", ctx.clone()), json!([[120, 1.0], [180, 2.0], [240, -4.0], [300, 3.0]]));
        // From 0 there is no percent change: left out, or the `zero` value when given.
        assert_eq!(eval("p | pct_change", ctx.clone()), json!([[120, 100.0], [180, 100.0], [240, -100.0]]));
        assert_eq!(eval("p | pct_change(1, 0)", ctx), json!([[120, 100.0], [180, 100.0], [240, -100.0], [300, 0.0]]));
    }

    #[test]
    fn series_filters_map_over_range_results_keeping_each_series_labels() {
        let ctx = json!({"r": [
            {"metric": {"key": "ns/a"}, "points": [[60, 1.0], [120, 3.0], [180, 5.0]]},
            {"metric": {"key": "ns/b"}, "points": [[60, 2.0]]},
        ]});
        assert_eq!(
            eval("r | map('diff') | list", ctx.clone()),
            json!([
                {"metric": {"key": "ns/a"}, "points": [[120, 2.0], [180, 2.0]]},
                {"metric": {"key": "ns/b"}, "points": []},
            ])
        );
        assert_eq!(
            eval("(r | map('rolling', 2, 'mean') | list)[0].points", ctx.clone()),
            json!([[120, 2.0], [180, 4.0]])
        );
        assert_eq!(eval("(r | map('lag', 1) | list)[0].points", ctx.clone()), json!([[120, 1.0], [180, 3.0]]));
        assert_eq!(eval("(r | map('pct_change', 1) | list)[0].points", ctx), json!([[120, 200.0], [180, 200.0 / 3.0]]));
    }

    #[test]
    fn derive_expands_each_range_result_by_every_feature_spec() {
        let ctx = json!({
            "a": [{"metric": {"key": "x"}, "points": [[1, 1.0], [2, 2.0], [3, 4.0]]}],
            "b": [{"metric": {"key": "x"}, "points": [[1, 0.0], [2, 0.0], [3, 0.0]]}],
        });
        let rows = eval(
            "[a, b] | derive(['value', ['diff', 1], ['pct_change', 1, 0], ['rolling', 2, 'max']]) | align_series('metric.key')",
            ctx.clone(),
        );
        assert_eq!(
            rows,
            json!([
                {"key": "x", "t": 2.0, "values": [2.0, 1.0, 100.0, 2.0, 0.0, 0.0, 0.0, 0.0]},
                {"key": "x", "t": 3.0, "values": [4.0, 2.0, 100.0, 4.0, 0.0, 0.0, 0.0, 0.0]},
            ])
        );
        let e = template::shaping_env().compile_expression("[a] | derive([['ewm', 3]])").unwrap();
        let err = e.eval(template::to_value(&ctx)).unwrap_err().to_string();
        assert!(err.contains("is not a feature"), "{err}");
    }

    #[test]
    fn range_results_align_on_series_key_and_timestamp_as_an_inner_join() {
        let ctx = json!({
            "cpu": [
                {"metric": {"key": "ns/a"}, "points": [[60, 1.0], [120, 2.0], [180, 3.0]]},
                {"metric": {"key": "ns/b"}, "points": [[60, 9.0]]},
                {"metric": {}, "points": [[60, 0.0]]},
            ],
            "mem": [
                {"metric": {"key": "ns/b"}, "points": [[60, "0.5"]]},
                {"metric": {"key": "ns/a"}, "points": [[120, 20.0], [180, "NaN"], [60.0, 10.0]]},
            ],
        });
        assert_eq!(
            eval("[cpu, mem] | align_series('metric.key')", ctx.clone()),
            json!([
                {"key": "ns/a", "t": 60.0, "values": [1.0, 10.0]},
                {"key": "ns/a", "t": 120.0, "values": [2.0, 20.0]},
                {"key": "ns/b", "t": 60.0, "values": [9.0, 0.5]},
            ])
        );
        assert_eq!(
            eval("[cpu, mem] | align_series('metric.key', {'ns/b': 1}) | map(attribute='key') | list", ctx.clone()),
            json!(["ns/b"])
        );
        // A derived list joins too: the point without history drops out of the row set.
        assert_eq!(
            eval("[cpu, cpu | map('diff') | list] | align_series('metric.key') | map(attribute='values') | list", ctx),
            json!([[2.0, 1.0], [3.0, 1.0]])
        );
    }

    #[test]
    fn rolling_statistics_cover_the_last_n_points() {
        let ctx = json!({"p": [[1, 1.0], [2, 3.0], [3, 2.0], [4, 10.0]]});
        assert_eq!(eval("p | rolling(3, 'mean')", ctx.clone()), json!([[3, 2.0], [4, 5.0]]));
        assert_eq!(eval("p | rolling(3, 'min')", ctx.clone()), json!([[3, 1.0], [4, 2.0]]));
        assert_eq!(eval("p | rolling(3, 'max')", ctx.clone()), json!([[3, 3.0], [4, 10.0]]));
        assert_eq!(eval("p | rolling(3, 'median')", ctx.clone()), json!([[3, 2.0], [4, 3.0]]));
        assert_eq!(eval("p | rolling(3, 'mad')", ctx.clone()), json!([[3, 1.0], [4, 1.0]]));
        let std = eval("p | rolling(2, 'std')", ctx);
        assert_eq!(std, json!([[2, 1.0], [3, 0.5], [4, 4.0]]));
    }

    #[test]
    fn scores_compare_a_point_with_the_window_before_its_gap() {
        // Baseline (t in (1, 4]): 1, 2, 3 (mean 2, std 0.8165; median 2, MAD 1); 99 at t=5
        // is inside the gap; 10 at t=6 scores 9.80 (z) and 5.40 (MAD).
        let ctx = json!({"p": [[1, 7.0], [2, 1.0], [3, 2.0], [4, 3.0], [5, 99.0], [6, 10.0]]});
        let z = eval("p | score(3, 2)", ctx.clone());
        assert_eq!(z.as_array().unwrap().len(), 1, "{z}");
        assert_eq!(z[0][0], 6);
        assert!((z[0][2].as_f64().unwrap() - 9.798).abs() < 0.01, "{z}");
        let m = eval("p | score(3, 2, 'mad')", ctx.clone());
        assert!((m[0][2].as_f64().unwrap() - 8.0 / 1.4826).abs() < 0.01, "{m}");
        let tagged = eval("p | score(3, 2, 'zscore', 'a/b')", ctx);
        assert_eq!(tagged[0][3], "a/b");
        // A flat baseline has no spread: nothing is scored.
        assert_eq!(eval("[[1, 5], [2, 5], [3, 5], [4, 5], [5, 9]] | score(3)", json!({})), json!([]));
    }
}
