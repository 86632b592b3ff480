//! A small lexer over literal SQL text: enough to tell how many statements a text holds,
//! which `$N` placeholders it uses and whether it only reads. Quoted strings, quoted
//! identifiers and comments are skipped, so a `;` or `$1` inside them does not count.

/// What the lexer found in one SQL text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Statements (texts between `;` with a word in them).
    pub statements: usize,
    /// The highest `$N` placeholder, 0 if none.
    pub max_param: usize,
    /// Placeholders of another syntax (`?`, `:name`, `@name`, `$name`), as written.
    pub other_placeholders: Vec<String>,
    /// The words outside strings and comments, upper-cased, in order.
    pub words: Vec<String>,
}

impl Scan {
    /// Whether the statement answers with rows: a query, or a write with RETURNING.
    pub fn returns_rows(&self) -> bool {
        matches!(self.words.first().map(String::as_str), Some("SELECT" | "WITH" | "VALUES"))
            || self.words.iter().any(|w| w == "RETURNING")
    }

    /// Whether the text only reads: its first word is SELECT (or a WITH query without any
    /// data-changing word), and nothing else.
    pub fn reads_only(&self) -> bool {
        const WRITES: &[&str] = &[
            "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE", "GRANT",
            "REVOKE", "VACUUM", "REINDEX", "ATTACH", "DETACH", "PRAGMA", "COPY", "LOCK", "CALL", "DO", "SET", "FOR",
        ];
        match self.words.first().map(String::as_str) {
            Some("SELECT") | Some("WITH") => !self.words.iter().any(|w| WRITES.contains(&w.as_str())),
            _ => false,
        }
    }
}

/// Lex `sql`.
pub fn scan(sql: &str) -> Scan {
    let b = sql.as_bytes();
    let mut out = Scan::default();
    let mut i = 0;
    let mut words_in_statement = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                // A quoted string or identifier; a doubled quote is an escaped one.
                i += 1;
                while i < b.len() {
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b';' => {
                if words_in_statement {
                    out.statements += 1;
                }
                words_in_statement = false;
                i += 1;
            }
            b'$' => {
                let start = i;
                i += 1;
                let digits = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i > digits && !b.get(i).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
                    let n: usize = sql[digits..i].parse().unwrap_or(usize::MAX);
                    out.max_param = out.max_param.max(n);
                } else if b.get(i).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'$') {
                    // `$name` or a PostgreSQL dollar-quoted string (`$$...$$`, `$tag$...$tag$`).
                    let mut j = i;
                    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                        j += 1;
                    }
                    if b.get(j) == Some(&b'$') {
                        let tag = &sql[start..=j];
                        i = match sql[j + 1..].find(tag) {
                            Some(end) => j + 1 + end + tag.len(),
                            None => b.len(),
                        };
                    } else {
                        out.other_placeholders.push(sql[start..j].to_string());
                        i = j;
                    }
                }
                words_in_statement = true;
            }
            b'?' => {
                out.other_placeholders.push("?".into());
                words_in_statement = true;
                i += 1;
            }
            b':' | b'@' if b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) && (i == 0 || b[i - 1] != b':') => {
                // `:name` / `@name` (PostgreSQL's `::type` cast is the arm below).
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.other_placeholders.push(sql[start..i].to_string());
                words_in_statement = true;
            }
            b':' if b.get(i + 1) == Some(&b':') => i += 2,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.words.push(sql[start..i].to_ascii_uppercase());
                words_in_statement = true;
            }
            _ => {
                if !c.is_ascii_whitespace() {
                    words_in_statement = true;
                }
                i += 1;
            }
        }
    }
    if words_in_statement {
        out.statements += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scan;

    #[test]
    fn placeholders_and_statements_are_counted_outside_strings_and_comments() {
        let s = scan("SELECT * FROM t WHERE a = $1 AND b = '$9;' -- $8;\n AND c = $2::text;");
        assert_eq!((s.statements, s.max_param), (1, 2));
        assert!(s.other_placeholders.is_empty(), "{s:?}");
        assert!(s.reads_only());
    }

    #[test]
    fn a_second_statement_is_seen() {
        assert_eq!(scan("SELECT 1; DELETE FROM t").statements, 2);
        assert_eq!(scan("SELECT 1 ;  \n").statements, 1);
    }

    #[test]
    fn other_placeholder_syntaxes_are_reported() {
        let s = scan("SELECT * FROM t WHERE a = ? AND b = :name AND c = @x AND d = $e");
        assert_eq!(s.other_placeholders, ["?", ":name", "@x", "$e"]);
    }

    #[test]
    fn writes_and_data_changing_ctes_are_not_reads() {
        assert!(!scan("INSERT INTO t VALUES ($1)").reads_only());
        assert!(!scan("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x").reads_only());
        assert!(!scan("SELECT * FROM t FOR UPDATE SKIP LOCKED").reads_only());
        assert!(scan("WITH x AS (SELECT 1) SELECT * FROM x").reads_only());
    }

    #[test]
    fn dollar_quoted_strings_are_skipped() {
        let s = scan("SELECT $$ it's $1 $$, $tag$ ; $tag$ , $1");
        assert_eq!((s.statements, s.max_param), (1, 1));
    }
}
