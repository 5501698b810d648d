//! Streaming a reply's text into the event log as it arrives. The provider hands over each
//! piece at once (no waiting); a writer task stores what has arrived and, while a write is in
//! flight, gathers what comes meanwhile into the next one. The first token is written alone, so
//! it reaches subscribers as soon as possible, and a long reply becomes a few dozen rows
//! rather than thousands.

use agentry_services::Services;
use agentry_store::Execution;
use tokio::sync::mpsc;

pub(crate) struct Deltas {
    tx: mpsc::UnboundedSender<String>,
    writer: tokio::task::JoinHandle<()>,
}

impl Deltas {
    pub(crate) fn start(services: Services, e: Execution, step_index: i32) -> Deltas {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            while let Some(mut text) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    text.push_str(&more);
                }
                services.emit_delta(&e, step_index, text).await;
            }
        });
        Deltas { tx, writer }
    }

    /// Passes a piece of text on (never waits).
    pub(crate) fn push(&self, text: &str) {
        if !text.is_empty() {
            let _ = self.tx.send(text.to_string());
        }
    }

    /// Waits until every piece pushed so far is stored.
    pub(crate) async fn finish(self) {
        drop(self.tx);
        let _ = self.writer.await;
    }
}
