//! Fresh identifiers for stored records: a prefix and 8 random hex digits (`wf-1a2b3c4d`, as
//! the original engine's workflow ids; `inc-...` for incidents). Used by the workflow runner
//! and by specs through the `new_id(prefix)` template function.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// `prefix` and 8 hex digits, random per call (RandomState is seeded from the OS once per
/// process; a counter, the clock and the process id vary every call). Not a secret: an id.
pub fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: LazyLock<std::collections::hash_map::RandomState> =
        LazyLock::new(std::collections::hash_map::RandomState::new);
    let mut h = SEED.build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    format!("{prefix}{:08x}", h.finish() as u32)
}

/// Whether `prefix` may start an id: up to 16 letters, digits, `-` and `_` (ids land in
/// URLs and SQL values, and stay harmless in both).
pub fn valid_prefix(prefix: &str) -> bool {
    prefix.len() <= 16 && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_prefix_and_eight_hex_digits_and_differ() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id("inc-")).collect();
        assert_eq!(ids.len(), 10_000, "10,000 ids, no repeat");
        let re = regex::Regex::new(r"^inc-[0-9a-f]{8}$").unwrap();
        assert!(ids.iter().all(|i| re.is_match(i)));
    }

    #[test]
    fn prefixes_are_short_plain_words() {
        assert!(valid_prefix("wf-") && valid_prefix("") && valid_prefix("inc_"));
        assert!(!valid_prefix("a/b") && !valid_prefix("x'") && !valid_prefix(&"a".repeat(17)));
    }
}
