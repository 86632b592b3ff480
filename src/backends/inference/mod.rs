//! The `inference` kind: model servers speaking KServe v1 (`POST /v1/models/{m}:predict` with
//! `instances`) or the Open Inference Protocol v2 (`POST /v2/models/{m}/infer` with named
//! tensors), plus readiness and metadata. Answers are mapped back to one entry per row, so a
//! tool reads `predictions[i]` for `instances[i]` whatever the protocol. A model that is
//! unknown, down, not ready or slow is an error of its kind naming the model and the server.

pub mod address;
pub mod spec;

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::http::{build_client, build_headers, describe_headers, error_chain};
use super::{Effect, Error, ErrorKind, Kind, TextContext};
use crate::clip::{QUOTE_MAX as MAX_QUOTE, clip};
use crate::units::parse_duration;
pub use address::{Address, link};
pub use spec::{
    Datatype, InferenceBackendSpec, InferenceCallSpec, InferenceRequest, InferenceServiceRef, Operation, Protocol,
    Tensor, TensorSpec,
};

/// The kind: KServe v1 / v2 inference.
pub struct Inference;

impl Kind for Inference {
    const NAME: &'static str = "inference";
    type Binding = InferenceBackendSpec;
    type Call = InferenceCallSpec;
    type Request = InferenceRequest;
    type Client = InferenceBackend;

    fn resilience(binding: &InferenceBackendSpec) -> Option<&super::resilience::ResilienceSpec> {
        Some(&binding.resilience)
    }

    fn binding(call: &InferenceCallSpec) -> &str {
        &call.backend
    }

    fn effect(call: &InferenceCallSpec) -> Effect {
        match call.operation {
            // A POST that computes an answer and changes nothing.
            Operation::Infer => Effect::SideEffectFree,
            Operation::ServerReady | Operation::ModelReady | Operation::Metadata => Effect::Read,
        }
    }

    fn action(call: &InferenceCallSpec) -> (&'static str, String) {
        ("/operation", format!("inference operation `{}`", operation_name(call.operation)))
    }

    fn field(pointer: &str) -> Option<TextContext> {
        let top = pointer.trim_start_matches('/').split('/').next().unwrap_or("");
        Some(match top {
            "model" => TextContext::PathSegment,
            "instances" | "inputs" | "parameters" => TextContext::Data,
            _ => return None,
        })
    }

    fn connect(name: &str, binding: &InferenceBackendSpec) -> Result<InferenceBackend, String> {
        InferenceBackend::new(name, binding)
    }

    async fn call(
        client: &InferenceBackend,
        request: InferenceRequest,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        client.call(&request, timeout).await
    }

    fn describe(client: &InferenceBackend, request: &InferenceRequest) -> Value {
        client.describe(request)
    }
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Infer => "infer",
        Operation::ServerReady => "serverReady",
        Operation::ModelReady => "modelReady",
        Operation::Metadata => "metadata",
    }
}

/// Largest response body read (bytes); larger answers are refused, not truncated.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A configured model server.
pub struct InferenceBackend {
    name: String,
    /// Where the model server is.
    pub address: Address,
    protocol: Protocol,
    client: reqwest::Client,
    timeout: Duration,
    headers: HeaderMap,
}

/// What one operation sends.
struct Planned {
    method: reqwest::Method,
    url: reqwest::Url,
    body: Option<Value>,
    /// Rows sent (for mapping the answer back), None when not an inference.
    rows: Option<usize>,
}

impl InferenceBackend {
    /// Set up from a spec: parse the URL, resolve secrets, build the client.
    pub fn new(name: &str, spec: &InferenceBackendSpec) -> Result<Self, String> {
        let address = match (&spec.base_url, &spec.inference_service) {
            (Some(url), None) => {
                let base = reqwest::Url::parse(url).map_err(|e| format!("invalid baseUrl `{url}`: {e}"))?;
                if !matches!(base.scheme(), "http" | "https") {
                    return Err(format!("invalid baseUrl `{url}`: scheme must be http or https"));
                }
                Address::Url(base)
            }
            // An InferenceService wins over a baseUrl, so a mode or settings layer can switch
            // a shipped binding to one (settings files cannot null a field).
            (_, Some(isvc)) => Address::Service(address::ServiceAddress::new(isvc.clone())),
            (None, None) => return Err("no model server address: set baseUrl or inferenceService".into()),
        };
        let timeout = parse_duration(&spec.timeout)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("invalid timeout `{}`", spec.timeout))?;
        Ok(InferenceBackend {
            name: name.to_string(),
            address,
            protocol: spec.protocol,
            client: build_client(&spec.tls).map_err(|e| e.to_string())?,
            timeout,
            headers: build_headers(spec.auth.as_ref(), &spec.headers).map_err(|e| e.to_string())?,
        })
    }

    fn error(&self, kind: ErrorKind, message: impl Into<String>) -> Error {
        Error::new(&self.name, kind, message)
    }

    /// `model `m` on `binding``, for messages.
    fn who(&self, model: Option<&str>) -> String {
        match model {
            Some(m) => format!("model `{}` on `{}` ({})", clip(m, MAX_QUOTE), self.name, self.protocol.as_str()),
            None => format!("model server `{}` ({})", self.name, self.protocol.as_str()),
        }
    }

    fn url(&self, base: &reqwest::Url, path: &str) -> Result<reqwest::Url, Error> {
        let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
        let url = reqwest::Url::parse(&joined).map_err(|e| {
            self.error(ErrorKind::InvalidRequest, format!("the URL `{}` is not valid: {e}", clip(&joined, MAX_QUOTE)))
        })?;
        if url.origin() != base.origin() {
            return Err(self.error(ErrorKind::Refused, "the model name leaves the server's host"));
        }
        Ok(url)
    }

    /// The method, URL and body of a request.
    fn plan(&self, base: &reqwest::Url, r: &InferenceRequest) -> Result<Planned, Error> {
        let model = match (r.operation, r.model.as_deref()) {
            (Operation::ServerReady, m) => m,
            (_, Some(m)) => Some(m),
            (op, None) => {
                return Err(self
                    .error(ErrorKind::InvalidRequest, format!("operation `{}` needs a `model`", operation_name(op))));
            }
        };
        // The model name was checked as one path segment before this (engine checks); check
        // again here, since a request may come from elsewhere.
        if let Some(m) = model
            && let Err(e) = crate::guard::path::one_segment(m)
        {
            return Err(self.error(ErrorKind::Refused, e.to_string()));
        }
        let m = model.unwrap_or_default();
        let get = |path: String| -> Result<Planned, Error> {
            Ok(Planned { method: reqwest::Method::GET, url: self.url(base, &path)?, body: None, rows: None })
        };
        match (self.protocol, r.operation) {
            (Protocol::V1, Operation::ServerReady) => get("/v1/models".into()),
            (Protocol::V1, Operation::ModelReady | Operation::Metadata) => get(format!("/v1/models/{m}")),
            (Protocol::V2, Operation::ServerReady) => get("/v2/health/ready".into()),
            (Protocol::V2, Operation::ModelReady) => get(format!("/v2/models/{m}/ready")),
            (Protocol::V2, Operation::Metadata) => get(format!("/v2/models/{m}")),
            (Protocol::V1, Operation::Infer) => {
                if r.inputs.is_some() {
                    return Err(self.error(
                        ErrorKind::InvalidRequest,
                        format!("{} speaks v1: send `instances`, not named `inputs`", self.who(model)),
                    ));
                }
                let instances = rows_of(r.instances.as_ref()).map_err(|e| self.error(ErrorKind::InvalidRequest, e))?;
                let rows = instances.len();
                let mut body = json!({"instances": instances});
                if let Some(p) = r.parameters.as_ref().filter(|p| !p.is_null()) {
                    body["parameters"] = p.clone();
                }
                Ok(Planned {
                    method: reqwest::Method::POST,
                    url: self.url(base, &format!("/v1/models/{m}:predict"))?,
                    body: Some(body),
                    rows: Some(rows),
                })
            }
            (Protocol::V2, Operation::Infer) => {
                let (inputs, rows) = match (&r.inputs, &r.instances) {
                    (Some(tensors), _) if !tensors.is_empty() => {
                        let mut out = Vec::new();
                        let mut rows = 0;
                        for t in tensors {
                            let (v, n) = tensor_json(t).map_err(|e| self.error(ErrorKind::InvalidRequest, e))?;
                            rows = rows.max(n);
                            out.push(v);
                        }
                        (out, rows)
                    }
                    (_, instances) => {
                        let rows = rows_of(instances.as_ref()).map_err(|e| self.error(ErrorKind::InvalidRequest, e))?;
                        let n = rows.len();
                        let t = Tensor {
                            name: "input-0".into(),
                            datatype: Datatype::Fp64,
                            shape: None,
                            data: Value::Array(rows),
                        };
                        let (v, _) = tensor_json(&t).map_err(|e| self.error(ErrorKind::InvalidRequest, e))?;
                        (vec![v], n)
                    }
                };
                let mut body = json!({"inputs": inputs});
                if let Some(p) = r.parameters.as_ref().filter(|p| !p.is_null()) {
                    body["parameters"] = p.clone();
                }
                Ok(Planned {
                    method: reqwest::Method::POST,
                    url: self.url(base, &format!("/v2/models/{m}/infer"))?,
                    body: Some(body),
                    rows: Some(rows),
                })
            }
        }
    }

    /// What `call` would send.
    pub fn describe(&self, request: &InferenceRequest) -> Value {
        // An InferenceService's URL is read at call time: show where it comes from.
        let (base, resolved) = match &self.address {
            Address::Url(u) => (u.clone(), None),
            Address::Service(s) => {
                let isvc = &s.isvc;
                let placeholder = format!("http://{}.{}.inferenceservice.invalid", isvc.name, isvc.namespace);
                (reqwest::Url::parse(&placeholder).expect("names are URL-safe or refused"), Some(s.label()))
            }
        };
        match self.plan(&base, request) {
            Ok(p) => {
                let url = match &resolved {
                    Some(label) => format!("{{{label}}}{}", p.url.path()),
                    None => p.url.to_string(),
                };
                let mut out = json!({
                    "method": p.method.as_str(),
                    "url": url,
                    "protocol": self.protocol.as_str(),
                    "headers": describe_headers(&self.headers),
                });
                if let Some(b) = p.body {
                    out["body"] = b;
                }
                out
            }
            Err(e) => json!({"error": e.to_string()}),
        }
    }

    /// Perform one operation and map its answer.
    pub async fn call(&self, request: &InferenceRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        let budget = timeout.unwrap_or(self.timeout);
        let started = std::time::Instant::now();
        let base = match &self.address {
            Address::Url(u) => u.clone(),
            Address::Service(s) => s.resolve(&self.name, budget).await?,
        };
        // Reading an InferenceService counts against the call's timeout.
        let timeout = budget.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
        let plan = self.plan(&base, request)?;
        let model = request.model.as_deref().filter(|_| request.operation != Operation::ServerReady);
        let who = self.who(model);
        let where_from = match &self.address {
            Address::Url(_) => "the backend's baseUrl".to_string(),
            Address::Service(s) => format!("the address {} gives ({base})", s.label()),
        };
        if plan.rows == Some(0) {
            // Nothing to score (e.g. no series in the window): the model is not asked.
            return Ok(json!({
                "model": model, "protocol": self.protocol.as_str(), "predictions": [], "outputs": {},
                "rows": 0, "note": "no rows to score",
            }));
        }
        let target = format!("{} {}", plan.method, plan.url);
        let mut builder =
            self.client.request(plan.method.clone(), plan.url.clone()).headers(self.headers.clone()).timeout(timeout);
        if let Some(b) = &plan.body {
            builder = builder.json(b);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                self.error(ErrorKind::Timeout, format!("{who}: no answer within {budget:?}")).at(&target)
            } else if e.is_builder() {
                self.error(
                    ErrorKind::InvalidRequest,
                    format!("{who}: the request cannot be built: {}", error_chain(&e)),
                )
                .at(&target)
            } else {
                self.error(
                    ErrorKind::Unreachable,
                    format!(
                        "{who} could not be reached: {}; check that the model server runs and {where_from} is right",
                        error_chain(&e)
                    ),
                )
                .at(&target)
            }
        };
        let mut resp = builder.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_BODY {
                return Err(self
                    .error(ErrorKind::Upstream, format!("{who}: answer larger than {MAX_BODY} bytes"))
                    .at(&target));
            }
        }
        let text = String::from_utf8_lossy(&body);
        let parsed: Value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(text.to_string()));
        let said = || clip(parsed.get("error").and_then(Value::as_str).unwrap_or(&text), 300);
        // Readiness: a loaded model that is not ready is an answer, not an error.
        if request.operation == Operation::ModelReady && matches!(status, 200 | 503) {
            let ready = status == 200 && parsed.get("ready").and_then(Value::as_bool).unwrap_or(true);
            let mut out = json!({"model": model, "protocol": self.protocol.as_str(), "ready": ready});
            if !ready {
                out["reason"] = Value::String(format!("{who} is not ready: {}", said()));
            }
            return Ok(out);
        }
        if !(200..300).contains(&status) {
            let (kind, what) = match status {
                404 => (ErrorKind::NotFound, format!("{who} is not served there (HTTP 404: {})", said())),
                503 => (ErrorKind::Unavailable, format!("{who} is not ready (HTTP 503: {})", said())),
                s => (ErrorKind::of_status(s), format!("{who} answered HTTP {s}: {}", said())),
            };
            let advice = if kind == ErrorKind::NotFound {
                "; list the models served (get-model-status, list-models) and check the model name"
            } else {
                ""
            };
            return Err(self.error(kind, format!("{what}{advice}")).at(&target));
        }
        Ok(match request.operation {
            Operation::Infer => map_answer(self.protocol, model, &parsed, plan.rows.unwrap_or(0))
                .map_err(|e| self.error(ErrorKind::Upstream, format!("{who}: {e}")).at(&target))?,
            Operation::ServerReady => {
                let mut out = json!({"protocol": self.protocol.as_str(), "ready": true});
                if let Some(ready) = parsed.get("ready").and_then(Value::as_bool) {
                    out["ready"] = Value::Bool(ready);
                }
                if let Some(models) = parsed.get("models") {
                    out["models"] = models.clone();
                }
                out
            }
            Operation::ModelReady => unreachable!("answered above"),
            Operation::Metadata => {
                let mut out = match parsed {
                    Value::Object(m) => m,
                    other => Map::from_iter([("answer".to_string(), other)]),
                };
                out.insert("protocol".into(), self.protocol.as_str().into());
                out.entry("model").or_insert_with(|| model.into());
                Value::Object(out)
            }
        })
    }
}

/// The rows of `instances`: a list (null = none).
fn rows_of(instances: Option<&Value>) -> Result<Vec<Value>, String> {
    match instances {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(rows)) => Ok(rows.clone()),
        Some(other) => Err(format!("`instances` must be a list of rows, got {}", clip(&other.to_string(), MAX_QUOTE))),
    }
}

/// A v2 input tensor as JSON (flat data, shape derived from nesting when not given), and the
/// number of rows (the first dimension).
fn tensor_json(t: &Tensor) -> Result<(Value, usize), String> {
    let mut flat = Vec::new();
    let derived = shape_of(&t.data, &mut flat).map_err(|e| format!("tensor `{}`: {e}", t.name))?;
    let shape: Vec<u64> = match &t.shape {
        None | Some(Value::Null) => derived,
        Some(s) => serde_json::from_value(s.clone())
            .map_err(|_| format!("tensor `{}`: shape must be a list of sizes, got {s}", t.name))?,
    };
    let want: u64 = shape.iter().product();
    if want != flat.len() as u64 {
        return Err(format!("tensor `{}`: shape {shape:?} holds {want} elements, data has {}", t.name, flat.len()));
    }
    for v in &flat {
        let ok = match t.datatype {
            Datatype::Fp64 | Datatype::Fp32 => v.is_number(),
            Datatype::Int64 | Datatype::Int32 => v.is_i64() || v.is_u64(),
            Datatype::Bool => v.is_boolean(),
            Datatype::Bytes => v.is_string(),
        };
        if !ok {
            return Err(format!(
                "tensor `{}`: element {} is not of datatype {:?} (a missing series reads null: filter rows first)",
                t.name,
                clip(&v.to_string(), MAX_QUOTE),
                t.datatype
            ));
        }
    }
    let rows = shape.first().copied().unwrap_or(1) as usize;
    let datatype = serde_json::to_value(t.datatype).expect("datatype serializes");
    Ok((json!({"name": t.name, "shape": shape, "datatype": datatype, "data": flat}), rows))
}

/// The shape of nested lists (every level must be rectangular), collecting the leaves.
fn shape_of(v: &Value, flat: &mut Vec<Value>) -> Result<Vec<u64>, String> {
    match v {
        Value::Array(items) => {
            let mut inner: Option<Vec<u64>> = None;
            for item in items {
                let s = shape_of(item, flat)?;
                match &inner {
                    None => inner = Some(s),
                    Some(prev) if *prev != s => {
                        return Err(format!("rows of different lengths ({prev:?} and {s:?})"));
                    }
                    Some(_) => {}
                }
            }
            let mut shape = vec![items.len() as u64];
            shape.extend(inner.unwrap_or_default());
            Ok(shape)
        }
        Value::Object(_) => Err("a v2 tensor holds numbers, booleans or strings, not objects".into()),
        leaf => {
            flat.push(leaf.clone());
            Ok(Vec::new())
        }
    }
}

/// Map an inference answer back to one entry per row: `predictions` (the first output, or
/// v1's predictions) and `outputs` (every output by name, per row).
pub fn map_answer(protocol: Protocol, model: Option<&str>, answer: &Value, rows: usize) -> Result<Value, String> {
    let mut outputs = Map::new();
    let predictions = match protocol {
        Protocol::V1 => {
            let p = answer.get("predictions").ok_or("the answer has no `predictions`")?;
            match p {
                // Some servers answer one object of named outputs ({cpu: [...], memory: [...]}).
                Value::Object(named) => {
                    for (k, v) in named {
                        outputs.insert(k.clone(), v.clone());
                    }
                    named.values().next().cloned().unwrap_or(Value::Array(Vec::new()))
                }
                other => {
                    outputs.insert("predictions".into(), other.clone());
                    other.clone()
                }
            }
        }
        Protocol::V2 => {
            let outs = answer.get("outputs").and_then(Value::as_array).ok_or("the answer has no `outputs`")?;
            let mut first = None;
            for o in outs {
                let name = o.get("name").and_then(Value::as_str).unwrap_or("output").to_string();
                let per_row = unflatten(o).map_err(|e| format!("output `{name}`: {e}"))?;
                if first.is_none() {
                    first = Some(per_row.clone());
                }
                outputs.insert(name, per_row);
            }
            first.unwrap_or(Value::Array(Vec::new()))
        }
    };
    if let Some(n) = predictions.as_array().map(Vec::len)
        && n != rows
    {
        return Err(format!("sent {rows} rows, got {n} predictions"));
    }
    Ok(json!({
        "model": answer.get("model_name").and_then(Value::as_str).or(model),
        "protocol": protocol.as_str(),
        "predictions": predictions,
        "outputs": outputs,
        "rows": rows,
    }))
}

/// A v2 output tensor as one entry per row: shape `[n]` gives n scalars, `[n, k]` n lists of k.
fn unflatten(o: &Value) -> Result<Value, String> {
    let data = o.get("data").and_then(Value::as_array).ok_or("no `data` list")?;
    let shape: Vec<usize> =
        o.get("shape").and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_else(|| vec![data.len()]);
    // Already nested (some servers send nested data): keep it.
    if data.iter().any(Value::is_array) || shape.len() <= 1 {
        return Ok(Value::Array(data.clone()));
    }
    let width: usize = shape[1..].iter().product();
    if width == 0 || data.len() != shape[0] * width {
        return Err(format!("shape {shape:?} does not match {} elements", data.len()));
    }
    Ok(Value::Array(data.chunks(width).map(|c| Value::Array(c.to_vec())).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(protocol: Protocol) -> InferenceBackend {
        let spec: InferenceBackendSpec =
            serde_json::from_value(json!({"baseUrl": "http://127.0.0.1:9/", "protocol": protocol})).unwrap();
        InferenceBackend::new("ml", &spec).unwrap()
    }

    fn request(v: Value) -> InferenceRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn v1_sends_instances_to_predict() {
        let d = backend(Protocol::V1).describe(&request(json!({"model": "iso", "instances": [[1, 2.5], [3, 4]]})));
        assert_eq!(d["method"], "POST");
        assert_eq!(d["url"], "http://127.0.0.1:9/v1/models/iso:predict");
        assert_eq!(d["body"], json!({"instances": [[1, 2.5], [3, 4]]}));
    }

    #[test]
    fn v2_sends_rows_as_one_tensor_with_shape() {
        let d = backend(Protocol::V2).describe(&request(json!({"model": "iso", "instances": [[1, 2.5], [3, 4]]})));
        assert_eq!(d["url"], "http://127.0.0.1:9/v2/models/iso/infer");
        assert_eq!(
            d["body"],
            json!({"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [1, 2.5, 3, 4]}]})
        );
    }

    #[test]
    fn v2_tensor_shape_must_hold_its_data() {
        let r = request(json!({"model": "m", "inputs": [{"name": "x", "shape": [3], "data": [1, 2]}]}));
        let d = backend(Protocol::V2).describe(&r);
        assert!(d["error"].as_str().unwrap().contains("holds 3 elements, data has 2"), "{d}");
        let r = request(json!({"model": "m", "inputs": [{"name": "x", "data": [[1, null]]}]}));
        let d = backend(Protocol::V2).describe(&r);
        assert!(d["error"].as_str().unwrap().contains("not of datatype"), "{d}");
    }

    #[test]
    fn readiness_paths_follow_the_protocol() {
        let url = |p, op: &str| backend(p).describe(&request(json!({"operation": op, "model": "m"})))["url"].clone();
        assert_eq!(url(Protocol::V2, "serverReady"), "http://127.0.0.1:9/v2/health/ready");
        assert_eq!(url(Protocol::V2, "modelReady"), "http://127.0.0.1:9/v2/models/m/ready");
        assert_eq!(url(Protocol::V2, "metadata"), "http://127.0.0.1:9/v2/models/m");
        assert_eq!(url(Protocol::V1, "serverReady"), "http://127.0.0.1:9/v1/models");
        assert_eq!(url(Protocol::V1, "modelReady"), "http://127.0.0.1:9/v1/models/m");
    }

    #[test]
    fn a_model_name_that_is_not_one_segment_is_refused() {
        for bad in ["../admin", "a/b", "a?x=1", "%2e%2e"] {
            let d = backend(Protocol::V2).describe(&request(json!({"model": bad, "instances": [[1]]})));
            assert!(d["error"].as_str().unwrap().contains("URL path segment"), "{bad}: {d}");
        }
    }

    #[test]
    fn v2_outputs_map_back_to_rows() {
        let answer = json!({"model_name": "reg", "outputs": [
            {"name": "predict", "shape": [2, 2], "datatype": "FP64", "data": [1.0, 2.0, 3.0, 4.0]},
            {"name": "score", "shape": [2], "datatype": "FP64", "data": [0.1, -0.2]}]});
        let m = map_answer(Protocol::V2, Some("reg"), &answer, 2).unwrap();
        assert_eq!(m["predictions"], json!([[1.0, 2.0], [3.0, 4.0]]));
        assert_eq!(m["outputs"]["score"], json!([0.1, -0.2]));
        assert_eq!(m["model"], "reg");
        assert!(map_answer(Protocol::V2, None, &answer, 3).unwrap_err().contains("sent 3 rows, got 2"));
    }

    #[test]
    fn v1_predictions_map_back_to_rows() {
        let m = map_answer(Protocol::V1, Some("iso"), &json!({"predictions": [1, -1]}), 2).unwrap();
        assert_eq!(m["predictions"], json!([1, -1]));
        assert_eq!(m["model"], "iso");
    }

    #[test]
    fn a_binding_needs_an_address_and_an_inference_service_wins() {
        let spec = |v: Value| serde_json::from_value::<InferenceBackendSpec>(v).unwrap();
        let isvc = json!({"namespace": "ml", "name": "iso"});
        let both = spec(json!({"baseUrl": "http://127.0.0.1:9", "inferenceService": isvc}));
        let b = InferenceBackend::new("ml", &both).unwrap();
        assert!(matches!(b.address, Address::Service(_)), "inferenceService wins over baseUrl");
        let none = spec(json!({}));
        assert!(InferenceBackend::new("ml", &none).err().unwrap().contains("set baseUrl or inferenceService"));
    }

    #[tokio::test]
    async fn an_inference_service_address_is_shown_unresolved_and_needs_its_kubernetes_binding() {
        let spec: InferenceBackendSpec =
            serde_json::from_value(json!({"inferenceService": {"namespace": "ml", "name": "iso"}})).unwrap();
        let b = InferenceBackend::new("det", &spec).unwrap();
        let r = request(json!({"model": "iso", "instances": [[1]]}));
        assert_eq!(b.describe(&r)["url"], "{InferenceService `ml/iso`}/v2/models/iso/infer");
        // Not linked (no kubernetes binding in the mode): the call says what to enable.
        let e = b.call(&r, None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("kubernetes binding `kubernetes`, which is not enabled in this mode"), "{e}");
    }

    #[tokio::test]
    async fn a_dead_server_is_unreachable_naming_the_model() {
        let b = backend(Protocol::V2);
        let e = b.call(&request(json!({"model": "iso", "instances": [[1]]})), None).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable);
        assert!(e.message.contains("model `iso` on `ml` (v2)"), "{e}");
    }

    const SPECS: &str = r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {name: ml}
spec: {type: inference, baseUrl: "http://127.0.0.1:9", protocol: v2, timeout: 2s}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {name: test}
spec: {backends: {ml: {}}}
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: score}
spec:
  description: Score rows.
  input:
    model: {type: string, required: true}
    x: {type: number, default: 1.5}
  steps:
    scored:
      inference: {backend: ml, model: "{{ model | path_segment }}", instances: ["{{ [x, 2] }}"]}
  output:
    structured:
      predictions: scored.predictions
"#;

    fn registry(specs: &str) -> Result<crate::engine::registry::Registry, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ml.yaml"), specs).unwrap();
        crate::engine::compile::load_registry(&[dir.path().to_path_buf()])
            .map_err(|d| d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))
    }

    #[test]
    fn an_inference_step_is_side_effect_free_and_its_model_name_needs_path_segment() {
        let reg = std::sync::Arc::new(registry(SPECS).unwrap());
        let active = crate::engine::Active::new(reg, "test").unwrap();
        let tool = active.tools.get("score").unwrap();
        assert!(tool.hints.read_only, "an inference call changes nothing");
        let raw = SPECS.replace("{{ model | path_segment }}", "{{ model }}");
        let Err(e) = registry(&raw) else { panic!("a free-text model name without path_segment passed validation") };
        assert!(e.contains("path_segment"), "{e}");
    }

    #[tokio::test]
    async fn an_escaped_model_name_stays_one_segment_and_a_dead_server_names_the_model() {
        use tokio_util::sync::CancellationToken;
        let active = crate::engine::Active::new(std::sync::Arc::new(registry(SPECS).unwrap()), "test").unwrap();
        let tool = active.tools.get("score").unwrap().clone();
        for (model, shown) in [("iso", "iso"), ("../admin", "..%2Fadmin")] {
            let args = json!({"model": model}).as_object().cloned().unwrap();
            let err = crate::engine::invoke::run(&active, &tool.proc, &args, None, &CancellationToken::new())
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("model `{shown}` on `ml` (v2) could not be reached")), "{err}");
        }
    }
}
