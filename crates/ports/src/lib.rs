//! The traits forensnap's AWS adapters implement besides the evidence store
//! ([`forensnap_store`]), in a crate of their own so that the adapters depend on the seams and
//! never on the orchestration that uses them (preservation, acquisition).
//!
//! * [`ec2`]    -- EC2 (and the KMS lookups EC2 decisions need) of one account and region:
//!   the instance record, snapshots, copies, shares; errors are [`forensnap_store::CloudError`].
//! * [`blocks`] -- what the acquisition engine needs from the EBS direct APIs: listing and
//!   reading snapshot blocks, with errors the engine's retry policy understands.
//! * [`queue`]  -- the request queue the daemon takes case requests from, and its dead letters.
//! * [`ssm`]    -- SSM RunCommand of a member account (agent reachable, forensnap's document
//!   sent, the invocation followed) for memory capture.
//! * [`trail`]  -- CloudTrail of a member account and region (LookupEvents with the exchanged
//!   bytes, trails, public keys) and read access to its trail's bucket.
//! * [`state`]  -- the case table: leases with fencing tokens, case states, item progress and
//!   instance claims, shared by every daemon and the command line.

pub mod blocks;
pub mod ec2;
pub mod queue;
pub mod ssm;
pub mod state;
pub mod trail;

pub use blocks::{BlockPage, BlockSource, FetchedBlock, ListedBlock, SourceError, ThrottleScope};
pub use ec2::{Ec2, InstanceRecord, SnapState, SnapshotInfo};
pub use forensnap_store::{Called, CloudError};
pub use queue::{Depth, Message, RequestQueue};
pub use ssm::{DocumentInfo, Invocation, ManagedInstance, Ssm};
pub use state::{CaseRecord, CaseState, CaseTable, Claim, ItemRecord, Lease, LeaseError, Target};
pub use trail::{
    Exchange, FetchedObject, ListedObject, LookupCall, NoTrail, PublicKeyInfo, Trail, TrailInfo,
};
