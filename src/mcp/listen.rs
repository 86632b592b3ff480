//! The HTTP accept loop on hyper-util's connection builder, with the limits axum's `serve`
//! does not offer: a connection cap (one more is answered 503 and closed), a header read
//! timeout that also ends idle kept-alive connections, the peer address for per-client
//! limits, and graceful shutdown (in-flight requests finish).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most open connections served at once.
    pub max_connections: usize,
    /// Time to send request headers (and the idle limit of a kept-alive connection).
    pub header_timeout: Duration,
}

/// Connections being refused at once (beyond, they are closed without an answer).
const MAX_REFUSING: usize = 64;
/// How long in-flight requests may run after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 39\r\n\r\nServer busy: too many open connections\n";

/// Serve `app` on `listener` until `shutdown` completes, then drain.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    // Connections watch `signal` to start a graceful shutdown; the server waits until
    // every connection has dropped its `done` receiver.
    let (signal_tx, signal_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: say so once a second, back off.
                    if last_accept_error.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "accept failed");
                        last_accept_error = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Ok(p) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(p);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = app.clone().map_request(move |mut req: http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let signal_tx = signal_tx.clone();
        let done_rx = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
            let mut conn = pin!(conn);
            let mut closing = pin!(signal_tx.closed());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                        break;
                    }
                    _ = &mut closing => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(permit);
            drop(done_rx);
        });
    }
    drop(listener);
    drop(signal_rx);
    drop(done_rx);
    if tokio::time::timeout(DRAIN, done_tx.closed()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN:?}; exiting anyway");
    }
}

/// Answer 503 on a connection over the cap: read what the client sent (briefly, so closing
/// does not reset the connection before it reads the answer), answer, close.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        stream.write_all(BUSY).await?;
        stream.shutdown().await
    })
    .await;
}
