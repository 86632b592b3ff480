//! The OpenAPI 3.1 document of the routes a mode serves, generated from the Route specs and
//! their tools' input and output schemas.

use serde_json::{Map, Value, json};

use super::compile::error_schema;
use super::{Origin, Route, Status};
use crate::engine::Active;

/// The OpenAPI document for the active mode.
pub fn document(active: &Active) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in active.routes.values() {
        let item = paths.entry(route.path.clone()).or_insert_with(|| json!({}));
        item[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cluster-health-mcp",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "REST routes of mode `{}`, each bound to a tool (the same tools MCP clients call at /mcp).",
                active.mode.name
            ),
        },
        "paths": paths,
    })
}

fn content(content_type: &str, schema: &Value) -> Value {
    json!({ content_type: {"schema": schema} })
}

/// One operation: parameters, body, responses.
fn operation(route: &Route) -> Value {
    let mut parameters = Vec::new();
    let mut body_props = Map::new();
    let mut body_required = Vec::new();
    for ((origin, name), p) in &route.params {
        let place = match origin {
            Origin::Path => "path",
            Origin::Query => "query",
            Origin::Header => "header",
            Origin::Body => {
                // A null field is taken as absent (the input's default): say so.
                let schema = if p.required { p.schema.clone() } else { nullable(&p.schema) };
                body_props.insert(name.clone(), schema);
                if p.required {
                    body_required.push(name.clone());
                }
                continue;
            }
        };
        let required = p.required || *origin == Origin::Path;
        parameters.push(json!({"name": name, "in": place, "required": required, "schema": p.schema}));
    }
    let tool = &route.tool;
    let mut op = json!({
        "operationId": route.name,
        "summary": route.summary.clone().or_else(|| tool.title.clone()).unwrap_or_else(|| tool.name.clone()),
        "description": route.description.clone().unwrap_or_else(|| tool.description.clone()),
        "x-tool": tool.name,
        "parameters": parameters,
    });
    if let Some(toolset) = route.labels.get("toolset").or_else(|| tool.labels.get("toolset")) {
        op["tags"] = json!([toolset]);
    }
    if route.reads_body && route.method.as_str() != "GET" && route.method.as_str() != "DELETE" {
        let mut schema = json!({"type": "object", "properties": body_props});
        if !body_required.is_empty() {
            schema["required"] = json!(body_required);
        }
        // A field and its alias: either, not both.
        let both: Vec<Value> = route.aliases.iter().map(|(f, a)| json!({"required": [f, a]})).collect();
        if !both.is_empty() {
            schema["not"] = json!({"anyOf": both});
        }
        op["requestBody"] =
            json!({"required": !body_required.is_empty(), "content": content("application/json", &schema)});
    }
    let mut responses = Map::new();
    let success = |responses: &mut Map<String, Value>, code: u16| {
        responses.insert(
            code.to_string(),
            json!({"description": "the tool's result", "content": content(&route.response.content_type, &route.response.schema)}),
        );
    };
    match &route.response.status {
        Status::Code(c) => success(&mut responses, *c),
        Status::Expr(_) if route.response.statuses.is_empty() => success(&mut responses, 200),
        Status::Expr(_) => route.response.statuses.iter().for_each(|c| success(&mut responses, *c)),
    }
    for e in &route.errors {
        let entry = responses
            .entry(e.status.to_string())
            .or_insert_with(|| json!({"description": "the call failed", "content": {}}));
        if entry["content"].get(&e.content_type).is_none() {
            entry["content"][&e.content_type] = json!({"schema": e.schema});
        }
    }
    responses.entry("400").or_insert_with(|| {
        json!({"description": "the request does not satisfy the tool's inputs", "content": content("application/json", &error_schema())})
    });
    responses.insert(
        "default".into(),
        json!({"description": "the call failed (not found, a backend down, ...)", "content": content("application/json", &error_schema())}),
    );
    op["responses"] = Value::Object(responses);
    op
}

/// `schema` that also admits null (a JSON body field the route takes as absent when null).
fn nullable(schema: &Value) -> Value {
    let mut s = schema.clone();
    let Some(m) = s.as_object_mut() else { return s };
    if m.is_empty() {
        return s;
    }
    match m.get("type").cloned() {
        Some(Value::String(t)) => {
            m.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(mut ts)) if !ts.contains(&json!("null")) => {
            ts.push(json!("null"));
            m.insert("type".into(), Value::Array(ts));
        }
        Some(_) => {}
        None => return json!({"anyOf": [schema, {"type": "null"}]}),
    }
    if let Some(Value::Array(e)) = m.get_mut("enum")
        && !e.contains(&Value::Null)
    {
        e.push(Value::Null);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::nullable;
    use serde_json::json;

    #[test]
    fn optional_body_fields_admit_null() {
        assert_eq!(
            nullable(&json!({"type": "string", "enum": ["a"]})),
            json!({"type": ["string", "null"], "enum": ["a", null]})
        );
        assert_eq!(nullable(&json!({"type": ["string", "null"]})), json!({"type": ["string", "null"]}));
        assert_eq!(nullable(&json!({})), json!({}));
        assert_eq!(nullable(&json!({"const": 1})), json!({"anyOf": [{"const": 1}, {"type": "null"}]}));
    }
}
