//! forensnap's acquisition engine: reading every block of a forensic-account
//! snapshot through the EBS direct APIs, verified, with bounded and adaptive concurrency.
//!
//! * [`source`]  -- the block source seam (ListSnapshotBlocks / GetSnapshotBlock) and its errors.
//! * [`limit`]   -- how many block reads may be in flight: grows when calm, halves on throttling,
//!   never above the per-snapshot ceiling, and paced under a requests-per-second ceiling.
//! * [`fetch`]   -- one verified block: AWS's checksum and length checked, a mismatch fetched
//!   again and never returned, throttling and 5xx retried with jittered backoff.
//! * [`listing`] -- paging through a snapshot's blocks, resumable from a block index (a
//!   NextToken lives only 60 minutes).
//! * [`engine`]  -- one snapshot into one object, part by part, checkpointed, resumable.
//! * [`export`]  -- a volume item streamed back into a raw image, every hash checked.
//! * [`item`]    -- evidence items as BagIt bags: payload manifest, tag files, sealing.
//! * [`memory`]  -- an in-memory block source for tests, with injectable faults (feature `memory`).
//!
//! Evidence is written through [`forensnap_store::EvidenceWrite`].

pub mod engine;
pub mod export;
pub mod fetch;
pub mod item;
pub mod limit;
pub mod listing;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod source;

pub use engine::{AcquireError, AcquireOptions, AcquireProgress, Acquired, NoProgress, acquire};
pub use fetch::{FetchPolicy, VerifiedBlock, fetch_verified};
pub use limit::{AdaptiveLimit, Limits};
pub use source::{BlockPage, BlockSource, FetchedBlock, ListedBlock, SourceError};
