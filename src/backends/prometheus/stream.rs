//! The series cap, enforced while the response body streams in: a byte-level scan counts the
//! series of `data.result` as they arrive, so a query that matches millions of series is
//! refused after the cap plus one, without downloading (or parsing) the rest.

/// Counts the objects of the `result` array of a Prometheus API answer
/// (`{"status": ..., "data": {"resultType": ..., "result": [{...}, ...]}}`), chunk by chunk.
#[derive(Debug, Default)]
pub struct SeriesCounter {
    /// Open containers: `true` for an object, `false` for an array.
    stack: Vec<bool>,
    /// Depth of the `result` array while inside it.
    result_at: Option<usize>,
    in_string: bool,
    escaped: bool,
    /// In an object, the next string is a key.
    expect_key: bool,
    /// The key being read, when it is a key of `data` (capped: only `result` matters).
    key: Vec<u8>,
    reading_key: bool,
    /// The last key of `data` was `result`.
    after_result_key: bool,
    /// Series seen so far.
    pub series: usize,
}

impl SeriesCounter {
    /// Feed the next chunk of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.reading_key {
                        self.reading_key = false;
                        self.after_result_key = self.key == b"result";
                    }
                } else if self.reading_key && self.key.len() < 8 {
                    self.key.push(b);
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    // A key of `data` (the object at depth 2); any other string is a value.
                    if self.expect_key && self.stack.len() == 2 {
                        self.reading_key = true;
                        self.key.clear();
                    } else {
                        self.after_result_key = false;
                    }
                    self.expect_key = false;
                }
                b'{' | b'[' => {
                    if self.result_at == Some(self.stack.len()) && b == b'{' {
                        self.series += 1;
                    }
                    if b == b'[' && self.stack.len() == 2 && self.after_result_key {
                        self.result_at = Some(self.stack.len() + 1);
                    }
                    self.after_result_key = false;
                    self.stack.push(b == b'{');
                    self.expect_key = b == b'{';
                }
                b'}' | b']' => {
                    if self.result_at == Some(self.stack.len()) {
                        self.result_at = None;
                    }
                    self.stack.pop();
                    self.expect_key = false;
                }
                b',' => self.expect_key = self.stack.last() == Some(&true),
                b':' => {}
                b if b.is_ascii_whitespace() => {}
                _ => self.after_result_key = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(body: &str, chunk: usize) -> usize {
        let mut c = SeriesCounter::default();
        for part in body.as_bytes().chunks(chunk) {
            c.feed(part);
        }
        c.series
    }

    #[test]
    fn counts_the_series_of_the_result_array_in_any_chunking() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"{[\"result\""},"value":[1,"2"]},{"metric":{},"value":[1,"3"]}]},"warnings":["x"]}"#;
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(count(body, chunk), 2, "chunk {chunk}");
        }
    }

    #[test]
    fn other_shapes_count_nothing() {
        assert_eq!(count(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#, 4), 0);
        assert_eq!(count(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#, 4), 0);
        assert_eq!(count(r#"{"status":"success","data":{"result":"x","other":[{},{}]}}"#, 4), 0);
    }
}
