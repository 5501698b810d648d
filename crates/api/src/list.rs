//! List parameters shared by every collection: `limit`, `cursor` and `sort`.

use agentry_core::cursor::{Cursor, KeyKind, KeyValue, parse_limit};
use agentry_store::{KeySort, Page, PageRequest};
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
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// `created_at` (oldest first) or `-created_at` (newest first).
    #[param(pattern = "^-?created_at$")]
    pub sort: Option<String>,
}

/// A sort a list offers: its name in `sort`, and the type of its column, or `None` for the
/// creation order (which is id order).
pub type SortField = (&'static str, Option<KeyKind>);

/// The creation-order sort every list offers.
pub const CREATED_AT: SortField = ("created_at", None);

/// A validated page request with its sort.
#[derive(Debug, Clone)]
pub struct SortedPage {
    pub page: PageRequest,
    pub sort: KeySort,
}

/// Validates the list parameters into a page request. `default_desc` is the order when no
/// `sort` is given.
pub fn page_request(
    limit: Option<&str>,
    cursor: Option<&str>,
    sort: Option<&str>,
    default_desc: bool,
) -> Result<PageRequest, ApiError> {
    sorted_page(limit, cursor, sort, default_desc, &[CREATED_AT]).map(|s| s.page)
}

/// Validates the list parameters against the sorts a list offers (`fields`, the first being
/// the default).
pub fn sorted_page(
    limit: Option<&str>,
    cursor: Option<&str>,
    sort: Option<&str>,
    default_desc: bool,
    fields: &[SortField],
) -> Result<SortedPage, ApiError> {
    let mut bad = serde_json::Map::new();
    let limit = parse_limit(limit)
        .map_err(|m| bad.insert("limit".into(), serde_json::json!([m])))
        .ok();
    let (field, descending) = match sort {
        None => (Some(fields[0]), default_desc),
        Some(s) => {
            let (name, desc) = match s.strip_prefix('-') {
                Some(n) => (n, true),
                None => (s, false),
            };
            match fields.iter().find(|(f, _)| *f == name) {
                Some(f) => (Some(*f), desc),
                None => {
                    let names: Vec<String> = fields
                        .iter()
                        .flat_map(|(f, _)| [f.to_string(), format!("-{f}")])
                        .collect();
                    bad.insert(
                        "sort".into(),
                        serde_json::json!([format!("must be one of {}", names.join(", "))]),
                    );
                    (None, default_desc)
                }
            }
        }
    };
    let (name, kind) = field.unwrap_or(fields[0]);
    let key = cursor_key(name, kind, descending);
    let mut after = None;
    let mut after_value = None;
    match cursor {
        None | Some("") => {}
        Some(c) => match Cursor::decode(c) {
            Ok(c)
                if c.key.as_deref() == Some(key.as_str())
                    && c.value.as_ref().map(KeyValue::kind) == kind =>
            {
                after = Some(c.id);
                after_value = c.value;
            }
            Ok(_) => {
                bad.insert(
                    "cursor".into(),
                    serde_json::json!(["was made for another sort order"]),
                );
            }
            Err(e) => {
                bad.insert("cursor".into(), serde_json::json!([e.to_string()]));
            }
        },
    }
    if !bad.is_empty() {
        return Err(ApiError::fields(serde_json::Value::Object(bad)));
    }
    let sort = match kind {
        None => KeySort::ID,
        Some(kind) => KeySort {
            field: name,
            kind,
            after: after_value,
        },
    };
    Ok(SortedPage {
        page: PageRequest {
            limit: limit.unwrap_or(50),
            after,
            descending,
        },
        sort,
    })
}

/// What a cursor records of its sort, so that it is refused under another one.
fn cursor_key(name: &str, kind: Option<KeyKind>, descending: bool) -> String {
    match (kind, descending) {
        (None, false) => "id".into(),
        (None, true) => "-id".into(),
        (Some(_), false) => name.into(),
        (Some(_), true) => format!("-{name}"),
    }
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
    sorted_list_response(
        page,
        &SortedPage {
            page: req,
            sort: KeySort::ID,
        },
        |t| (id(t), None),
        view,
    )
}

/// Turns a page of rows sorted by `req.sort` into a list response; `key` gives a row's id and
/// its value of the sort column.
pub fn sorted_list_response<T, V>(
    page: Page<T>,
    req: &SortedPage,
    key: impl Fn(&T) -> (Uuid, Option<KeyValue>),
    view: impl FnMut(T) -> V,
) -> ListResponse<V> {
    let kind = (req.sort.field != KeySort::ID.field).then_some(req.sort.kind);
    let next_cursor = if page.has_more {
        page.items.last().map(|last| {
            let (id, value) = key(last);
            Cursor {
                id,
                key: Some(cursor_key(req.sort.field, kind, req.page.descending)),
                value: kind.and(value),
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
