//! Prometheus text metrics: tool calls, errors and latency by tool.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket bounds, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default, Clone)]
struct ToolStats {
    calls: u64,
    errors: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
}

/// Counters guarded by one mutex (calls are far slower than the lock).
#[derive(Default)]
pub struct Metrics {
    tools: Mutex<BTreeMap<String, ToolStats>>,
    reloads: Mutex<(u64, u64)>,
}

impl Metrics {
    /// Record one finished tool call.
    pub fn record_call(&self, tool: &str, took: Duration, is_error: bool) {
        let mut tools = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        let s = tools.entry(tool.to_string()).or_default();
        s.calls += 1;
        if is_error {
            s.errors += 1;
        }
        let secs = took.as_secs_f64();
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// Record a reload attempt.
    pub fn record_reload(&self, ok: bool) {
        let mut r = self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        if ok { r.0 += 1 } else { r.1 += 1 }
    }

    /// Render in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let tools = self.tools.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut out = String::new();
        out.push_str("# HELP mcp_tool_calls_total Tool calls by tool.\n# TYPE mcp_tool_calls_total counter\n");
        for (t, s) in &tools {
            let _ = writeln!(out, "mcp_tool_calls_total{{tool=\"{t}\"}} {}", s.calls);
        }
        out.push_str("# HELP mcp_tool_errors_total Tool calls that returned an error result.\n# TYPE mcp_tool_errors_total counter\n");
        for (t, s) in &tools {
            let _ = writeln!(out, "mcp_tool_errors_total{{tool=\"{t}\"}} {}", s.errors);
        }
        out.push_str(
            "# HELP mcp_tool_duration_seconds Tool call latency.\n# TYPE mcp_tool_duration_seconds histogram\n",
        );
        for (t, s) in &tools {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "mcp_tool_duration_seconds_bucket{{tool=\"{t}\",le=\"{b}\"}} {}", s.buckets[i]);
            }
            let _ = writeln!(out, "mcp_tool_duration_seconds_bucket{{tool=\"{t}\",le=\"+Inf\"}} {}", s.calls);
            let _ = writeln!(out, "mcp_tool_duration_seconds_sum{{tool=\"{t}\"}} {}", s.sum);
            let _ = writeln!(out, "mcp_tool_duration_seconds_count{{tool=\"{t}\"}} {}", s.calls);
        }
        let (ok, failed) = *self.reloads.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP mcp_spec_reloads_total Spec reloads by result.\n# TYPE mcp_spec_reloads_total counter\n");
        let _ = writeln!(out, "mcp_spec_reloads_total{{result=\"ok\"}} {ok}");
        let _ = writeln!(out, "mcp_spec_reloads_total{{result=\"error\"}} {failed}");
        out
    }
}
