//! Kubernetes quantities, durations and ages, as template filters.

use chrono::{DateTime, Utc};
use minijinja::{Error, ErrorKind, State, Value};

pub use crate::units::{human_duration, parse_duration, parse_quantity};

/// Context variable holding the reference time (a snapshot's capture time).
pub const CLOCK_VAR: &str = "_clock";

/// "Now" for ages: the context's reference time if set, else the system clock.
fn now(state: &State) -> DateTime<Utc> {
    state
        .lookup(CLOCK_VAR)
        .and_then(|v| v.as_str().and_then(|s| s.parse::<DateTime<Utc>>().ok()))
        .unwrap_or_else(Utc::now)
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// `"128Mi" | quantity` -> 134217728; numbers pass through; none stays none.
pub fn quantity_filter(v: Value) -> Result<Value, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(Value::from(()));
    }
    if let Ok(n) = f64::try_from(v.clone()) {
        return Ok(Value::from(n));
    }
    let s = v.to_string();
    parse_quantity(&s).map(Value::from).ok_or_else(|| invalid(format!("`{s}` is not a Kubernetes quantity")))
}

/// A number as a Kubernetes quantity: `671088640 | to_quantity` -> `640Mi` (the largest binary
/// suffix that divides it exactly; a fraction becomes milli-units, `0.25` -> `250m`), or in a
/// given unit rounded up: `(300 * 1024 * 1024 + 1) | to_quantity('Mi')` -> `301Mi`.
/// A string is parsed as a quantity first; none stays none.
pub fn to_quantity_filter(v: Value, unit: Option<&str>) -> Result<Value, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(Value::from(()));
    }
    let n = match f64::try_from(v.clone()) {
        Ok(n) => n,
        Err(_) => {
            let s = v.to_string();
            parse_quantity(&s).ok_or_else(|| invalid(format!("`{s}` is not a Kubernetes quantity")))?
        }
    };
    if !n.is_finite() || n < 0.0 {
        return Err(invalid(format!("{n} cannot be written as a quantity")));
    }
    if let Some(unit) = unit {
        let mult = parse_quantity(&format!("1{unit}"))
            .ok_or_else(|| invalid(format!("`{unit}` is not a quantity suffix (Ki, Mi, Gi, Ti, k, M, G, m)")))?;
        // Tolerate float noise before rounding up (2.5 * 256Mi is exact, 0.1 * 3 is not).
        let units = (n / mult * 1e9).round() / 1e9;
        return Ok(Value::from(format!("{}{unit}", units.ceil() as u64)));
    }
    if n.fract() != 0.0 {
        let milli = (n * 1000.0 * 1e6).round() / 1e6;
        return Ok(Value::from(format!("{}m", milli.ceil() as u64)));
    }
    let n = n as u64;
    for (suffix, mult) in
        [("Ei", 1u64 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
    {
        if n >= mult && n.is_multiple_of(mult) {
            return Ok(Value::from(format!("{}{suffix}", n / mult)));
        }
    }
    Ok(Value::from(n.to_string()))
}

/// An RFC 3339 time as unix seconds: `now() | unix_seconds` -> 1795608000.
pub fn unix_seconds_filter(v: &str) -> Result<i64, Error> {
    v.parse::<DateTime<Utc>>()
        .map(|t| t.timestamp())
        .map_err(|e| invalid(format!("`{v}` is not an RFC 3339 time: {e}")))
}

/// `"1h30m" | duration_seconds` -> 5400.
pub fn duration_seconds_filter(v: &str) -> Result<f64, Error> {
    parse_duration(v).ok_or_else(|| invalid(format!("`{v}` is not a duration (examples: 30s, 5m, 1h30m, 7d)")))
}

/// Seconds since an RFC 3339 timestamp.
pub fn age_seconds_filter(state: &State, v: Value) -> Result<Value, Error> {
    if v.is_none() || v.is_undefined() {
        return Ok(Value::from(()));
    }
    let s = v.to_string();
    let t: DateTime<Utc> = s.parse().map_err(|e| invalid(format!("`{s}` is not an RFC 3339 time: {e}")))?;
    Ok(Value::from((now(state) - t).num_seconds()))
}

/// `creationTimestamp | age` -> `3d4h` (kubectl style: two most significant units).
pub fn age_filter(state: &State, v: Value) -> Result<Value, Error> {
    let secs = age_seconds_filter(state, v)?;
    if secs.is_none() {
        return Ok(secs);
    }
    Ok(Value::from(human_duration(i64::try_from(secs)?)))
}

/// `now()`: the current time, RFC 3339 UTC.
pub fn now_function(state: &State) -> String {
    now(state).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(parse_quantity("100m"), Some(0.1));
        assert_eq!(parse_quantity("128Mi"), Some(134217728.0));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12Zi"), None);
    }

    #[test]
    fn numbers_format_as_canonical_quantities() {
        let f = |v: Value, u: Option<&str>| to_quantity_filter(v, u).unwrap().to_string();
        assert_eq!(f(Value::from(256.0 * 1048576.0 * 2.5), None), "640Mi");
        assert_eq!(f(Value::from(8589934592u64), None), "8Gi");
        assert_eq!(f(Value::from(1536), None), "1536");
        assert_eq!(f(Value::from(0.25), None), "250m");
        assert_eq!(f(Value::from("1Gi"), Some("Mi")), "1024Mi");
        assert_eq!(f(Value::from(300.0 * 1048576.0 + 1.0), Some("Mi")), "301Mi");
        assert!(to_quantity_filter(Value::from(-1), None).is_err());
        assert!(to_quantity_filter(Value::from(1), Some("Xi")).is_err());
        assert_eq!(unix_seconds_filter("2026-11-25T12:00:00Z").unwrap(), 1795608000);
    }

    #[test]
    fn durations_parse_compound_units() {
        assert_eq!(parse_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_duration("500ms"), Some(0.5));
        assert_eq!(parse_duration("7d"), Some(604800.0));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(3 * 86400 + 4 * 3600), "3d4h");
        assert_eq!(human_duration(65), "1m5s");
        assert_eq!(human_duration(42), "42s");
    }
}
