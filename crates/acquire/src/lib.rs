//! forensnap's acquisition engine (in progress): reading every block of a forensic-account
//! snapshot through the EBS direct APIs, verified, with bounded and adaptive concurrency.
//!
//! * [`source`]  -- the block source seam (ListSnapshotBlocks / GetSnapshotBlock) and its errors.
//! * [`limit`]   -- how many block reads may be in flight: grows when calm, halves on throttling,
//!   never above the per-snapshot ceiling, and paced under a requests-per-second ceiling.
//! * [`fetch`]   -- one verified block: AWS's checksum and length checked, a mismatch fetched
//!   again and never returned, throttling and 5xx retried with jittered backoff.
//! * [`listing`] -- paging through a snapshot's blocks, resumable from a block index (a
//!   NextToken lives only 60 minutes).
//! * [`memory`]  -- an in-memory block source for unit tests, with injectable faults.

pub mod fetch;
pub mod limit;
pub mod listing;
pub mod memory;
pub mod source;

pub use fetch::{FetchPolicy, VerifiedBlock, fetch_verified};
pub use limit::AdaptiveLimit;
pub use source::{BlockPage, BlockSource, FetchedBlock, ListedBlock, SourceError};
