//! forensnap's pure core: what a case is, what a custody event records, and how events chain.
//!
//! Nothing here performs I/O, spawns tasks or knows about the AWS SDK: the same code runs in
//! the collector, in `forensnap verify` and in unit tests. Modules:
//!
//! * [`action`]  -- every kind of custody event, named once.
//! * [`bag`]     -- BagIt 1.0 tag files (manifests, bag-info, tag manifest) and `rebuild.sh`.
//! * [`case`]    -- case ids and the AWS names derived from them (session name, source identity).
//! * [`custody`] -- custody events, their canonical bytes, and the SHA-256 chain that links them.
//! * [`details`] -- what each custody event says, typed (one struct per action).
//! * [`hashing`] -- resumable SHA-256 and the full-image hash of a sparse volume.
//! * [`intake`]  -- the daemon's queue messages (submit, GuardDuty, Security Hub) as case requests.
//! * [`keys`]    -- the case layout: every key of a case in the evidence bucket.
//! * [`layout`]  -- EBS block size, multipart part sizing and the block map of stored blocks.
//! * [`memory`]  -- memory capture: the transfer plan, the host's report line, LiME ranges.
//! * [`seal`]    -- KMS ECDSA P-256 signatures over bags and signed custody checkpoints; VERIFY.md.

pub mod action;
pub mod bag;
pub mod case;
pub mod custody;
pub mod details;
pub mod hashing;
pub mod intake;
pub mod keys;
pub mod layout;
pub mod memory;
pub mod seal;

pub use action::Action;
pub use case::{CaseId, CaseIdError};
pub use custody::{Actor, ChainError, ChainHead, Event, EventDraft, Outcome, sha256_hex};
pub use details::{Details, ItemKind, Stage, Subject};
pub use keys::{CaseLayout, ItemLayout};
