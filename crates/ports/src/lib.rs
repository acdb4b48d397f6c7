//! The traits forensnap's AWS adapters implement besides the evidence store
//! ([`forensnap_store`]), in a crate of their own so that the adapters depend on the seams and
//! never on the orchestration that uses them (preservation, acquisition).
//!
//! * [`ec2`]    -- EC2 (and the KMS lookups EC2 decisions need) of one account and region:
//!   the instance record, snapshots, copies, shares; errors are [`forensnap_store::CloudError`].
//! * [`blocks`] -- what the acquisition engine needs from the EBS direct APIs: listing and
//!   reading snapshot blocks, with errors the engine's retry policy understands.

pub mod blocks;
pub mod ec2;

pub use blocks::{BlockPage, BlockSource, FetchedBlock, ListedBlock, SourceError, ThrottleScope};
pub use ec2::{Ec2, InstanceRecord, SnapState, SnapshotInfo};
pub use forensnap_store::{Called, CloudError};
