//! The `client` kind: ask the MCP client of the call in the middle of a tool. `elicit` shows
//! the user a message and a form (an object of primitive fields: strings, numbers, booleans,
//! single- and multi-select enums, with defaults) through MCP elicitation and answers
//! `{action: accept | decline | cancel, content}`. A call that did not come from an MCP
//! client (REST, the CLI, a workflow) or whose client did not declare elicitation fails as
//! `unavailable`, naming why; nothing is retried (the user is asked once).

use std::time::Duration;

use rmcp::model::ElicitationSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Effect, Error, ErrorKind, Kind, TextContext};
use crate::units::parse_duration;

/// The kind.
pub struct Client;

/// A client binding: how long the user may take to answer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientBackendSpec {
    /// What the binding is for (documentation only).
    pub description: Option<String>,
    /// How long the user may take to answer (a step's own `timeout` bounds it too).
    #[serde(default = "default_timeout")]
    pub timeout: String,
}

fn default_timeout() -> String {
    "5m".into()
}

/// A client call.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientCallSpec {
    /// The binding.
    pub backend: String,
    /// Ask the user for input.
    pub elicit: ElicitSpec,
}

/// An elicitation: a message and the form to fill.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ElicitSpec {
    /// What to ask the user (a template).
    pub message: String,
    /// The form: a JSON Schema object whose properties are primitive (string, number,
    /// integer, boolean, enum and multi-select enum, optionally with `default`), as the MCP
    /// elicitation specification allows.
    pub schema: Value,
}

/// A rendered client call.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientRequest {
    elicit: ElicitRequest,
}

/// A rendered elicitation.
#[derive(Debug, Clone, Deserialize)]
struct ElicitRequest {
    message: String,
    schema: Value,
}

impl Kind for Client {
    const NAME: &'static str = "client";
    type Binding = ClientBackendSpec;
    type Call = ClientCallSpec;
    type Request = ClientRequest;
    type Client = Duration;

    fn binding(call: &ClientCallSpec) -> &str {
        &call.backend
    }

    fn effect(_: &ClientCallSpec) -> Effect {
        Effect::Read
    }

    fn action(_: &ClientCallSpec) -> (&'static str, String) {
        ("/elicit", "asks the user (elicitation)".into())
    }

    fn check(call: &ClientCallSpec) -> Vec<(String, String)> {
        match serde_json::from_value::<ElicitationSchema>(call.elicit.schema.clone()) {
            Ok(_) => Vec::new(),
            Err(e) => vec![(
                "/elicit/schema".into(),
                format!("not an elicitation form (an object of primitive properties): {e}"),
            )],
        }
    }

    fn field(pointer: &str) -> Option<TextContext> {
        match pointer {
            "/backend" => None,
            // Shown to the user, sent as JSON: no query language to escape for.
            _ => Some(TextContext::Data),
        }
    }

    fn connect(_: &str, binding: &ClientBackendSpec) -> Result<Duration, String> {
        parse_duration(&binding.timeout)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("invalid timeout `{}`", binding.timeout))
    }

    async fn call(default: &Duration, request: ClientRequest, timeout: Option<Duration>) -> Result<Value, Error> {
        let unavailable = |m: String| Error::new(Self::NAME, ErrorKind::Unavailable, m);
        let schema: ElicitationSchema = serde_json::from_value(request.elicit.schema).map_err(|e| {
            Error::new(Self::NAME, ErrorKind::InvalidRequest, format!("the form is not an elicitation schema: {e}"))
        })?;
        let answer = crate::identity::elicit(request.elicit.message, schema, timeout.unwrap_or(*default))
            .await
            .map_err(unavailable)?;
        Ok(json!({"action": answer.action, "content": answer.content}))
    }

    fn describe(_: &Duration, request: &ClientRequest) -> Value {
        json!({"elicit": {"message": request.elicit.message, "schema": request.elicit.schema}})
    }

    fn audit(_: &Duration, _: &ClientRequest) -> (String, String) {
        ("elicit".into(), "the user".into())
    }
}
