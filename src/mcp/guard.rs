//! Guards in front of /mcp and the operational endpoints: authentication (the static bearer
//! token, scheme matched without regard to case, and/or OAuth JWTs with the scopes a request
//! needs, [`super::auth`]; the caller's [`Identity`] goes into the request's extensions for
//! the handler), Host allow-list, per-client rate limit, `Accept: */*`, a body
//! read bounded in size and time, the JSON-RPC entry check ([`super::jsonrpc`]) and the
//! session cap (total and per client address) with a clear JSON-RPC error when full.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::Value;

use super::auth::{Rejection, ResourceServer};
use super::jsonrpc::{self, Reject};
use super::state::State as AppState;
use crate::identity::Identity;
use crate::settings::HttpSettings;

/// Everything the guards need, shared by all requests.
pub struct Guard {
    token: Option<String>,
    /// The OAuth resource server, when configured.
    pub oauth: Option<Arc<ResourceServer>>,
    /// The registry (which tools are destructive, for the scopes a call needs).
    state: Arc<AppState>,
    insecure_no_auth: bool,
    /// Accepted Host values; empty accepts any.
    hosts: Vec<String>,
    /// Accepted Origin values (`scheme://host[:port|:*]`); a request with another Origin is
    /// refused, one without an Origin (not a browser) is not.
    origins: Vec<String>,
    stateless: bool,
    body_limit: usize,
    body_timeout: Duration,
    sessions: Sessions,
    rate: RateLimiter,
}

impl Guard {
    /// Guards for these settings (`hosts`: the effective Host allow-list).
    pub fn new(
        settings: &HttpSettings,
        hosts: Vec<String>,
        origins: Vec<String>,
        token: Option<String>,
        oauth: Option<Arc<ResourceServer>>,
        state: Arc<AppState>,
        manager: Arc<LocalSessionManager>,
    ) -> Guard {
        Guard {
            token,
            oauth,
            state,
            insecure_no_auth: settings.insecure_no_auth,
            hosts,
            origins,
            stateless: settings.stateless,
            body_limit: settings.body_limit,
            body_timeout: Duration::from_secs(settings.body_timeout_seconds.max(1)),
            sessions: Sessions {
                manager,
                max_total: settings.max_sessions,
                max_per_client: settings.max_sessions_per_client,
                tracker: Mutex::new(Tracker::default()),
            },
            rate: RateLimiter::new(settings.rate_limit_per_second),
        }
    }

    /// Does the request carry the configured bearer token (or is none configured)?
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return true };
        bearer(headers).is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
    }

    /// Who is calling /mcp: the static token's holder, a validated OAuth identity with the
    /// read scopes, or anonymous when no authentication is configured. Else the refusal.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, Response> {
        let given = bearer(headers);
        if let (Some(token), Some(g)) = (&self.token, given)
            && constant_time_eq(g.as_bytes(), token.as_bytes())
        {
            return Ok(Identity::static_token());
        }
        match &self.oauth {
            Some(rs) => {
                let Some(g) = given else { return Err(rs.challenge(&Rejection::Missing)) };
                let identity = rs.validate(g).await.map_err(|r| rs.challenge(&r))?;
                rs.check_scopes(&identity, false).map_err(|r| rs.challenge(&r))?;
                Ok(identity)
            }
            None if self.token.is_some() => Err(unauthorized()),
            None => Ok(Identity::anonymous()),
        }
    }

    /// The refusal of a call of a destructive tool (a REST route's) by an OAuth identity
    /// without the write scopes (403 `insufficient_scope`), if so.
    pub fn check_destructive(&self, identity: &Identity, destructive: bool) -> Option<Response> {
        let rs = self.oauth.as_ref()?;
        if identity.source != crate::identity::Source::OAuth {
            return None;
        }
        rs.check_scopes(identity, destructive).err().map(|r| rs.challenge(&r))
    }

    /// The refusal of a `tools/call` of a destructive tool by an OAuth identity without the
    /// write scopes (403 `insufficient_scope`), if so.
    fn check_call(&self, identity: &Identity, body: &[u8]) -> Option<Response> {
        let rs = self.oauth.as_ref()?;
        if identity.source != crate::identity::Source::OAuth {
            return None;
        }
        let name = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.pointer("/params/name").and_then(Value::as_str).map(str::to_string));
        let destructive = self.state.current().tools.get(&name?).is_some_and(|t| t.is_destructive());
        rs.check_scopes(identity, destructive).err().map(|r| rs.challenge(&r))
    }

    /// May this request read /metrics or the /readyz detail? With a token configured, the
    /// token decides (a DNS-rebinding page cannot send it); without one, the Host must be
    /// allowed, unless `insecure_no_auth` declared the network trusted (probes and scrapers
    /// use the pod IP as Host).
    /// Returns the refusal, if any.
    pub fn operational(&self, headers: &HeaderMap) -> Option<Response> {
        if self.token.is_some() {
            return (!self.authorized(headers)).then(unauthorized);
        }
        (!(self.insecure_no_auth || self.host_allowed(headers))).then(forbidden_host)
    }

    /// Is the Host header one of the allowed hosts (any Host when no list applies)?
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else { return false };
        let host = host.trim().to_ascii_lowercase();
        let bare = strip_port(&host);
        // An entry with a port must match exactly; one without matches any port.
        self.hosts.iter().map(|h| h.to_ascii_lowercase()).any(|h| h == host || h == bare)
    }
}

impl Guard {
    /// Is the Origin header absent or one of the allowed origins?
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else { return true };
        let Some((scheme, host, port)) = origin.to_str().ok().and_then(parse_origin) else { return false };
        self.origins.iter().any(|allowed| {
            let (base, any_port) = match allowed.trim().strip_suffix(":*") {
                Some(b) => (b, true),
                None => (allowed.trim(), false),
            };
            let Some((a_scheme, a_host, a_port)) = parse_origin(base) else { return false };
            let default = |s: &str| match s {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            };
            a_scheme == scheme
                && a_host == host
                && (any_port || a_port.is_none() || a_port.or(default(&a_scheme)) == port.or(default(&scheme)))
        })
    }

    /// The guards of a REST request (the same as /mcp's): token, Host, Origin, rate limit,
    /// and the body read within the size and time limits. Refusals carry the REST error body
    /// `{status: error, error: MESSAGE}`.
    pub async fn admit(&self, req: Request) -> Result<(axum::http::request::Parts, Bytes), Response> {
        let refuse = |status: StatusCode, message: &str| {
            (status, axum::Json(serde_json::json!({"status": "error", "error": message}))).into_response()
        };
        // The caller, as on /mcp: the static token, or a validated OAuth token with the read
        // scopes; kept in the request's extensions for the call.
        let identity = match self.authenticate(req.headers()).await {
            Ok(i) => i,
            Err(_) if self.oauth.is_none() => {
                let mut resp = refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return Err(resp);
            }
            Err(challenge) => return Err(challenge),
        };
        if !self.host_allowed(req.headers()) {
            return Err(refuse(StatusCode::FORBIDDEN, "Host header is not allowed"));
        }
        if !self.origin_allowed(req.headers()) {
            return Err(refuse(StatusCode::FORBIDDEN, "Origin header is not allowed"));
        }
        if let Err(wait) = self.rate.allow(client_of(&req)) {
            let mut resp = refuse(StatusCode::TOO_MANY_REQUESTS, "too many requests: slow down");
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            return Err(resp);
        }
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(identity);
        match read_limited(body, self.body_limit, self.body_timeout).await {
            Ok(bytes) => Ok((parts, bytes)),
            Err((status, message)) => Err(refuse(status, &message)),
        }
    }
}

/// An origin's (scheme, host, port), lower-cased.
fn parse_origin(value: &str) -> Option<(String, String, Option<u16>)> {
    let uri = axum::http::Uri::try_from(value.trim()).ok()?;
    let authority = uri.authority()?;
    Some((uri.scheme_str()?.to_ascii_lowercase(), authority.host().to_ascii_lowercase(), authority.port_u16()))
}

/// `host` without a trailing `:port` (IPv6 literals keep their brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|i| &host[..=i]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of a request, if it sends one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
}

/// 401 with the challenge.
pub fn unauthorized() -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// 403 for a Host outside the allow-list.
pub fn forbidden_host() -> Response {
    (StatusCode::FORBIDDEN, "Forbidden: Host header is not allowed\n").into_response()
}

/// The client's address (the peer of the connection), or unspecified in-process.
fn client_of(req: &Request) -> IpAddr {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn rpc_error(status: StatusCode, reject: &Reject) -> Response {
    (status, axum::Json(reject.body())).into_response()
}

/// The /mcp guard: token, rate limit, Accept, body, JSON-RPC check, session cap.
pub async fn mcp(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    // (A copy: the request's body is not Sync, so the request itself cannot be borrowed
    // across the validation's await.)
    let headers = req.headers().clone();
    let identity = match guard.authenticate(&headers).await {
        Ok(i) => Arc::new(i),
        Err(resp) => return resp,
    };
    req.extensions_mut().insert((*identity).clone());
    let client = client_of(&req);
    if let Err(wait) = guard.rate.allow(client) {
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests: slow down\n").into_response();
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return resp;
    }
    let (mut parts, body) = req.into_parts();
    normalize_accept(&mut parts.headers, parts.method == Method::POST);
    if parts.method != Method::POST {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let bytes = match read_body(body, guard.body_limit, guard.body_timeout).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let checked = match jsonrpc::check(&bytes) {
        Ok(c) => c,
        Err(reject) => {
            let status = if reject.code == jsonrpc::INVALID_PARAMS { StatusCode::OK } else { StatusCode::BAD_REQUEST };
            return rpc_error(status, &reject);
        }
    };
    if checked.method.as_deref() == Some("tools/call")
        && let Some(resp) = guard.check_call(&identity, &bytes)
    {
        return resp;
    }
    let req = Request::from_parts(parts, Body::from(bytes));
    let creates_session = !guard.stateless
        && checked.method.as_deref() == Some("initialize")
        && !req.headers().contains_key("mcp-session-id");
    if !creates_session {
        return next.run(req).await;
    }
    let reservation = match guard.sessions.reserve(client).await {
        Ok(r) => r,
        Err(message) => {
            let reject = Reject { id: checked.id.unwrap_or(Value::Null), code: jsonrpc::SERVER_BUSY, message };
            let mut resp = rpc_error(StatusCode::SERVICE_UNAVAILABLE, &reject);
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return resp;
        }
    };
    let resp = next.run(req).await;
    if let Some(id) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
        reservation.commit(id);
    }
    resp
}

/// `Accept: */*` (or none) means anything: say so in the terms the MCP service checks.
fn normalize_accept(headers: &mut HeaderMap, post: bool) {
    let wildcard = match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(a) => a.split(',').any(|range| {
            let mut it = range.split(';');
            let essence = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>() == Ok(0.0)));
            essence == "*/*" && !q_zero
        }),
    };
    if wildcard {
        let value = if post { "application/json, text/event-stream" } else { "text/event-stream" };
        headers.insert(header::ACCEPT, HeaderValue::from_static(value));
    }
}

/// The whole body, or the HTTP answer when it is too large (413), malformed (400) or too
/// slow (408).
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, Response> {
    read_limited(body, limit, timeout).await.map_err(|(status, message)| {
        rpc_error(status, &Reject { id: Value::Null, code: jsonrpc::PARSE_ERROR, message })
    })
}

/// The whole body, or the status and message when it is too large, malformed or too slow.
async fn read_limited(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, (StatusCode, String)> {
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| (StatusCode::BAD_REQUEST, format!("could not read the request body: {e}")))?;
            if buf.len() + chunk.len() > limit {
                return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("the request body exceeds {limit} bytes")));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} s", timeout.as_secs()),
        )),
    }
}

/// Session accounting over rmcp's session map: sessions that close or expire leave it, so
/// counts are taken from it and our owner map is pruned against it.
struct Sessions {
    manager: Arc<LocalSessionManager>,
    max_total: usize,
    max_per_client: usize,
    tracker: Mutex<Tracker>,
}

#[derive(Default)]
struct Tracker {
    /// Session id -> client address.
    owners: HashMap<String, IpAddr>,
    /// Sessions being created, per client.
    pending: HashMap<IpAddr, usize>,
}

/// A place for one session being created; released unless committed.
struct Reservation<'a> {
    sessions: &'a Sessions,
    client: IpAddr,
}

impl Sessions {
    async fn reserve(&self, client: IpAddr) -> Result<Reservation<'_>, String> {
        let live = self.manager.sessions.read().await;
        let mut t = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
        t.owners.retain(|id, _| live.contains_key(id.as_str()));
        let pending_total: usize = t.pending.values().sum();
        if live.len() + pending_total >= self.max_total {
            return Err(format!(
                "the server holds its maximum of {} sessions; close sessions you no longer use (HTTP DELETE /mcp with their Mcp-Session-Id) or retry later",
                self.max_total
            ));
        }
        let mine = t.owners.values().filter(|c| **c == client).count() + t.pending.get(&client).copied().unwrap_or(0);
        if mine >= self.max_per_client {
            return Err(format!(
                "this client holds its maximum of {} sessions; close sessions you no longer use (HTTP DELETE /mcp with their Mcp-Session-Id) or retry later",
                self.max_per_client
            ));
        }
        *t.pending.entry(client).or_default() += 1;
        Ok(Reservation { sessions: self, client })
    }
}

impl Reservation<'_> {
    fn commit(self, id: &str) {
        let mut t = self.sessions.tracker.lock().unwrap_or_else(|e| e.into_inner());
        t.owners.insert(id.to_string(), self.client);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut t = self.sessions.tracker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = t.pending.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                t.pending.remove(&self.client);
            }
        }
    }
}

/// A token bucket per client address: `rate` requests per second, bursts of `2 * rate`.
struct RateLimiter {
    rate: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Buckets kept before idle (full) ones are dropped.
const MAX_BUCKETS: usize = 10_000;

impl RateLimiter {
    fn new(per_second: u32) -> RateLimiter {
        RateLimiter { rate: f64::from(per_second), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take a token, or say how long to wait for one.
    fn allow(&self, client: IpAddr) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let burst = 2.0 * self.rate;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&client) {
            let rate = self.rate;
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(client).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("localhost:8080"), "localhost");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("example.com"), "example.com");
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_refuses() {
        let r = RateLimiter::new(5);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!((0..10).all(|_| r.allow(ip).is_ok()));
        assert!(r.allow(ip).is_err());
        assert!(r.allow(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).is_ok(), "per client");
    }

    #[test]
    fn a_wildcard_accept_becomes_what_mcp_needs() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        normalize_accept(&mut h, true);
        assert_eq!(h[header::ACCEPT], "application/json, text/event-stream");
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        normalize_accept(&mut h, true);
        assert_eq!(h[header::ACCEPT], "application/json", "an explicit list is the client's choice");
    }
}
