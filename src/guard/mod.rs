//! Run-time request guards: structural checks on every rendered request, whatever the
//! template did.
//!
//! The model is the SQL bind parameter: the spec fixes a request's structure and arguments
//! only fill value slots. Static analysis of templates (the escaping lint) can be wrong or
//! bypassed, so the executor also checks the *result*: it renders each templated request
//! field twice, once with the real arguments ("actual") and once with inert sentinel values
//! ("sentinel": every untrusted string replaced by [`SENTINEL`], empty strings kept empty so
//! `if` takes the same branches; numbers, booleans and enum values kept). Both renderings are
//! parsed in their context (PromQL, a Kubernetes selector, a URL path) and reduced to a
//! fingerprint in which leaf values are slots; if the fingerprints differ, an argument
//! changed the request's structure and the call is refused before anything is sent.
//!
//! Values that are sent as a whole (Kubernetes names and namespaces, header values) have no
//! structure to compare; they are checked against their grammar instead ([`names`]).
//!
//! API, each returning a [`GuardError`] written for the model:
//! - [`promql::same_structure`]`(actual, sentinel)`, and [`promql::check_guardrails`] for
//!   raw PromQL written by the model (label matchers required, blanket matchers refused);
//! - [`selector::same_structure`]`(SelectorKind, actual, sentinel)`;
//! - [`path::same_segments`]`(actual, sentinel)`;
//! - [`names::k8s_name`]`(value, NameKind)` and [`names::header_value`]`(value)`.
//!
//! The executor applies them to every rendered request in `engine::checks`.

pub mod names;
pub mod path;
pub mod promql;
pub mod selector;

use std::fmt;

/// The inert value that replaces every untrusted string in the sentinel rendering. It
/// contains a regex metacharacter (`.`) on purpose: a value that reaches a regex matcher
/// unescaped shows up as `chm.sentinel` instead of `chm\.sentinel`.
pub const SENTINEL: &str = "chm.sentinel";

/// How much of a rendered request an error quotes.
const QUOTE_CHARS: usize = 200;

/// The kind of text a guard checked, named in its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// A PromQL query.
    Promql,
    /// A Kubernetes label selector.
    LabelSelector,
    /// A Kubernetes field selector.
    FieldSelector,
    /// An HTTP URL path.
    UrlPath,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Context::Promql => "PromQL query",
            Context::LabelSelector => "label selector",
            Context::FieldSelector => "field selector",
            Context::UrlPath => "URL path",
        })
    }
}

/// Why a rendered request was refused. Nothing was sent; every message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The request rendered with the real arguments is not valid in its context.
    #[error("rendered {context} does not parse: {message}; the {context}: `{text}`")]
    Invalid {
        /// What kind of text it is.
        context: Context,
        /// The parser's message.
        message: String,
        /// The rendered text, clipped.
        text: String,
    },
    /// The request rendered with inert values is not valid: the template puts a free-text
    /// argument where only a number, duration, name or keyword fits. A spec bug.
    #[error(
        "the {context} template does not parse when its free-text arguments are replaced by plain text \
         ({message}), so its structure cannot be checked; the template places a free-text argument \
         where only a number, duration, name or keyword fits (a spec error: tell the user); \
         rendered with plain text: `{text}`"
    )]
    Template {
        /// What kind of text it is.
        context: Context,
        /// The parser's message.
        message: String,
        /// The sentinel rendering, clipped.
        text: String,
    },
    /// An argument changed the request's structure, not just a value.
    #[error(
        "refused before sending: an argument changed the structure of the {context}, not just a value \
         ({detail}); pass a plain value without quotes, operators or separators; the {context}: `{text}`"
    )]
    Structure {
        /// What kind of text it is.
        context: Context,
        /// Where the structure differs.
        detail: String,
        /// The rendered text, clipped.
        text: String,
    },
    /// The template puts an argument where structure goes (a label name, a grouping label,
    /// a selector key), so any real value changes the structure. A spec error.
    #[error(
        "refused before sending: the template puts an argument into the structure of the {context} \
         ({detail}), where only values may go (a spec error: tell the user); the {context}: `{text}`"
    )]
    ArgumentInStructure {
        /// What kind of text it is.
        context: Context,
        /// Where the structure differs.
        detail: String,
        /// The rendered text, clipped.
        text: String,
    },
    /// A free-text argument reaches a PromQL regex matcher (`=~`, `!~`) without
    /// `promql_regex`, so regex characters in it would be interpreted.
    #[error(
        "refused before sending: a value reaches a regex matcher without promql_regex (`{matcher}`), \
         so regex characters in it would match other series (a spec error: tell the user); the query: `{text}`"
    )]
    UnescapedRegex {
        /// The matcher as rendered with inert values.
        matcher: String,
        /// The rendered query, clipped.
        text: String,
    },
    /// A value sent whole (a Kubernetes name, a header value) breaks its grammar.
    #[error("refused before sending: `{value}` is not a valid {what}: {rule}")]
    Value {
        /// What the value is (e.g. "Kubernetes namespace").
        what: String,
        /// The value, clipped.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
}

/// Quote untrusted text in an error: at most [`QUOTE_CHARS`] characters, control
/// characters escaped (a `\r\n` in an argument must not start a new line in the answer).
pub fn quote(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == QUOTE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The error for fingerprints that differ: a sentinel inside a structural token means the
/// template itself puts an argument there; otherwise the argument's value changed the structure.
pub(crate) fn structure_error(context: Context, template: &[String], actual: &[String], text: &str) -> GuardError {
    let detail = first_difference(template, actual);
    let text = quote(text);
    if template.iter().any(|t| t.contains(SENTINEL)) {
        GuardError::ArgumentInStructure { context, detail, text }
    } else {
        GuardError::Structure { context, detail, text }
    }
}

/// Name the first difference between two fingerprints (token lists) for an error.
fn first_difference(template: &[String], actual: &[String]) -> String {
    let i = template.iter().zip(actual).take_while(|(a, b)| a == b).count();
    match (template.get(i), actual.get(i)) {
        (Some(_), Some(a)) if template.get(i) == actual.get(i + 1) => format!("the rendering adds {a}"),
        (Some(t), Some(_)) if template.get(i + 1) == actual.get(i) => format!("the rendering lacks the template's {t}"),
        (Some(t), Some(a)) => format!("the template has {t} where the rendering has {a}"),
        (Some(t), None) => format!("the rendering lacks the template's {t}"),
        (None, Some(a)) => format!("the rendering adds {a}"),
        (None, None) => "no difference".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_clipped_and_control_characters_escaped() {
        assert_eq!(quote("a\r\nb"), "a\\r\\nb");
        let long = "x".repeat(1000);
        let q = quote(&long);
        assert_eq!(q.chars().count(), QUOTE_CHARS + 1);
        assert!(q.ends_with('…'));
    }

    #[test]
    fn the_sentinel_contains_a_regex_metacharacter() {
        assert_ne!(regex::escape(SENTINEL), SENTINEL);
    }
}
