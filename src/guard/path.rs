//! URL paths: each templated segment stays exactly one segment.
//!
//! `path_segment` percent-encodes `/`, but a value placed raw, or an escaper undone by a
//! later filter (`| path_segment | replace('%2F', '/')`), can add segments or climb with
//! `..` (`/api/v1/namespaces/{{ ns }}/pods` with `ns = ../../admin`). After rendering, the
//! path must start with `/`, have as many `/`-separated segments as the template rendered
//! with inert values, and contain no dot segment (also percent-encoded: URL parsers treat
//! `%2e%2e` as `..`), no `?` or `#` (they would start a query or fragment), no backslash
//! (URL parsers read it as `/`) and no control characters.

use super::{Context, GuardError, quote};

/// Check that `actual` (real arguments) has the segments of `sentinel` (inert arguments).
pub fn same_segments(actual: &str, sentinel: &str) -> Result<(), GuardError> {
    let invalid = |message: String| GuardError::Invalid { context: Context::UrlPath, message, text: quote(actual) };
    check_chars(actual).map_err(invalid)?;
    check_chars(sentinel).map_err(|message| GuardError::Template {
        context: Context::UrlPath,
        message,
        text: quote(sentinel),
    })?;
    if let Some(seg) = actual.split('/').find(|s| is_dot_segment(s)) {
        return Err(GuardError::Structure {
            context: Context::UrlPath,
            detail: format!("the segment `{}` climbs the path", quote(seg)),
            text: quote(actual),
        });
    }
    let (want, got) = (actual_count(sentinel), actual_count(actual));
    if want != got {
        return Err(GuardError::Structure {
            context: Context::UrlPath,
            detail: format!("the template has {want} segment(s) where the rendering has {got}"),
            text: quote(actual),
        });
    }
    Ok(())
}

/// One path segment sent whole (a model name the backend puts in its own path): no `/`,
/// no dot segment, no `?`, `#`, backslash or control character.
pub fn one_segment(value: &str) -> Result<(), GuardError> {
    let bad =
        |rule: &str| GuardError::Value { what: "URL path segment".into(), value: quote(value), rule: rule.into() };
    if value.contains('/') {
        return Err(bad("one segment: no `/` (values are percent-encoded by path_segment)"));
    }
    if is_dot_segment(value) {
        return Err(bad("`.` and `..` climb the path"));
    }
    if value.chars().any(|c| matches!(c, '?' | '#' | '\\') || c.is_control()) {
        return Err(bad("no `?`, `#`, backslash or control characters"));
    }
    Ok(())
}

fn actual_count(path: &str) -> usize {
    path.split('/').count() - 1
}

fn check_chars(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("a path must start with `/`".into());
    }
    if let Some(c) = path.chars().find(|c| matches!(c, '?' | '#' | '\\') || c.is_control()) {
        return Err(format!(
            "a path may not contain `{}` (queries go in the step's `query`; values are percent-encoded by path_segment)",
            c.escape_default()
        ));
    }
    Ok(())
}

/// `.` or `..`, also when dots are percent-encoded (`%2e`, `.%2E`).
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = "/api/v1/namespaces/chm.sentinel/pods";

    #[test]
    fn an_encoded_value_keeps_one_segment() {
        same_segments("/api/v1/namespaces/a%2Fb/pods", TEMPLATE).unwrap();
        same_segments("/api/v1/namespaces/..a/pods", TEMPLATE).unwrap();
        same_segments("/", "/").unwrap();
    }

    #[test]
    fn a_whole_segment_is_one_segment() {
        one_segment("isolation-forest").unwrap();
        one_segment("a%2Fb").unwrap();
        for bad in ["a/b", "..", "%2e%2E", "a?b", "a#b", "a\\b", "a\nb"] {
            assert!(one_segment(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_slash_in_a_value_adds_a_segment() {
        let e = same_segments("/api/v1/namespaces/a/b/pods", TEMPLATE).unwrap_err();
        assert!(e.to_string().contains("5 segment(s) where the rendering has 6"), "{e}");
    }

    #[test]
    fn a_dot_dot_value_climbs_and_is_refused() {
        for actual in [
            "/api/v1/namespaces/../admin/pods",
            "/api/v1/namespaces/../pods",
            "/api/v1/namespaces/%2e%2E/pods",
            "/api/v1/namespaces/.%2e/pods",
            "/api/v1/namespaces/./pods",
        ] {
            let e = same_segments(actual, TEMPLATE).unwrap_err();
            assert!(matches!(e, GuardError::Structure { .. }), "{actual}: {e}");
        }
    }

    #[test]
    fn a_query_or_fragment_in_a_value_is_refused() {
        for actual in [
            "/api/v1/namespaces/a?x=1/pods",
            "/api/v1/namespaces/a#x/pods",
            "/api/v1/namespaces/a\\b/pods",
            "/api/v1/namespaces/a\r\nHost: evil/pods",
        ] {
            let e = same_segments(actual, TEMPLATE).unwrap_err();
            assert!(matches!(e, GuardError::Invalid { context: Context::UrlPath, .. }), "{actual:?}: {e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_path_must_start_with_a_slash() {
        assert!(matches!(same_segments("api/x", "/api/x"), Err(GuardError::Invalid { .. })));
        assert!(matches!(same_segments("/api/x", "chm.sentinel/x"), Err(GuardError::Template { .. })));
    }
}
