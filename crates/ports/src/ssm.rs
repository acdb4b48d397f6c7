//! SSM RunCommand in a member account, as memory capture uses it: is the instance's agent
//! reachable, send forensnap's own document, follow the invocation. Nothing else of SSM (no
//! sessions, no other documents).

use std::collections::BTreeMap;
use std::future::Future;

use forensnap_store::{Called, CloudError};

/// What SSM knows of a managed instance (DescribeInstanceInformation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedInstance {
    /// `Online`, `ConnectionLost`, `Inactive`.
    pub ping_status: String,
    /// `Linux`, `Windows`, `MacOS`.
    pub platform_type: Option<String>,
    /// The agent's version.
    pub agent_version: Option<String>,
}

/// An SSM document as DescribeDocument reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    /// Its version.
    pub version: Option<String>,
    /// Its SHA-256 (SSM's `Hash`).
    pub hash: Option<String>,
}

/// One command's invocation on one instance (GetCommandInvocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `Pending`, `InProgress`, `Delayed`, `Success`, `Cancelled`, `TimedOut`, `Failed`, ...
    pub status: String,
    /// The script's exit code (-1 while running).
    pub response_code: Option<i64>,
    /// Standard output (SSM keeps the first 24,000 characters).
    pub stdout: String,
    /// Standard error (the first 8,000 characters).
    pub stderr: String,
    /// When it started, RFC 3339.
    pub started: Option<String>,
    /// When it ended, RFC 3339.
    pub ended: Option<String>,
}

impl Invocation {
    /// Whether the invocation has ended.
    pub fn is_done(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "Pending" | "InProgress" | "Delayed" | "Cancelling"
        )
    }
}

/// SSM RunCommand of one member account and region, and the instance-type facts it needs.
pub trait Ssm: Send + Sync {
    /// The instance's SSM registration, `None` when it is not a managed instance.
    fn instance_information(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<ManagedInstance>, CloudError>> + Send;
    /// The memory of an instance type, MiB (EC2 DescribeInstanceTypes).
    fn memory_mib(
        &self,
        instance_type: &str,
    ) -> impl Future<Output = Result<u64, CloudError>> + Send;
    /// A document's version and hash.
    fn document(&self, name: &str)
    -> impl Future<Output = Result<DocumentInfo, CloudError>> + Send;
    /// Send `document` to one instance with `parameters`; the command id. With
    /// `document_hash`, SSM refuses to run a document whose content has another SHA-256.
    #[allow(clippy::too_many_arguments)]
    fn send_command(
        &self,
        document: &str,
        document_hash: Option<&str>,
        instance_id: &str,
        parameters: &BTreeMap<String, String>,
        timeout_seconds: u32,
        comment: &str,
    ) -> impl Future<Output = Result<Called<String>, CloudError>> + Send;
    /// The invocation of `command_id` on `instance_id`.
    fn invocation(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<Invocation, CloudError>> + Send;
}
