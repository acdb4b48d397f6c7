//! forensnap's preservation step ("Preserve" in the playbook): for one instance of one member
//! account, record the instance, snapshot every attached volume crash-consistently, and bring
//! each snapshot into the forensic account re-encrypted with the forensic key, then remove every
//! share and intermediate copy made on the way. Every act is a custody event.
//!
//! The orchestration is generic over the EC2 port ([`forensnap_ports::Ec2`]) and the evidence
//! store ([`forensnap_store`]); `forensnap-aws` implements them with the AWS SDK, and the unit tests here with
//! in-memory fakes. Modules:
//!
//! * [`state`]   -- what earlier runs of a case already did, read back from its events.
//! * [`wait`]    -- polling snapshot states with jittered exponential backoff.
//! * [`plan`]    -- what a run is told, reports and returns.
//! * [`run`]     -- the preservation run itself, one volume's steps in [`run`]'s `volume` module.
//! * [`error`]   -- errors that name the step, the account, the resource and the next step.

pub mod error;
pub mod plan;
pub mod run;
pub mod state;
pub mod wait;

/// An in-memory EC2 for unit tests (here and, with the `fakes` feature, in the crates that
/// orchestrate preservation).
#[cfg(any(test, feature = "fakes"))]
#[allow(missing_docs)]
pub mod fake;

pub use error::PreserveError;
pub use forensnap_custody::{Custody, CustodyError};
pub use forensnap_ports::{Called, CloudError, Ec2, InstanceRecord, SnapState, SnapshotInfo};
pub use plan::{Plan, Preserved, PreservedVolume, Progress, SilentProgress};
pub use run::{
    BeforeSnapshots, MemberLeftover, NothingFirst, end_member_leftovers, member_leftovers,
    preserve, preserve_with, preserved_from_log, release_shares,
};
