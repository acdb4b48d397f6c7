//! The case's custody log: every event appended as one Object-Locked object, chained by SHA-256.
//!
//! Opening the log reads and verifies every earlier event of the case, so a run continues the
//! chain of the runs before it (and refuses to write after a broken chain).

use forensnap_core::custody::{event_key, events_prefix, verify_chain};
use forensnap_core::{Actor, CaseId, ChainHead, Event, EventDraft};
use time::OffsetDateTime;

use crate::error::PreserveError;
use crate::ports::{EvidenceStore, Stored};

/// Appends a case's custody events to the evidence store.
pub struct CustodyLog<S> {
    /// Where events are stored.
    store: S,
    /// Key prefix inside the bucket.
    prefix: String,
    /// The case.
    case: CaseId,
    /// Who acts.
    actor: Actor,
    /// The purpose recorded with every event.
    purpose: Option<String>,
    /// The last event written.
    head: ChainHead,
    /// Every event of the case so far, earlier runs included.
    events: Vec<Event>,
}

impl<S: EvidenceStore> CustodyLog<S> {
    /// Read and verify the case's existing events; the log continues after them.
    pub async fn open(
        store: S,
        prefix: &str,
        case: &CaseId,
        actor: Actor,
        purpose: Option<String>,
    ) -> Result<Self, PreserveError> {
        let listing_prefix = events_prefix(prefix, case);
        let keys = store
            .list(&listing_prefix)
            .await
            .map_err(|e| PreserveError::custody(store.bucket(), &listing_prefix, e))?;
        let mut stored = Vec::with_capacity(keys.len());
        for key in keys.into_iter().filter(|k| k.ends_with(".json")) {
            let bytes = store
                .get(&key)
                .await
                .map_err(|e| PreserveError::custody(store.bucket(), &key, e))?;
            stored.push((key, bytes));
        }
        let (events, head) =
            verify_chain(case, &stored).map_err(|e| PreserveError::BrokenChain {
                bucket: store.bucket().to_string(),
                message: e.to_string(),
            })?;
        Ok(CustodyLog {
            store,
            prefix: prefix.to_string(),
            case: case.clone(),
            actor,
            purpose,
            head,
            events,
        })
    }

    /// Append one event; returns it with where it was stored.
    pub async fn record(&mut self, draft: EventDraft) -> Result<(Event, Stored), PreserveError> {
        let event = Event::next(
            draft,
            &self.case,
            &self.head,
            &self.actor,
            self.purpose.as_deref(),
            OffsetDateTime::now_utc(),
        );
        let key = event_key(&self.prefix, &self.case, event.seq);
        let stored = self
            .store
            .put_locked(&key, event.to_bytes(), "application/json")
            .await
            .map_err(|e| PreserveError::custody(self.store.bucket(), &key, e))?
            .value;
        tracing::info!(case = %self.case, seq = event.seq, action = %event.action, outcome = ?event.outcome, "custody event recorded");
        self.head = event.head();
        self.events.push(event.clone());
        Ok((event, stored))
    }

    /// Every event of the case, earlier runs included.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The chain head.
    pub fn head(&self) -> &ChainHead {
        &self.head
    }

    /// The evidence store (for other evidence objects of the run).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The key prefix inside the bucket.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The case.
    pub fn case(&self) -> &CaseId {
        &self.case
    }
}
