//! Agents, their version history and their log lines.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{bind_key, read, relaxed_write, tx, write};
use crate::{KeySort, Page, PageRequest, Result, Store, StoreError, Tokens};

const COLS: &str = "id, org_id, name, description, type, status, autonomy, framework, provider_id, model, fallbacks, instructions, temperature, max_output_tokens, max_context_tokens, tools, config, max_retries, timeout_seconds, max_steps, output_schema, tool_secrets, version, created_by, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Agent {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub autonomy: String,
    pub framework: String,
    pub provider_id: Option<Uuid>,
    pub model: Option<String>,
    pub fallbacks: Json<Value>,
    pub instructions: String,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<i32>,
    /// The most tokens of conversation history a reply may send (estimated); `None`: the default.
    pub max_context_tokens: Option<i32>,
    pub tools: Json<Value>,
    pub config: Json<Value>,
    pub max_retries: i32,
    pub timeout_seconds: i32,
    pub max_steps: i32,
    /// A JSON Schema the final answer must satisfy (structured output).
    pub output_schema: Option<Json<Value>>,
    /// Secret header values of the agent's HTTP tools, sealed under the master key.
    pub tool_secrets: Option<Vec<u8>>,
    pub version: i32,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentVersion {
    pub agent_id: Uuid,
    pub version: i32,
    pub spec: Json<Value>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentLog {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub execution_id: Option<Uuid>,
    pub level: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    /// Case-insensitive substring of the name or description.
    pub q: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub level: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// Token sums, the cost sum, and how many rows had a cost and a duration.
type Sums = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
);

/// What `GET /agents/{id}/stats` reports.
#[derive(Debug, Clone)]
pub struct AgentStats {
    pub by_status: Vec<(String, i64)>,
    pub tokens: Tokens,
    /// The sum over executions whose cost is known.
    pub cost_micros: i64,
    /// How many executions had a known cost.
    pub costed: i64,
    pub p50_duration_ms: Option<i64>,
    pub p95_duration_ms: Option<i64>,
}

impl Store {
    /// Inserts the agent and its first version.
    pub async fn create_agent(&self, a: &Agent, spec: &Value) -> Result<Agent> {
        Ok(tx!(self, |tx| {
            let agent: Agent = bind_fields!(sqlx::query_as(&insert_sql()), a)
                .bind(a.org_id)
                .bind(a.id)
                .bind(a.created_by)
                .bind(a.created_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            sqlx::query(VERSION_SQL)
                .bind(a.id)
                .bind(a.org_id)
                .bind(a.version)
                .bind(Json(spec))
                .bind(a.created_by)
                .bind(a.created_at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            agent
        }))
    }

    /// Writes every mutable field; with `spec`, also records a new version (the caller has
    /// bumped `version`). `by` is who made the change.
    pub async fn update_agent(
        &self,
        a: &Agent,
        spec: Option<&Value>,
        by: Option<Uuid>,
    ) -> Result<Option<Agent>> {
        Ok(tx!(self, |tx| {
            let agent: Option<Agent> = bind_fields!(sqlx::query_as(&update_sql()), a)
                .bind(a.org_id)
                .bind(a.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            if let (Some(_), Some(spec)) = (&agent, spec) {
                sqlx::query(VERSION_SQL)
                    .bind(a.id)
                    .bind(a.org_id)
                    .bind(a.version)
                    .bind(Json(spec))
                    .bind(by)
                    .bind(a.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
            }
            agent
        }))
    }

    /// Sets the status of a live agent; `None` when there is none.
    pub async fn set_agent_status(
        &self,
        org_id: Uuid,
        id: Uuid,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Agent>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE agents SET status = $1, updated_at = $2
             WHERE org_id = $3 AND id = $4 AND deleted_at IS NULL RETURNING {COLS}"
        ))
        .bind(status)
        .bind(now)
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Hides an agent (status `archived`); its executions and events stay.
    pub async fn delete_agent(&self, org_id: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<bool> {
        let n = write!(self, |c| sqlx::query(
            "UPDATE agents SET deleted_at = $1, status = 'archived', updated_at = $1
             WHERE org_id = $2 AND id = $3 AND deleted_at IS NULL"
        )
        .bind(now)
        .bind(org_id)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(n > 0)
    }

    /// A live agent of the org.
    pub async fn agent(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM agents WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// An agent of the org, deleted or not (executions keep running against it).
    pub async fn agent_any(&self, org_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM agents WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Sorts: `id`, `name`, `updated_at`.
    pub async fn list_agents(
        &self,
        org_id: Uuid,
        f: &AgentFilter,
        page: PageRequest,
        sort: &KeySort,
    ) -> Result<Page<Agent>> {
        let expr = match sort.field {
            "name" => "name",
            _ => "updated_at",
        };
        let (keyset, order) = page.keyset(sort, expr, 2, 7);
        let q =
            f.q.as_ref()
                .map(|q| format!("%{}%", crate::like_escape(&q.to_lowercase())));
        let sql = format!(
            "SELECT {COLS} FROM agents WHERE org_id = $1 AND deleted_at IS NULL AND {keyset}
               AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR type = $4)
               AND ($5 IS NULL OR LOWER(name) LIKE $5 ESCAPE '\\'
                    OR LOWER(description) LIKE $5 ESCAPE '\\')
             ORDER BY {order} LIMIT $6"
        );
        let rows = read!(self, |c| {
            let query = sqlx::query_as(&sql)
                .bind(org_id)
                .bind(page.bound())
                .bind(&f.status)
                .bind(&f.kind)
                .bind(&q)
                .bind(page.fetch());
            bind_key!(query, sort).fetch_all(c).await
        })
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    pub async fn agent_versions(&self, org_id: Uuid, agent_id: Uuid) -> Result<Vec<AgentVersion>> {
        read!(self, |c| sqlx::query_as(
            "SELECT agent_id, version, spec, created_by, created_at FROM agent_versions
             WHERE org_id = $1 AND agent_id = $2 ORDER BY version DESC"
        )
        .bind(org_id)
        .bind(agent_id)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn agent_version(
        &self,
        org_id: Uuid,
        agent_id: Uuid,
        version: i32,
    ) -> Result<Option<AgentVersion>> {
        read!(self, |c| sqlx::query_as(
            "SELECT agent_id, version, spec, created_by, created_at FROM agent_versions
             WHERE org_id = $1 AND agent_id = $2 AND version = $3"
        )
        .bind(org_id)
        .bind(agent_id)
        .bind(version)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Counts, durations, tokens and cost of an agent's executions created in `[since, until)`.
    pub async fn agent_stats(
        &self,
        org_id: Uuid,
        agent_id: Uuid,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<AgentStats> {
        const RANGE: &str = "org_id = $1 AND agent_id = $2
            AND ($3 IS NULL OR created_at >= $3) AND ($4 IS NULL OR created_at < $4)";
        let by_status: Vec<(String, i64)> = read!(self, |c| {
            sqlx::query_as(&format!(
            "SELECT status, COUNT(*) FROM executions WHERE {RANGE} GROUP BY status ORDER BY status"
        ))
        .bind(org_id)
        .bind(agent_id)
        .bind(since)
        .bind(until)
        .fetch_all(c)
        .await
        })
        .map_err(StoreError::from_sqlx)?;
        let sums: Sums = read!(self, |c| sqlx::query_as(&format!(
            "SELECT CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(cached_input_tokens) AS BIGINT),
                    CAST(SUM(output_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT),
                    CAST(SUM(cost_micros) AS BIGINT),
                    COUNT(cost_micros), COUNT(duration_ms)
                 FROM executions WHERE {RANGE}"
        ))
        .bind(org_id)
        .bind(agent_id)
        .bind(since)
        .bind(until)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        // Percentiles by rank (nearest-rank method), the same on both backends.
        let timed = sums.6;
        let mut pct = [None, None];
        for (slot, p) in pct.iter_mut().zip([50i64, 95]) {
            if timed == 0 {
                continue;
            }
            let rank = ((p * timed) + 99) / 100; // ceil(p/100 * n), at least 1
            *slot = read!(self, |c| sqlx::query_scalar(&format!(
                "SELECT duration_ms FROM executions WHERE {RANGE} AND duration_ms IS NOT NULL
                 ORDER BY duration_ms LIMIT 1 OFFSET $5"
            ))
            .bind(org_id)
            .bind(agent_id)
            .bind(since)
            .bind(until)
            .bind(rank.max(1) - 1)
            .fetch_optional(c)
            .await)
            .map_err(StoreError::from_sqlx)?;
        }
        Ok(AgentStats {
            by_status,
            tokens: Tokens {
                input: sums.0.unwrap_or(0),
                cached_input: sums.1.unwrap_or(0),
                output: sums.2.unwrap_or(0),
                reasoning: sums.3.unwrap_or(0),
            },
            cost_micros: sums.4.unwrap_or(0),
            costed: sums.5,
            p50_duration_ms: pct[0],
            p95_duration_ms: pct[1],
        })
    }

    pub async fn add_agent_log(
        &self,
        org_id: Uuid,
        agent_id: Uuid,
        execution_id: Option<Uuid>,
        level: &str,
        message: &str,
    ) -> Result<()> {
        let (id, now) = agentry_core::id::new_id_at();
        relaxed_write!(self, |c| {
            sqlx::query(
            "INSERT INTO agent_logs (id, org_id, agent_id, execution_id, level, message, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(id)
        .bind(org_id)
        .bind(agent_id)
        .bind(execution_id)
        .bind(level)
        .bind(message)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        })
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// The agent's log lines, newest first.
    pub async fn agent_logs(
        &self,
        org_id: Uuid,
        agent_id: Uuid,
        f: &LogFilter,
        page: PageRequest,
    ) -> Result<Page<AgentLog>> {
        let (cmp, order) = page.sql();
        let rows = read!(self, |c| sqlx::query_as(&format!(
            "SELECT id, agent_id, execution_id, level, message, created_at FROM agent_logs
             WHERE org_id = $1 AND agent_id = $2 AND id {cmp} $3
               AND ($4 IS NULL OR level = $4) AND ($5 IS NULL OR created_at >= $5)
             ORDER BY id {order} LIMIT $6"
        ))
        .bind(org_id)
        .bind(agent_id)
        .bind(page.bound())
        .bind(&f.level)
        .bind(f.since)
        .bind(page.fetch())
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }
}

/// Binds `$1`..`$22`: every field a create or an update writes.
macro_rules! bind_fields {
    ($q:expr, $a:expr) => {
        $q.bind(&$a.name)
            .bind(&$a.description)
            .bind(&$a.kind)
            .bind(&$a.status)
            .bind(&$a.autonomy)
            .bind(&$a.framework)
            .bind($a.provider_id)
            .bind(&$a.model)
            .bind(&$a.fallbacks)
            .bind(&$a.instructions)
            .bind($a.temperature)
            .bind($a.max_output_tokens)
            .bind($a.max_context_tokens)
            .bind(&$a.tools)
            .bind(&$a.config)
            .bind($a.max_retries)
            .bind($a.timeout_seconds)
            .bind($a.max_steps)
            .bind(&$a.output_schema)
            .bind(&$a.tool_secrets)
            .bind($a.version)
            .bind($a.updated_at)
    };
}
use bind_fields;

const FIELDS: &str = "name, description, type, status, autonomy, framework, provider_id, model, fallbacks, instructions, temperature, max_output_tokens, max_context_tokens, tools, config, max_retries, timeout_seconds, max_steps, output_schema, tool_secrets, version, updated_at";

fn insert_sql() -> String {
    format!(
        "INSERT INTO agents ({FIELDS}, org_id, id, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
            $18, $19, $20, $21, $22, $23, $24, $25, $26)
         RETURNING {COLS}"
    )
}

fn update_sql() -> String {
    let sets: Vec<String> = FIELDS
        .split(", ")
        .enumerate()
        .map(|(i, f)| format!("{f} = ${}", i + 1))
        .collect();
    format!(
        "UPDATE agents SET {} WHERE org_id = $23 AND id = $24 AND deleted_at IS NULL RETURNING {COLS}",
        sets.join(", ")
    )
}

const VERSION_SQL: &str =
    "INSERT INTO agent_versions (agent_id, org_id, version, spec, created_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)";
