//! Streaming a reply's text into the event log as it arrives. The provider hands over each
//! piece at once (no waiting); a writer task stores it. The first piece is written alone, at
//! once, so it reaches subscribers as soon as possible; after that a write happens at most
//! every [`FLUSH`], gathering what arrived meanwhile (and at once when the call ends). A long
//! reply is then a few rows a second rather than one per token, which keeps the database free
//! for other streams' first tokens when hundreds stream at once.

use std::time::Duration;

use agentry_services::Services;
use agentry_store::Execution;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The shortest time between two writes of one reply's text after the first.
pub(crate) const FLUSH: Duration = Duration::from_millis(100);

pub(crate) struct Deltas {
    tx: mpsc::UnboundedSender<String>,
    writer: tokio::task::JoinHandle<()>,
}

impl Deltas {
    pub(crate) fn start(services: Services, e: Execution, step_index: i32) -> Deltas {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let writer = tokio::spawn(async move {
            let mut next_at = Instant::now();
            while let Some(mut text) = rx.recv().await {
                let mut ended = false;
                // Gather until it is time to write, or the call has ended.
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(next_at) => break,
                        more = rx.recv() => match more {
                            Some(t) => text.push_str(&t),
                            None => {
                                ended = true;
                                break;
                            }
                        },
                    }
                }
                services.emit_delta(&e, step_index, text).await;
                next_at = Instant::now() + FLUSH;
                if ended {
                    break;
                }
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
