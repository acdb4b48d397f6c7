//! forensnap's custody service: a case's custody events appended as one Object-Locked object
//! each, chained by SHA-256, and sealed by signed checkpoints.
//!
//! [`Custody`] is a cloneable handle (its lock inside, as mini-redis's `Db`): every task of a
//! run appends through its own clone, events take their sequence numbers one after another, and
//! the evidence store stays reachable without taking the lock. Opening it reads and verifies
//! every earlier event of the case, so a run continues the chain of the runs before it (and
//! refuses to write after a broken chain). Between processes the sequence is guarded by the
//! store: an event is written with [`EvidenceWrite::put_new`], which refuses a key that exists.
//!
//! * [`error`] -- [`CustodyError`]: the bucket or case, the key, and the next step.

pub mod error;

use std::sync::Arc;

use base64::Engine as _;
use forensnap_core::CaseLayout;
use forensnap_core::custody::{utc_time, verify_chain, verify_chain_from};
use forensnap_core::keys::signature_of;
use forensnap_core::seal::{
    CHECKPOINT_SCHEMA, ChainPosition, Checkpoint, PreviousCheckpoint, SealedItem, Signer,
    fingerprint, public_key_pem,
};
use forensnap_core::sha256_hex;
use forensnap_core::{Actor, CaseId, ChainHead, Event, EventDraft};
use forensnap_store::{CloudError, ErrorKind, EvidenceWrite, Stored};
use time::OffsetDateTime;
use tokio::sync::Mutex;

pub use error::CustodyError;

/// Races for the next sequence number one append may lose before it gives up: each lost race
/// means another writer appended, so this bounds a loop that always makes progress anyway.
const MAX_LOST_RACES: u32 = 64;

/// Appends a case's custody events to the evidence store; clones share one chain.
pub struct Custody<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Custody<S> {
    fn clone(&self) -> Self {
        Custody {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
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
    /// The chain so far, locked while an event is appended or the chain sealed.
    chain: Mutex<Chain>,
}

struct Chain {
    /// The last event written.
    head: ChainHead,
    /// Every event of the case so far, earlier runs included.
    events: Vec<Event>,
}

impl<S: EvidenceWrite> Custody<S> {
    /// Read and verify the case's existing events; the log continues after them.
    pub async fn open(
        store: S,
        prefix: &str,
        case: &CaseId,
        actor: Actor,
        purpose: Option<String>,
    ) -> Result<Self, CustodyError> {
        let layout = CaseLayout::new(prefix, case);
        let listing_prefix = layout.events();
        let keys = store
            .list(&listing_prefix)
            .await
            .map_err(|e| CustodyError::store(store.bucket(), &listing_prefix, e))?;
        let mut stored = Vec::with_capacity(keys.len());
        for key in keys.into_iter().filter(|k| k.ends_with(".json")) {
            let bytes = get_existing(&store, &key)
                .await
                .map_err(|e| CustodyError::store(store.bucket(), &key, e))?;
            stored.push((key, bytes));
        }
        let (events, head) =
            verify_chain(case, &stored).map_err(|e| CustodyError::BrokenChain {
                bucket: store.bucket().to_string(),
                message: e.to_string(),
            })?;
        Ok(Custody {
            inner: Arc::new(Inner {
                store,
                layout,
                case: case.clone(),
                actor,
                purpose,
                chain: Mutex::new(Chain { head, events }),
            }),
        })
    }

    /// Append one event; returns it with where it was stored.
    /// The chain is locked from the moment the event takes its sequence number until it is
    /// stored, so concurrent tasks append one after another; the store itself is not locked.
    ///
    /// Other processes may append to the same case (several daemons, a merged request): the
    /// sequence number is decided by the store's conditional write ([`EvidenceWrite::put_new`]).
    /// When another writer took the number first, the events written since are read and
    /// verified as the continuation of the chain, and the event is built again after them.
    pub async fn record(&self, draft: EventDraft) -> Result<(Event, Stored), CustodyError> {
        let inner = &*self.inner;
        let mut chain = inner.chain.lock().await;
        let mut lost_races = 0;
        loop {
            let event = Event::next(
                draft.clone(),
                &inner.case,
                &chain.head,
                &inner.actor,
                inner.purpose.as_deref(),
                OffsetDateTime::now_utc(),
            );
            let key = inner.layout.event(event.seq);
            match inner
                .store
                .put_new(&key, event.to_bytes(), "application/json")
                .await
            {
                Ok(stored) => {
                    tracing::info!(case = %inner.case, seq = event.seq, action = %event.action, outcome = ?event.outcome, "custody event recorded");
                    chain.head = event.head();
                    chain.events.push(event.clone());
                    return Ok((event, stored.value));
                }
                Err(e) if e.kind == ErrorKind::Exists && lost_races < MAX_LOST_RACES => {
                    lost_races += 1;
                    tracing::info!(case = %inner.case, seq = event.seq, lost_races, "another writer appended to the custody chain first; reading its events");
                    self.catch_up(&mut chain).await?;
                }
                Err(e) => return Err(CustodyError::store(inner.store.bucket(), &key, e)),
            }
        }
    }

    /// Read and verify the events other writers appended after `chain`'s head.
    async fn catch_up(&self, chain: &mut Chain) -> Result<(), CustodyError> {
        let inner = &*self.inner;
        let listing_prefix = inner.layout.events();
        let keys = inner
            .store
            .list(&listing_prefix)
            .await
            .map_err(|e| CustodyError::store(inner.store.bucket(), &listing_prefix, e))?;
        let mut stored = Vec::new();
        // Event keys sort by sequence (zero-padded): the first `events.len()` are known.
        for key in keys
            .into_iter()
            .filter(|k| k.ends_with(".json"))
            .skip(chain.events.len())
        {
            let bytes = get_existing(&inner.store, &key)
                .await
                .map_err(|e| CustodyError::store(inner.store.bucket(), &key, e))?;
            stored.push((key, bytes));
        }
        let (events, head) =
            verify_chain_from(&inner.case, chain.head.clone(), &stored).map_err(|e| {
                CustodyError::BrokenChain {
                    bucket: inner.store.bucket().to_string(),
                    message: e.to_string(),
                }
            })?;
        chain.events.extend(events);
        chain.head = head;
        Ok(())
    }

    /// Seal the chain so far with a signed checkpoint (`custody/checkpoints/NNNNNNNN.json` and
    /// its DER signature `.sig`), in the manner of CloudTrail's digest files: it names its own
    /// location, the chain head, the previous checkpoint (key, SHA-256, signature) and every
    /// evidence item sealed so far (`items` replace earlier entries with the same id).
    ///
    /// With several writers on one case, the chain is first brought level with the store (a
    /// checkpoint never seals less than the one before it), and a checkpoint number another
    /// writer took first is taken again after it.
    pub async fn checkpoint<G: Signer>(
        &self,
        signer: &G,
        items: Vec<SealedItem>,
    ) -> Result<Checkpoint, CustodyError> {
        // The chain stays still while it is sealed: no event slips between head and checkpoint.
        let mut chain = self.inner.chain.lock().await;
        let mut lost_races = 0;
        loop {
            self.catch_up(&mut chain).await?;
            match self.checkpoint_once(&chain, signer, &items).await? {
                Some(checkpoint) => return Ok(checkpoint),
                None if lost_races < MAX_LOST_RACES => {
                    lost_races += 1;
                    tracing::info!(case = %self.inner.case, lost_races, "another writer sealed a checkpoint first; sealing after it");
                }
                None => {
                    return Err(CustodyError::Seal {
                        case: self.inner.case.to_string(),
                        key: self.inner.layout.checkpoints(),
                        message: format!(
                            "lost the race for the next checkpoint number {lost_races} times"
                        ),
                        next: "run the command again; other writers are sealing this case right now",
                    });
                }
            }
        }
    }

    /// One attempt at [`Custody::checkpoint`]: `None` when another writer stored a checkpoint
    /// with the same number first.
    async fn checkpoint_once<G: Signer>(
        &self,
        chain: &Chain,
        signer: &G,
        items: &[SealedItem],
    ) -> Result<Option<Checkpoint>, CustodyError> {
        let bucket = self.inner.store.bucket().to_string();
        let listing = self.inner.layout.checkpoints();
        let keys = self
            .inner
            .store
            .list(&listing)
            .await
            .map_err(|e| CustodyError::store(&bucket, &listing, e))?;
        let (number, previous, mut sealed) = match keys.iter().rfind(|k| k.ends_with(".json")) {
            None => (1, None, Vec::new()),
            Some(key) => {
                let bytes = get_existing(&self.inner.store, key)
                    .await
                    .map_err(|e| CustodyError::store(&bucket, key, e))?;
                let signature_key = signature_of(key);
                let signature = match self.inner.store.get(&signature_key).await {
                    Ok(Some(signature)) => signature,
                    // A run stopped between a checkpoint and its signature: sign it now.
                    Ok(None) => {
                        let signature = self.sign(signer, key, &bytes).await?;
                        match self
                            .inner
                            .store
                            .put_new(
                                &signature_key,
                                signature.clone(),
                                "application/octet-stream",
                            )
                            .await
                        {
                            Ok(_) => signature,
                            // Its writer (or another) signed it meanwhile: that signature counts.
                            Err(e) if e.kind == ErrorKind::Exists => {
                                get_existing(&self.inner.store, &signature_key)
                                    .await
                                    .map_err(|e| CustodyError::store(&bucket, &signature_key, e))?
                            }
                            Err(e) => return Err(CustodyError::store(&bucket, &signature_key, e)),
                        }
                    }
                    Err(e) => return Err(CustodyError::store(&bucket, &signature_key, e)),
                };
                let last = Checkpoint::from_bytes(&bytes).map_err(|e| CustodyError::Seal {
                        case: self.inner.case.to_string(),
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
            sealed.push(item.clone());
        }
        sealed.sort_by(|a, b| a.id.cmp(&b.id));
        let key = self.inner.layout.checkpoint(number);
        let checkpoint = Checkpoint {
            schema: CHECKPOINT_SCHEMA.to_string(),
            case: self.inner.case.to_string(),
            number,
            time: utc_time(OffsetDateTime::now_utc()),
            bucket: bucket.clone(),
            key: key.clone(),
            chain: ChainPosition {
                seq: chain.head.seq,
                sha256: chain.head.sha256.clone(),
            },
            previous,
            items: sealed,
            signing_key_arn: signer.key_id().to_string(),
            public_key_sha256: fingerprint(signer.public_key_der()),
        };
        if number == 1 {
            // The key beside the checkpoints, for offline verification (auditors compare its
            // fingerprint with `aws kms get-public-key` before trusting it).
            let key_path = self.inner.layout.checkpoints_public_key();
            let pem = public_key_pem(signer.public_key_der()).into_bytes();
            if let Err(e) = self
                .inner
                .store
                .put_new(&key_path, pem, "application/x-pem-file")
                .await
                && e.kind != ErrorKind::Exists
            {
                return Err(CustodyError::store(&bucket, &key_path, e));
            }
        }
        let bytes = checkpoint.to_bytes();
        let signature = self.sign(signer, &key, &bytes).await?;
        match self
            .inner
            .store
            .put_new(&key, bytes, "application/json")
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::Exists => return Ok(None),
            Err(e) => return Err(CustodyError::store(&bucket, &key, e)),
        }
        let signature_key = signature_of(&key);
        match self
            .inner
            .store
            .put_new(&signature_key, signature, "application/octet-stream")
            .await
        {
            // Another writer that read the checkpoint before this signature landed signed it
            // too: either signature is valid, the one stored counts.
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::Exists => {}
            Err(e) => return Err(CustodyError::store(&bucket, &signature_key, e)),
        }
        tracing::info!(case = %self.inner.case, number, seq = chain.head.seq, "custody chain sealed by a signed checkpoint");
        Ok(Some(checkpoint))
    }

    async fn sign<G: Signer>(
        &self,
        signer: &G,
        key: &str,
        bytes: &[u8],
    ) -> Result<Vec<u8>, CustodyError> {
        signer.sign(bytes).await.map_err(|e| CustodyError::Seal {
            case: self.inner.case.to_string(),
            key: key.to_string(),
            message: format!("signing with {}: {e}", signer.key_id()),
            next: "check that the forensic role may call kms:Sign on forensic.signing_key_arn, then run the same command again",
        })
    }

    /// Every event of the case, earlier runs included (a copy: other tasks may append).
    pub async fn events(&self) -> Vec<Event> {
        self.inner.chain.lock().await.events.clone()
    }

    /// The chain head.
    pub async fn head(&self) -> ChainHead {
        self.inner.chain.lock().await.head.clone()
    }

    /// The evidence store (for the other evidence objects of the run; not locked).
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Where the case's objects are.
    pub fn layout(&self) -> &CaseLayout {
        &self.inner.layout
    }

    /// The case.
    pub fn case(&self) -> &CaseId {
        &self.inner.case
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

#[cfg(test)]
mod tests {
    use forensnap_core::Details;
    use forensnap_core::details::{CollectionCompleted, CollectionStarted, Share};
    use forensnap_core::seal::MemorySigner;
    use forensnap_store::{EvidenceRead, MemoryStore};

    use super::*;

    fn actor() -> Actor {
        Actor {
            arn: "arn:aws:iam::123456789012:user/op".into(),
            operator: "op".into(),
        }
    }

    fn shared(i: u64) -> Details {
        Details::SnapshotShared(Share {
            volume_id: format!("vol-{i}"),
            snapshot_id: format!("snap-{i}"),
            with: "999988887777".into(),
            already_gone: false,
        })
    }

    async fn open(store: &MemoryStore) -> Custody<MemoryStore> {
        let case = CaseId::parse("IR-9").expect("case");
        Custody::open(store.clone(), "ev", &case, actor(), Some("test".into()))
            .await
            .expect("open")
    }

    #[tokio::test]
    async fn clones_append_concurrently_into_one_unbroken_chain_that_a_reopen_continues() {
        let store = MemoryStore::new();
        let custody = open(&store).await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let custody = custody.clone();
                tokio::spawn(async move {
                    custody
                        .record(EventDraft::new(shared(i)))
                        .await
                        .expect("record")
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(custody.head().await.seq, 16);
        let keys = store
            .list("ev/cases/IR-9/custody/events/")
            .await
            .expect("list");
        assert_eq!(keys.len(), 16);
        // Every stored event chains to the one before it (verified again on open).
        let again = open(&store).await;
        assert_eq!(again.events().await.len(), 16);
        let (event, _) = again
            .record(EventDraft::new(CollectionCompleted::default()))
            .await
            .expect("continue");
        assert_eq!(event.seq, 17);
        assert_eq!(event.prev_sha256, custody.head().await.sha256);
    }

    #[tokio::test]
    async fn an_edited_event_is_refused_and_nothing_is_written_after_it() {
        let store = MemoryStore::new();
        let custody = open(&store).await;
        for _ in 0..3 {
            custody
                .record(EventDraft::new(shared(0)))
                .await
                .expect("record");
        }
        let key = custody.layout().event(2);
        let edited = String::from_utf8(store.object(&key).expect("event"))
            .expect("utf8")
            .replace("snapshot.shared", "snapshot.unshared");
        store.replace(&key, edited.into_bytes());
        let case = CaseId::parse("IR-9").expect("case");
        let err = Custody::open(store.clone(), "ev", &case, actor(), None)
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, CustodyError::BrokenChain { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_checkpoint_seals_the_head_and_the_next_one_links_to_it() {
        let store = MemoryStore::new();
        let custody = open(&store).await;
        let signer = MemorySigner::from_seed(3, "arn:aws:kms:us-east-1:123456789012:key/k");
        custody
            .record(EventDraft::new(CollectionStarted::default()))
            .await
            .expect("record");
        let first = custody
            .checkpoint(&signer, Vec::new())
            .await
            .expect("first");
        assert_eq!((first.number, first.chain.seq), (1, 1));
        custody
            .record(EventDraft::new(CollectionCompleted::default()))
            .await
            .expect("record");
        let second = custody
            .checkpoint(&signer, Vec::new())
            .await
            .expect("second");
        assert_eq!((second.number, second.chain.seq), (2, 2));
        let previous = second.previous.expect("link");
        assert_eq!(previous.key, custody.layout().checkpoint(1));
        assert!(
            store
                .object(&custody.layout().checkpoints_public_key())
                .is_some()
        );
        assert!(
            store
                .object(&format!("{}.sig", custody.layout().checkpoint(2)))
                .is_some()
        );
    }

    #[tokio::test]
    async fn writers_in_separate_processes_append_and_seal_one_unbroken_chain() {
        // Four writers opened before any of them wrote, as four daemons would be: each starts
        // from head 0, so all but one lose the race for every sequence number at first.
        let store = MemoryStore::new();
        let signer = MemorySigner::from_seed(3, "arn:aws:kms:us-east-1:123456789012:key/k");
        let mut writers = Vec::new();
        for _ in 0..4 {
            writers.push(open(&store).await);
        }
        let tasks: Vec<_> = writers
            .into_iter()
            .enumerate()
            .map(|(w, custody)| {
                let signer = signer.clone();
                tokio::spawn(async move {
                    for i in 0..5 {
                        custody
                            .record(EventDraft::new(shared(w as u64 * 10 + i)))
                            .await
                            .expect("record");
                        tokio::task::yield_now().await;
                    }
                    custody.checkpoint(&signer, Vec::new()).await.expect("seal")
                })
            })
            .collect();
        let mut sealed = Vec::new();
        for task in tasks {
            sealed.push(task.await.expect("task"));
        }
        let reader = open(&store).await;
        assert_eq!(reader.head().await.seq, 20, "every event once, none lost");
        let mut volumes: Vec<String> = reader
            .events()
            .await
            .iter()
            .filter_map(|e| match e.details() {
                Ok(Some(Details::SnapshotShared(share))) => Some(share.volume_id),
                _ => None,
            })
            .collect();
        volumes.sort();
        volumes.dedup();
        assert_eq!(volumes.len(), 20, "no event doubled");
        // Checkpoints 1..=4, each sealing at least what the one before it sealed.
        sealed.sort_by_key(|c| c.number);
        assert_eq!(
            sealed.iter().map(|c| c.number).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert!(sealed.windows(2).all(|w| w[0].chain.seq <= w[1].chain.seq));
        assert_eq!(sealed.last().map(|c| c.chain.seq), Some(20));
    }
}
