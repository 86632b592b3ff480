//! stdio framing in front of rmcp: stdin is read line by line with a length bound, each
//! line passes the JSON-RPC entry check ([`super::jsonrpc`]), and a line that is too long
//! or malformed is answered with a JSON-RPC error when its id can be read (rmcp alone drops
//! such a line with a log entry, and that request never gets an answer). rmcp's output and
//! these errors share one writer, so messages never interleave on stdout.

use rmcp::ServiceExt;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::handler::Handler;
use super::jsonrpc;

/// rmcp's own line limit; ours stays below it so rmcp never drops a line silently.
const RMCP_MAX_LINE: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;
/// Bytes of an over-long line kept to find its id.
const HEAD: usize = 64 * 1024;

/// One line of input.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// A complete line (without its newline).
    Full(Vec<u8>),
    /// A line longer than the limit: its first bytes and its length.
    TooLong { head: Vec<u8>, len: usize },
    /// End of input.
    Eof,
}

/// Read one line of at most `max` bytes without holding more than `max` (or [`HEAD`] of
/// an over-long line) in memory.
pub async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    let mut len = 0usize;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(match len {
                0 => Line::Eof,
                _ if len > max => Line::TooLong { head: line, len },
                _ => Line::Full(line),
            });
        }
        let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        len += chunk.len();
        let keep = if len > max { HEAD } else { max };
        if line.len() < keep {
            let room = keep - line.len();
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            return Ok(if len > max {
                line.truncate(HEAD);
                Line::TooLong { head: line, len }
            } else {
                Line::Full(line)
            });
        }
    }
}

/// Serve `handler` over stdin/stdout; lines longer than `max_line` bytes are refused.
pub async fn serve(handler: Handler, max_line: usize) -> anyhow::Result<()> {
    serve_on(handler, tokio::io::stdin(), tokio::io::stdout(), max_line).await
}

/// Serve over any byte streams (tests use pipes).
pub async fn serve_on<R, W>(handler: Handler, input: R, mut output: W, max_line: usize) -> anyhow::Result<()>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let max_line = max_line.min(RMCP_MAX_LINE - 1);
    let (rmcp_in, mut feed) = tokio::io::duplex(256 * 1024);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(256 * 1024);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);

    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if output.write_all(&msg).await.is_err() || output.flush().await.is_err() {
                break;
            }
        }
    });
    let forward = {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(from_rmcp);
            loop {
                let mut msg = Vec::new();
                match lines.read_until(b'\n', &mut msg).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if !msg.ends_with(b"\n") {
                            msg.push(b'\n');
                        }
                        if tx.send(msg).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    let reader = tokio::spawn(async move {
        let mut input = BufReader::with_capacity(64 * 1024, input);
        loop {
            let reject = match read_line(&mut input, max_line).await {
                Ok(Line::Eof) | Err(_) => break,
                Ok(Line::TooLong { head, len }) => jsonrpc::Reject {
                    id: jsonrpc::sniff_id(&head).unwrap_or(Value::Null),
                    code: jsonrpc::INVALID_REQUEST,
                    message: format!("Invalid Request: the message is {len} bytes; the limit is {max_line}"),
                },
                Ok(Line::Full(line)) => {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match jsonrpc::check(&line) {
                        Ok(_) => {
                            if feed.write_all(&line).await.is_err() || feed.write_all(b"\n").await.is_err() {
                                break;
                            }
                            continue;
                        }
                        Err(reject) => reject,
                    }
                }
            };
            if reject.id.is_null() {
                tracing::warn!(code = reject.code, message = %reject.message, "stdio: refused a message without a readable id");
                continue;
            }
            let mut msg = serde_json::to_vec(&reject.body()).unwrap_or_default();
            msg.push(b'\n');
            if tx.send(msg).await.is_err() {
                break;
            }
        }
        // End of input: rmcp sees EOF and stops.
        drop(feed);
    });
    let service = handler.serve((rmcp_in, rmcp_out)).await?;
    service.waiting().await?;
    reader.abort();
    let _ = forward.await;
    let _ = writer.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_long_ones_keep_their_head() {
        let input = format!("short\n{}\nnext", "x".repeat(100));
        let mut r = BufReader::with_capacity(8, input.as_bytes());
        assert_eq!(read_line(&mut r, 10).await.unwrap(), Line::Full(b"short".to_vec()));
        match read_line(&mut r, 10).await.unwrap() {
            Line::TooLong { head, len } => {
                assert_eq!(len, 100);
                assert!(head.len() <= HEAD);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(read_line(&mut r, 10).await.unwrap(), Line::Full(b"next".to_vec()));
        assert_eq!(read_line(&mut r, 10).await.unwrap(), Line::Eof);
    }
}
