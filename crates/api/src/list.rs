//! List parameters shared by every collection: `limit`, `cursor` and `sort`.

use agentry_core::cursor::{Cursor, parse_limit};
use agentry_store::{Page, PageRequest};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::views::ListResponse;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 200, default 50.
    pub limit: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// `created_at` (oldest first) or `-created_at` (newest first).
    pub sort: Option<String>,
}

/// Validates the list parameters into a page request. `default_desc` is the order when no
/// `sort` is given.
pub fn page_request(
    limit: Option<&str>,
    cursor: Option<&str>,
    sort: Option<&str>,
    default_desc: bool,
) -> Result<PageRequest, ApiError> {
    let mut bad = serde_json::Map::new();
    let limit = parse_limit(limit)
        .map_err(|m| bad.insert("limit".into(), serde_json::json!([m])))
        .ok();
    let descending = match sort {
        None => Some(default_desc),
        Some("created_at") => Some(false),
        Some("-created_at") => Some(true),
        Some(_) => {
            bad.insert(
                "sort".into(),
                serde_json::json!(["must be created_at or -created_at"]),
            );
            None
        }
    };
    let after = match cursor {
        None | Some("") => None,
        Some(c) => match Cursor::decode(c) {
            Ok(c) if c.key.as_deref() == Some(sort_key(descending.unwrap_or(default_desc))) => {
                Some(c.id)
            }
            Ok(_) => {
                bad.insert(
                    "cursor".into(),
                    serde_json::json!(["was made for another sort order"]),
                );
                None
            }
            Err(e) => {
                bad.insert("cursor".into(), serde_json::json!([e.to_string()]));
                None
            }
        },
    };
    if !bad.is_empty() {
        return Err(ApiError::fields(serde_json::Value::Object(bad)));
    }
    Ok(PageRequest {
        limit: limit.unwrap_or(50),
        after,
        descending: descending.unwrap_or(default_desc),
    })
}

fn sort_key(descending: bool) -> &'static str {
    if descending { "-id" } else { "id" }
}

impl ListParams {
    pub fn page(&self, default_desc: bool) -> Result<PageRequest, ApiError> {
        page_request(
            self.limit.as_deref(),
            self.cursor.as_deref(),
            self.sort.as_deref(),
            default_desc,
        )
    }
}

/// Turns a page of rows into a list response, with the cursor of its last row.
pub fn list_response<T, V>(
    page: Page<T>,
    req: PageRequest,
    id: impl Fn(&T) -> Uuid,
    view: impl FnMut(T) -> V,
) -> ListResponse<V> {
    let next_cursor = if page.has_more {
        page.items.last().map(|last| {
            Cursor {
                id: id(last),
                key: Some(sort_key(req.descending).to_string()),
            }
            .encode()
        })
    } else {
        None
    };
    ListResponse {
        data: page.items.into_iter().map(view).collect(),
        next_cursor,
    }
}
