//! The `http` backend: JSON over HTTP with reqwest (coordination engine, KServe, custom ML).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::secret::{self, REDACTED};
use super::{Error, text_field};
use crate::engine::quantity::parse_duration;
use crate::spec::model::{AuthSpec, HeaderValueSpec, HttpBackendSpec};

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
pub fn build_client(tls: &crate::spec::model::TlsSpec) -> Result<reqwest::Client, SetupError> {
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

    fn invalid(&self, message: impl Into<String>) -> Error {
        Error::InvalidRequest { backend: self.name.clone(), message: message.into() }
    }

    /// The full URL of a rendered request (path joined to the base, query appended).
    fn url(&self, request: &Value) -> Result<reqwest::Url, Error> {
        let path = text_field(request, "path").unwrap_or_default();
        if !path.starts_with('/') {
            return Err(self.invalid(format!("path `{path}` must start with `/`")));
        }
        let joined = format!("{}{}", self.base.as_str().trim_end_matches('/'), path);
        let mut url = reqwest::Url::parse(&joined).map_err(|e| self.invalid(format!("bad URL `{joined}`: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(self.invalid("the rendered path leaves the backend's host"));
        }
        if let Some(Value::Object(query)) = request.get("query") {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
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

    fn method(&self, request: &Value) -> Result<reqwest::Method, Error> {
        let m = text_field(request, "method").unwrap_or_else(|| "GET".into());
        reqwest::Method::from_bytes(m.as_bytes()).map_err(|_| self.invalid(format!("bad method `{m}`")))
    }

    fn step_headers(&self, request: &Value) -> Result<HeaderMap, Error> {
        let mut headers = self.headers.clone();
        if let Some(Value::Object(h)) = request.get("headers") {
            for (k, v) in h {
                let name =
                    HeaderName::from_bytes(k.as_bytes()).map_err(|_| self.invalid(format!("bad header name `{k}`")))?;
                let text = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let value =
                    HeaderValue::from_str(&text).map_err(|_| self.invalid(format!("bad value for header `{k}`")))?;
                headers.insert(name, value);
            }
        }
        Ok(headers)
    }

    /// What `call` would send.
    pub fn describe(&self, request: &Value) -> Value {
        let url = self.url(request).map(|u| u.to_string()).unwrap_or_else(|e| format!("<{e}>"));
        let headers = self.step_headers(request).map(|h| describe_headers(&h)).unwrap_or(Value::Null);
        let mut out = json!({
            "method": text_field(request, "method").unwrap_or_else(|| "GET".into()),
            "url": url,
            "headers": headers,
        });
        if let Some(body) = request.get("body").filter(|b| !b.is_null()) {
            out["body"] = body.clone();
        }
        out
    }

    /// Send the request and read a JSON (or text) answer.
    pub async fn call(&self, request: &Value, timeout: Option<Duration>) -> Result<Value, Error> {
        let url = self.url(request)?;
        let method = self.method(request)?;
        let target = format!("{method} {url}");
        let timeout = timeout.unwrap_or(self.timeout);
        let mut builder = self.client.request(method, url).headers(self.step_headers(request)?).timeout(timeout);
        if let Some(body) = request.get("body").filter(|b| !b.is_null()) {
            builder = builder.json(body);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout { backend: self.name.clone(), after: timeout, target: target.clone() }
            } else {
                Error::Transport { backend: self.name.clone(), target: target.clone(), message: error_chain(&e) }
            }
        };
        let mut resp = builder.send().await.map_err(transport)?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(Error::Decode {
                    backend: self.name.clone(),
                    target,
                    message: format!("response larger than {MAX_BODY} bytes"),
                });
            }
        }
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let excerpt: String = text.chars().take(300).collect();
            return Err(Error::Status { backend: self.name.clone(), status: status.as_u16(), target, body: excerpt });
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
