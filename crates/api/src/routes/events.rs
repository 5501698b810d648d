//! `/events`: the org's audit log. Read-only through the API.

use agentry_store::events::EventFilter;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Query, path_id};
use crate::list::{list_response, page_request};
use crate::state::AppState;
use crate::views::{ErrorResponse, EventView, ListResponse};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(get_event))
}

const CATEGORIES: [&str; 5] = ["info", "warning", "error", "critical", "debug"];

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// An event type, or a prefix ending in `*` (`member.*`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// `info`, `warning`, `error`, `critical` or `debug`.
    #[param(pattern = "^(info|warning|error|critical|debug)$")]
    pub category: Option<String>,
    pub actor_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub execution_id: Option<Uuid>,
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events before this time.
    pub until: Option<DateTime<Utc>>,
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// `created_at` or `-created_at` (the default: newest first).
    #[param(pattern = "^-?created_at$")]
    pub sort: Option<String>,
}

impl EventQuery {
    /// The page asked for; events list newest first unless `sort` says otherwise.
    pub fn page(&self) -> Result<agentry_store::PageRequest, ApiError> {
        page_request(
            self.limit.as_deref(),
            self.cursor.as_deref(),
            self.sort.as_deref(),
            true,
        )
    }

    pub fn filter(&self) -> Result<EventFilter, ApiError> {
        let mut f = EventFilter {
            actor_id: self.actor_id,
            user_id: self.user_id,
            agent_id: self.agent_id,
            task_id: self.task_id,
            execution_id: self.execution_id,
            since: self.since,
            until: self.until,
            ..EventFilter::default()
        };
        if let Some(c) = &self.category {
            if !CATEGORIES.contains(&c.as_str()) {
                return Err(ApiError::field(
                    "category",
                    "must be one of info, warning, error, critical, debug",
                ));
            }
            f.category = Some(c.clone());
        }
        match self.kind.as_deref() {
            Some(k) if k.len() > 100 => {
                return Err(ApiError::field("type", "must be at most 100 characters"));
            }
            Some(k) => match k.strip_suffix('*') {
                Some(prefix) => f.kind_prefix = Some(prefix.to_string()),
                None => f.kind = Some(k.to_string()),
            },
            None => {}
        }
        Ok(f)
    }
}

/// The org's audit events, newest first.
#[utoipa::path(get, path = "/events", tag = "events", params(EventQuery),
    responses((status = 200, body = ListResponse<EventView>), (status = 422, body = ErrorResponse)), security(("bearer" = [])))]
async fn list_events(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<EventQuery>,
) -> ApiResult<axum::Json<ListResponse<EventView>>> {
    let ctx = p.org_ctx()?;
    let req = q.page()?;
    let page = state.services.list_events(&ctx, &q.filter()?, req).await?;
    Ok(axum::Json(list_response(
        page,
        req,
        |e| e.id,
        EventView::from,
    )))
}

#[utoipa::path(get, path = "/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, body = EventView), (status = 404, body = ErrorResponse)), security(("bearer" = [])))]
async fn get_event(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<EventView>> {
    let ctx = p.org_ctx()?;
    let id = path_id(&id, "event")?;
    Ok(axum::Json(state.services.get_event(&ctx, id).await?.into()))
}
