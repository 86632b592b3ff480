//! Streamable HTTP at /mcp (rmcp's tower service inside axum), plus /healthz, /readyz and
//! /metrics. Loopback by default (a wider bind needs a token or an explicit insecure flag);
//! Host and Origin allow-lists; optional static bearer token and/or OAuth 2.1 JWTs with the
//! protected resource metadata ([`super::auth`]); session, connection, rate and
//! slow-client limits ([`super::guard`], [`super::listen`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::guard::{self, Guard};
use super::handler::Handler;
use super::listen;
use super::state::State;
use crate::settings::HttpSettings;

/// Bind and serve until SIGINT/SIGTERM.
pub async fn serve(state: Arc<State>, settings: &HttpSettings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&settings.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
    let addr = listener.local_addr()?;
    check_bind(settings, addr).map_err(|e| anyhow::anyhow!("{e} (bind {})", settings.bind))?;
    let ct = CancellationToken::new();
    let app = router(state, settings, addr, ct.clone())?;
    tracing::info!(%addr, "serving MCP over Streamable HTTP at http://{addr}/mcp");
    let limits = listen::Limits {
        max_connections: settings.max_connections,
        header_timeout: Duration::from_secs(settings.header_timeout_seconds.max(1)),
    };
    listen::serve(listener, app, limits, async move {
        shutdown_signal().await;
        ct.cancel();
    })
    .await;
    Ok(())
}

/// A bind beyond loopback needs authentication, or an explicit statement that the network
/// is trusted.
fn check_bind(settings: &HttpSettings, addr: SocketAddr) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || settings.token_file.is_some() || settings.oauth.enabled() {
        return Ok(());
    }
    anyhow::ensure!(
        settings.insecure_no_auth,
        "refusing to serve beyond loopback without authentication: anyone who can reach it could call every tool. \
         Set a bearer token (CHM_HTTP__TOKEN_FILE=/path) or OAuth (CHM_HTTP__OAUTH__ISSUER, CHM_HTTP__OAUTH__RESOURCE), bind 127.0.0.1, or pass --insecure-no-auth on a trusted network"
    );
    tracing::warn!(%addr, "serving beyond loopback WITHOUT authentication (--insecure-no-auth)");
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

/// What /readyz and /metrics need.
#[derive(Clone)]
struct Ops {
    state: Arc<State>,
    guard: Arc<Guard>,
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
        .with_allowed_hosts(hosts.clone())
        .with_allowed_origins(origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(settings.body_limit)
        .with_cancellation_token(ct);
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(Duration::from_secs(settings.session_idle_seconds.max(1)));
    let manager = Arc::new(manager);
    let handler_state = state.clone();
    let mcp = StreamableHttpService::new(move || Ok(Handler { state: handler_state.clone() }), manager.clone(), config);
    let token = match &settings.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read token file {}: {e}", path.display()))?
                .trim()
                .to_string();
            anyhow::ensure!(!token.is_empty(), "token file {} is empty", path.display());
            Some(token)
        }
        None => None,
    };
    let oauth = if settings.oauth.enabled() {
        let rs = super::auth::ResourceServer::new(&settings.oauth)?;
        tracing::info!(metadata = %rs.metadata(), "OAuth resource server: bearer JWTs required on /mcp");
        Some(Arc::new(rs))
    } else {
        None
    };
    let guard = Arc::new(Guard::new(settings, hosts, origins, token, oauth.clone(), state.clone(), manager));
    let mcp_routes =
        Router::new().nest_service("/mcp", mcp).layer(middleware::from_fn_with_state(guard.clone(), guard::mcp));
    // REST routes from Route specs (and their OpenAPI document), looked up in the registry in
    // force at each request, so a reload changes them like tools.
    let rest = Router::new()
        .route("/openapi.json", get(crate::routes::serve::openapi))
        .fallback(crate::routes::serve::handle)
        .with_state(crate::routes::serve::Rest { state: state.clone(), guard: guard.clone() });
    let ops =
        Router::new().route("/readyz", get(readyz)).route("/metrics", get(metrics)).with_state(Ops { state, guard });
    let mut app = Router::new().route("/healthz", get(|| async { "ok\n" })).merge(ops).merge(mcp_routes).merge(rest);
    if let Some(rs) = oauth {
        let doc = rs.metadata();
        for path in rs.metadata_paths() {
            let doc = doc.clone();
            app = app.route(path, get(move || async move { Json(doc) }));
        }
    }
    Ok(app)
}

/// Readiness: the bare status for anyone (probes); the detail (mode, counts, reload errors
/// with file paths) as for /metrics.
async fn readyz(AxState(ops): AxState<Ops>, headers: HeaderMap) -> Response {
    let errors = ops.state.errors();
    let status =
        if errors.is_empty() { "ready" } else { "ready (serving the last good registry; the latest reload failed)" };
    if ops.guard.operational(&headers).is_some() {
        return (StatusCode::OK, Json(json!({"status": status}))).into_response();
    }
    let active = ops.state.current();
    // Backends whose circuit breaker is not closed: the server still serves every other tool.
    let open: Vec<&String> = active
        .backends
        .resilience
        .iter()
        .filter(|(_, r)| r.state() != crate::backends::resilience::BreakerState::Closed)
        .map(|(n, _)| n)
        .collect();
    let breakers: serde_json::Map<String, serde_json::Value> =
        active.backends.resilience.iter().map(|(n, r)| (n.clone(), r.status())).collect();
    let body = json!({
        "status": status,
        "mode": active.mode.name,
        "backends": crate::configure::endpoints(&active),
        "openBreakers": open,
        "resilience": breakers,
        "tools": active.tools.len(),
        "resources": active.resources.len(),
        "prompts": active.prompts.len(),
        "reloadErrors": errors,
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// Prometheus metrics, behind the token as /mcp, or without one the Host check
/// ([`Guard::operational`]).
async fn metrics(AxState(ops): AxState<Ops>, headers: HeaderMap) -> Response {
    if let Some(resp) = ops.guard.operational(&headers) {
        return resp;
    }
    let active = ops.state.current();
    let mut text = ops.state.metrics.render();
    text.push_str(&crate::backends::resilience::render_metrics(
        active.backends.resilience.iter().map(|(n, r)| (n, r.as_ref())),
    ));
    let mut resp = text.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}
