//! The `http` kind: JSON over HTTP with reqwest (an external coordination engine, KServe,
//! custom ML services).

pub mod spec;

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::secret::{self, REDACTED};
use super::{Effect, Error, ErrorKind, Kind, TextContext};
use crate::units::parse_duration;
pub use spec::{
    AuthSpec, BasicAuthSpec, HeaderValueSpec, HttpBackendSpec, HttpCallSpec, HttpMethod, HttpRequest, TlsSpec,
};

/// The kind: generic JSON over HTTP.
pub struct Http;

impl Kind for Http {
    const NAME: &'static str = "http";
    type Binding = HttpBackendSpec;
    type Call = HttpCallSpec;
    type Request = HttpRequest;
    type Client = HttpBackend;

    fn resilience(binding: &HttpBackendSpec) -> Option<&super::resilience::ResilienceSpec> {
        Some(&binding.resilience)
    }

    fn binding(call: &HttpCallSpec) -> &str {
        &call.backend
    }

    fn effect(call: &HttpCallSpec) -> Effect {
        match call.method {
            HttpMethod::Get | HttpMethod::Head => Effect::Read,
            _ if call.side_effect_free => Effect::SideEffectFree,
            _ => Effect::Write,
        }
    }

    fn action(call: &HttpCallSpec) -> (&'static str, String) {
        ("/method", format!("method `{}`", call.method.as_reqwest()))
    }

    fn field(pointer: &str) -> Option<TextContext> {
        let top = pointer.trim_start_matches('/').split('/').next().unwrap_or("");
        Some(match top {
            "path" => TextContext::UrlPath,
            "headers" => TextContext::Header,
            "query" | "body" => TextContext::Data,
            _ => return None,
        })
    }

    fn connect(name: &str, binding: &HttpBackendSpec) -> Result<HttpBackend, String> {
        HttpBackend::new(name, binding).map_err(|e| e.to_string())
    }

    async fn call(client: &HttpBackend, request: HttpRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        client.call(&request, timeout).await
    }

    fn describe(client: &HttpBackend, request: &HttpRequest) -> Value {
        client.describe(request)
    }
}

/// Largest response body read (bytes); larger answers are refused, not truncated.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A configured HTTP backend.
pub struct HttpBackend {
    name: String,
    base: reqwest::Url,
    client: reqwest::Client,
    timeout: Duration,
    /// Headers sent with every request, secret ones marked sensitive.
    headers: HeaderMap,
}

/// Why an HTTP backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid baseUrl `{0}`: {1}")]
    BaseUrl(String, String),
    #[error("invalid timeout `{0}`")]
    Timeout(String),
    #[error("{0}")]
    Secret(String),
    #[error("invalid header `{0}`")]
    Header(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// Build the headers (auth and extra) for an HTTP-based backend.
pub fn build_headers(
    auth: Option<&AuthSpec>,
    extra: &indexmap::IndexMap<String, HeaderValueSpec>,
) -> Result<HeaderMap, SetupError> {
    let mut headers = HeaderMap::new();
    let sensitive = |s: String| -> Result<HeaderValue, SetupError> {
        let mut v = HeaderValue::from_str(&s).map_err(|_| SetupError::Header("Authorization".into()))?;
        v.set_sensitive(true);
        Ok(v)
    };
    match auth {
        Some(AuthSpec::Bearer(r)) => {
            let token = secret::resolve(r).map_err(SetupError::Secret)?;
            headers.insert(reqwest::header::AUTHORIZATION, sensitive(format!("Bearer {}", token.expose()))?);
        }
        Some(AuthSpec::Basic(b)) => {
            use base64::Engine;
            let pw = secret::resolve(&b.password).map_err(SetupError::Secret)?;
            let raw = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.username, pw.expose()));
            headers.insert(reqwest::header::AUTHORIZATION, sensitive(format!("Basic {raw}"))?);
        }
        None => {}
    }
    for (k, v) in extra {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| SetupError::Header(k.clone()))?;
        let value = match v {
            HeaderValueSpec::Plain(s) => HeaderValue::from_str(s).map_err(|_| SetupError::Header(k.clone()))?,
            HeaderValueSpec::Secret(r) => {
                sensitive(secret::resolve(r).map_err(SetupError::Secret)?.expose().to_string())?
            }
        };
        headers.insert(name, value);
    }
    Ok(headers)
}

/// A reqwest client honouring a TLS spec.
pub fn build_client(tls: &TlsSpec) -> Result<reqwest::Client, SetupError> {
    crate::install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("cluster-health-mcp/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| SetupError::Tls(format!("cannot read CA file {ca}: {e}")))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SetupError::Tls(e.to_string()))? {
            b = b.add_root_certificate(cert);
        }
    }
    if tls.insecure_skip_verify {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| SetupError::Tls(e.to_string()))
}

/// Render headers for display, secrets redacted.
pub fn describe_headers(headers: &HeaderMap) -> Value {
    Value::Object(
        headers
            .iter()
            .map(|(k, v)| {
                let shown =
                    if v.is_sensitive() { REDACTED.to_string() } else { v.to_str().unwrap_or("<binary>").to_string() };
                (k.to_string(), Value::String(shown))
            })
            .collect(),
    )
}

impl HttpBackend {
    /// Set up from a spec: parse the URL, resolve secrets, build the client.
    pub fn new(name: &str, spec: &HttpBackendSpec) -> Result<Self, SetupError> {
        let base = reqwest::Url::parse(&spec.base_url)
            .map_err(|e| SetupError::BaseUrl(spec.base_url.clone(), e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SetupError::BaseUrl(spec.base_url.clone(), "scheme must be http or https".into()));
        }
        let timeout = parse_duration(&spec.timeout)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| SetupError::Timeout(spec.timeout.clone()))?;
        Ok(HttpBackend {
            name: name.to_string(),
            base,
            client: build_client(&spec.tls)?,
            timeout,
            headers: build_headers(spec.auth.as_ref(), &spec.headers)?,
        })
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(&self.name, kind, message)
    }

    /// The full URL of a rendered request (path joined to the base, query appended).
    fn url(&self, request: &HttpRequest) -> Result<reqwest::Url, Error> {
        let path = &request.path;
        if !path.starts_with('/') {
            return Err(self.error(
                ErrorKind::InvalidRequest,
                format!("path `{}` must start with `/`", crate::clip::clip(path, crate::clip::QUOTE_MAX)),
            ));
        }
        let joined = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        let mut url = reqwest::Url::parse(&joined).map_err(|e| {
            self.error(
                ErrorKind::InvalidRequest,
                format!("the rendered URL `{}` is not valid: {e}", crate::clip::clip(&joined, crate::clip::QUOTE_MAX)),
            )
        })?;
        if url.origin() != self.base.origin() {
            return Err(self.error(ErrorKind::Refused, "the rendered path leaves the backend's host"));
        }
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &request.query {
                let values: Vec<&Value> = match v {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                for v in values {
                    match v {
                        Value::Null => {}
                        Value::String(s) if s.is_empty() => {}
                        Value::String(s) => {
                            pairs.append_pair(k, s);
                        }
                        other => {
                            pairs.append_pair(k, &other.to_string());
                        }
                    }
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        Ok(url)
    }

    fn step_headers(&self, request: &HttpRequest) -> Result<HeaderMap, Error> {
        let mut headers = self.headers.clone();
        for (k, v) in &request.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| self.error(ErrorKind::InvalidRequest, format!("bad header name `{k}`")))?;
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let value = HeaderValue::from_str(&text).map_err(|_| {
                self.error(ErrorKind::Refused, format!("the value of header `{k}` is not a single-line header value"))
            })?;
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// What `call` would send.
    pub fn describe(&self, request: &HttpRequest) -> Value {
        let url = self.url(request).map(|u| u.to_string()).unwrap_or_else(|e| format!("<{e}>"));
        let headers = self.step_headers(request).map(|h| describe_headers(&h)).unwrap_or(Value::Null);
        let mut out = json!({
            "method": request.method.as_reqwest().as_str(),
            "url": url,
            "headers": headers,
        });
        if let Some(body) = request.body.as_ref().filter(|b| !b.is_null()) {
            out["body"] = body.clone();
        }
        out
    }

    /// Send the request and read a JSON (or text) answer.
    pub async fn call(&self, request: &HttpRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        let url = self.url(request)?;
        let method = request.method.as_reqwest();
        let target = format!("{method} {url}");
        let timeout = timeout.unwrap_or(self.timeout);
        let mut builder = self.client.request(method, url).headers(self.step_headers(request)?).timeout(timeout);
        if let Some(body) = request.body.as_ref().filter(|b| !b.is_null()) {
            builder = builder.json(body);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                self.error(ErrorKind::Timeout, format!("no answer within {timeout:?}")).at(&target)
            } else if e.is_builder() {
                self.error(ErrorKind::InvalidRequest, format!("the request cannot be built: {}", error_chain(&e)))
                    .at(&target)
            } else {
                self.error(
                    ErrorKind::Unreachable,
                    format!(
                        "could not be reached: {}; check that the service runs and the backend's URL is right",
                        error_chain(&e)
                    ),
                )
                .at(&target)
            }
        };
        let mut resp = builder.send().await.map_err(transport)?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(self
                    .error(ErrorKind::Upstream, format!("response larger than {MAX_BODY} bytes"))
                    .at(&target));
            }
        }
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(self
                .error(
                    ErrorKind::of_status(status.as_u16()),
                    format!("answered HTTP {}: {}", status.as_u16(), crate::clip::clip(&text, 300)),
                )
                .at(&target));
        }
        Ok(match parsed {
            Some(v) => v,
            None if body.is_empty() => Value::Null,
            None => Value::String(String::from_utf8_lossy(&body).into_owned()),
        })
    }
}

/// An error and its sources on one line ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    // reqwest's outer message repeats the URL we already report; start from its cause.
    let (mut out, mut cur) = match e.source() {
        Some(src) if e.to_string().starts_with("error sending request") => (src.to_string(), src.source()),
        _ => (e.to_string(), e.source()),
    };
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}
