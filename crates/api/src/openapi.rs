//! What the OpenAPI document says beyond what each route declares: the errors every route of
//! a kind answers, and the create bodies that share a type with updates.

use utoipa::openapi::OpenApi as OpenApiDoc;

/// Create and update share one request type (a field left out of an update stays as it is), so
/// its schema cannot say what a create needs. Each create gets a copy, `Create<Type>`, naming
/// the fields it requires, which may not be null.
pub(crate) fn document_create_bodies(doc: &mut OpenApiDoc) {
    use utoipa::openapi::{Ref, RefOr};
    const NEEDED: &[(&str, &str, &[&str])] = &[
        ("/api/v1/providers", "ProviderRequest", &["name", "kind"]),
        (
            "/api/v1/mcp-servers",
            "McpServerRequest",
            &["name", "transport"],
        ),
        ("/api/v1/agents", "AgentRequest", &["name"]),
        ("/api/v1/tasks", "TaskRequest", &["title"]),
    ];
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (path, name, required) in NEEDED {
        let Some(mut v) = components
            .schemas
            .get(*name)
            .and_then(|s| serde_json::to_value(s).ok())
        else {
            continue;
        };
        v["required"] = serde_json::json!(required);
        for field in *required {
            let ty = &mut v["properties"][field]["type"];
            if let Some(types) = ty.as_array() {
                let kept: Vec<serde_json::Value> =
                    types.iter().filter(|t| *t != "null").cloned().collect();
                *ty = match kept.as_slice() {
                    [one] => one.clone(),
                    _ => serde_json::Value::Array(kept),
                };
            }
        }
        let Ok(schema) = serde_json::from_value::<RefOr<utoipa::openapi::schema::Schema>>(v) else {
            continue;
        };
        let create = format!("Create{name}");
        components.schemas.insert(create.clone(), schema);
        if let Some(body) = doc
            .paths
            .paths
            .get_mut(*path)
            .and_then(|p| p.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
        {
            for content in body.content.values_mut() {
                content.schema = Some(Ref::from_schema_name(create.clone()).into());
            }
        }
    }
}

/// Adds to every operation the errors any route of its kind can answer, where the route does
/// not already document them: `401` (credentials missing, invalid or expired) for secured
/// routes, `429` (rate limits) everywhere, `400`/`413`/`415`/`422` for routes that take a body,
/// `404` for routes that name a resource, `422` for routes with query parameters.
pub(crate) fn document_common_errors(doc: &mut OpenApiDoc) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations(item) {
            let mut add = vec![("429", "rate_limited: too many requests; see Retry-After")];
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                add.push((
                    "401",
                    "unauthorized or token_expired: credentials missing, invalid or expired",
                ));
            }
            if op.request_body.is_some() {
                add.push(("400", "invalid_json: the body is not JSON"));
                add.push(("413", "payload_too_large"));
                add.push(("415", "unsupported_media_type: send application/json"));
                add.push(("422", "validation_failed: fields that are wrong, by name"));
            }
            if path.contains('{') {
                add.push(("404", "not_found: no such resource in this organization"));
            }
            if op
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == ParameterIn::Query)
            {
                add.push((
                    "422",
                    "validation_failed: query parameters that are wrong, by name",
                ));
            }
            for (status, description) in add {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error(description).into());
            }
        }
    }
}

/// The operations of a path item, of every method the API uses.
fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

/// One line of text with something in it and no control characters (what
/// `agentry_core::text::parse_line` takes, before its length).
const LINE: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// No control characters.
const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// No line break.
const ONE_LINE: &str = "^[^\\r\\n\\u0000]*$";

/// What the services check of a request field beyond its JSON type, as JSON Schema keywords:
/// lengths, ranges, enumerations, patterns. Rules that hang on stored state (does the agent
/// exist, is the password right), on the installation (are stdio MCP servers on) or on other
/// fields (an `http` MCP server takes no `command`) are left to the description and the 422.
fn field_rule(schema: &str, field: &str) -> Option<serde_json::Value> {
    use agentry_services::{agents, conversations, executions, tasks};
    use serde_json::json;
    let line = |max: usize| json!({"minLength": 1, "maxLength": max, "pattern": LINE});
    let range = |lo: i64, hi: i64| json!({"minimum": lo, "maximum": hi});
    let roles = json!({"enum": ["viewer", "member", "admin", "owner"]});
    let pairs = |max: usize, name: &str| {
        json!({"maxProperties": max,
               "propertyNames": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": name},
               "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": ONE_LINE}})
    };
    let email = json!({"format": "email", "minLength": 3, "maxLength": 254});
    Some(match (schema, field) {
        ("AgentRequest", "name") => line(200),
        ("AgentRequest", "description") => json!({"maxLength": 5000}),
        ("AgentRequest", "type") => json!({"enum": agents::TYPES}),
        ("AgentRequest", "status") => json!({"enum": agents::STATUSES}),
        ("AgentRequest", "autonomy") => json!({"enum": agents::AUTONOMY}),
        ("AgentRequest", "framework") => line(100),
        (
            "AgentRequest" | "CreateConversationRequest" | "ConversationAssignRequest",
            "provider_id" | "agent_id",
        )
        | ("TaskRequest", "agent_id") => json!({"format": "uuid"}),
        ("AgentRequest", "model") => json!({"minLength": 1, "maxLength": 200}),
        ("AgentRequest", "fallbacks") => json!({"type": "array", "maxItems": 5, "items": {
            "type": "object", "required": ["provider_id", "model"],
            "properties": {"provider_id": {"type": "string", "format": "uuid"},
                           "model": {"type": "string", "minLength": 1, "maxLength": 200}}}}),
        ("AgentRequest", "instructions") => json!({"maxLength": 100_000}),
        ("AgentRequest", "temperature") => range(0, 2),
        ("AgentRequest", "max_output_tokens") => range(1, 1_000_000),
        ("AgentRequest", "max_context_tokens") => range(256, 10_000_000),
        ("AgentRequest", "tools") => json!({"type": "array", "maxItems": 64, "items": {
            "type": "object", "required": ["type"],
            "properties": {"type": {"type": "string", "enum": ["builtin", "http", "mcp"]}}}}),
        ("AgentRequest", "config") => json!({"type": "object"}),
        ("AgentRequest", "max_retries") => range(0, 10),
        ("AgentRequest" | "CreateExecutionRequest", "timeout_seconds") => range(1, 3600),
        ("AgentRequest", "max_steps") => range(1, 100),
        ("AgentRequest", "output_schema") => {
            json!({"required": ["type"], "properties": {"type": {"type": "string", "enum": ["object"]}}})
        }
        ("TaskRequest", "title") => line(500),
        ("TaskRequest", "description") => json!({"maxLength": 20_000}),
        ("TaskRequest", "status") => json!({"enum": tasks::STATUSES}),
        ("TaskRequest", "priority") => {
            json!({"enum": executions::PRIORITIES.iter().map(|(p, _)| *p).collect::<Vec<_>>()})
        }
        ("TaskRequest", "due_at") => json!({"format": "date-time"}),
        ("ProviderRequest" | "McpServerRequest", "name") => line(100),
        ("ProviderRequest", "kind") => json!({"enum": ["openai", "anthropic", "echo"]}),
        ("ProviderRequest", "base_url") => {
            json!({"maxLength": 2048, "pattern": "^(https?://[^\\s]*)?$"})
        }
        ("ProviderRequest", "api_key") => json!({"maxLength": 4096, "pattern": ONE_LINE}),
        ("ProviderRequest", "default_model") => {
            json!({"maxLength": 200, "pattern": NO_CONTROL})
        }
        ("ProviderRequest", "headers") => pairs(20, "^[A-Za-z0-9_-]+$"),
        ("ProviderRequest", "prices") => {
            let price = json!({"type": "integer", "minimum": 0, "maximum": 1_000_000_000_000u64});
            json!({"maxProperties": 500,
                   "propertyNames": {"type": "string", "minLength": 1, "maxLength": 200},
                   "additionalProperties": {"type": "object", "required": ["input", "output"],
                       "properties": {"input": price, "output": price,
                                      "cached_input": {"type": ["integer", "null"], "minimum": 0,
                                                       "maximum": 1_000_000_000_000u64}}}})
        }
        ("McpServerRequest", "transport") => json!({"enum": ["streamable_http", "stdio"]}),
        ("McpServerRequest", "timeout_seconds") => range(1, 300),
        ("McpServerRequest", "url") => json!({"maxLength": 2048}),
        ("McpServerRequest", "command") => line(1024),
        ("McpServerRequest", "args") => {
            json!({"maxItems": 64, "items": {"type": "string", "maxLength": 4096, "pattern": "^[^\\u0000]*$"}})
        }
        ("McpServerRequest", "headers") => pairs(50, "^[A-Za-z0-9-]+$"),
        ("McpServerRequest", "env") => pairs(50, "^[A-Za-z_][A-Za-z0-9_]*$"),
        (
            "CreateOrgRequest" | "UpdateOrgRequest" | "UpdateMeRequest" | "CreateApiKeyRequest",
            "name",
        ) => line(100),
        ("CreateOrgRequest" | "UpdateOrgRequest", "slug") => {
            json!({"minLength": 2, "maxLength": 48, "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"})
        }
        ("CreateApiKeyRequest" | "AddMemberRequest" | "UpdateMemberRequest", "role") => roles,
        ("AddMemberRequest" | "ForgotPasswordRequest", "email") => email,
        ("CreateConversationRequest", "title") => line(500),
        ("CreateConversationRequest", "multitask_strategy") => {
            json!({"enum": conversations::STRATEGIES})
        }
        ("PostMessageRequest", "content") => {
            json!({"maxLength": conversations::MAX_MESSAGE_CHARS, "pattern": "[^\\s]"})
        }
        ("PostMessageRequest", "client_msg_id") => json!({"minLength": 1, "maxLength": 200}),
        ("AcceptInvitationRequest", "token") => json!({"minLength": 1}),
        ("ApprovalRequest", "comment") => json!({"maxLength": 4000}),
        _ => return None,
    })
}

/// Writes each request field's rules (`field_rule`) into its schema, the rules of the
/// `Idempotency-Key` and `Last-Event-ID` headers into every operation that takes them, and
/// the shape of one event into every `text/event-stream` response.
pub(crate) fn document_field_rules(doc: &mut OpenApiDoc) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (name, schema) in components.schemas.iter_mut() {
        let Ok(mut v) = serde_json::to_value(&*schema) else {
            continue;
        };
        let Some(props) = v["properties"].as_object_mut() else {
            continue;
        };
        let mut changed = false;
        for (field, prop) in props.iter_mut() {
            let Some(serde_json::Value::Object(mut rule)) = field_rule(name, field) else {
                continue;
            };
            let nullable = prop["type"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "null"));
            if let Some(serde_json::Value::Array(values)) = rule.get_mut("enum")
                && nullable
            {
                values.push(serde_json::Value::Null);
            }
            if let Some(p) = prop.as_object_mut() {
                p.extend(rule);
                changed = true;
            }
        }
        // A rule utoipa's types cannot hold leaves the schema as it was (a test checks none).
        if changed && let Ok(s) = serde_json::from_value::<RefOr<Schema>>(v) {
            *schema = s;
        }
    }
    let event = serde_json::json!({
        "type": "object",
        "description": "One server-sent event: `id` is its sequence number in the stream, `event` its name, `data` one line of JSON.",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string", "enum": ["status", "step", "delta", "tool_call", "tool_result",
                                                  "approval_requested", "usage", "done"]},
            "data": {"type": "string", "contentMediaType": "application/json"}
        }
    });
    if let Ok(s) = serde_json::from_value::<RefOr<Schema>>(event) {
        components.schemas.insert("StreamEvent".into(), s);
    }
    let header = |name: &str| match name {
        "Idempotency-Key" => Some(
            serde_json::json!({"type": "string", "minLength": 1, "maxLength": 255,
            "pattern": "^[\\x21-\\x7E]([\\x20-\\x7E]*[\\x21-\\x7E])?$"}),
        ),
        "Last-Event-ID" => Some(
            serde_json::json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX}),
        ),
        _ => None,
    };
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for p in op.parameters.iter_mut().flatten() {
                if let Some(rule) = header(&p.name)
                    && let Ok(s) = serde_json::from_value::<RefOr<Schema>>(rule)
                {
                    p.schema = Some(s);
                }
            }
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(r) = response
                    && let Some(content) = r.content.get_mut("text/event-stream")
                {
                    content.schema =
                        Some(utoipa::openapi::Ref::from_schema_name("StreamEvent").into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every rule of `field_rule` reaches the served document, in the request schema and in
    /// its create copy.
    #[test]
    fn every_field_rule_is_written() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut checked = 0;
        for (name, schema) in schemas {
            let base = name
                .strip_prefix("Create")
                .filter(|b| schemas.contains_key(*b));
            for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
                let rule = super::field_rule(name, field)
                    .or_else(|| base.and_then(|b| super::field_rule(b, field)));
                for (key, value) in rule
                    .as_ref()
                    .and_then(|r| r.as_object())
                    .into_iter()
                    .flatten()
                {
                    checked += 1;
                    match (key.as_str(), value) {
                        ("enum", serde_json::Value::Array(values)) => {
                            for v in values {
                                assert!(
                                    prop["enum"].as_array().unwrap().contains(v),
                                    "{name}.{field}: {v}"
                                );
                            }
                        }
                        _ => assert_eq!(&prop[key], value, "{name}.{field}.{key}"),
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} rules checked");
    }
}
