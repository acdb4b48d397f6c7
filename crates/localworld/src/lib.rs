//! Starts, seeds and steers forensnap's local AWS world for tests, benchmarks and the demo.
//!
//! The world is the pinned moto server plus forensnap's extension (`localworld/forensnap_world`),
//! run as a child process on 127.0.0.1 with a port of its own. This crate owns only the plumbing
//! around it: starting and stopping the process ([`World`]), seeding a world file and reading
//! back the ids it created ([`Seeded`]), the control API (fault injection, the world clock,
//! snapshot timings) and SDK configurations that point the real AWS SDK clients at the world.
//!
//! A [`World`] stops its server when dropped, and the server also stops by itself when the
//! process that started it exits, so no world outlives its tests.

mod control;
mod process;
mod sdk;
mod seeded;

pub use control::{Decision, FaultKind, FaultRule, FaultStats, KillWhen, Settings, SsmCommand};
pub use process::{World, WorldError, world_python};
pub use sdk::{forensic_credentials, sdk_config};
pub use seeded::{Admin, Forensic, Instance, Member, Security, Seeded, Stacks, Volume};
