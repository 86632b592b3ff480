//! The JSON-RPC entry check shared by the HTTP and stdio transports: a message that is not
//! JSON gets -32700, one that is not a JSON-RPC message -32600, a known MCP method with
//! malformed params -32602 (rmcp would route it to its catch-all and answer -32601 "Method
//! not found"). Echoed values are clipped; the id is answered whenever it can be read, even
//! from a message that is cut or malformed.

use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};

use crate::clip::clip;

/// JSON-RPC: the message is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC: the message is not a valid request.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC: the method exists but its params do not fit.
pub const INVALID_PARAMS: i32 = -32602;
/// Implementation-defined server error (used for "server busy" refusals).
pub const SERVER_BUSY: i32 = -32000;

/// Longest parser detail quoted back to the client.
const DETAIL_MAX: usize = 200;

/// Why a message is refused before it reaches the MCP service.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The request's id when it could be read, else null.
    pub id: Value,
    pub code: i32,
    pub message: String,
}

impl Reject {
    /// The JSON-RPC error response.
    pub fn body(&self) -> Value {
        error_body(self.id.clone(), self.code, &self.message)
    }
}

/// A JSON-RPC error response.
pub fn error_body(id: Value, code: i32, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// What the entry check learnt about an acceptable message.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// The method of a request or notification.
    pub method: Option<String>,
    /// The id of a request.
    pub id: Option<Value>,
}

/// Check one message (an HTTP body or a stdio line).
pub fn check(body: &[u8]) -> Result<Checked, Reject> {
    let v: Value = serde_json::from_slice(body).map_err(|e| Reject {
        id: sniff_id(body).unwrap_or(Value::Null),
        code: PARSE_ERROR,
        message: format!("Parse error: {}", clip(&e.to_string(), DETAIL_MAX)),
    })?;
    let invalid =
        |id: Value, why: &str| Reject { id, code: INVALID_REQUEST, message: format!("Invalid Request: {why}") };
    let obj = match &v {
        Value::Object(o) => o,
        Value::Array(_) => return Err(invalid(Value::Null, "JSON-RPC batches are not supported; send one message")),
        _ => return Err(invalid(Value::Null, "a JSON-RPC message is a JSON object")),
    };
    let id = match obj.get("id") {
        None => None,
        Some(i @ (Value::String(_) | Value::Number(_))) => Some(i.clone()),
        Some(_) => return Err(invalid(Value::Null, "`id` must be a string or a number")),
    };
    let answer_id = id.clone().unwrap_or(Value::Null);
    let method = match obj.get("method") {
        None => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(invalid(answer_id, "`method` must be a string")),
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(answer_id, "`jsonrpc` must be \"2.0\""));
    }
    let params_problem = |m: &str| {
        let mut req = serde_json::Map::new();
        req.insert("method".into(), Value::String(m.to_string()));
        if let Some(p) = obj.get("params") {
            req.insert("params".into(), p.clone());
        }
        params_problem(m, Value::Object(req)).map(|detail| Reject {
            id: answer_id.clone(),
            code: INVALID_PARAMS,
            message: format!("Invalid params for `{m}`: {}", clip(&detail, DETAIL_MAX)),
        })
    };
    match serde_json::from_value::<ClientJsonRpcMessage>(v.clone()) {
        Ok(ClientJsonRpcMessage::Request(r)) => {
            if let rmcp::model::ClientRequest::CustomRequest(c) = &r.request
                && let Some(reject) = params_problem(&c.method)
            {
                return Err(reject);
            }
        }
        Ok(_) => {}
        Err(e) => {
            if let (Some(m), Some(_)) = (&method, &id)
                && let Some(reject) = params_problem(m)
            {
                return Err(reject);
            }
            return Err(invalid(answer_id, &clip(&e.to_string(), DETAIL_MAX)));
        }
    }
    Ok(Checked { method, id })
}

/// For a method MCP defines: why `req` (`{method, params}`) is not a valid request of it.
#[allow(deprecated)] // logging and resources/subscribe are deprecated upstream but still served
fn params_problem(method: &str, req: Value) -> Option<String> {
    use rmcp::model::*;
    macro_rules! typed {
        ($($name:literal => $ty:ty),* $(,)?) => {
            match method {
                $($name => serde_json::from_value::<$ty>(req).err().map(|e| e.to_string()),)*
                _ => None,
            }
        };
    }
    typed!(
        "initialize" => InitializeRequest,
        "server/discover" => DiscoverRequest,
        "ping" => PingRequest,
        "completion/complete" => CompleteRequest,
        "logging/setLevel" => SetLevelRequest,
        "prompts/get" => GetPromptRequest,
        "prompts/list" => ListPromptsRequest,
        "resources/list" => ListResourcesRequest,
        "resources/templates/list" => ListResourceTemplatesRequest,
        "resources/read" => ReadResourceRequest,
        "resources/subscribe" => SubscribeRequest,
        "resources/unsubscribe" => UnsubscribeRequest,
        "subscriptions/listen" => SubscriptionsListenRequest,
        "tools/call" => CallToolRequest,
        "tools/list" => ListToolsRequest,
    )
}

/// The top-level `id` of a JSON-RPC message that may be cut short or malformed past it:
/// a string or a number following the key `id` at depth one.
pub fn sniff_id(text: &[u8]) -> Option<Value> {
    let mut i = 0;
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut key: Option<(usize, usize)> = None;
    while i < text.len() {
        match text[i] {
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1 && text[i] == b'{';
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 1 => expect_key = true,
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if i >= text.len() {
                    return None;
                }
                if depth == 1 && expect_key {
                    key = Some((start, i + 1));
                    expect_key = false;
                }
            }
            b':' if depth == 1 => {
                if let Some((s, e)) = key.take()
                    && &text[s..e] == b"\"id\""
                {
                    return read_scalar(&text[i + 1..]);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A JSON string or number at the start of `text` (after whitespace).
fn read_scalar(text: &[u8]) -> Option<Value> {
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &text[start..];
    let end = if rest.first() == Some(&b'"') {
        let mut i = 1;
        while i < rest.len() && rest[i] != b'"' {
            i += if rest[i] == b'\\' { 2 } else { 1 };
        }
        (i < rest.len()).then_some(i + 1)?
    } else {
        rest.iter().position(|b| !(b.is_ascii_digit() || b"-+.eE".contains(b))).unwrap_or(rest.len())
    };
    if end > 1024 {
        return None;
    }
    match serde_json::from_slice::<Value>(&rest[..end]).ok()? {
        v @ (Value::String(_) | Value::Number(_)) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Result<(), (i32, Value)> {
        check(body.as_bytes()).map(|_| ()).map_err(|r| (r.code, r.id))
    }

    #[test]
    fn well_formed_messages_pass() {
        assert!(code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_ok());
        assert!(code(r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}"#).is_ok());
        assert!(code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_ok());
        assert!(code(r#"{"jsonrpc":"2.0","id":3,"method":"vendor/thing","params":{"any":1}}"#).is_ok());
    }

    #[test]
    fn broken_json_is_a_parse_error_that_keeps_a_readable_id() {
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":7,"method":"#), Err((PARSE_ERROR, json!(7))));
        assert_eq!(code("not json"), Err((PARSE_ERROR, Value::Null)));
    }

    #[test]
    fn a_known_method_with_bad_params_is_invalid_params_not_method_not_found() {
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":5}}"#),
            Err((INVALID_PARAMS, json!(2)))
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{}}"#).unwrap_err().0,
            INVALID_PARAMS
        );
    }

    #[test]
    fn non_messages_are_invalid_requests() {
        assert_eq!(code("[]").unwrap_err().0, INVALID_REQUEST);
        assert_eq!(code("3").unwrap_err().0, INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#), Err((INVALID_REQUEST, json!(1))));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#).unwrap_err().0, INVALID_REQUEST);
    }

    #[test]
    fn the_id_is_found_at_the_top_level_only() {
        assert_eq!(sniff_id(br#"{"params":{"id":9},"id":"x","#), Some(json!("x")));
        assert_eq!(sniff_id(br#"{"params":{"id":9}"#), None);
        assert_eq!(
            sniff_id(br#"{"jsonrpc":"2.0", "id" : 12 , "method": "tools/call", "params": {"a": "xxxx"#),
            Some(json!(12))
        );
        assert_eq!(sniff_id(br#"{"id":"a\"b"}"#), Some(json!("a\"b")));
        assert_eq!(sniff_id(b"}}}}{"), None);
    }
}
