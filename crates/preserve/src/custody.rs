//! The case's custody log: every event appended as one Object-Locked object, chained by SHA-256.
//!
//! Opening the log reads and verifies every earlier event of the case, so a run continues the
//! chain of the runs before it (and refuses to write after a broken chain).

use base64::Engine as _;
use forensnap_core::CaseLayout;
use forensnap_core::custody::{utc_time, verify_chain};
use forensnap_core::seal::{
    CHECKPOINT_SCHEMA, ChainPosition, Checkpoint, PreviousCheckpoint, SIGNATURE_SUFFIX, SealedItem,
    Signer, fingerprint, public_key_pem,
};
use forensnap_core::sha256_hex;
use forensnap_core::{Actor, CaseId, ChainHead, Event, EventDraft};
use time::OffsetDateTime;

use crate::error::PreserveError;
use forensnap_store::{CloudError, ErrorKind, EvidenceWrite, Stored};

/// Appends a case's custody events to the evidence store.
pub struct CustodyLog<S> {
    /// Where events are stored.
    store: S,
    /// Where the case's objects are.
    layout: CaseLayout,
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

impl<S: EvidenceWrite> CustodyLog<S> {
    /// Read and verify the case's existing events; the log continues after them.
    pub async fn open(
        store: S,
        prefix: &str,
        case: &CaseId,
        actor: Actor,
        purpose: Option<String>,
    ) -> Result<Self, PreserveError> {
        let layout = CaseLayout::new(prefix, case);
        let listing_prefix = layout.events();
        let keys = store
            .list(&listing_prefix)
            .await
            .map_err(|e| PreserveError::custody(store.bucket(), &listing_prefix, e))?;
        let mut stored = Vec::with_capacity(keys.len());
        for key in keys.into_iter().filter(|k| k.ends_with(".json")) {
            let bytes = get_existing(&store, &key)
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
            layout,
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
        let key = self.layout.event(event.seq);
        let stored = self
            .store
            .put_new(&key, event.to_bytes(), "application/json")
            .await
            .map_err(|e| PreserveError::custody(self.store.bucket(), &key, e))?
            .value;
        tracing::info!(case = %self.case, seq = event.seq, action = %event.action, outcome = ?event.outcome, "custody event recorded");
        self.head = event.head();
        self.events.push(event.clone());
        Ok((event, stored))
    }

    /// Seal the chain so far with a signed checkpoint (`custody/checkpoints/NNNNNNNN.json` and
    /// its DER signature `.sig`), in the manner of CloudTrail's digest files: it names its own
    /// location, the chain head, the previous checkpoint (key, SHA-256, signature) and every
    /// evidence item sealed so far (`items` replace earlier entries with the same id).
    pub async fn checkpoint<G: Signer>(
        &mut self,
        signer: &G,
        items: Vec<SealedItem>,
    ) -> Result<Checkpoint, PreserveError> {
        let bucket = self.store.bucket().to_string();
        let listing = self.layout.checkpoints();
        let keys = self
            .store
            .list(&listing)
            .await
            .map_err(|e| PreserveError::custody(&bucket, &listing, e))?;
        let (number, previous, mut sealed) = match keys.iter().rfind(|k| k.ends_with(".json")) {
            None => (1, None, Vec::new()),
            Some(key) => {
                let bytes = get_existing(&self.store, key)
                    .await
                    .map_err(|e| PreserveError::custody(&bucket, key, e))?;
                let signature_key = format!("{key}{SIGNATURE_SUFFIX}");
                let signature = match self.store.get(&signature_key).await {
                    Ok(Some(signature)) => signature,
                    // A run stopped between a checkpoint and its signature: sign it now.
                    Ok(None) => {
                        let signature = self.sign(signer, key, &bytes).await?;
                        self.store
                            .put_new(
                                &signature_key,
                                signature.clone(),
                                "application/octet-stream",
                            )
                            .await
                            .map_err(|e| PreserveError::custody(&bucket, &signature_key, e))?;
                        signature
                    }
                    Err(e) => return Err(PreserveError::custody(&bucket, &signature_key, e)),
                };
                let last = Checkpoint::from_bytes(&bytes).map_err(|e| PreserveError::Seal {
                        case: self.case.to_string(),
                        key: key.clone(),
                        message: e.to_string(),
                        next: "run `forensnap verify` on the case and escalate; forensnap does not continue a checkpoint chain it cannot read",
                    })?;
                let previous = PreviousCheckpoint {
                    key: key.clone(),
                    sha256: sha256_hex(&bytes),
                    signature: base64::engine::general_purpose::STANDARD.encode(&signature),
                };
                (last.number + 1, Some(previous), last.items)
            }
        };
        for item in items {
            sealed.retain(|s| s.id != item.id);
            sealed.push(item);
        }
        sealed.sort_by(|a, b| a.id.cmp(&b.id));
        let key = self.layout.checkpoint(number);
        let checkpoint = Checkpoint {
            schema: CHECKPOINT_SCHEMA.to_string(),
            case: self.case.to_string(),
            number,
            time: utc_time(OffsetDateTime::now_utc()),
            bucket: bucket.clone(),
            key: key.clone(),
            chain: ChainPosition {
                seq: self.head.seq,
                sha256: self.head.sha256.clone(),
            },
            previous,
            items: sealed,
            signing_key_arn: signer.key_id().to_string(),
            public_key_sha256: fingerprint(signer.public_key_der()),
        };
        if number == 1 {
            // The key beside the checkpoints, for offline verification (auditors compare its
            // fingerprint with `aws kms get-public-key` before trusting it).
            let key_path = self.layout.checkpoints_public_key();
            let pem = public_key_pem(signer.public_key_der()).into_bytes();
            if let Err(e) = self
                .store
                .put_new(&key_path, pem, "application/x-pem-file")
                .await
                && e.kind != ErrorKind::Exists
            {
                return Err(PreserveError::custody(&bucket, &key_path, e));
            }
        }
        let bytes = checkpoint.to_bytes();
        let signature = self.sign(signer, &key, &bytes).await?;
        self.store
            .put_new(&key, bytes, "application/json")
            .await
            .map_err(|e| PreserveError::custody(&bucket, &key, e))?;
        let signature_key = format!("{key}{SIGNATURE_SUFFIX}");
        self.store
            .put_new(&signature_key, signature, "application/octet-stream")
            .await
            .map_err(|e| PreserveError::custody(&bucket, &signature_key, e))?;
        tracing::info!(case = %self.case, number, seq = self.head.seq, "custody chain sealed by a signed checkpoint");
        Ok(checkpoint)
    }

    async fn sign<G: Signer>(
        &self,
        signer: &G,
        key: &str,
        bytes: &[u8],
    ) -> Result<Vec<u8>, PreserveError> {
        signer.sign(bytes).await.map_err(|e| PreserveError::Seal {
            case: self.case.to_string(),
            key: key.to_string(),
            message: format!("signing with {}: {e}", signer.key_id()),
            next: "check that the forensic role may call kms:Sign on forensic.signing_key_arn, then run the same command again",
        })
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

    /// Where the case's objects are.
    pub fn layout(&self) -> &CaseLayout {
        &self.layout
    }

    /// The case.
    pub fn case(&self) -> &CaseId {
        &self.case
    }
}

/// An object that a listing named: absent is an error here.
async fn get_existing<S: EvidenceWrite>(store: &S, key: &str) -> Result<Vec<u8>, CloudError> {
    store.get(key).await?.ok_or_else(|| {
        CloudError::new(
            ErrorKind::NotFound,
            "GetObject",
            format!(
                "{key} was listed but does not exist in bucket {}",
                store.bucket()
            ),
        )
    })
}
