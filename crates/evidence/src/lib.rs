//! forensnap's evidence items, apart from the engine that fills them: what `collect` seals,
//! `export` streams back and `verify` (and the coming report) read.
//!
//! * [`item`]     -- evidence items as BagIt bags in the store: payload manifest, tag files,
//!   the tag manifest written last and signed; what an item holds ([`item::ItemKind`]).
//! * [`acquired`] -- the acquisition record of a volume (its completion marker).
//! * [`export`]   -- a volume item streamed back into a raw image, every hash checked on the way.
//! * [`memory`]   -- memory images hashed and read in ranges, their LiME headers.
//! * [`progress`] -- progress of byte-wise work ([`progress::ByteProgress`]).
//!
//! Reads and writes go through the evidence store ([`forensnap_store`]); the bag text itself is
//! the pure core's ([`forensnap_core::bag`]).

pub mod acquired;
pub mod export;
pub mod item;
pub mod memory;
pub mod progress;

pub use acquired::Acquired;
pub use item::ItemKind;
pub use progress::{ByteProgress, NoProgress};
