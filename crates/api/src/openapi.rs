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
    // What the services check of those fields: one line with something in it, or one of a
    // few words.
    let line = |max: u64| {
        serde_json::json!({"minLength": 1, "maxLength": max,
                           "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"})
    };
    let rules = |schema: &str, field: &str| match (schema, field) {
        ("ProviderRequest", "kind") => serde_json::json!({"enum": ["openai", "anthropic", "echo"]}),
        ("McpServerRequest", "transport") => {
            serde_json::json!({"enum": ["streamable_http", "stdio"]})
        }
        ("AgentRequest", "name") => line(200),
        ("TaskRequest", "title") => line(500),
        _ => line(100),
    };
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
            if let (Some(p), serde_json::Value::Object(extra)) =
                (v["properties"][field].as_object_mut(), rules(name, field))
            {
                p.extend(extra);
            }
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
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
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
