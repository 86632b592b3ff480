//! The MCP handler: tools, resources and prompts from the active registry.
#![allow(deprecated)] // logging/setLevel is deprecated upstream but still in the protocol versions we serve

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult, ContentBlock,
    GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, ResourceContents, Role as McpRole, ServerCapabilities, SetLevelRequestParams,
    SubscribeRequestParams, SubscriptionFilter, Tool, ToolAnnotations, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value};

use super::state::State;
use crate::audit::{Called, Outcome, Record};
use crate::clip::{ECHO_MAX, clip};
use crate::engine::invoke::{self, Error as CallError};
use crate::engine::registry;
use crate::engine::template::{self, Mode};
use crate::spec::model::Role;

/// How often a session's notification task looks whether its transport has closed.
const SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

const INSTRUCTIONS: &str = "Cluster health tools for Kubernetes/OpenShift. Start with get-cluster-health for an \
overview, then narrow down with list and get tools. List tools return compact summaries with a total and a \
continue token; pass `limit`, filters or `fields` to narrow large answers.";

/// One handler per session; all share the state.
#[derive(Clone)]
pub struct Handler {
    pub state: Arc<State>,
}

/// The argument a destructive call carries to confirm it when the client cannot be asked
/// (no elicitation): the user agreed to what the dry run showed.
pub const CONFIRM: &str = "confirm";

/// The `confirm` input every destructive tool advertises when calls need confirmation.
fn confirm_input() -> Value {
    serde_json::json!({
        "type": "boolean",
        "default": false,
        "description": "Destructive call: when the client cannot ask the user (no MCP elicitation), a call without \
                        `confirm: true` only answers the dry run. Set it once the user has seen that answer and agreed."
    })
}

fn mcp_tool(t: &registry::Tool, confirm: bool) -> Tool {
    let mut annotations = ToolAnnotations::new()
        .read_only(t.hints.read_only)
        .destructive(t.hints.destructive)
        .idempotent(t.hints.idempotent)
        .open_world(t.hints.open_world);
    if let Some(title) = &t.title {
        annotations.title = Some(title.clone());
    }
    let mut schema = t.proc.input_schema.clone();
    if confirm && t.is_destructive() {
        let props = schema.entry("properties").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(props) = props {
            props.insert(CONFIRM.into(), confirm_input());
        }
    }
    let mut tool = Tool::new(t.name.clone(), t.description.clone(), Arc::new(schema)).with_annotations(annotations);
    if t.proc.has_structured_output() {
        tool = tool.with_raw_output_schema(Arc::new(t.proc.output_schema.clone()));
    }
    if let Some(title) = &t.title {
        tool = tool.with_title(title.clone());
    }
    tool
}

/// Turn a call error into a result the model can act on.
/// The `_meta` of an answer built from cached backend data: how old the oldest part is.
fn data_age_meta(age: std::time::Duration) -> rmcp::model::MetaObject {
    let mut m = serde_json::Map::new();
    m.insert(DATA_AGE_META.into(), serde_json::json!((age.as_secs_f64() * 10.0).round() / 10.0));
    rmcp::model::MetaObject(m)
}

/// The `_meta` key naming the age in seconds of the oldest cached backend answer a result
/// was built from (absent when every answer was fetched by the call).
pub const DATA_AGE_META: &str = "cluster-health-mcp/dataAgeSeconds";

fn error_result(e: &CallError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("{e}. {}", e.advice()))])
}

/// Run a call on behalf of its caller: the identity the HTTP authentication layer put into the
/// request's extensions (`crate::identity::Identity`), and the request's headers for bindings
/// that act with the caller's own Kubernetes token. Over stdio there is neither.
async fn as_caller<F: std::future::Future>(ctx: &RequestContext<RoleServer>, fut: F) -> F::Output {
    // The client itself, for tools that ask the user (elicitation).
    let fut = crate::identity::with_peer(ctx.peer.clone(), fut);
    let Some(parts) = ctx.extensions.get::<http::request::Parts>() else { return fut.await };
    let headers = Arc::new(crate::identity::Forwarded(parts.headers.clone()));
    match caller(ctx) {
        Some(who) => crate::identity::scope(Arc::new(who), crate::identity::with_headers(headers, fut)).await,
        None => crate::identity::with_headers(headers, fut).await,
    }
}

/// The caller's identity the HTTP authentication layer found (None over stdio).
fn caller(ctx: &RequestContext<RoleServer>) -> Option<crate::identity::Identity> {
    ctx.extensions.get::<http::request::Parts>()?.extensions.get::<crate::identity::Identity>().cloned()
}

/// A tool call's answer and how it ended, for the audit record.
struct Answer {
    result: Result<CallToolResult, McpError>,
    outcome: Outcome,
}

impl Answer {
    /// The answer of a call that ran: ok, or an error result.
    fn ran(result: CallToolResult) -> Answer {
        let outcome = if result.is_error == Some(true) { Outcome::Error } else { Outcome::Ok };
        Answer { result: Ok(result), outcome }
    }

    /// An answer with its outcome.
    fn with(result: CallToolResult, outcome: Outcome) -> Answer {
        Answer { result: Ok(result), outcome }
    }

    /// What the audit record says about it: the outcome and, unless ok, why.
    fn audited(&self) -> (Outcome, Option<String>) {
        let message = match &self.result {
            Err(e) => Some(e.message.to_string()),
            Ok(r) if self.outcome != Outcome::Ok => r.content.iter().find_map(|c| c.as_text().map(|t| t.text.clone())),
            Ok(_) => None,
        };
        (if self.result.is_err() { Outcome::Refused } else { self.outcome }, message)
    }
}

/// Is `args` (with the input's default) asking `tool` for a dry run?
fn dry_run_asked(tool: &registry::Tool, args: &Map<String, Value>) -> bool {
    let Some(input) = tool.proc.inputs.get(crate::workflows::DRY_RUN) else { return false };
    args.get(crate::workflows::DRY_RUN).or(input.default.as_ref()).and_then(Value::as_bool).unwrap_or(false)
}

/// The form of a confirmation: one boolean, accepted by default.
fn confirmation_form() -> rmcp::model::ElicitationSchema {
    serde_json::from_value(serde_json::json!({
        "type": "object",
        "properties": {
            "confirm": {"type": "boolean", "title": "Apply this change", "default": true}
        },
        "required": ["confirm"]
    }))
    .expect("a valid elicitation schema")
}

/// How long a user may take to confirm a destructive call.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

fn args_of(v: Option<Map<String, Value>>) -> Map<String, Value> {
    v.unwrap_or_default()
}

impl Handler {
    /// Run a tool of the registry snapshot the call started with (a reload mid-call does
    /// not change it).
    async fn run_tool(
        &self,
        active: Arc<crate::engine::Active>,
        tool: Arc<registry::Tool>,
        args: Map<String, Value>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let name = tool.name.clone();
        let started = Instant::now();
        // Progress goes out in order through one forwarder task.
        let token = ctx.meta.get_progress_token();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize, String)>();
        let forwarder = token.map(|token| {
            let peer = ctx.peer.clone();
            tokio::spawn(async move {
                while let Some((done, total, message)) = rx.recv().await {
                    let p = ProgressNotificationParam::new(token.clone(), done as f64)
                        .with_total(total as f64)
                        .with_message(message);
                    let _ = peer.notify_progress(p).await;
                }
            })
        });
        let progress = move |done: usize, total: usize, msg: String| {
            let _ = tx.send((done, total, msg));
        };
        let outcome = invoke::run(&active, &tool.proc, &args, Some(&progress), &ctx.ct).await;
        drop(progress);
        if let Some(f) = forwarder {
            let _ = f.await;
        }
        let result = match outcome {
            Ok(o) if o.error.is_some() => CallToolResult::error(vec![ContentBlock::text(o.error.unwrap_or_default())]),
            Ok(o) => {
                let mut content = vec![ContentBlock::text(o.text)];
                for c in o.content {
                    match serde_json::from_value::<ContentBlock>(c) {
                        Ok(block) => content.push(block),
                        Err(e) => {
                            return CallToolResult::error(vec![ContentBlock::text(format!(
                                "the tool produced an invalid content block: {e}"
                            ))]);
                        }
                    }
                }
                let mut r = CallToolResult::success(content);
                if tool.proc.has_structured_output() {
                    r.structured_content = Some(o.structured);
                }
                if let Some(age) = o.data_age {
                    r.meta = Some(data_age_meta(age));
                }
                r
            }
            Err(e) => error_result(&e),
        };
        self.state.metrics.record_call(&name, started.elapsed(), result.is_error == Some(true));
        result
    }

    /// A tools/call: refused when the tool is unknown or hidden here; a destructive call
    /// confirmed first (see [`Handler::confirmed_call`]).
    async fn checked_call(
        &self,
        active: Arc<crate::engine::Active>,
        name: &str,
        mut args: Map<String, Value>,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let Some(tool) = active.tools.get(name).cloned() else {
            // A tool the read-only switch hides: refused with the reason, not as unknown.
            if active.hidden_read_only("Tool", name) {
                let why = crate::engine::READ_ONLY;
                let text = format!("tool `{}` is not available here: {why}; nothing was done", clip(name, ECHO_MAX));
                return Answer::with(CallToolResult::error(vec![ContentBlock::text(text)]), Outcome::Refused);
            }
            return Answer {
                result: Err(McpError::invalid_params(
                    format!("unknown tool `{}`; call tools/list to see the available tools", clip(name, ECHO_MAX)),
                    None,
                )),
                outcome: Outcome::Refused,
            };
        };
        if !(self.state.confirm_destructive && tool.is_destructive()) {
            return Answer::ran(Box::pin(self.run_tool(active, tool, args, ctx)).await);
        }
        let confirmed = args.remove(CONFIRM);
        if dry_run_asked(&tool, &args) {
            return Answer::ran(Box::pin(self.run_tool(active, tool, args, ctx)).await);
        }
        self.confirmed_call(active, tool, args, confirmed.and_then(|c| c.as_bool()).unwrap_or(false), ctx).await
    }

    /// A destructive call that would change something runs only once the user agreed: asked
    /// through MCP elicitation (with the dry run's answer) when the client supports it; else
    /// the dry run's answer is returned (nothing changed) and a second call with
    /// `confirm: true` applies it. A tool without `dry_run` needs `confirm: true` outright.
    async fn confirmed_call(
        &self,
        active: Arc<crate::engine::Active>,
        tool: Arc<registry::Tool>,
        args: Map<String, Value>,
        confirmed: bool,
        ctx: RequestContext<RoleServer>,
    ) -> Answer {
        let elicit = crate::identity::can_elicit();
        if confirmed && !elicit {
            return Answer::ran(Box::pin(self.run_tool(active, tool, args, ctx)).await);
        }
        let preview = match tool.proc.inputs.contains_key(crate::workflows::DRY_RUN) {
            true => {
                let mut dry = args.clone();
                dry.insert(crate::workflows::DRY_RUN.into(), Value::Bool(true));
                let p = Box::pin(self.run_tool(active.clone(), tool.clone(), dry, ctx.clone())).await;
                if p.is_error == Some(true) {
                    // The dry run failed: there is nothing to confirm.
                    return Answer::ran(p);
                }
                Some(p)
            }
            false => None,
        };
        let text_of =
            |r: &CallToolResult| r.content.iter().find_map(|c| c.as_text().map(|t| t.text.clone())).unwrap_or_default();
        if elicit {
            let shown = serde_json::to_string(&Value::Object(args.clone())).unwrap_or_default();
            let mut message =
                format!("`{}` will change the cluster with {}.", tool.name, clip(&shown, crate::clip::MESSAGE_MAX));
            if let Some(p) = &preview {
                message.push_str(&format!("\n\nIts dry run answered:\n{}", clip(&text_of(p), 2000)));
            }
            message.push_str("\n\nApply it?");
            let declined = |why: String| {
                let text = format!("Not applied: {why}. Nothing was changed.");
                Answer::with(CallToolResult::error(vec![ContentBlock::text(text)]), Outcome::Declined)
            };
            return match crate::identity::elicit(message, confirmation_form(), CONFIRM_TIMEOUT).await {
                Ok(a)
                    if a.action == rmcp::model::ElicitationAction::Accept
                        && a.content.as_ref().and_then(|c| c.get(CONFIRM)).and_then(Value::as_bool) != Some(false) =>
                {
                    Answer::ran(Box::pin(self.run_tool(active, tool, args, ctx)).await)
                }
                Ok(a) if a.action == rmcp::model::ElicitationAction::Accept => {
                    declined("the user did not confirm the change".into())
                }
                Ok(a) => declined(format!(
                    "the user {} the change",
                    if a.action == rmcp::model::ElicitationAction::Cancel { "cancelled" } else { "declined" }
                )),
                Err(e) => declined(format!("the user could not be asked for confirmation ({e})")),
            };
        }
        let ask = format!(
            "`{}` changes the cluster and needs the user's confirmation: show the user this answer and, only if they \
             agree, call it again with the same arguments and `confirm: true`.",
            tool.name
        );
        match preview {
            Some(mut p) => {
                let text = format!("DRY RUN ONLY: nothing was changed. {ask}\n\n{}", text_of(&p));
                if let Some(first) = p.content.iter_mut().find(|c| c.as_text().is_some()) {
                    *first = ContentBlock::text(text);
                }
                Answer::with(p, Outcome::Unconfirmed)
            }
            None => Answer::with(
                CallToolResult::error(vec![ContentBlock::text(format!("Not applied: nothing was changed. {ask}"))]),
                Outcome::Unconfirmed,
            ),
        }
    }

    /// Read a resource by URI (resources/read, and the `read` command).
    pub async fn run_resource(
        &self,
        uri: &str,
        ct: &tokio_util::sync::CancellationToken,
    ) -> Result<ReadResourceResult, McpError> {
        let active = self.state.current();
        let found = active.resources.values().find_map(|r| r.match_uri(uri).map(|args| (r.clone(), args)));
        let Some((res, args)) = found else {
            return Err(McpError::resource_not_found(
                format!(
                    "no resource at `{}`; list resources and resource templates to see what exists",
                    clip(uri, ECHO_MAX)
                ),
                None,
            ));
        };
        let (proc, args) = match &res.tool {
            Some((tool, fixed)) => {
                let mut all = fixed.clone();
                all.extend(args);
                (&tool.proc, all)
            }
            None => (&res.proc, args),
        };
        let outcome = invoke::run(&active, proc, &args, None, ct)
            .await
            .map_err(|e| McpError::internal_error(format!("reading `{}` failed: {e}", clip(uri, ECHO_MAX)), None))?;
        if let Some(err) = outcome.error {
            return Err(McpError::internal_error(err, None));
        }
        // Embedded resources in `output.content` are the contents (text or blob); else the text.
        if !outcome.content.is_empty() {
            let contents = outcome
                .content
                .into_iter()
                .filter_map(|c| c.get("resource").cloned())
                .map(serde_json::from_value::<ResourceContents>)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| McpError::internal_error(format!("resource `{uri}` has invalid contents: {e}"), None))?;
            return Ok(ReadResourceResult::new(contents));
        }
        let text = if res.mime_type.starts_with("text/") && (res.tool.is_some() || res.proc.output.text.is_some()) {
            outcome.text
        } else {
            serde_json::to_string_pretty(&outcome.structured).unwrap_or_default()
        };
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type(res.mime_type.clone())]))
    }
}

fn resource_of(r: &registry::Resource) -> rmcp::model::Resource {
    let mut out = rmcp::model::Resource::new(r.uri.clone(), r.name.clone()).with_mime_type(r.mime_type.clone());
    if let Some(t) = &r.title {
        out = out.with_title(t.clone());
    }
    if let Some(d) = &r.description {
        out = out.with_description(d.clone());
    }
    out
}

fn template_of(r: &registry::Resource) -> rmcp::model::ResourceTemplate {
    let mut out = rmcp::model::ResourceTemplate::new(r.uri.clone(), r.name.clone()).with_mime_type(r.mime_type.clone());
    if let Some(t) = &r.title {
        out = out.with_title(t.clone());
    }
    if let Some(d) = &r.description {
        out = out.with_description(d.clone());
    }
    out
}

fn prompt_of(p: &registry::Prompt) -> Prompt {
    let args: Vec<PromptArgument> = p
        .spec
        .arguments
        .iter()
        .map(|(name, a)| {
            let mut arg = PromptArgument::new(name.clone()).with_required(a.required);
            if let Some(d) = &a.description {
                arg = arg.with_description(d.clone());
            }
            arg
        })
        .collect();
    let mut prompt = Prompt::new(p.name.clone(), p.spec.description.clone(), Some(args));
    if let Some(t) = &p.spec.title {
        prompt.title = Some(t.clone());
    }
    prompt
}

pub(crate) fn render_prompt(p: &registry::Prompt, given: Map<String, Value>) -> Result<GetPromptResult, McpError> {
    let mut ctx = Map::new();
    for (name, a) in &p.spec.arguments {
        let v = match given.get(name) {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(other) => Value::String(other.to_string()),
            None if a.required => {
                return Err(McpError::invalid_params(format!("prompt `{}` needs argument `{name}`", p.name), None));
            }
            None => Value::String(a.default.clone().unwrap_or_default()),
        };
        ctx.insert(name.clone(), v);
    }
    if let Some(extra) = given.keys().find(|k| !p.spec.arguments.contains_key(*k)) {
        return Err(McpError::invalid_params(
            format!("prompt `{}` has no argument `{}`", p.name, clip(extra, ECHO_MAX)),
            None,
        ));
    }
    let mctx = template::to_value(&ctx);
    let mut messages = Vec::new();
    for (m, body) in p.spec.messages.iter().zip(&p.bodies) {
        let role = match m.role {
            Role::User => McpRole::User,
            Role::Assistant => McpRole::Assistant,
        };
        let fail = |e: minijinja::Error| {
            McpError::internal_error(format!("prompt `{}`: {}", p.name, invoke::template_error(&e)), None)
        };
        match body {
            registry::PromptBody::Text(name) => messages.push(PromptMessage::new_text(
                role,
                p.templates.render(Mode::Request, name, &mctx).map_err(fail)?.trim().to_string(),
            )),
            registry::PromptBody::Content(tree) => {
                let tree = p.templates.render_tree(Mode::Request, tree, &mctx).map_err(fail)?;
                let block: ContentBlock = serde_json::from_value(tree).map_err(|e| {
                    McpError::internal_error(format!("prompt `{}`: invalid content: {e}", p.name), None)
                })?;
                messages.push(PromptMessage::new(role, block));
            }
        }
    }
    let mut result = GetPromptResult::new(messages);
    if let Some(d) = &p.spec.description {
        result = result.with_description(d.clone());
    }
    Ok(result)
}

impl ServerHandler for Handler {
    fn get_info(&self) -> InitializeResult {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_completions()
            .enable_logging()
            .build();
        // Point the model at the overview tool only when this mode exposes it.
        let active = self.state.current();
        let instructions = if active.tools.contains_key("get-cluster-health") {
            INSTRUCTIONS.to_string()
        } else {
            format!(
                "Tools of the `{}` mode: {}.",
                active.mode.name,
                active.tools.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        InitializeResult::new(caps)
            .with_server_info(Implementation::new("cluster-health-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let active = self.state.current();
        let confirm = self.state.confirm_destructive;
        Ok(ListToolsResult {
            tools: active.tools.values().map(|t| mcp_tool(t, confirm)).collect(),
            ..Default::default()
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let active = self.state.current();
        let started = Instant::now();
        let args = args_of(request.arguments.clone());
        let audited = self.state.audit.enabled(&active);
        let ctx2 = ctx.clone();
        // Boxed: the call's future (steps, confirmation, audit) is large for a worker's stack.
        let call = Box::pin(as_caller(&ctx2, self.checked_call(active.clone(), &request.name, args.clone(), ctx)));
        let (answer, requests) = if audited { crate::audit::collect(call).await } else { (call.await, Vec::new()) };
        if audited {
            let mut record = Record::new(caller(&ctx2).as_ref(), Called::Tool, &request.name, &args);
            record.requests = requests;
            let (outcome, message) = answer.audited();
            self.state.audit.record(&active, record.finish(outcome, message, started.elapsed())).await;
        }
        answer.result.map(Into::into)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let active = self.state.current();
        let resources = active.resources.values().filter(|r| r.params.is_empty()).map(|r| resource_of(r)).collect();
        Ok(ListResourcesResult { resources, ..Default::default() })
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let active = self.state.current();
        let resource_templates =
            active.resources.values().filter(|r| !r.params.is_empty()).map(|r| template_of(r)).collect();
        Ok(ListResourceTemplatesResult { resource_templates, ..Default::default() })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let active = self.state.current();
        let started = Instant::now();
        let read = as_caller(&ctx, self.run_resource(&request.uri, &ctx.ct));
        if !self.state.audit.enabled(&active) {
            return Ok(read.await?.into());
        }
        let (result, requests) = crate::audit::collect(read).await;
        let mut record = Record::new(caller(&ctx).as_ref(), Called::Resource, &request.uri, &Map::new());
        record.requests = requests;
        let (outcome, message) = match &result {
            Ok(_) => (Outcome::Ok, None),
            Err(e) => (Outcome::Error, Some(e.message.to_string())),
        };
        self.state.audit.record(&active, record.finish(outcome, message, started.elapsed())).await;
        Ok(result?.into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let active = self.state.current();
        Ok(ListPromptsResult { prompts: active.prompts.values().map(|p| prompt_of(p)).collect(), ..Default::default() })
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let active = self.state.current();
        let Some(p) = active.prompts.get(&request.name) else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown prompt `{}`; call prompts/list to see the available prompts",
                    clip(&request.name, ECHO_MAX)
                ),
                None,
            ));
        };
        Ok(render_prompt(p, args_of(request.arguments))?.into())
    }

    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Ok(CompleteResult::default())
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // Server logs go to stderr; the level a client asks for is accepted and ignored.
        Ok(())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        // Initialize-era sessions hear about reloads through list_changed notifications.
        let mut rx = self.state.changes.subscribe();
        let peer = ctx.peer.clone();
        tokio::spawn(async move {
            // rmcp has no "closed" future: look at the transport every few seconds so the
            // task ends with its session instead of living until the next reload.
            let mut check = tokio::time::interval(SESSION_CHECK);
            loop {
                let changed = tokio::select! {
                    r = rx.recv() => match r {
                        Ok(c) => c,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    },
                    _ = check.tick() => {
                        if peer.is_transport_closed() { break } else { continue }
                    }
                };
                let sent = async {
                    if changed.tools {
                        peer.notify_tool_list_changed().await?;
                    }
                    if changed.prompts {
                        peer.notify_prompt_list_changed().await?;
                    }
                    if changed.resources {
                        peer.notify_resource_list_changed().await?;
                    }
                    Ok::<(), rmcp::service::ServiceError>(())
                };
                if sent.await.is_err() {
                    break; // the session is gone
                }
            }
        });
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, ctx: SubscriptionContext) -> Result<(), McpError> {
        // Newer-protocol clients subscribe; reloads are pushed through the subscription.
        let mut rx = self.state.changes.subscribe();
        loop {
            tokio::select! {
                _ = ctx.cancelled() => return Ok(()),
                r = rx.recv() => {
                    let Ok(changed) = r else { return Ok(()) };
                    let sink = ctx.sink();
                    let accepted = sink.accepted().clone();
                    if changed.tools && accepted.tools_list_changed == Some(true) {
                        let _ = sink.notify_tool_list_changed().await;
                    }
                    if changed.prompts && accepted.prompts_list_changed == Some(true) {
                        let _ = sink.notify_prompt_list_changed().await;
                    }
                    if changed.resources && accepted.resources_list_changed == Some(true) {
                        let _ = sink.notify_resource_list_changed().await;
                    }
                }

            }
        }
    }
}
