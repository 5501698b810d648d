//! Agentry's HTTP API.
//!
//! [`app`] builds the router and the OpenAPI document together (each route is declared once,
//! with its documentation) and wraps it in the middleware every request passes through.

pub mod error;
pub mod extract;
pub mod list;
pub mod metrics;
pub mod middleware;
mod openapi;
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
    openapi::document_common_errors(&mut doc);
    openapi::document_field_rules(&mut doc);
    openapi::document_create_bodies(&mut doc);
    (router, doc)
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
