//! forensnap's acquisition engine: reading every block of a forensic-account
//! snapshot through the EBS direct APIs (the block source port, [`forensnap_ports::BlockSource`]),
//! verified, with bounded and adaptive concurrency.
//!
//! * [`limit`]   -- how many block reads may be in flight: grows when calm, halves on throttling,
//!   never above the per-snapshot ceiling, and paced under a requests-per-second ceiling.
//! * [`fetch`]   -- one verified block: AWS's checksum and length checked, a mismatch fetched
//!   again and never returned, throttling and 5xx retried with jittered backoff.
//! * [`listing`] -- paging through a snapshot's blocks, resumable from a block index (a
//!   NextToken lives only 60 minutes).
//! * [`engine`]  -- one snapshot into one object: a pipeline of continuous reads, parts
//!   uploading several at once, hashing on its own thread; checkpointed, resumable.
//! * [`memory`]  -- an in-memory block source for tests, with injectable faults (feature `memory`).
//!
//! Evidence is written through [`forensnap_store::EvidenceWrite`]; the bag around a volume and
//! its acquisition record ([`forensnap_evidence::Acquired`]) are `forensnap-evidence`'s.

pub mod engine;
pub mod fetch;
pub mod limit;
pub mod listing;
#[cfg(any(test, feature = "memory"))]
pub mod memory;

pub use engine::{
    AcquireError, AcquireOptions, HASH_BACKLOG_PARTS, acquire, acquire_expecting, part_blocks,
};
pub use fetch::{FetchPolicy, VerifiedBlock, fetch_verified, read_counters};
/// The block source seam the engine reads through (`forensnap-ports`).
pub use forensnap_ports::{
    BlockPage, BlockSource, FetchedBlock, ListedBlock, SourceError, ThrottleScope,
};
pub use limit::{AdaptiveLimit, Limits};
