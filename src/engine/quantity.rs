//! Kubernetes quantities, durations and ages, as template filters.

use chrono::{DateTime, Utc};
use minijinja::{Error, ErrorKind, State, Value};

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

/// Parse a Kubernetes quantity (`100m`, `1.5`, `128Mi`, `2G`, `1e3`) to a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let (num, suffix) = if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
        (format!("{num}e{exp}"), "")
    } else {
        (num.to_string(), suffix)
    };
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    Some(n * mult)
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

/// Parse `1h30m`, `45s`, `500ms`, `7d`, `2w` to seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if n_end == 0 {
            return None;
        }
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            "y" => 31536000.0,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    Some(total)
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

/// kubectl-style short duration.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86400, secs % 86400 / 3600, secs % 3600 / 60, secs % 60);
    if d > 0 {
        if h > 0 && d < 10 { format!("{d}d{h}h") } else { format!("{d}d") }
    } else if h > 0 {
        if m > 0 { format!("{h}h{m}m") } else { format!("{h}h") }
    } else if m > 0 {
        if s > 0 && m < 10 { format!("{m}m{s}s") } else { format!("{m}m") }
    } else {
        format!("{s}s")
    }
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
