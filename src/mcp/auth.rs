//! OAuth 2.1 resource server for /mcp: bearer JWTs validated against the authorization
//! server's keys (JWKS from OpenID/RFC 8414 discovery or a configured URL; refetched on an
//! unknown key id, rate-limited, for key rotation), issuer, audience = this server's
//! canonical URI, expiry and not-before with clock skew, and the scopes a request needs
//! (read, plus write for destructive tools). Refusals carry the RFC 6750 / RFC 9728
//! challenge: `WWW-Authenticate: Bearer resource_metadata="...", scope="..."` on 401,
//! `error="insufficient_scope"` on 403. The protected resource metadata document is served
//! at `/.well-known/oauth-protected-resource` (and with the resource's path appended).
//! The token itself is never kept or forwarded: only the [`Identity`] read from its claims.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

use crate::identity::{Identity, Source};
use crate::settings::OAuthSettings;

/// The well-known path of the protected resource metadata (RFC 9728).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// How long a fetch of the discovery document or the JWKS may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Fewest seconds between fetches while no keys could be fetched at all.
const EMPTY_RETRY: Duration = Duration::from_secs(1);

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No bearer token: 401 with the challenge and no error code.
    Missing,
    /// A token that is not valid here: 401 `invalid_token` with the reason.
    Invalid(String),
    /// A valid token without the scopes the request needs: 403 `insufficient_scope`.
    Insufficient(Vec<String>),
    /// The issuer's keys cannot be fetched: 503.
    Unavailable(String),
}

/// The resource server: settings, the derived URLs and the cached keys.
pub struct ResourceServer {
    settings: OAuthSettings,
    resource: String,
    metadata_url: String,
    metadata_paths: Vec<String>,
    algorithms: Vec<Algorithm>,
    keys: Keys,
}

/// The issuer's signing keys, fetched on demand.
struct Keys {
    http: reqwest::Client,
    issuer: Option<String>,
    configured_jwks: Option<String>,
    /// The JWKS URL once discovered.
    jwks_url: RwLock<Option<String>>,
    set: RwLock<Option<Arc<JwkSet>>>,
    /// When the last fetch was attempted (single-flight: held while fetching).
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
}

impl ResourceServer {
    /// A resource server for these settings (nothing is fetched yet).
    pub fn new(settings: &OAuthSettings) -> anyhow::Result<ResourceServer> {
        let resource = settings.resource.clone().filter(|r| !r.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "http.oauth.resource is required with OAuth: this server's canonical URI (e.g. https://mcp.example.com/mcp), which tokens must name in `aud`"
            )
        })?;
        let url = reqwest::Url::parse(&resource)
            .map_err(|e| anyhow::anyhow!("http.oauth.resource `{resource}` is not a URL: {e}"))?;
        anyhow::ensure!(
            matches!(url.scheme(), "https" | "http") && url.fragment().is_none() && url.query().is_none(),
            "http.oauth.resource `{resource}` must be an http(s) URL without query or fragment"
        );
        let path = url.path().trim_end_matches('/');
        let origin = url.origin().ascii_serialization();
        let metadata_url = format!("{origin}{METADATA_PATH}{path}");
        let mut metadata_paths = vec![METADATA_PATH.to_string()];
        if !path.is_empty() {
            metadata_paths.push(format!("{METADATA_PATH}{path}"));
        }
        let mut algorithms = Vec::new();
        for name in &settings.algorithms {
            let alg: Algorithm =
                name.parse().map_err(|_| anyhow::anyhow!("http.oauth.algorithms: unknown algorithm `{name}`"))?;
            anyhow::ensure!(
                !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512),
                "http.oauth.algorithms: `{name}` is symmetric; only the issuer's public keys are accepted"
            );
            algorithms.push(alg);
        }
        anyhow::ensure!(!algorithms.is_empty(), "http.oauth.algorithms is empty");
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for the issuer: {e}"))?;
        let issuer = settings.issuer.as_ref().map(|i| i.trim().to_string()).filter(|i| !i.is_empty());
        Ok(ResourceServer {
            resource,
            metadata_url,
            metadata_paths,
            algorithms,
            keys: Keys {
                http,
                issuer,
                configured_jwks: settings.jwks_url.clone(),
                jwks_url: RwLock::new(settings.jwks_url.clone()),
                set: RwLock::new(None),
                last_fetch: tokio::sync::Mutex::new(None),
                min_refresh: Duration::from_secs(settings.jwks_min_refresh_seconds),
            },
            settings: settings.clone(),
        })
    }

    /// The paths the metadata document is served at.
    pub fn metadata_paths(&self) -> &[String] {
        &self.metadata_paths
    }

    /// The protected resource metadata document (RFC 9728).
    pub fn metadata(&self) -> Value {
        let mut servers = self.settings.authorization_servers.clone();
        if servers.is_empty() {
            servers.extend(self.keys.issuer.clone());
        }
        let mut scopes = self.settings.read_scopes.clone();
        scopes.extend(self.settings.write_scopes.iter().filter(|s| !scopes.contains(s)).cloned().collect::<Vec<_>>());
        json!({
            "resource": self.resource,
            "authorization_servers": servers,
            "scopes_supported": scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": "cluster-health-mcp",
        })
    }

    /// The scopes a request needs: read, plus write for a destructive tool call.
    pub fn required_scopes(&self, destructive: bool) -> Vec<String> {
        let mut needed = self.settings.read_scopes.clone();
        if destructive {
            needed
                .extend(self.settings.write_scopes.iter().filter(|s| !needed.contains(s)).cloned().collect::<Vec<_>>());
        }
        needed
    }

    /// Refuse an identity without the scopes a request needs.
    pub fn check_scopes(&self, identity: &Identity, destructive: bool) -> Result<(), Rejection> {
        let needed = self.required_scopes(destructive);
        if needed.iter().all(|s| identity.has_scope(s)) { Ok(()) } else { Err(Rejection::Insufficient(needed)) }
    }

    /// Validate a bearer token and read the caller's identity from its claims.
    pub async fn validate(&self, token: &str) -> Result<Identity, Rejection> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Rejection::Invalid(format!("the bearer token is not a JWT: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Rejection::Invalid(format!("the token's algorithm {:?} is not accepted", header.alg)));
        }
        let jwk = self.keys.find(header.kid.as_deref()).await?;
        if let Some(alg) = jwk.common.key_algorithm
            && alg != jsonwebtoken::jwk::KeyAlgorithm::from(header.alg)
        {
            return Err(Rejection::Invalid("the token's algorithm does not match its key".into()));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| Rejection::Invalid(format!("the issuer's key `{}` is unusable: {e}", kid_of(&jwk))))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.resource]);
        let mut required = vec!["exp", "aud"];
        if let Some(iss) = &self.keys.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            Rejection::Invalid(match e.kind() {
                K::ExpiredSignature => "the token has expired".into(),
                K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
                K::InvalidAudience => format!("the token is not for this server (aud must include {})", self.resource),
                K::InvalidIssuer => "the token is from another issuer".into(),
                K::InvalidSignature => "the token's signature does not verify".into(),
                K::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                _ => format!("the token is not valid: {e}"),
            })
        })?;
        self.identity(&data.claims)
    }

    /// The identity from validated claims.
    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, Rejection> {
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
        let client_id = text("azp").or_else(|| text("client_id"));
        let subject = text("sub")
            .or_else(|| client_id.clone())
            .ok_or_else(|| Rejection::Invalid("the token names no subject (sub)".into()))?;
        let scopes = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let groups = match claims.get(&self.settings.groups_claim) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            source: Source::OAuth,
            username: text(&self.settings.username_claim).unwrap_or_else(|| subject.clone()),
            subject,
            groups,
            scopes,
            issuer: text("iss"),
            client_id,
        })
    }

    /// The HTTP answer for a refusal, with its `WWW-Authenticate` challenge.
    pub fn challenge(&self, rejection: &Rejection) -> Response {
        let read = self.required_scopes(false).join(" ");
        let (status, params, body) = match rejection {
            Rejection::Missing => (StatusCode::UNAUTHORIZED, vec![("scope", read)], "missing bearer token".to_string()),
            Rejection::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                vec![("error", "invalid_token".into()), ("error_description", why.clone()), ("scope", read)],
                why.clone(),
            ),
            Rejection::Insufficient(needed) => (
                StatusCode::FORBIDDEN,
                vec![
                    ("error", "insufficient_scope".into()),
                    ("error_description", format!("this request needs the scopes: {}", needed.join(" "))),
                    ("scope", needed.join(" ")),
                ],
                format!("insufficient scope: this request needs {}", needed.join(" ")),
            ),
            Rejection::Unavailable(why) => {
                let mut resp = (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return resp;
            }
        };
        let mut value = format!("Bearer resource_metadata=\"{}\"", quoted(&self.metadata_url));
        for (k, v) in params {
            value.push_str(&format!(", {k}=\"{}\"", quoted(&v)));
        }
        let mut resp = (status, format!("{body}\n")).into_response();
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// A value fit for a quoted-string in a challenge (printable ASCII, no `"` or `\`).
fn quoted(s: &str) -> String {
    s.chars().map(|c| if c == '"' || c == '\\' || !(' '..='~').contains(&c) { '\'' } else { c }).collect()
}

fn kid_of(jwk: &Jwk) -> &str {
    jwk.common.key_id.as_deref().unwrap_or("(no kid)")
}

impl Keys {
    /// The key for a token's `kid`, fetching the JWKS when it is not known yet or the kid is
    /// new (rotation), at most once per `min_refresh`.
    async fn find(&self, kid: Option<&str>) -> Result<Jwk, Rejection> {
        if let Some(k) = self.lookup(kid)? {
            return Ok(k);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.lookup(kid)? {
            return Ok(k);
        }
        let have_keys = self.set.read().unwrap_or_else(|e| e.into_inner()).is_some();
        let wait = if have_keys { self.min_refresh } else { EMPTY_RETRY };
        if last.is_some_and(|t| t.elapsed() < wait) {
            return Err(if have_keys {
                Rejection::Invalid(format!("the token's signing key `{}` is unknown", kid.unwrap_or("(no kid)")))
            } else {
                Rejection::Unavailable("the authorization server's keys cannot be fetched yet; retry shortly".into())
            });
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(keys = set.keys.len(), "fetched the authorization server's JWKS");
                *self.set.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(set));
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the authorization server's JWKS");
                if !have_keys {
                    return Err(Rejection::Unavailable(format!(
                        "the authorization server's keys cannot be fetched: {e}"
                    )));
                }
            }
        }
        self.lookup(kid)?.ok_or_else(|| {
            Rejection::Invalid(format!("the token's signing key `{}` is unknown", kid.unwrap_or("(no kid)")))
        })
    }

    /// The cached key for `kid` (without a kid: the only signing key, if there is one).
    fn lookup(&self, kid: Option<&str>) -> Result<Option<Jwk>, Rejection> {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        let Some(set) = set.as_ref() else { return Ok(None) };
        let signing = |k: &&Jwk| !matches!(k.common.public_key_use, Some(jsonwebtoken::jwk::PublicKeyUse::Encryption));
        Ok(match kid {
            Some(kid) => set.keys.iter().filter(signing).find(|k| k.common.key_id.as_deref() == Some(kid)).cloned(),
            None => {
                let candidates: Vec<&Jwk> = set.keys.iter().filter(signing).collect();
                match candidates.as_slice() {
                    [only] => Some((*only).clone()),
                    [] => None,
                    _ => {
                        return Err(Rejection::Invalid(
                            "the token has no key id (kid) and the issuer has several keys".into(),
                        ));
                    }
                }
            }
        })
    }

    /// Discover the JWKS URL if needed, then fetch the key set.
    async fn fetch(&self) -> Result<JwkSet, String> {
        let known = self.jwks_url.read().unwrap_or_else(|e| e.into_inner()).clone();
        let url = match known {
            Some(u) => u,
            None => {
                let u = self.discover().await?;
                *self.jwks_url.write().unwrap_or_else(|e| e.into_inner()) = Some(u.clone());
                u
            }
        };
        let set: JwkSet = self
            .get_json(&url)
            .await
            .and_then(|v| serde_json::from_value(v).map_err(|e| format!("{url} is not a JSON Web Key Set: {e}")))?;
        if self.configured_jwks.is_none() && set.keys.is_empty() {
            // Discovery may have pointed at a stale URL: look again next time.
            *self.jwks_url.write().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Ok(set)
    }

    /// The `jwks_uri` of the issuer's OpenID configuration, else of its RFC 8414 metadata.
    async fn discover(&self) -> Result<String, String> {
        let issuer = self.issuer.as_deref().ok_or("neither http.oauth.issuer nor http.oauth.jwks_url is set")?;
        let base = issuer.trim_end_matches('/');
        let mut candidates = vec![format!("{base}/.well-known/openid-configuration")];
        if let Ok(u) = reqwest::Url::parse(issuer) {
            let path = u.path().trim_end_matches('/');
            candidates
                .push(format!("{}/.well-known/oauth-authorization-server{path}", u.origin().ascii_serialization()));
        }
        let mut errors = Vec::new();
        for url in candidates {
            match self.get_json(&url).await {
                Ok(doc) => {
                    if let Some(iss) = doc.get("issuer").and_then(Value::as_str)
                        && iss.trim_end_matches('/') != base
                    {
                        return Err(format!("{url} names issuer `{iss}`, not `{issuer}`"));
                    }
                    return doc
                        .get("jwks_uri")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| format!("{url} has no jwks_uri"));
                }
                Err(e) => errors.push(e),
            }
        }
        Err(errors.join("; "))
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let resp = self.http.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        resp.json().await.map_err(|e| format!("GET {url}: not JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ResourceServer {
        let settings = OAuthSettings {
            issuer: Some("https://issuer.example".into()),
            resource: Some("https://mcp.example.com/mcp".into()),
            ..OAuthSettings::default()
        };
        ResourceServer::new(&settings).unwrap()
    }

    #[test]
    fn the_metadata_url_puts_the_well_known_path_before_the_resource_path() {
        let s = server();
        assert_eq!(s.metadata_url, "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
        assert_eq!(
            s.metadata_paths(),
            ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
        );
        assert_eq!(s.metadata()["authorization_servers"], json!(["https://issuer.example"]));
    }

    #[test]
    fn a_resource_server_needs_its_canonical_uri_and_asymmetric_algorithms() {
        let none = OAuthSettings { issuer: Some("https://i".into()), ..OAuthSettings::default() };
        assert!(ResourceServer::new(&none).is_err());
        let hs = OAuthSettings {
            issuer: Some("https://i".into()),
            resource: Some("https://r/mcp".into()),
            algorithms: vec!["HS256".into()],
            ..OAuthSettings::default()
        };
        let err = ResourceServer::new(&hs).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("symmetric"), "{err}");
    }

    #[test]
    fn claims_become_the_identity_with_scopes_groups_and_username() {
        let s = server();
        let claims = json!({"sub": "u-1", "preferred_username": "alice", "groups": ["dev", "ops"],
            "scope": "mcp:read openid", "iss": "https://issuer.example", "azp": "lightspeed"});
        let id = s.identity(claims.as_object().unwrap()).unwrap();
        assert_eq!((id.subject.as_str(), id.username.as_str()), ("u-1", "alice"));
        assert_eq!(id.groups, ["dev", "ops"]);
        assert!(id.has_scope("mcp:read") && !id.has_scope("mcp:write"));
        assert_eq!(id.client_id.as_deref(), Some("lightspeed"));
        assert_eq!(
            s.check_scopes(&id, true),
            Err(Rejection::Insufficient(vec!["mcp:read".into(), "mcp:write".into()]))
        );
        assert_eq!(s.check_scopes(&id, false), Ok(()));
    }

    #[test]
    fn challenges_name_the_metadata_and_the_scopes() {
        let s = server();
        let r = s.challenge(&Rejection::Invalid("the token has \"expired\"".into()));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", error=\"invalid_token\", error_description=\"the token has 'expired'\", scope=\"mcp:read\""
        );
        let r = s.challenge(&Rejection::Insufficient(vec!["mcp:read".into(), "mcp:write".into()]));
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let h = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(h.contains("error=\"insufficient_scope\"") && h.contains("scope=\"mcp:read mcp:write\""), "{h}");
    }
}
