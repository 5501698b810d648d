//! Rows as the rest of Agentry sees them.

use agentry_core::Role;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

pub use agentry_core::cursor::{KeyKind, KeyValue};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub settings: Json<Value>,
    pub platform_admin: bool,
    pub disabled: bool,
    pub default_org_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub settings: Json<Value>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An org together with the caller's role in it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgWithRole {
    #[sqlx(flatten)]
    pub org: Org,
    pub role: Role,
}

/// A member of an org, with the user's public fields.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Invitation {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A refresh token looked up by its hash, with what is needed to judge it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshTokenState {
    pub id: Uuid,
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub spent_at: Option<DateTime<Utc>>,
    pub session_expires_at: DateTime<Utc>,
    pub session_revoked_at: Option<DateTime<Utc>>,
}

/// What a request with an access token needs to know about its session, in one query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionAuth {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub revoked: bool,
    pub expires_at: DateTime<Utc>,
    pub disabled: bool,
    pub platform_admin: bool,
    /// The org the request acts in (the one named, else the user's default), if it exists.
    pub org_id: Option<Uuid>,
    /// The user's role in that org, if a member.
    pub role: Option<Role>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub category: String,
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub execution_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub data: Json<Value>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A page of rows and whether there is more after it.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched `limit + 1` rows.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32) -> Page<T> {
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Page { items, has_more }
    }
}

/// Keyset pagination over ids (UUIDv7, so id order is creation order).
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<Uuid>,
    /// Newest first when true.
    pub descending: bool,
}

impl PageRequest {
    pub fn first(limit: u32) -> PageRequest {
        PageRequest {
            limit,
            after: None,
            descending: false,
        }
    }

    /// `(comparison, order)` SQL fragments for `id`.
    pub(crate) fn sql(&self) -> (&'static str, &'static str) {
        if self.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        }
    }

    /// The cursor bound: with no cursor, a value every id passes.
    pub(crate) fn bound(&self) -> Uuid {
        match (self.after, self.descending) {
            (Some(id), _) => id,
            (None, true) => Uuid::max(),
            (None, false) => Uuid::nil(),
        }
    }

    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The keyset condition and the `ORDER BY` list for `sort`, where `expr` is the SQL of
    /// the sort column (ignored for the id sort), `b` the number of the parameter bound to
    /// [`PageRequest::bound`] and `k` the one bound with [`bind_key!`].
    pub(crate) fn keyset(
        &self,
        sort: &KeySort,
        expr: &str,
        b: usize,
        k: usize,
    ) -> (String, String) {
        let (cmp, order) = self.sql();
        if sort.field == "id" {
            (
                format!("(id {cmp} ${b} AND ${k} IS NULL)"),
                format!("id {order}"),
            )
        } else {
            (
                format!("(${k} IS NULL OR {expr} {cmp} ${k} OR ({expr} = ${k} AND id {cmp} ${b}))"),
                format!("{expr} {order}, id {order}"),
            )
        }
    }
}

/// A sort by a column other than id (ties broken by id), with the value of the sort column on
/// the row the previous page ended with. `field` names the column as the API does; each list
/// maps it to its SQL.
#[derive(Debug, Clone)]
pub struct KeySort {
    pub field: &'static str,
    pub kind: KeyKind,
    pub after: Option<KeyValue>,
}

impl KeySort {
    /// Order by id alone.
    pub const ID: KeySort = KeySort {
        field: "id",
        kind: KeyKind::Int,
        after: None,
    };
}
