//! Agentry's HTTP API.
//!
//! [`app`] builds the router and the OpenAPI document together (each route is declared once,
//! with its documentation) and wraps it in the middleware every request passes through.

pub mod error;
pub mod extract;
pub mod list;
pub mod metrics;
pub mod middleware;
pub mod ratelimit;
pub mod routes;
pub mod run_views;
pub mod sse;
pub mod state;
pub mod views;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ApiResult};
pub use state::{ApiConfig, AppState, RateLimitConfig};

#[derive(OpenApi)]
#[openapi(
    info(title = "Agentry API", description = "The control plane for AI agents. Errors always have the shape `{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}`. Send `X-Org-Id` to act in an org other than your default."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts, tokens, passwords and sessions"),
        (name = "users", description = "Your profile"),
        (name = "orgs", description = "Organizations (tenants)"),
        (name = "members", description = "Members and invitations"),
        (name = "api-keys", description = "Credentials for programs"),
        (name = "events", description = "The audit log"),
        (name = "admin", description = "Platform administration"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut OpenApiDoc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token from /auth/login, or an API key (agk_…)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API's routes and their OpenAPI document.
pub fn api() -> (Router<AppState>, OpenApiDoc) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", routes::api_router())
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    document_common_errors(&mut doc);
    document_create_bodies(&mut doc);
    (router, doc)
}

/// Create and update share one request type (a field left out of an update stays as it is), so
/// its schema cannot say what a create needs. Each create gets a copy, `Create<Type>`, naming
/// the fields it requires, which may not be null.
fn document_create_bodies(doc: &mut OpenApiDoc) {
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
fn document_common_errors(doc: &mut OpenApiDoc) {
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

/// The OpenAPI document, as served at `/openapi.json`.
pub fn openapi() -> OpenApiDoc {
    api().1
}

/// The whole application: API, docs, health and metrics, with middleware.
pub fn app(state: AppState) -> Router {
    let (api_router, doc) = api();
    let api_router = api_router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::api_rate_limit,
        ))
        .layer(DefaultBodyLimit::max(state.config.body_limit));
    Router::new()
        .merge(api_router)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .route("/health", get(routes::system::health))
        .route("/livez", get(routes::system::livez))
        .route("/readyz", get(routes::system::readyz))
        .route("/metrics", get(routes::system::metrics))
        .layer(CatchPanicLayer::new())
        .layer(cors(&state.config.cors_origins))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::finalize,
        ))
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-org-id"),
            HeaderName::from_static("x-workspace-id"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
            header::RETRY_AFTER,
            header::LOCATION,
        ])
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let st = state.clone();
    let shutdown = async move {
        shutdown.await;
        st.closing.send_replace(true);
    };
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
