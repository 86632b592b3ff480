//! A test-only backend kind that answers with its request: the whole cost of adding a kind
//! is this folder and one line in `kinds!` (src/backends/mod.rs). Its unit test loads a
//! Backend and a Tool that use it and runs the tool through the engine.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Effect, Error, Kind, TextContext};

/// The kind.
pub struct Echo;

/// An echo binding: a prefix for every answer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EchoBackendSpec {
    /// Text put before every echoed message.
    #[serde(default)]
    pub prefix: String,
}

/// An echo call.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EchoCallSpec {
    /// The binding.
    pub backend: String,
    /// What to echo (a template).
    pub message: String,
    /// A Kubernetes-style name (a template), to show field contexts at work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A rendered echo call.
#[derive(Debug, Clone, Deserialize)]
pub struct EchoRequest {
    message: String,
    #[serde(default)]
    name: Option<String>,
}

impl Kind for Echo {
    const NAME: &'static str = "echo";
    type Binding = EchoBackendSpec;
    type Call = EchoCallSpec;
    type Request = EchoRequest;
    type Client = String;

    fn binding(call: &EchoCallSpec) -> &str {
        &call.backend
    }

    fn effect(_: &EchoCallSpec) -> Effect {
        Effect::Read
    }

    fn action(_: &EchoCallSpec) -> (&'static str, String) {
        ("/message", "echo".into())
    }

    fn field(pointer: &str) -> Option<TextContext> {
        match pointer {
            "/message" => Some(TextContext::Data),
            "/name" => Some(TextContext::Name),
            _ => None,
        }
    }

    fn connect(_: &str, binding: &EchoBackendSpec) -> Result<String, String> {
        Ok(binding.prefix.clone())
    }

    async fn call(prefix: &String, request: EchoRequest, _: Option<Duration>) -> Result<Value, Error> {
        Ok(json!({"echo": format!("{prefix}{}", request.message), "name": request.name}))
    }

    fn describe(prefix: &String, request: &EchoRequest) -> Value {
        json!({"echo": format!("{prefix}{}", request.message)})
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio_util::sync::CancellationToken;

    use crate::engine::{Active, invoke};

    const SPECS: &str = r#"
apiVersion: cluster-health-mcp/v1
kind: Backend
metadata: {name: parrot}
spec: {type: echo, prefix: "parrot says: "}
---
apiVersion: cluster-health-mcp/v1
kind: Mode
metadata: {name: test}
spec: {backends: {parrot: {}}}
---
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: repeat}
spec:
  description: Say it back.
  input:
    words: {type: string, required: true}
    name: {type: string, default: "polly"}
  steps:
    said:
      echo: {backend: parrot, message: "{{ words | upper }}", name: "{{ name }}"}
  output:
    structured:
      said: said.echo
    text: "{{ said }}"
"#;

    fn active() -> Active {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("echo.yaml"), SPECS).unwrap();
        let reg = crate::engine::compile::load_registry(&[dir.path().to_path_buf()])
            .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")));
        Active::new(Arc::new(reg), "test").unwrap()
    }

    #[tokio::test]
    async fn a_new_backend_kind_needs_only_its_folder_and_one_line() {
        let active = active();
        let tool = active.tools.get("repeat").unwrap().clone();
        let args = serde_json::json!({"words": "hello"}).as_object().cloned().unwrap();
        let out = invoke::run(&active, &tool.proc, &args, None, &CancellationToken::new()).await.unwrap();
        assert_eq!(out.text, "parrot says: HELLO");
        assert!(tool.hints.read_only);
    }

    #[tokio::test]
    async fn its_fields_get_the_engine_checks_of_their_context() {
        let active = active();
        let tool = active.tools.get("repeat").unwrap().clone();
        let args = serde_json::json!({"words": "hi", "name": "a?b"}).as_object().cloned().unwrap();
        let err = invoke::run(&active, &tool.proc, &args, None, &CancellationToken::new()).await.unwrap_err();
        assert!(err.to_string().contains("refused before sending"), "{err}");
    }
}
