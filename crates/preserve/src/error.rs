//! Errors of the preservation step.
//!
//! Rules: every error names the step that failed, the account and resource ids involved, and
//! what the responder should do next; AWS's own code, message and request id are kept whole.

use forensnap_custody::CustodyError;

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
    /// The custody log could not be read, continued or sealed.
    #[error(transparent)]
    Custody(#[from] CustodyError),
    /// An event of the case's custody log does not read as this version records it: resuming
    /// past a step it cannot read could repeat or skip that step.
    #[error(
        "the custody log holds an event this version cannot read ({0}). Nothing was done. Next: resume the case with the forensnap version that wrote it, or collect into a new case"
    )]
    Unreadable(#[from] forensnap_core::details::DetailsError),
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
