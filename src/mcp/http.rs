//! Streamable HTTP at /mcp (rmcp's tower service inside axum), plus /healthz, /readyz and
//! /metrics. Loopback by default; Host and Origin allow-lists; optional bearer token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::handler::Handler;
use super::state::State;
use crate::settings::HttpSettings;

/// Bind and serve until SIGINT/SIGTERM.
pub async fn serve(state: Arc<State>, settings: &HttpSettings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&settings.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
    let addr = listener.local_addr()?;
    let ct = CancellationToken::new();
    let app = router(state, settings, addr, ct.clone())?;
    tracing::info!(%addr, "serving MCP over Streamable HTTP at http://{addr}/mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            ct.cancel();
        })
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The allowed Host and Origin values for a bind address.
fn allow_lists(settings: &HttpSettings, addr: SocketAddr) -> (Vec<String>, Vec<String>) {
    let mut hosts = settings.allowed_hosts.clone();
    let mut origins = settings.allowed_origins.clone();
    if addr.ip().is_loopback() {
        hosts.extend(["localhost", "127.0.0.1", "::1", "[::1]"].map(String::from));
        origins.extend(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"].map(String::from));
    } else if hosts.is_empty() {
        tracing::warn!(
            %addr,
            "listening beyond loopback with no http.allowed_hosts: any Host header is accepted (set CHM_HTTP__ALLOWED_HOSTS)"
        );
    }
    (hosts, origins)
}

/// The application: /mcp, health, readiness and metrics.
pub fn router(
    state: Arc<State>,
    settings: &HttpSettings,
    addr: SocketAddr,
    ct: CancellationToken,
) -> anyhow::Result<Router> {
    let (hosts, origins) = allow_lists(settings, addr);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!settings.stateless)
        .with_json_response(settings.stateless)
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(settings.body_limit)
        .with_cancellation_token(ct);
    let handler_state = state.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(Handler { state: handler_state.clone() }),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut mcp_routes = Router::new().nest_service("/mcp", mcp);
    if let Some(path) = &settings.token_file {
        let token = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read token file {}: {e}", path.display()))?
            .trim()
            .to_string();
        anyhow::ensure!(!token.is_empty(), "token file {} is empty", path.display());
        mcp_routes = mcp_routes.layer(middleware::from_fn_with_state(Arc::new(token), require_bearer));
    }
    Ok(Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(mcp_routes))
}

async fn require_bearer(AxState(token): AxState<Arc<String>>, req: Request, next: Next) -> Response {
    let given =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()));
    if ok {
        return next.run(req).await;
    }
    let mut resp = (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz(AxState(state): AxState<Arc<State>>) -> Response {
    let active = state.current();
    let errors = state.errors();
    let body = json!({
        "status": if errors.is_empty() { "ready" } else { "ready (serving the last good registry; the latest reload failed)" },
        "mode": active.mode.name,
        "backends": crate::configure::endpoints(&active),
        "tools": active.tools.len(),
        "resources": active.resources.len(),
        "prompts": active.prompts.len(),
        "reloadErrors": errors,
    });
    (StatusCode::OK, Json(body)).into_response()
}

async fn metrics(AxState(state): AxState<Arc<State>>) -> Response {
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}
