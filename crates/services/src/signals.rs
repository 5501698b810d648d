//! In-process signals: new work for the runtime, finished executions for waiters, and the
//! executions this process is running (so a cancel can drop the in-flight call at once).
//! Other replicas learn the same things from the database (polling, heartbeats), a little later.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

pub struct Signals {
    /// Woken when an execution is created or becomes due.
    pub work: Notify,
    /// Ids of executions that finished, whatever the status.
    pub finished: broadcast::Sender<Uuid>,
    running: Mutex<HashMap<Uuid, tokio::task::AbortHandle>>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            work: Notify::new(),
            finished: broadcast::channel(4096).0,
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl Signals {
    pub fn register(&self, id: Uuid, handle: tokio::task::AbortHandle) {
        self.lock().insert(id, handle);
    }

    pub fn unregister(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    /// Stops the task running `id` in this process, if any; true when there was one.
    pub fn abort(&self, id: Uuid) -> bool {
        match self.lock().remove(&id) {
            Some(h) => {
                h.abort();
                true
            }
            None => false,
        }
    }

    pub fn running_ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }

    pub fn running_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, tokio::task::AbortHandle>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
