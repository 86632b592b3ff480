//! Compile `kind: Workflow` documents against the registry's tools, collecting every
//! problem, located: unknown tools (did-you-mean), arguments that are not inputs of the tool,
//! required tool inputs left out, a destructive tool without dry-run support, undeclared or
//! not-yet-computed variables, templates and durations that do not parse.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;

use super::{Action, DEFAULT_STEP_TIMEOUT, DRY_RUN, WORKFLOW_VAR, Workflow, WorkflowStep};
use crate::backends::Effect;
use crate::engine::registry::{Registry, Tool};
use crate::engine::template::{self, Templates};
use crate::spec::diagnostic::{Diagnostic, Source};
use crate::spec::load::{Located, did_you_mean};
use crate::spec::model::{InputType, WorkflowDoc};
use crate::spec::workflow::WorkflowStepSpec;
use crate::spec::yaml::pointer_segment;
use crate::units::parse_duration;

/// Compile every workflow into `reg.workflows` (tools must be compiled already).
pub fn compile_all(docs: &[Located<WorkflowDoc>], reg: &mut Registry, diags: &mut Vec<Diagnostic>) {
    for d in docs {
        if reg.workflows.contains_key(&d.doc.metadata.name) {
            continue; // a duplicate, reported with both files
        }
        if let Some(w) = compile(d, &reg.tools, diags) {
            reg.workflows.insert(w.name.clone(), Arc::new(w));
        }
    }
}

/// Compile one workflow; None when it has problems (appended to `diags`).
pub fn compile(
    d: &Located<WorkflowDoc>,
    tools: &IndexMap<String, Arc<Tool>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Workflow> {
    let before = diags.len();
    let src = &*d.src;
    let spec = &d.doc.spec;
    let inputs = crate::engine::compile::compile_inputs(src, &spec.input, diags);
    if spec.input.contains_key(WORKFLOW_VAR) {
        diags.push(src.diag(
            &format!("/spec/input/{WORKFLOW_VAR}"),
            format!("`{WORKFLOW_VAR}` is reserved: templates see the workflow's own facts under it"),
            Some("rename the input".into()),
        ));
    }
    if parse_duration(&spec.estimated_duration).is_none() {
        diags.push(src.diag_in_value(
            "/spec/estimatedDuration",
            format!("invalid duration `{}`", spec.estimated_duration),
            Some("use e.g. 30s, 5m, 1h".into()),
        ));
    }
    let globals = template::globals();
    let mut declared: HashSet<String> = crate::engine::compile::input_scope(spec.input.keys());
    declared.insert(WORKFLOW_VAR.into());
    declared.extend(globals.iter().cloned());
    let all_steps: HashSet<&str> = spec.steps.iter().map(|s| s.name.as_str()).collect();
    let mut names: HashSet<String> = crate::engine::compile::input_scope(spec.input.keys());
    names.insert(WORKFLOW_VAR.into());
    names.extend(all_steps.iter().map(|s| s.to_string()));
    let mut seen: HashSet<&str> = HashSet::new();
    let mut templates = Templates::default();
    let mut steps = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let base = format!("/spec/steps/{i}");
        if !seen.insert(&step.name) {
            diags.push(src.diag_in_value(
                &format!("{base}/name"),
                format!("duplicate step name `{}`", step.name),
                Some("step names are unique within a workflow".into()),
            ));
        }
        if spec.input.contains_key(&step.name) || step.name == WORKFLOW_VAR {
            diags.push(src.diag_in_value(
                &format!("{base}/name"),
                format!("step `{}` has the name of an input (or `{WORKFLOW_VAR}`)", step.name),
                Some("rename the step: later steps read its result under its name".into()),
            ));
        }
        let scope = Scope { src, declared: &declared, later: &all_steps, seen: &seen, step: &step.name, names: &names };
        if let Some(s) = compile_step(i, step, &base, &scope, tools, &mut templates, diags) {
            steps.push(s);
        }
        declared.insert(step.name.clone());
    }
    if diags.len() > before {
        return None;
    }
    Some(Workflow {
        name: d.doc.metadata.name.clone(),
        description: spec.description.clone(),
        labels: d.doc.metadata.labels.clone(),
        trigger: spec.trigger.clone(),
        inputs: inputs?,
        estimated_duration: spec.estimated_duration.clone(),
        steps,
        templates,
        file: src.file.clone(),
    })
}

/// What a step's templates may read.
struct Scope<'a> {
    src: &'a Source,
    /// Inputs, `workflow`, globals and the steps before this one.
    declared: &'a HashSet<String>,
    /// Every step name (to tell "runs later" from "unknown").
    later: &'a HashSet<&'a str>,
    /// Steps up to and including this one.
    seen: &'a HashSet<&'a str>,
    step: &'a str,
    /// Inputs, `workflow` and every step name (for hints; globals left out).
    names: &'a HashSet<String>,
}

fn compile_step(
    i: usize,
    step: &WorkflowStepSpec,
    base: &str,
    scope: &Scope<'_>,
    tools: &IndexMap<String, Arc<Tool>>,
    templates: &mut Templates,
    diags: &mut Vec<Diagnostic>,
) -> Option<WorkflowStep> {
    let before = diags.len();
    let src = scope.src;
    let duration = |field: &str, text: &Option<String>, default: Duration, diags: &mut Vec<Diagnostic>| match text {
        None => default,
        Some(t) => match parse_duration(t) {
            Some(s) if s > 0.0 => Duration::from_secs_f64(s),
            _ => {
                diags.push(src.diag_in_value(
                    &format!("{base}/{field}"),
                    format!("invalid duration `{t}`"),
                    Some("use e.g. 500ms, 5s, 1m".into()),
                ));
                default
            }
        },
    };
    let timeout = duration("timeout", &step.timeout, DEFAULT_STEP_TIMEOUT, diags);
    let approval_timeout = step.approval.as_ref().and(step.timeout.as_ref()).map(|_| timeout);
    let (attempts, backoff, max_backoff) = match &step.retry {
        None => (1, Duration::from_secs(1), Duration::from_secs(60)),
        Some(r) => (
            r.attempts.clamp(1, 10),
            duration("retry/backoff", &Some(r.backoff.clone()), Duration::from_secs(1), diags),
            duration("retry/maxBackoff", &Some(r.max_backoff.clone()), Duration::from_secs(60), diags),
        ),
    };
    let when = step.when.as_ref().and_then(|w| {
        check_template(scope, &format!("{base}/when"), w, true, diags);
        template::compile_expr(w).ok().map(|e| (w.clone(), e))
    });
    let action = match (&step.tool, &step.approval) {
        (Some(_), Some(_)) | (None, None) => {
            diags.push(src.diag(
                base,
                format!("step `{}` needs exactly one of `tool` or `approval`", step.name),
                Some("a step either calls a registry tool or waits for approval".into()),
            ));
            None
        }
        (None, Some(gate)) => {
            if !step.args.is_empty() || step.retry.is_some() {
                diags.push(src.diag(
                    base,
                    format!("approval step `{}` takes no `args` or `retry`", step.name),
                    Some("move the tool call into a step of its own".into()),
                ));
            }
            let message = gate.message.as_ref().and_then(|m| {
                let ptr = format!("{base}/approval/message");
                check_template(scope, &ptr, m, false, diags);
                templates.add(template::Mode::Request, &ptr, m).ok().map(|_| ptr)
            });
            Some(Action::Approval { message })
        }
        (Some(name), None) => compile_tool_call(step, name, base, scope, tools, templates, diags),
    };
    let _ = i;
    if diags.len() > before {
        return None;
    }
    Some(WorkflowStep {
        order: i + 1,
        name: step.name.clone(),
        description: step.description.clone(),
        layer: step.layer.clone(),
        action: action?,
        when,
        attempts,
        backoff,
        max_backoff,
        timeout,
        approval_timeout,
    })
}

fn compile_tool_call(
    step: &WorkflowStepSpec,
    name: &str,
    base: &str,
    scope: &Scope<'_>,
    tools: &IndexMap<String, Arc<Tool>>,
    templates: &mut Templates,
    diags: &mut Vec<Diagnostic>,
) -> Option<Action> {
    let src = scope.src;
    let Some(tool) = tools.get(name) else {
        let names: Vec<&str> = tools.keys().map(String::as_str).collect();
        let hint = match did_you_mean(name, &names) {
            Some(n) => format!("did you mean `{n}`?"),
            None => "a workflow step calls a `kind: Tool` document by its metadata.name".into(),
        };
        diags.push(src.diag_in_value(&format!("{base}/tool"), format!("unknown tool `{name}`"), Some(hint)));
        return None;
    };
    let inputs = &tool.proc.inputs;
    let accepted: Vec<&str> = inputs.keys().map(String::as_str).collect();
    for (arg, value) in &step.args {
        let ptr = format!("{base}/args/{}", pointer_segment(arg));
        if !inputs.contains_key(arg) {
            let hint = match did_you_mean(arg, &accepted) {
                Some(n) => format!("did you mean `{n}`? {name} accepts: {}", accepted.join(", ")),
                None => format!("{name} accepts: {}", accepted.join(", ")),
            };
            diags.push(src.diag(&ptr, format!("`{arg}` is not an input of tool `{name}`"), Some(hint)));
            continue;
        }
        check_tree(scope, &ptr, value, diags);
    }
    let takes_dry_run = inputs.get(DRY_RUN).is_some_and(|i| i.ty == InputType::Boolean);
    if inputs.contains_key(DRY_RUN) && !takes_dry_run {
        diags.push(src.diag_in_value(
            &format!("{base}/tool"),
            format!("tool `{name}` has a `{DRY_RUN}` input that is not a boolean"),
            Some(format!("dry-run propagation sets `{DRY_RUN}: true`; declare it `type: boolean` on the tool")),
        ));
    }
    let writes = tool.hints.destructive || tool.proc.effect() == Effect::Write;
    if writes && !takes_dry_run {
        diags.push(src.diag_in_value(
            &format!("{base}/tool"),
            format!("tool `{name}` is destructive but takes no `{DRY_RUN}` input"),
            Some(format!(
                "a workflow may call a destructive tool only if it supports dry run: add `{DRY_RUN}: {{type: boolean, default: true}}` to the tool and honour it"
            )),
        ));
    }
    if step.retry.as_ref().is_some_and(|r| r.attempts > 1) && !(tool.hints.read_only || tool.hints.idempotent) {
        diags.push(src.diag_in_value(
            &format!("{base}/retry"),
            format!("tool `{name}` is neither read-only nor idempotent, so a failed attempt is not retried"),
            Some(
                "an attempt that timed out may have taken effect, and a second one would apply it again: drop `retry`, or annotate the tool `idempotent: true` if repeating it changes nothing"
                    .into(),
            ),
        ));
    }
    for (input, spec) in inputs {
        let given = step.args.contains_key(input) || (input == DRY_RUN && takes_dry_run);
        if spec.required && spec.default.is_none() && !given {
            diags.push(src.diag(
                &format!("{base}/args"),
                format!("tool `{name}` requires the input `{input}`, which the step does not give"),
                Some(format!("add `{input}:` under args")),
            ));
        }
    }
    let tree_json = Value::Object(step.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let args = match templates.tree(template::Mode::Request, &format!("{base}/args"), &tree_json) {
        Ok(t) => t,
        Err(_) => return None, // reported by check_tree
    };
    Some(Action::Tool { tool: name.to_string(), args, takes_dry_run })
}

/// Check every string leaf of an argument value as a template.
fn check_tree(scope: &Scope<'_>, ptr: &str, value: &Value, diags: &mut Vec<Diagnostic>) {
    match value {
        Value::String(s) => match template::single_expression(s) {
            Some(expr) => check_template(scope, ptr, expr, true, diags),
            None => check_template(scope, ptr, s, false, diags),
        },
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                check_tree(scope, &format!("{ptr}/{i}"), v, diags);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                check_tree(scope, &format!("{ptr}/{}", pointer_segment(k)), v, diags);
            }
        }
        _ => {}
    }
}

/// Compile-check a template or expression and its variables.
fn check_template(scope: &Scope<'_>, ptr: &str, source: &str, expression: bool, diags: &mut Vec<Diagnostic>) {
    if !expression && !source.contains("{{") && !source.contains("{%") {
        return;
    }
    let vars = match template::undeclared(source, expression) {
        Ok(v) => v,
        Err(e) => {
            diags.push(scope.src.diag_in_value(
                ptr,
                format!("template does not compile: {}", e.detail().unwrap_or(&e.to_string())),
                None,
            ));
            return;
        }
    };
    let mut vars: Vec<String> = vars.into_iter().filter(|v| !scope.declared.contains(v)).collect();
    vars.sort();
    for v in vars {
        let (message, hint) = if v == scope.step {
            (format!("step `{v}` reads its own result"), "a step reads only the steps before it".to_string())
        } else if scope.later.contains(v.as_str()) && !scope.seen.contains(v.as_str()) {
            (format!("step `{v}` runs after step `{}`", scope.step), "move the step that reads it after it".into())
        } else {
            let known: HashSet<String> = scope.declared.iter().filter(|d| scope.names.contains(*d)).cloned().collect();
            (format!("undeclared variable `{v}`"), crate::engine::compile::undeclared_hint(&v, &known))
        };
        diags.push(scope.src.diag_in_value(ptr, message, Some(hint)));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Action, Issue, best_match};
    use crate::engine::Registry;

    const SPECS: &str = r#"
apiVersion: cluster-health-mcp/v1
kind: Tool
metadata: {name: restart-it}
spec:
  description: Restart a deployment.
  annotations: {destructive: true, idempotent: true}
  input:
    namespace: {type: string, format: k8s-namespace, required: true}
    name: {type: string, format: k8s-name, required: true}
    dry_run: {type: boolean, default: true}
  steps:
    restarted:
      kubernetes: {verb: rollout-restart, resource: {apiVersion: apps/v1, kind: Deployment}, namespace: "{{ namespace }}", name: "{{ name }}"}
---
apiVersion: cluster-health-mcp/v1
kind: Workflow
metadata: {name: restart-crashing}
spec:
  description: Restart a crash-looping deployment after approval.
  trigger: {issueTypes: [CrashLoopBackOff], resourceKinds: [Deployment]}
  input:
    namespace: {type: string, format: k8s-namespace, required: true}
    name: {type: string, format: k8s-name, required: true}
  steps:
    - name: before
      tool: get-pod
      args: {namespace: "{{ namespace }}", name: "{{ name }}"}
    - name: gate
      approval: {message: "restart {{ name }}"}
    - name: restart
      tool: restart-it
      args: {namespace: "{{ namespace }}", name: "{{ name }}"}
      when: "before is not none"
      retry: {attempts: 3, backoff: 10ms}
      timeout: 5s
---
apiVersion: cluster-health-mcp/v1
kind: Workflow
metadata: {name: any-crash}
spec:
  description: Fallback for any crash loop.
  trigger: {issueTypes: [CrashLoopBackOff]}
  steps:
    - name: look
      tool: list-pods
"#;

    fn registry() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.yaml"), SPECS).unwrap();
        crate::configure::load_paths(&[dir.path().to_path_buf()], true)
            .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")))
    }

    #[test]
    fn a_valid_workflow_compiles_with_its_steps_in_order() {
        let reg = registry();
        let w = &reg.workflows["restart-crashing"];
        let names: Vec<(usize, &str, &str)> = w.steps.iter().map(|s| (s.order, s.name.as_str(), s.kind())).collect();
        assert_eq!(names, [(1, "before", "tool"), (2, "gate", "approval"), (3, "restart", "tool")]);
        let restart = &w.steps[2];
        assert!(matches!(restart.action, Action::Tool { takes_dry_run: true, .. }));
        assert_eq!((restart.attempts, restart.backoff.as_millis(), restart.timeout.as_secs()), (3, 10, 5));
        assert!(matches!(w.steps[0].action, Action::Tool { takes_dry_run: false, .. }));
    }

    #[test]
    fn the_most_specific_trigger_wins() {
        let reg = registry();
        // This file's workflows only (the built-in catalogue ships its own remediation ones).
        let all = || reg.workflows.values().filter(|w| SPECS.contains(&format!("name: {}}}", w.name))).map(|w| &**w);
        let issue = |t, k| Issue { issue_type: t, resource_kind: k, deployment_method: "manual" };
        assert_eq!(best_match(all(), &issue("CrashLoopBackOff", "Deployment")).unwrap().name, "restart-crashing");
        assert_eq!(best_match(all(), &issue("crashloopbackoff", "Pod")).unwrap().name, "any-crash");
        assert!(best_match(all(), &issue("OOMKilled", "Pod")).is_none());
    }

    #[test]
    fn retry_on_a_tool_that_is_not_idempotent_is_refused() {
        let specs = SPECS.replace("destructive: true, idempotent: true", "destructive: true");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.yaml"), specs).unwrap();
        let diags = crate::configure::load_paths(&[dir.path().to_path_buf()], true).err().expect("refused");
        let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert!(
            text.iter().any(|d| d.contains("tool `restart-it` is neither read-only nor idempotent")
                && d.contains("spec.steps[2].retry")),
            "{text:#?}"
        );
    }
}
