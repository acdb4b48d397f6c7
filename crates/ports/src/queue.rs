//! The request queue the daemon takes case requests from: receive with long polling, keep a
//! message invisible while it is worked, delete it once its outcome is recorded, and send what
//! cannot be collected to the dead-letter queue with its reason.
//!
//! The AWS adapter is SQS (a standard queue with a redrive policy, as
//! `forensic-vpc/forensic-account.yaml` makes it); [`MemoryQueue`] serves unit tests.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use forensnap_store::CloudError;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The queue's message id.
    pub id: String,
    /// The handle of this receipt (what extend and delete take).
    pub receipt: String,
    /// The body.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// When it was sent, ms since the epoch.
    pub sent_ms: Option<u64>,
}

/// Messages waiting and in flight, as the queue reports them (approximate on SQS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    /// Visible, waiting for a worker.
    pub waiting: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// In the dead-letter queue.
    pub dead_letters: u64,
}

/// The request queue and its dead-letter queue.
pub trait RequestQueue: Send + Sync {
    /// The queue's name or URL, for messages.
    fn name(&self) -> &str;

    /// Up to `max` messages, waiting up to `wait` for the first; each stays invisible to other
    /// receivers for `visibility`.
    fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Message>, CloudError>> + Send;

    /// Keep a received message invisible for `visibility` from now (the heartbeat).
    fn extend(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Delete a received message: its outcome is recorded.
    fn delete(&self, receipt: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Send a new message; returns its id.
    fn send(&self, body: &str) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// Move a received message to the dead-letter queue with why (`code`, `reason`), then
    /// delete it from the request queue.
    fn dead_letter(
        &self,
        message: &Message,
        code: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// How many messages wait, are in flight, and are dead letters.
    fn depth(&self) -> impl Future<Output = Result<Depth, CloudError>> + Send;
}

/// A dead letter as [`MemoryQueue`] keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The body as received.
    pub body: String,
    /// The reason's code.
    pub code: String,
    /// The reason.
    pub reason: String,
}

/// A queue in memory for unit tests: visibility timeouts on the monotonic clock, no long
/// polling (an empty receive returns at once after a short sleep-free check).
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    next: u64,
    messages: VecDeque<Stored>,
    dead: Vec<DeadLetter>,
}

#[derive(Debug)]
struct Stored {
    id: String,
    body: String,
    receives: u32,
    /// The current receipt and until when it hides the message.
    hidden: Option<(String, Instant)>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The dead letters so far.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state().dead.clone()
    }

    /// Make every message in flight visible again now, as SQS's at-least-once delivery may:
    /// the next receive delivers it a second time with a new receipt handle.
    pub fn redeliver(&self) {
        for stored in self.state().messages.iter_mut() {
            stored.hidden = None;
        }
    }

    /// Messages not yet deleted.
    pub fn len(&self) -> usize {
        self.state().messages.len()
    }

    /// Whether every message was deleted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn not_found(operation: &'static str, receipt: &str) -> CloudError {
    CloudError::new(
        forensnap_store::ErrorKind::NotFound,
        operation,
        format!(
            "no message has the receipt handle {receipt} (deleted, or its visibility lapsed and it was received again)"
        ),
    )
}

impl RequestQueue for MemoryQueue {
    fn name(&self) -> &str {
        "memory"
    }

    async fn receive(
        &self,
        max: u32,
        _wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, CloudError> {
        let now = Instant::now();
        let mut state = self.state();
        let mut out = Vec::new();
        let mut receipt_no = state.next;
        for stored in state.messages.iter_mut() {
            if out.len() >= max as usize {
                break;
            }
            if stored
                .hidden
                .as_ref()
                .is_some_and(|(_, until)| *until > now)
            {
                continue;
            }
            receipt_no += 1;
            let receipt = format!("{}#{receipt_no}", stored.id);
            stored.receives += 1;
            stored.hidden = Some((receipt.clone(), now + visibility));
            out.push(Message {
                id: stored.id.clone(),
                receipt,
                body: stored.body.clone(),
                receive_count: stored.receives,
                sent_ms: None,
            });
        }
        state.next = receipt_no;
        Ok(out)
    }

    async fn extend(&self, receipt: &str, visibility: Duration) -> Result<(), CloudError> {
        let mut state = self.state();
        let stored = state
            .messages
            .iter_mut()
            .find(|m| m.hidden.as_ref().is_some_and(|(r, _)| r == receipt))
            .ok_or_else(|| not_found("ChangeMessageVisibility", receipt))?;
        stored.hidden = Some((receipt.to_string(), Instant::now() + visibility));
        Ok(())
    }

    async fn delete(&self, receipt: &str) -> Result<(), CloudError> {
        let mut state = self.state();
        // SQS deletes with a stale receipt too, as long as it names the message; here the
        // receipt carries the id.
        let id = receipt.split('#').next().unwrap_or(receipt).to_string();
        state.messages.retain(|m| m.id != id);
        Ok(())
    }

    async fn send(&self, body: &str) -> Result<String, CloudError> {
        let mut state = self.state();
        state.next += 1;
        let id = format!("m-{}", state.next);
        state.messages.push_back(Stored {
            id: id.clone(),
            body: body.to_string(),
            receives: 0,
            hidden: None,
        });
        Ok(id)
    }

    async fn dead_letter(
        &self,
        message: &Message,
        code: &str,
        reason: &str,
    ) -> Result<(), CloudError> {
        {
            let mut state = self.state();
            state.dead.push(DeadLetter {
                body: message.body.clone(),
                code: code.to_string(),
                reason: reason.to_string(),
            });
        }
        self.delete(&message.receipt).await
    }

    async fn depth(&self) -> Result<Depth, CloudError> {
        let now = Instant::now();
        let state = self.state();
        let in_flight = state
            .messages
            .iter()
            .filter(|m| m.hidden.as_ref().is_some_and(|(_, until)| *until > now))
            .count() as u64;
        Ok(Depth {
            waiting: state.messages.len() as u64 - in_flight,
            in_flight,
            dead_letters: state.dead.len() as u64,
        })
    }
}

impl<Q: RequestQueue> RequestQueue for std::sync::Arc<Q> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Message>, CloudError>> + Send {
        (**self).receive(max, wait, visibility)
    }
    fn extend(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        (**self).extend(receipt, visibility)
    }
    fn delete(&self, receipt: &str) -> impl Future<Output = Result<(), CloudError>> + Send {
        (**self).delete(receipt)
    }
    fn send(&self, body: &str) -> impl Future<Output = Result<String, CloudError>> + Send {
        (**self).send(body)
    }
    fn dead_letter(
        &self,
        message: &Message,
        code: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        (**self).dead_letter(message, code, reason)
    }
    fn depth(&self) -> impl Future<Output = Result<Depth, CloudError>> + Send {
        (**self).depth()
    }
}
