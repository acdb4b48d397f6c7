//! Errors of the preservation step.
//!
//! Rules: every error names the step that failed, the account and resource ids involved, and
//! what the responder should do next; AWS's own code, message and request id are kept whole.

use crate::ports::CloudError;

/// Why a preservation run stopped.
#[derive(Debug, thiserror::Error)]
pub enum PreserveError {
    /// The evidence bucket is not fit to hold evidence; nothing was done in the member account.
    #[error(
        "evidence bucket {bucket} is not usable: {problem}. Nothing was done in any member account. Next: {next}"
    )]
    Bucket {
        /// Bucket name.
        bucket: String,
        /// What is wrong.
        problem: String,
        /// What to do.
        next: String,
    },
    /// Reading or writing the custody log failed.
    #[error(
        "custody log in bucket {bucket} (key {key}): {source}. Next: check the forensic credentials' s3:GetObject/PutObject/ListBucket rights on the bucket and run the same command again"
    )]
    Custody {
        /// Bucket.
        bucket: String,
        /// Key or prefix.
        key: String,
        /// The call that failed.
        source: CloudError,
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
    /// A step in an account failed.
    #[error("{step} failed in account {account} for {resource}: {message}. Next: {next}")]
    Step {
        /// The step (`assume role`, `snapshot volumes`, ...).
        step: &'static str,
        /// Account.
        account: String,
        /// Resource id(s).
        resource: String,
        /// What happened (AWS error included).
        message: String,
        /// What to do.
        next: String,
    },
}

impl PreserveError {
    pub(crate) fn custody(bucket: &str, key: &str, source: CloudError) -> Self {
        PreserveError::Custody {
            bucket: bucket.to_string(),
            key: key.to_string(),
            source,
        }
    }

    pub(crate) fn step(
        step: &'static str,
        account: &str,
        resource: &str,
        message: impl ToString,
        next: impl ToString,
    ) -> Self {
        PreserveError::Step {
            step,
            account: account.to_string(),
            resource: resource.to_string(),
            message: message.to_string(),
            next: next.to_string(),
        }
    }
}
