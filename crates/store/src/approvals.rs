//! Approvals of supervised agents' tool calls, and executions started by other executions.
//!
//! An execution waiting for approval holds no lease: it is `awaiting_approval` with its
//! approval steps `awaiting`. Deciding the last of them returns it to `pending`, and a worker
//! resumes it from its journal. Both sides lock the execution row first, so a decision made
//! while the worker is still suspending the execution is never lost.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::executions::{COLS, STEP_COLS};
use crate::macros::{read, tx, write};
use crate::{Execution, Result, Step, Store, StoreError};

/// What became of a decision.
#[derive(Debug)]
pub enum Decided {
    /// The step was decided; the execution is returned as it now is.
    Done(Box<Step>, Box<Execution>),
    /// No such execution in the org.
    NoExecution,
    /// No such approval step in the execution.
    NoStep,
    /// The step was already decided (or expired).
    AlreadyDecided(Box<Step>),
}

impl Store {
    /// Suspends an execution `owner` holds while it has approval steps awaiting an answer:
    /// `awaiting_approval`, no lease. `false` when it was not held or nothing awaits.
    pub async fn suspend_for_approval(&self, id: Uuid, owner: &str) -> Result<bool> {
        let now = Utc::now();
        let n = write!(self, |c| sqlx::query(
            "UPDATE executions SET status = 'awaiting_approval', lease_owner = NULL,
                lease_expires_at = NULL, updated_at = $1
             WHERE id = $2 AND lease_owner = $3 AND status = 'running'"
        )
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(StoreError::from_sqlx)?;
        if n == 0 {
            return Ok(false);
        }
        // Decided meanwhile (the decision saw the execution still running): resume it now.
        self.resume_if_decided(id, now).await?;
        Ok(true)
    }

    /// Returns an `awaiting_approval` execution with nothing left awaiting to `pending`.
    async fn resume_if_decided(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Execution>> {
        write!(self, |c| sqlx::query_as(&format!(
            "UPDATE executions SET status = 'pending', run_after = $1, updated_at = $1
             WHERE id = $2 AND status = 'awaiting_approval' AND NOT EXISTS (
                SELECT 1 FROM execution_steps s WHERE s.execution_id = $2 AND s.status = 'awaiting')
             RETURNING {COLS}"
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// Decides an approval step: `status` is `approved`, `rejected` or `expired`, `output`
    /// says by whom and why. When it was the last one awaiting, the execution goes back to
    /// `pending`.
    pub async fn decide_approval(
        &self,
        org_id: Uuid,
        execution_id: Uuid,
        step_id: Uuid,
        status: &str,
        output: &Value,
        now: DateTime<Utc>,
    ) -> Result<Decided> {
        let outcome = tx!(self, |tx| {
            // Lock the execution row first (see the module's note).
            let exec: Option<Execution> = sqlx::query_as(&format!(
                "UPDATE executions SET updated_at = updated_at WHERE org_id = $1 AND id = $2
                 RETURNING {COLS}"
            ))
            .bind(org_id)
            .bind(execution_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            if exec.is_none() {
                Decided::NoExecution
            } else {
                let step: Option<Step> = sqlx::query_as(&format!(
                    "SELECT {STEP_COLS} FROM execution_steps
                     WHERE id = $1 AND execution_id = $2 AND kind = 'approval'"
                ))
                .bind(step_id)
                .bind(execution_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                match step {
                    None => Decided::NoStep,
                    Some(s) if s.status != "awaiting" => Decided::AlreadyDecided(Box::new(s)),
                    Some(s) => {
                        let ms = (now - s.started_at).num_milliseconds().max(0);
                        let step: Step = sqlx::query_as(&format!(
                            "UPDATE execution_steps SET status = $1, output = $2,
                                completed_at = $3, duration_ms = $4
                             WHERE id = $5 RETURNING {STEP_COLS}"
                        ))
                        .bind(status)
                        .bind(Json(output))
                        .bind(now)
                        .bind(ms)
                        .bind(step_id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                        let exec: Execution = sqlx::query_as(&format!(
                            "UPDATE executions SET
                                status = CASE WHEN status = 'awaiting_approval' AND NOT EXISTS (
                                    SELECT 1 FROM execution_steps s
                                    WHERE s.execution_id = $1 AND s.status = 'awaiting')
                                  THEN 'pending' ELSE status END,
                                run_after = $2, updated_at = $2
                             WHERE id = $1 RETURNING {COLS}"
                        ))
                        .bind(execution_id)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                        Decided::Done(Box::new(step), Box::new(exec))
                    }
                }
            }
        });
        Ok(outcome)
    }

    /// Approval steps whose time ran out: `(org_id, execution_id, step_id)`, at most `limit`.
    pub async fn expired_approvals(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<(Uuid, Uuid, Uuid)>> {
        read!(self, |c| sqlx::query_as(
            "SELECT org_id, execution_id, id FROM execution_steps
             WHERE status = 'awaiting' AND expires_at < $1 ORDER BY expires_at LIMIT $2"
        )
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }

    /// The unfinished executions started by `parent_id`'s tool calls.
    pub async fn unfinished_children(&self, org_id: Uuid, parent_id: Uuid) -> Result<Vec<Uuid>> {
        read!(self, |c| sqlx::query_scalar(
            "SELECT id FROM executions WHERE org_id = $1 AND parent_execution_id = $2
               AND status IN ('pending', 'running', 'awaiting_approval')"
        )
        .bind(org_id)
        .bind(parent_id)
        .fetch_all(c)
        .await)
        .map_err(StoreError::from_sqlx)
    }
}
