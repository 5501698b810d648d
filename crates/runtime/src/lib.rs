//! The runtime: claims due executions with a lease, runs each as a task, keeps the leases
//! alive with one heartbeat per process, and returns the executions of dead workers to the
//! queue. No database transaction is held across a provider call.

mod approvals;
mod context;
mod delegate;
mod deltas;
mod llm;
mod run;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use agentry_services::Services;
use chrono::Utc;

/// How the runtime behaves.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// How long a claim lasts without a heartbeat (`AGENTRY_LEASE_SECONDS`).
    pub lease: Duration,
    /// Executions in flight in this process (`AGENTRY_WORKER_CONCURRENCY`).
    pub concurrency: usize,
    /// Executions running at once in one org, across every process.
    pub org_concurrency: i64,
    /// How often to look for work when nothing wakes the runtime (other replicas' work).
    pub poll: Duration,
    /// Attempts after which an execution whose worker keeps dying fails.
    pub max_attempts: i32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            lease: Duration::from_secs(30),
            concurrency: 256,
            org_concurrency: 64,
            poll: Duration::from_millis(500),
            max_attempts: 10,
        }
    }
}

pub struct Runtime {
    services: Services,
    opts: RuntimeOptions,
    /// This process's name on the leases it takes.
    owner: String,
    /// Itself, to run the executions a tool call starts.
    me: std::sync::Weak<Runtime>,
}

impl Runtime {
    pub fn new(services: Services, opts: RuntimeOptions) -> Arc<Runtime> {
        Arc::new_cyclic(|me| Runtime {
            services,
            opts,
            owner: format!("worker-{}", agentry_core::id::new_id()),
            me: me.clone(),
        })
    }

    /// Runs until `shutdown` resolves. Executions in flight are then dropped; their leases
    /// expire and another worker (or this one, restarted) resumes them from the journal.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let claimer = tokio::spawn(self.clone().claim_loop());
        let heart = tokio::spawn(self.clone().heartbeat_loop());
        let reaper = tokio::spawn(self.clone().reaper_loop());
        shutdown.await;
        claimer.abort();
        heart.abort();
        reaper.abort();
        for id in self.services.signals.running_ids() {
            self.services.signals.abort(id);
        }
    }

    /// Runs `e` in a task of its own, registered (so it can be cancelled and counted) before
    /// it starts: a quick execution could otherwise finish, and unregister, before it was
    /// registered, and leave a stale entry behind.
    pub(crate) fn spawn_execution(
        self: &Arc<Self>,
        e: agentry_store::Execution,
    ) -> tokio::task::JoinHandle<()> {
        let id = e.id;
        let rt = self.clone();
        let (go, registered) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if registered.await.is_ok() {
                rt.execute(e).await;
            }
        });
        self.services.signals.register(id, task.abort_handle());
        let _ = go.send(());
        task
    }

    pub(crate) fn lease_until(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.opts.lease).unwrap_or_default()
    }

    async fn claim_loop(self: Arc<Self>) {
        loop {
            let free = self
                .opts
                .concurrency
                .saturating_sub(self.services.signals.running_count());
            let mut claimed = 0;
            if free > 0 {
                match self.claim(free).await {
                    Ok(n) => claimed = n,
                    Err(e) => tracing::error!(error = %e, "claiming executions failed"),
                }
            }
            // More may be waiting: claim again at once; else sleep until woken or polled.
            if claimed > 0 && claimed == free {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = self.services.signals.work.notified() => {}
                _ = tokio::time::sleep(self.opts.poll) => {}
            }
        }
    }

    /// Claims up to `free` executions and starts each; returns how many. The first claim's
    /// executions start before the rest of the backlog is looked at, which is one more query.
    async fn claim(self: &Arc<Self>, free: usize) -> agentry_store::Result<usize> {
        let store = &self.services.store;
        let claim = agentry_store::Claim {
            owner: &self.owner,
            now: Utc::now(),
            lease_until: self.lease_until(),
            limit: free as i64,
            org_cap: self.opts.org_concurrency,
        };
        let first = store.claim_first(&claim).await?;
        let n = first.len();
        for e in first {
            self.spawn_execution(e);
        }
        let more = store.claim_beyond(&claim, n).await?;
        let total = n + more.len();
        for e in more {
            self.spawn_execution(e);
        }
        Ok(total)
    }

    /// Extends every lease this process holds; an execution it no longer holds (cancelled on
    /// another replica, or reaped) is dropped here.
    async fn heartbeat_loop(self: Arc<Self>) {
        let period = (self.opts.lease / 3).min(Duration::from_secs(1));
        loop {
            tokio::time::sleep(period).await;
            // Only executions registered before the heartbeat can be judged by it: one claimed
            // meanwhile is held but not yet in the answer.
            let running = self.services.signals.running_ids();
            if running.is_empty() {
                continue;
            }
            match self
                .services
                .store
                .heartbeat(&self.owner, self.lease_until())
                .await
            {
                Ok(held) => {
                    for id in running {
                        if !held.contains(&id) {
                            tracing::info!(execution_id = %id, "lease lost; dropping the execution");
                            self.services.signals.abort(id);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "heartbeat failed"),
            }
        }
    }

    /// Returns executions whose lease expired to the queue.
    async fn reaper_loop(self: Arc<Self>) {
        let period =
            (self.opts.lease / 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self
                .services
                .store
                .reap_executions(Utc::now(), self.opts.max_attempts)
                .await
            {
                Ok((requeued, failed)) => {
                    for e in &requeued {
                        self.services.emit_status(e).await;
                        self.system_event(
                            e,
                            "execution.retried",
                            "warning",
                            serde_json::json!({"reason": "lease_expired", "attempt": e.attempt}),
                        )
                        .await;
                    }
                    for e in &failed {
                        self.system_event(
                            e,
                            "execution.failed",
                            "error",
                            serde_json::json!({"error": e.error.as_ref().map(|j| j.0.clone())}),
                        )
                        .await;
                        self.services.execution_finished(e).await;
                        let _ = self.services.signals.finished.send(e.id);
                    }
                    if !requeued.is_empty() {
                        self.services.signals.work.notify_one();
                    }
                }
                Err(e) => tracing::error!(error = %e, "reaping executions failed"),
            }
            self.expire_approvals().await;
            tokio::time::sleep(period).await;
        }
    }

    /// Approvals nobody answered in time are decided as `expired`; their executions resume
    /// and tell the model the call was not made.
    async fn expire_approvals(&self) {
        let now = Utc::now();
        let due = match self.services.store.expired_approvals(now, 100).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading expired approvals failed");
                return;
            }
        };
        for (org_id, execution_id, step_id) in due {
            if let Err(e) = self
                .services
                .decide_approval_as(org_id, execution_id, step_id, "expired", None, None)
                .await
            {
                tracing::error!(error = %e, "expiring an approval failed");
            }
        }
    }

    async fn system_event(
        &self,
        e: &agentry_store::Execution,
        kind: &'static str,
        category: &'static str,
        data: serde_json::Value,
    ) {
        use agentry_services::audit::{Audit, EventActor, Links};
        self.services
            .record_linked(
                Audit {
                    org_id: Some(e.org_id),
                    kind,
                    category,
                    actor: EventActor::System,
                    user_id: None,
                    data,
                    meta: &Default::default(),
                },
                Links {
                    agent_id: Some(e.agent_id),
                    task_id: e.task_id,
                    execution_id: Some(e.id),
                },
            )
            .await;
    }
}

/// Exponential backoff with full jitter: up to `base × 2^attempt`, capped.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap_ms: u64 = 20_000;
    let max_ms = (250u64 << attempt.min(16)).min(cap_ms);
    let mut b = [0u8; 8];
    let r = getrandom::fill(&mut b)
        .map(|_| u64::from_le_bytes(b))
        .unwrap_or(0);
    // Half fixed, half random, so a retry never comes at once.
    Duration::from_millis(max_ms / 2 + r % (max_ms / 2 + 1))
}
