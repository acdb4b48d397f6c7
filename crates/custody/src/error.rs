//! Why the custody log could not be read, continued or sealed. Every error names the bucket or
//! the case, the key, and what the responder should do next.

use forensnap_store::CloudError;

/// A failure of the custody log.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// Reading or writing the custody log failed.
    #[error(
        "custody log in bucket {bucket} (key {key}): {source}. Next: check the forensic credentials' s3:GetObject/PutObject/ListBucket rights on the bucket and run the same command again"
    )]
    Store {
        /// Bucket.
        bucket: String,
        /// Key or prefix.
        key: String,
        /// The call that failed.
        source: Box<CloudError>,
    },
    /// The case's earlier custody events do not chain; forensnap will not write after them.
    #[error(
        "custody chain in bucket {bucket} is broken: {message}. Next: run `forensnap verify` on the case and escalate; forensnap writes nothing after a broken chain"
    )]
    BrokenChain {
        /// Bucket.
        bucket: String,
        /// What is broken.
        message: String,
    },
    /// Sealing the chain with a signed checkpoint failed.
    #[error(
        "sealing the custody chain of case {case} with a signed checkpoint ({key}): {message}. Next: {next}"
    )]
    Seal {
        /// Case.
        case: String,
        /// The checkpoint's key.
        key: String,
        /// What happened.
        message: String,
        /// What to do.
        next: &'static str,
    },
}

impl CustodyError {
    pub(crate) fn store(bucket: &str, key: &str, source: CloudError) -> Self {
        CustodyError::Store {
            bucket: bucket.to_string(),
            key: key.to_string(),
            source: Box::new(source),
        }
    }
}
