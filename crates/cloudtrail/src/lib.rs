//! CloudTrail evidence, computed not fetched: what forensnap asks CloudTrail and how it proves
//! the answers whole and unaltered.
//!
//! Nothing here performs I/O, spawns tasks or knows about the AWS SDK: the adapter fetches pages,
//! objects and keys and hands over their bytes; the same code checks them in the collector, in
//! `forensnap verify` and in unit tests. Modules:
//!
//! * [`lookup`]   -- LookupEvents queries, their exact request bodies, the pages returned, and the
//!   check that one query's stored pages are complete (numbered, token-chained, in window, in
//!   order).
//! * [`digest`]   -- trail digest files and log files validated as `aws cloudtrail validate-logs`
//!   does: signatures under CloudTrail's public keys, the digest chain, every log file's SHA-256.
//! * [`timeline`] -- the timeline derived from preserved events: deduplicated, ordered, the
//!   actions investigators look for flagged; JSON lines and CSV.

pub mod digest;
pub mod lookup;
pub mod timeline;

mod times;

pub use digest::{Finding, PublicKey, TrailObject, Validation};
pub use lookup::{AttributeKey, Query, StoredPage};
pub use timeline::{Flag, Row, Source};
