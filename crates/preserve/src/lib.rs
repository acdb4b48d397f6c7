//! forensnap's preservation step ("Preserve" in the playbook): for one instance of one member
//! account, record the instance, snapshot every attached volume crash-consistently, and bring
//! each snapshot into the forensic account re-encrypted with the forensic key, then remove every
//! share and intermediate copy made on the way. Every act is a custody event.
//!
//! The orchestration is generic over the seams in [`ports`] (EC2 of an account) and the evidence
//! store ([`forensnap_store`]); `forensnap-aws` implements them with the AWS SDK, and the unit tests here with
//! in-memory fakes. Modules:
//!
//! * [`ports`]   -- the traits at the seams and the facts they return.
//! * [`custody`] -- the case's custody log: appends chained events to the evidence store.
//! * [`state`]   -- what earlier runs of a case already did, read back from its events.
//! * [`wait`]    -- polling snapshot states with jittered exponential backoff.
//! * [`collect`] -- the preservation run itself.
//! * [`error`]   -- errors that name the step, the account, the resource and the next step.

pub mod collect;
pub mod custody;
pub mod error;
pub mod ports;
pub mod state;
pub mod wait;

/// An in-memory EC2 for unit tests (here and, with the `fakes` feature, in the crates that
/// orchestrate preservation).
#[cfg(any(test, feature = "fakes"))]
#[allow(missing_docs)]
pub mod fake;

pub use collect::{Plan, Preserved, PreservedVolume, Progress, SilentProgress, preserve};
pub use custody::CustodyLog;
pub use error::PreserveError;
pub use ports::{Called, CloudError, Ec2, InstanceRecord, SnapState, SnapshotInfo};
