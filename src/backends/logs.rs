//! Pod log lines, optionally filtered by a regular expression, computed off the async
//! workers: the regex runs on the blocking pool (one job per core but one), stops when the
//! call is dropped (timeout or cancellation), matches at most [`MAX_LINE_BYTES`] of each
//! line and scans at most [`MAX_SCANNED_BYTES`] (the newest lines). A hostile pattern over
//! a hostile log costs one core until the step's timeout, never the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::clip::clip;

/// Longest part of one line that is matched and returned, in bytes.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most log text scanned per call, in bytes (the newest lines are kept).
pub const MAX_SCANNED_BYTES: usize = 32 << 20;
/// Largest compiled grep pattern (regex's NFA size limit), in bytes. It bounds the cost of
/// one line (about 0.15 s for the worst patterns measured at 16 KiB), hence how soon a
/// stopped filter gives up; `(?:a{100}){100}` (2.4 s a line) is refused.
const MAX_PATTERN_BYTES: usize = 256 * 1024;

/// One permit per core but one: CPU-bound log filtering leaves a core to the async
/// workers (health checks, other calls).
static CPU: std::sync::LazyLock<Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Semaphore::new(cores.saturating_sub(1).max(1))
});

/// Sets the flag when the awaiting future is dropped, so the blocking job stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `{lines, totalLines, matchedLines}` of a log, filtered by `grep` when it is not empty;
/// `clippedLines` and `skippedBytes` say what the limits left out.
pub async fn logs_json(text: String, grep: Option<String>) -> Result<Value, String> {
    let grep = grep.filter(|g| !g.is_empty());
    if grep.is_none() && text.len() <= 1 << 20 {
        // Small and unfiltered: cheaper inline than a trip to the blocking pool.
        return filter(&text, None, &AtomicBool::new(false));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _cancel = CancelOnDrop(stop.clone());
    let _permit = CPU.acquire().await.map_err(|e| e.to_string())?;
    let job = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || filter(&text, grep.as_deref(), &stop))
    };
    job.await.map_err(|e| format!("log filtering failed: {e}"))?
}

/// The synchronous filter (also used directly by tests and the fuzz harness).
pub fn filter(text: &str, grep: Option<&str>, stop: &AtomicBool) -> Result<Value, String> {
    let re = match grep {
        Some(pattern) => Some(
            regex::RegexBuilder::new(pattern)
                .size_limit(MAX_PATTERN_BYTES)
                .dfa_size_limit(2 * MAX_PATTERN_BYTES)
                .build()
                .map_err(|e| format!("invalid grep pattern: {}", clip(&e.to_string(), 300)))?,
        ),
        None => None,
    };
    // Keep the newest MAX_SCANNED_BYTES, starting at a line boundary.
    let mut skipped = 0usize;
    let mut scanned = text;
    if text.len() > MAX_SCANNED_BYTES {
        let mut start = text.len() - MAX_SCANNED_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let start = text[start..].find('\n').map(|i| start + i + 1).unwrap_or(text.len());
        skipped = start;
        scanned = &text[start..];
    }
    let mut total = 0usize;
    let mut clipped = 0usize;
    let mut lines: Vec<Value> = Vec::new();
    for line in scanned.lines() {
        if stop.load(Ordering::Relaxed) {
            return Err("log filtering was stopped (the call timed out or was cancelled)".into());
        }
        total += 1;
        let head = if line.len() > MAX_LINE_BYTES {
            clipped += 1;
            let mut end = MAX_LINE_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            &line[..end]
        } else {
            line
        };
        if re.as_ref().is_none_or(|re| re.is_match(head)) {
            lines.push(Value::String(if head.len() < line.len() {
                clip(line, MAX_LINE_BYTES)
            } else {
                line.to_string()
            }));
        }
    }
    let mut out = json!({"lines": lines, "totalLines": total, "matchedLines": lines.len()});
    if clipped > 0 {
        out["clippedLines"] = json!(clipped);
    }
    if skipped > 0 {
        out["skippedBytes"] = json!(skipped);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_filtered_by_the_pattern() {
        let v = filter("a error\nb ok\nc error\n", Some("err"), &AtomicBool::new(false)).unwrap();
        assert_eq!(v["lines"], json!(["a error", "c error"]));
        assert_eq!(v["totalLines"], 3);
        assert_eq!(v["matchedLines"], 2);
    }

    #[test]
    fn a_stopped_filter_gives_up_at_the_next_line() {
        let err = filter("a\nb\n", Some("a"), &AtomicBool::new(true)).unwrap_err();
        assert!(err.contains("stopped"), "{err}");
    }

    #[test]
    fn long_lines_are_matched_and_returned_on_their_head_only() {
        let line = format!("{}needle", "x".repeat(MAX_LINE_BYTES));
        let v = filter(&line, Some("needle"), &AtomicBool::new(false)).unwrap();
        assert_eq!(v["matchedLines"], 0);
        assert_eq!(v["clippedLines"], 1);
        let v = filter(&line, None, &AtomicBool::new(false)).unwrap();
        assert!(v["lines"][0].as_str().unwrap().len() < MAX_LINE_BYTES + 32);
    }

    #[test]
    fn only_the_newest_bytes_are_scanned() {
        let text = "old\n".repeat(MAX_SCANNED_BYTES / 4 + 10) + "new\n";
        let v = filter(&text, Some("new"), &AtomicBool::new(false)).unwrap();
        assert_eq!(v["matchedLines"], 1);
        assert!(v["skippedBytes"].as_u64().unwrap() >= 40);
    }

    #[test]
    fn an_invalid_pattern_is_reported() {
        assert!(filter("x", Some("("), &AtomicBool::new(false)).unwrap_err().starts_with("invalid grep pattern"));
    }
}
