//! The `server` kind: facts about this server itself, so health and version routes are
//! plain tools. `info` answers the version, when the server started, its uptime and the
//! wall-clock time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Effect, Error, Kind, TextContext};

/// The kind.
pub struct Server;

/// A server binding (no settings: it describes the process it runs in).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerBackendSpec {
    /// What the binding is for (documentation only).
    pub description: Option<String>,
}

/// What to ask the server.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ServerCall {
    /// `{name, version, started_at, uptime_seconds, now}` (`now`: the wall clock, also when
    /// the data's own time is a snapshot's capture time).
    Info,
}

/// A server call.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerCallSpec {
    /// The binding.
    pub backend: String,
    /// What to ask.
    pub call: ServerCall,
}

/// A rendered server call.
#[derive(Debug, Clone, Deserialize)]
pub struct ServerRequest {
    call: ServerCall,
}

/// When the process first built a server client (its start, for uptime).
static STARTED: OnceLock<(Instant, DateTime<Utc>)> = OnceLock::new();

fn started() -> (Instant, DateTime<Utc>) {
    *STARTED.get_or_init(|| (Instant::now(), Utc::now()))
}

impl Kind for Server {
    const NAME: &'static str = "server";
    type Binding = ServerBackendSpec;
    type Call = ServerCallSpec;
    type Request = ServerRequest;
    type Client = ();

    fn binding(call: &ServerCallSpec) -> &str {
        &call.backend
    }

    fn effect(_: &ServerCallSpec) -> Effect {
        Effect::Read
    }

    fn action(_: &ServerCallSpec) -> (&'static str, String) {
        ("/call", "server call `info`".into())
    }

    fn field(_: &str) -> Option<TextContext> {
        None
    }

    fn connect(_: &str, _: &ServerBackendSpec) -> Result<(), String> {
        started();
        Ok(())
    }

    async fn call(_: &(), request: ServerRequest, _: Option<Duration>) -> Result<Value, Error> {
        let (at, since) = started();
        Ok(match request.call {
            ServerCall::Info => json!({
                "name": env!("CARGO_PKG_NAME"),
                "version": env!("CARGO_PKG_VERSION"),
                "started_at": since.to_rfc3339_opts(SecondsFormat::Secs, true),
                "uptime_seconds": at.elapsed().as_secs(),
                "now": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            }),
        })
    }

    fn describe(_: &(), request: &ServerRequest) -> Value {
        json!({"server": request.call})
    }
}
