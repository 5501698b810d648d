//! Executions: the durable queue (claim with a lease, heartbeat, reap) and the step journal.
//!
//! Claiming is the one backend-specific query: PostgreSQL locks the picked rows with
//! `FOR UPDATE SKIP LOCKED` so replicas never take the same execution; SQLite has one writer,
//! so its single `UPDATE … WHERE id IN (…)` is already atomic.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::macros::{bind_key, follow_task, read, relaxed_write, tx, write};
use crate::{Db, KeySort, Page, PageRequest, Result, Store, StoreError};

pub(crate) const COLS: &str = "id, org_id, agent_id, agent_version, task_id, conversation_id, parent_execution_id, status, input, output, error, attempt, model, provider_id, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_micros, confidence, timeout_seconds, priority, run_after, lease_owner, lease_expires_at, created_by, created_at, updated_at, started_at, completed_at, duration_ms";

/// How many due executions, first in priority order, a claim looks at before it ranks the
/// whole backlog.
const CLAIM_CANDIDATES: i64 = 256;

/// Statuses in which an execution is still in someone's hands.
pub const ACTIVE: &str = "('running', 'awaiting_approval')";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Execution {
    pub id: Uuid,
    pub org_id: Uuid,
    pub agent_id: Uuid,
    pub agent_version: i32,
    pub task_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    /// The execution whose `call_agent` tool started this one.
    pub parent_execution_id: Option<Uuid>,
    pub status: String,
    pub input: Json<Value>,
    pub output: Option<Json<Value>>,
    pub error: Option<Json<Value>>,
    pub attempt: i32,
    pub model: Option<String>,
    pub provider_id: Option<Uuid>,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micros: Option<i64>,
    pub confidence: Option<f64>,
    pub timeout_seconds: i32,
    pub priority: i32,
    pub run_after: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

impl Execution {
    pub fn is_finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "success" | "failed" | "timeout" | "cancelled"
        )
    }
}

/// Token counts and cost, as stored on executions and steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: i64,
    pub cached_input: i64,
    pub output: i64,
    pub reasoning: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Step {
    pub id: Uuid,
    pub execution_id: Uuid,
    pub idx: i32,
    pub kind: String,
    pub name: String,
    pub status: String,
    pub input: Json<Value>,
    pub output: Option<Json<Value>>,
    pub error: Option<Json<Value>>,
    pub attempts: Json<Value>,
    pub model: Option<String>,
    pub provider_id: Option<Uuid>,
    pub input_tokens: i64,
    pub cached_input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cost_micros: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    /// When an approval step stops waiting for an answer.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Step {
    /// A step starting now at `idx`: no output, usage or cost yet.
    pub fn started(
        execution_id: Uuid,
        idx: i32,
        kind: &str,
        name: &str,
        status: &str,
        input: Value,
    ) -> Step {
        let (id, now) = agentry_core::id::new_id_at();
        Step {
            id,
            execution_id,
            idx,
            kind: kind.into(),
            name: name.into(),
            status: status.into(),
            input: Json(input),
            output: None,
            error: None,
            attempts: Json(Value::Array(vec![])),
            model: None,
            provider_id: None,
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: None,
            started_at: now,
            completed_at: None,
            duration_ms: None,
            expires_at: None,
        }
    }
}

pub(crate) const STEP_COLS: &str = "id, execution_id, idx, kind, name, status, input, output, error, attempts, model, provider_id, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_micros, started_at, completed_at, duration_ms, expires_at";

#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    pub agent_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub status: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// What a claim asks for: up to `limit` due executions (as of `now`) for `owner` until
/// `lease_until`, never more than `org_cap` running in one org.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub owner: &'a str,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
    pub limit: i64,
    pub org_cap: i64,
}

/// How a finished execution ends.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: &'static str,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub model: Option<String>,
    pub provider_id: Option<Uuid>,
    pub tokens: Tokens,
    pub cost_micros: Option<i64>,
    /// How sure the agent said it was (from a structured answer's `confidence`).
    pub confidence: Option<f64>,
    pub now: DateTime<Utc>,
    pub duration_ms: Option<i64>,
}

impl Store {
    pub async fn create_execution(&self, e: &Execution) -> Result<Execution> {
        write!(self, |c| sqlx::query_as(&format!(
            "INSERT INTO executions (id, org_id, agent_id, agent_version, task_id, conversation_id,
                status, input, attempt, model, provider_id, timeout_seconds, priority, run_after,
                created_by, created_at, updated_at, parent_execution_id, lease_owner,
                lease_expires_at, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16,
                $17, $18, $19, $20)
             RETURNING {COLS}"
        ))
        .bind(e.id)
        .bind(e.org_id)
        .bind(e.agent_id)
        .bind(e.agent_version)
        .bind(e.task_id)
        .bind(e.conversation_id)
        .bind(&e.status)
        .bind(&e.input)
        .bind(e.attempt)
        .bind(&e.model)
        .bind(e.provider_id)
        .bind(e.timeout_seconds)
        .bind(e.priority)
        .bind(e.run_after)
        .bind(e.created_by)
        .bind(e.created_at)
        .bind(e.parent_execution_id)
        .bind(&e.lease_owner)
        .bind(e.lease_expires_at)
        .bind(e.started_at)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    pub async fn execution(&self, org_id: Uuid, id: Uuid) -> Result<Option<Execution>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {COLS} FROM executions WHERE org_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Sorts: `id`, `duration_ms`, `cost_micros` (unknown values first, as -1).
    pub async fn list_executions(
        &self,
        org_id: Uuid,
        f: &ExecutionFilter,
        page: PageRequest,
        sort: &KeySort,
    ) -> Result<Page<Execution>> {
        let expr = match sort.field {
            "duration_ms" => "COALESCE(duration_ms, -1)",
            _ => "COALESCE(cost_micros, -1)",
        };
        let (keyset, order) = page.keyset(sort, expr, 2, 9);
        let sql = format!(
            "SELECT {COLS} FROM executions WHERE org_id = $1 AND {keyset}
               AND ($3 IS NULL OR agent_id = $3) AND ($4 IS NULL OR task_id = $4)
               AND ($5 IS NULL OR status = $5)
               AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7)
             ORDER BY {order} LIMIT $8"
        );
        let rows = read!(self, |c| {
            let query = sqlx::query_as(&sql)
                .bind(org_id)
                .bind(page.bound())
                .bind(f.agent_id)
                .bind(f.task_id)
                .bind(&f.status)
                .bind(f.since)
                .bind(f.until)
                .bind(page.fetch());
            bind_key!(query, sort).fetch_all(c).await
        })
        .map_err(StoreError::from_sqlx)?;
        Ok(Page::from_overfetch(rows, page.limit))
    }

    /// Claims up to `limit` due executions for `owner` until `lease_until`: highest task
    /// priority first, then oldest, taking turns across orgs, and never more than `org_cap`
    /// running in one org. Executions of paused agents wait, and so does a conversation's reply
    /// while an earlier one is unfinished (replies are answered in order).
    ///
    /// The claim looks first among the `CLAIM_CANDIDATES` due executions that come first in
    /// priority order (an index range, so a claim costs the same whatever the backlog), and
    /// only when those do not fill `limit` and more are due beyond them does it rank the whole
    /// backlog (say, when the first candidates all belong to an org at its cap).
    pub async fn claim_executions(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
        org_cap: i64,
    ) -> Result<Vec<Execution>> {
        let claim = Claim {
            owner,
            now,
            lease_until,
            limit,
            org_cap,
        };
        let mut got = self.claim_first(&claim).await?;
        let more = self.claim_beyond(&claim, got.len()).await?;
        got.extend(more);
        Ok(got)
    }

    /// The first half of [`Store::claim_executions`]: the claim among the first candidates.
    /// A caller may start what it returns before it calls [`Store::claim_beyond`].
    pub async fn claim_first(&self, claim: &Claim<'_>) -> Result<Vec<Execution>> {
        self.claim_among(true, claim, claim.limit).await
    }

    /// The second half of [`Store::claim_executions`], after [`Store::claim_first`] claimed
    /// `got`: when that left room and more are due beyond the first candidates, the claim over
    /// the whole backlog.
    pub async fn claim_beyond(&self, claim: &Claim<'_>, got: usize) -> Result<Vec<Execution>> {
        let left = claim.limit - got as i64;
        if left > 0
            && self
                .due_beyond(claim.now, CLAIM_CANDIDATES - got as i64)
                .await?
        {
            return self.claim_among(false, claim, left).await;
        }
        Ok(vec![])
    }

    /// Whether more than `n` executions are due now.
    async fn due_beyond(&self, now: DateTime<Utc>, n: i64) -> Result<bool> {
        let count: i64 = read!(self, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM executions
               WHERE status = 'pending' AND run_after <= $1 LIMIT $2) d"
        )
        .bind(now)
        .bind(n + 1)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok(count > n)
    }

    /// One claim, among the first `CLAIM_CANDIDATES` due executions (`bounded`) or the whole
    /// backlog.
    async fn claim_among(
        &self,
        bounded: bool,
        claim: &Claim<'_>,
        limit: i64,
    ) -> Result<Vec<Execution>> {
        let source = if bounded {
            format!(
                "(SELECT id AS cid FROM executions WHERE status = 'pending' AND run_after <= $3
                  ORDER BY priority DESC, id LIMIT {CLAIM_CANDIDATES}) c
                 JOIN executions e ON e.id = c.cid"
            )
        } else {
            "executions e".to_string()
        };
        let ranked = format!(
            "SELECT e.id, e.priority, e.org_id,
                ROW_NUMBER() OVER (PARTITION BY e.org_id ORDER BY e.priority DESC, e.id) AS rn
              FROM {source} JOIN agents a ON a.id = e.agent_id
              WHERE e.status = 'pending' AND e.run_after <= $3 AND a.status <> 'paused'
                AND (e.conversation_id IS NULL OR NOT EXISTS (
                    SELECT 1 FROM executions p WHERE p.conversation_id = e.conversation_id
                      AND p.id < e.id AND p.status IN ('pending', 'running', 'awaiting_approval')))"
        );
        // Each org's running count, taken once (from its partial index) rather than once per
        // candidate: the claim holds the SQLite writer while it runs.
        const BUSY: &str = "SELECT org_id, COUNT(*) AS n FROM executions
              WHERE status IN ('running', 'awaiting_approval') GROUP BY org_id";
        const PICKED: &str = "SELECT r.id FROM ranked r LEFT JOIN busy b ON b.org_id = r.org_id
              WHERE r.rn <= $5 - COALESCE(b.n, 0)
              ORDER BY r.rn, r.priority DESC, r.id LIMIT $4";
        const SET: &str = "status = 'running', lease_owner = $1, lease_expires_at = $2,
              started_at = COALESCE(started_at, $3), updated_at = $3";
        let rows = match &self.db {
            Db::Sqlite { write, .. } => {
                let mut conn = write.acquire().await.map_err(StoreError::from_sqlx)?;
                sqlx::query_as(&format!(
                    "WITH ranked AS ({ranked}), busy AS ({BUSY}) UPDATE executions SET {SET}
                     WHERE id IN ({PICKED}) RETURNING {COLS}"
                ))
                .bind(claim.owner)
                .bind(claim.lease_until)
                .bind(claim.now)
                .bind(limit)
                .bind(claim.org_cap)
                .fetch_all(&mut *conn)
                .await
            }
            // A relaxed write: a claim lost with the database server only puts the execution
            // back in the queue (its lease is gone with the server anyway).
            Db::Postgres(pool) => {
                let pool = self.relaxed.as_ref().unwrap_or(pool);
                sqlx::query_as(&format!(
                    "WITH ranked AS ({ranked}), busy AS ({BUSY}), picked AS ({PICKED}),
                     locked AS (SELECT id FROM executions WHERE id IN (SELECT id FROM picked)
                                AND status = 'pending' FOR UPDATE SKIP LOCKED)
                     UPDATE executions SET {SET} FROM locked WHERE executions.id = locked.id
                     RETURNING {}",
                    COLS.split(", ")
                        .map(|c| format!("executions.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .bind(claim.owner)
                .bind(claim.lease_until)
                .bind(claim.now)
                .bind(limit)
                .bind(claim.org_cap)
                .fetch_all(pool)
                .await
            }
        };
        rows.map_err(StoreError::from_sqlx)
    }

    /// Extends the leases `owner` holds; returns the ids it still holds (an execution that
    /// was cancelled or reaped meanwhile is missing, and its worker should drop it).
    pub async fn heartbeat(&self, owner: &str, until: DateTime<Utc>) -> Result<Vec<Uuid>> {
        write!(self, |c| sqlx::query_scalar(&format!(
            "UPDATE executions SET lease_expires_at = $1
             WHERE lease_owner = $2 AND status IN {ACTIVE} RETURNING id"
        ))
        .bind(until)
        .bind(owner)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Returns executions whose lease expired to `pending` (attempt + 1), except those that
    /// have already been tried `max_attempts` times, which fail. Returns both lists.
    pub async fn reap_executions(
        &self,
        now: DateTime<Utc>,
        max_attempts: i32,
    ) -> Result<(Vec<Execution>, Vec<Execution>)> {
        let failed: Vec<Execution> = tx!(self, |tx| {
            let failed: Vec<Execution> = sqlx::query_as(&format!(
                "UPDATE executions SET status = 'failed', lease_owner = NULL,
                    lease_expires_at = NULL, error = $1, completed_at = $2, updated_at = $2
                 WHERE status IN {ACTIVE} AND lease_expires_at < $2 AND attempt >= $3
                 RETURNING {COLS}"
            ))
            .bind(Json(serde_json::json!({
                "code": "abandoned",
                "message": "the execution's worker stopped answering too many times",
            })))
            .bind(now)
            .bind(max_attempts)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            for e in &failed {
                follow_task!(tx, e);
            }
            failed
        });
        let requeued = write!(self, |c| sqlx::query_as(&format!(
            "UPDATE executions SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
                attempt = attempt + 1, run_after = $1, updated_at = $1
             WHERE status IN {ACTIVE} AND lease_expires_at < $1 RETURNING {COLS}"
        ))
        .bind(now)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)?;
        Ok((requeued, failed))
    }

    /// Ends the execution `e` that `owner` holds. `None` when it no longer holds it (cancelled,
    /// reaped). The task of a task's execution follows in the same transaction; an execution
    /// without a task (its task never changes) is one statement.
    pub async fn finish_execution(
        &self,
        e: &Execution,
        owner: &str,
        f: &Finish,
    ) -> Result<Option<Execution>> {
        let sql = format!(
            "UPDATE executions SET status = $1, output = $2, error = $3,
                model = COALESCE($4, model), provider_id = COALESCE($5, provider_id),
                input_tokens = $6, cached_input_tokens = $7, output_tokens = $8,
                reasoning_tokens = $9, cost_micros = $10, completed_at = $11,
                updated_at = $11, duration_ms = $12, lease_owner = NULL,
                lease_expires_at = NULL, confidence = $15
             WHERE id = $13 AND lease_owner = $14 AND status IN {ACTIVE} RETURNING {COLS}"
        );
        macro_rules! finish {
            ($c:expr) => {
                sqlx::query_as(&sql)
                    .bind(f.status)
                    .bind(f.output.as_ref().map(Json))
                    .bind(f.error.as_ref().map(Json))
                    .bind(&f.model)
                    .bind(f.provider_id)
                    .bind(f.tokens.input)
                    .bind(f.tokens.cached_input)
                    .bind(f.tokens.output)
                    .bind(f.tokens.reasoning)
                    .bind(f.cost_micros)
                    .bind(f.now)
                    .bind(f.duration_ms)
                    .bind(e.id)
                    .bind(owner)
                    .bind(f.confidence)
                    .fetch_optional($c)
                    .await
            };
        }
        if e.task_id.is_none() {
            return write!(self, |c| finish!(c)).map_err(StoreError::from_sqlx);
        }
        Ok(tx!(self, |tx| {
            let done: Option<Execution> = finish!(&mut *tx).map_err(StoreError::from_sqlx)?;
            if let Some(e) = &done {
                follow_task!(tx, e);
            }
            done
        }))
    }

    /// Sets `duration_ms` of an execution ended outside its worker (cancelled).
    pub async fn set_execution_duration(&self, id: Uuid, duration_ms: i64) -> Result<()> {
        write!(self, |c| sqlx::query(
            "UPDATE executions SET duration_ms = $1 WHERE id = $2"
        )
        .bind(duration_ms)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Cancels an execution that has not finished. `None`: no such execution; `Some(false)`:
    /// it had already finished.
    pub async fn cancel_execution(
        &self,
        org_id: Uuid,
        id: Uuid,
        error: &Value,
        now: DateTime<Utc>,
    ) -> Result<Option<(bool, Execution)>> {
        let done: Option<Execution> = tx!(self, |tx| {
            let done: Option<Execution> = sqlx::query_as(&format!(
                "UPDATE executions SET status = 'cancelled', error = $1, completed_at = $2,
                    updated_at = $2, lease_owner = NULL, lease_expires_at = NULL
                 WHERE org_id = $3 AND id = $4
                   AND status IN ('pending', 'running', 'awaiting_approval')
                 RETURNING {COLS}"
            ))
            .bind(Json(error))
            .bind(now)
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            if let Some(e) = &done {
                follow_task!(tx, e);
            }
            done
        });
        match done {
            Some(e) => Ok(Some((true, e))),
            None => Ok(self.execution(org_id, id).await?.map(|e| (false, e))),
        }
    }

    /// Ids of an agent's (or a task's) unfinished executions.
    pub async fn unfinished_executions(
        &self,
        org_id: Uuid,
        agent_id: Option<Uuid>,
        task_id: Option<Uuid>,
    ) -> Result<Vec<Uuid>> {
        read!(self, |c| sqlx::query_scalar(
            "SELECT id FROM executions WHERE org_id = $1
               AND ($2 IS NULL OR agent_id = $2) AND ($3 IS NULL OR task_id = $3)
               AND status IN ('pending', 'running', 'awaiting_approval')"
        )
        .bind(org_id)
        .bind(agent_id)
        .bind(task_id)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    // The step journal.

    pub async fn steps(&self, org_id: Uuid, execution_id: Uuid) -> Result<Vec<Step>> {
        read!(self, |c| sqlx::query_as(&format!(
            "SELECT {STEP_COLS} FROM execution_steps WHERE org_id = $1 AND execution_id = $2
             ORDER BY idx"
        ))
        .bind(org_id)
        .bind(execution_id)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Records that a step started. A step already journaled at that index (an earlier
    /// attempt that crashed) is restarted in place.
    /// A relaxed write: a step that had only started is sent again on resume whether or not
    /// its start was kept.
    pub async fn start_step(&self, org_id: Uuid, s: &Step) -> Result<Step> {
        relaxed_write!(self, |c| sqlx::query_as(&format!(
            "INSERT INTO execution_steps (id, org_id, execution_id, idx, kind, name, status, input,
                attempts, model, provider_id, started_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (execution_id, idx) DO UPDATE SET status = $7, input = $8,
                model = $10, provider_id = $11, started_at = $12, expires_at = $13
             RETURNING {STEP_COLS}"
        ))
        .bind(s.id)
        .bind(org_id)
        .bind(s.execution_id)
        .bind(s.idx)
        .bind(&s.kind)
        .bind(&s.name)
        .bind(&s.status)
        .bind(&s.input)
        .bind(&s.attempts)
        .bind(&s.model)
        .bind(s.provider_id)
        .bind(s.started_at)
        .bind(s.expires_at)
        .fetch_one(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Records a step's attempts so far (each failed try and why).
    pub async fn set_step_attempts(&self, id: Uuid, attempts: &Value) -> Result<()> {
        relaxed_write!(self, |c| sqlx::query(
            "UPDATE execution_steps SET attempts = $1 WHERE id = $2"
        )
        .bind(Json(attempts))
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Records how a step ended.
    pub async fn finish_step(&self, s: &Step) -> Result<()> {
        write!(self, |c| sqlx::query(
            "UPDATE execution_steps SET status = $1, output = $2, error = $3, attempts = $4,
                model = $5, provider_id = $6, input_tokens = $7, cached_input_tokens = $8,
                output_tokens = $9, reasoning_tokens = $10, cost_micros = $11,
                completed_at = $12, duration_ms = $13
             WHERE id = $14"
        )
        .bind(&s.status)
        .bind(&s.output)
        .bind(&s.error)
        .bind(&s.attempts)
        .bind(&s.model)
        .bind(s.provider_id)
        .bind(s.input_tokens)
        .bind(s.cached_input_tokens)
        .bind(s.output_tokens)
        .bind(s.reasoning_tokens)
        .bind(s.cost_micros)
        .bind(s.completed_at)
        .bind(s.duration_ms)
        .bind(s.id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Ends the execution's steps still marked running (its call was abandoned by a timeout
    /// or a cancel) as failed with `error`.
    pub async fn close_running_steps(
        &self,
        org_id: Uuid,
        execution_id: Uuid,
        error: &Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        for mut s in self.steps(org_id, execution_id).await? {
            if s.status != "running" {
                continue;
            }
            s.status = "failed".into();
            s.error = Some(Json(error.clone()));
            s.completed_at = Some(now);
            s.duration_ms = Some((now - s.started_at).num_milliseconds().max(0));
            self.finish_step(&s).await?;
        }
        Ok(())
    }
}
