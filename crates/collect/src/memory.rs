//! Memory capture of one instance: its RAM, taken on the host by forensnap's SSM document with a
//! pinned AVML build, streamed through presigned part URLs into the case's Object Lock bucket,
//! and sealed as the evidence item `memory-<instance>` (kind `memory`).
//!
//! Order of acts, each recorded before the next:
//! 1. checked, nothing sent yet: the platform (Linux: AVML), the SSM agent (registered and
//!    `Online`), the instance type's memory, the document (its hash, pinned when configured), the
//!    pinned AVML build. A failure is recorded as a failed `memory.captured` naming the instance
//!    and the next step.
//! 2. the image's multipart upload opened in the evidence bucket, one UploadPart URL presigned
//!    per part (room for the whole memory and a spare part), the plan of those URLs put in the
//!    transfer bucket, never in the evidence bucket (the URLs carry the collector's key id);
//!    `memory.capture-requested` (the plan's SHA-256, not its URLs).
//! 3. SendCommand with the document's hash; `memory.command-sent`.
//! 4. the invocation followed to its end; the plan deleted.
//! 5. the upload completed from the parts S3 holds; forensnap hashes the stored image itself, in
//!    ranges (a few MiB in memory whatever the image's size), reads its LiME headers, and compares
//!    its SHA-256 and size with what the host reported: `memory.captured` with both hashes, a
//!    mismatch a named failure (the image is kept as found, Object Lock, and not sealed).
//! 6. the bag sealed: the image, the host's standard output and error, the command's record;
//!    `evidence.sealed`.
//!
//! A run stopped at any point resumes: a sealed capture is left alone; a capture whose command
//! was sent is followed again by its command id (the host may still be uploading); a capture
//! requested whose command id was never recorded is abandoned (its upload aborted, recorded) and
//! made again as a new attempt, `memory-<instance>-<n>`. A failed capture is never retried into
//! the same item: memory has changed since, and a new capture is new evidence.

use std::collections::BTreeMap;
use std::time::Duration;

use forensnap_core::bag::PayloadFile;
use forensnap_core::details::{
    Details, EvidenceSealed, MemoryCaptureRequested, MemoryCaptured, MemoryCommandSent,
    StoredObject, UploadAborted,
};
use forensnap_core::memory::{IMAGE_PATH, TransferPlan, host_report, parts_for};
use forensnap_core::seal::Signer;
use forensnap_core::{EventDraft, ItemKind, ItemLayout, Outcome, Subject};
use forensnap_evidence::item::{self, SealedBag};
use forensnap_ports::{Invocation, Ssm};
use forensnap_preserve::Custody;
use forensnap_store::{ErrorKind, EvidenceAudit, EvidenceWrite, Handoff, Transfer};
use futures::StreamExt;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::trail::store_once;

/// The host's standard output in the bag.
pub const STDOUT_PATH: &str = "data/stdout.txt";
/// The host's standard error in the bag.
pub const STDERR_PATH: &str = "data/stderr.txt";
/// The command's record in the bag.
pub const COMMAND_PATH: &str = "data/command.json";
/// Consecutive failed GetCommandInvocation calls before the wait gives up (SSM answers
/// `InvocationDoesNotExist` for a moment after SendCommand).
const INVOCATION_MISSES: u32 = 20;
/// How long after the command's own timeout forensnap stops waiting for it.
const WAIT_SLACK: Duration = Duration::from_secs(300);

/// What a memory capture runs, where, and how long it may take.
#[derive(Debug, Clone)]
pub struct MemoryPlan {
    /// The forensic account (where the events are recorded).
    pub forensic_account: String,
    /// The member account of the instance.
    pub account: String,
    /// Its region.
    pub region: String,
    /// The instance.
    pub instance_id: String,
    /// forensnap's SSM document in the member account.
    pub document: String,
    /// The document's SHA-256 pinned by the config, if any.
    pub document_sha256: Option<String>,
    /// The pinned AVML build's key in the evidence bucket.
    pub avml_key: String,
    /// Its SHA-256 (the host refuses any other).
    pub avml_sha256: String,
    /// Seconds SSM lets the command run.
    pub timeout_seconds: u32,
    /// Bytes per uploaded part.
    pub part_bytes: u64,
    /// How long the presigned URLs stay valid.
    pub url_lifetime: Duration,
    /// How often the invocation is asked about.
    pub poll: Duration,
    /// The command's comment (none by default: the command names no case).
    pub comment: Option<String>,
    /// Name and version of the tool, for bag-info.txt.
    pub tool: String,
}

/// What DescribeInstances said of the instance.
#[derive(Debug, Clone, Default)]
pub struct MemoryTarget {
    /// Its instance type.
    pub instance_type: Option<String>,
    /// EC2's `Platform` (`windows`), absent for Linux.
    pub platform: Option<String>,
}

/// A sealed memory capture, as `collect --output json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemorySummary {
    /// The host's SHA-256 of the image it streamed.
    pub host_sha256: String,
    /// forensnap's SHA-256 of the image as S3 holds it.
    pub image_sha256: String,
    /// The image's size.
    pub bytes: u64,
    /// Parts it arrived in.
    pub parts: u32,
    /// LiME ranges in it.
    pub lime_ranges: u64,
    /// The SSM command.
    pub command_id: String,
    /// The AVML build's SHA-256 the host ran.
    pub avml_sha256: String,
    /// The document's hash SendCommand pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_hash: Option<String>,
}

/// One sealed memory item.
#[derive(Debug, Clone)]
pub struct MemoryItem {
    /// Item id.
    pub id: String,
    /// Its bag.
    pub bag: SealedBag,
    /// What it holds.
    pub summary: MemorySummary,
}

/// Why a memory capture did not end in a sealed item: the step, the instance, what happened and
/// what to do next. The disks are collected all the same.
#[derive(Debug, Clone, thiserror::Error)]
#[error("memory of {instance} (account {account}, {region}): {step}: {message}. Next: {next}")]
pub struct MemoryError {
    /// The instance.
    pub instance: String,
    /// Its account.
    pub account: String,
    /// Its region.
    pub region: String,
    /// The step that failed.
    pub step: &'static str,
    /// What happened.
    pub message: String,
    /// What to do about it.
    pub next: String,
}

/// Whether and how a collection captures memory: [`MemoryJob`] does, [`NoMemory`] does not.
pub trait MemoryStep: Send + Sync {
    /// Capture (or find captured) the memory of the instance `target` describes; `None` when
    /// this collection captures no memory.
    fn capture<H: Handoff, S: EvidenceWrite + EvidenceAudit, G: Signer>(
        &self,
        target: &MemoryTarget,
        store: &H,
        custody: &Custody<S>,
        signer: &G,
    ) -> impl std::future::Future<Output = Option<Result<MemoryItem, MemoryError>>> + Send;
}

/// A collection that captures no memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMemory;

impl MemoryStep for NoMemory {
    async fn capture<H: Handoff, S: EvidenceWrite + EvidenceAudit, G: Signer>(
        &self,
        _: &MemoryTarget,
        _: &H,
        _: &Custody<S>,
        _: &G,
    ) -> Option<Result<MemoryItem, MemoryError>> {
        None
    }
}

/// A collection that captures memory when there is a step.
impl<W: MemoryStep> MemoryStep for Option<W> {
    async fn capture<H: Handoff, S: EvidenceWrite + EvidenceAudit, G: Signer>(
        &self,
        target: &MemoryTarget,
        store: &H,
        custody: &Custody<S>,
        signer: &G,
    ) -> Option<Result<MemoryItem, MemoryError>> {
        match self {
            Some(step) => step.capture(target, store, custody, signer).await,
            None => None,
        }
    }
}

/// A collection that captures memory: the plan, the member account's SSM, the transfer bucket.
#[derive(Debug, Clone, Copy)]
pub struct MemoryJob<'a, Y, X> {
    /// What to run.
    pub plan: &'a MemoryPlan,
    /// SSM of the member account.
    pub ssm: &'a Y,
    /// The transfer bucket.
    pub transfer: &'a X,
}

impl<Y: Ssm, X: Transfer> MemoryStep for MemoryJob<'_, Y, X> {
    async fn capture<H: Handoff, S: EvidenceWrite + EvidenceAudit, G: Signer>(
        &self,
        target: &MemoryTarget,
        store: &H,
        custody: &Custody<S>,
        signer: &G,
    ) -> Option<Result<MemoryItem, MemoryError>> {
        Some(
            capture_memory(
                self.plan,
                target,
                self.ssm,
                store,
                self.transfer,
                custody,
                signer,
            )
            .await,
        )
    }
}

/// The id of a capture attempt: `memory-<instance>`, then `memory-<instance>-<n>`.
pub fn item_id(instance: &str, attempt: usize) -> String {
    if attempt <= 1 {
        format!("memory-{instance}")
    } else {
        format!("memory-{instance}-{attempt}")
    }
}

/// One capture attempt of the instance, as the custody log records it.
#[derive(Debug, Clone)]
struct Attempt {
    requested: MemoryCaptureRequested,
    command_id: Option<String>,
    captured: Option<(Outcome, MemoryCaptured)>,
}

/// Capture the instance's memory into the case (see the module docs), or find it captured.
#[allow(clippy::too_many_arguments)]
pub async fn capture_memory<
    Y: Ssm,
    H: Handoff,
    X: Transfer,
    S: EvidenceWrite + EvidenceAudit,
    G: Signer,
>(
    plan: &MemoryPlan,
    target: &MemoryTarget,
    ssm: &Y,
    store: &H,
    transfer: &X,
    custody: &Custody<S>,
    signer: &G,
) -> Result<MemoryItem, MemoryError> {
    let step = Step {
        plan,
        ssm,
        store,
        transfer,
        custody,
        signer,
        case: custody.case().to_string(),
    };
    step.run(target).await
}

struct Step<'a, Y, H, X, S, G> {
    plan: &'a MemoryPlan,
    ssm: &'a Y,
    store: &'a H,
    transfer: &'a X,
    custody: &'a Custody<S>,
    signer: &'a G,
    case: String,
}

impl<Y: Ssm, H: Handoff, X: Transfer, S: EvidenceWrite + EvidenceAudit, G: Signer>
    Step<'_, Y, H, X, S, G>
{
    fn error(
        &self,
        step: &'static str,
        message: impl ToString,
        next: impl ToString,
    ) -> MemoryError {
        MemoryError {
            instance: self.plan.instance_id.clone(),
            account: self.plan.account.clone(),
            region: self.plan.region.clone(),
            step,
            message: message.to_string(),
            next: next.to_string(),
        }
    }

    fn subject(&self) -> Subject {
        Subject {
            instance: self.plan.instance_id.clone(),
            member_account: self.plan.account.clone(),
        }
    }

    fn draft(&self, details: impl Into<Details>) -> EventDraft {
        EventDraft::new(details)
            .at(&self.plan.forensic_account, &self.plan.region)
            .about(&self.subject())
    }

    async fn record(&self, draft: EventDraft) -> Result<(), MemoryError> {
        self.custody.record(draft).await.map(|_| ()).map_err(|e| {
            self.error(
                "record the custody event",
                e,
                "check the evidence bucket and run again",
            )
        })
    }

    /// A failure recorded as a failed `memory.captured` of `item` (best effort: the error is
    /// returned either way), with what was learnt.
    async fn failed(
        &self,
        item: &str,
        mut details: MemoryCaptured,
        err: MemoryError,
    ) -> MemoryError {
        details.item = item.to_string();
        let _ = self
            .record(self.draft(details).failed(err.to_string()))
            .await;
        err
    }

    fn prefix(&self, id: &str) -> String {
        self.custody.layout().item(id).prefix().to_string()
    }

    /// The instance's capture attempts, oldest first.
    async fn attempts(&self) -> Vec<Attempt> {
        let subject = self.subject();
        let mut attempts: Vec<Attempt> = Vec::new();
        for event in self.custody.events().await {
            if event.subject().as_ref() != Some(&subject) {
                continue;
            }
            match event.details() {
                Ok(Some(Details::MemoryCaptureRequested(r))) if event.outcome == Outcome::Ok => {
                    attempts.push(Attempt {
                        requested: r,
                        command_id: None,
                        captured: None,
                    })
                }
                Ok(Some(Details::MemoryCommandSent(s))) => {
                    if let Some(a) = attempts.iter_mut().find(|a| a.requested.item == s.item) {
                        a.command_id = Some(s.command_id);
                    }
                }
                Ok(Some(Details::MemoryCaptured(c))) => {
                    if let Some(a) = attempts.iter_mut().find(|a| a.requested.item == c.item) {
                        a.captured = Some((event.outcome, c));
                    }
                }
                _ => {}
            }
        }
        attempts
    }

    async fn run(&self, target: &MemoryTarget) -> Result<MemoryItem, MemoryError> {
        let attempts = self.attempts().await;
        // A sealed capture whose hashes agreed; a mismatched one is sealed as found but is not
        // the instance's memory evidence.
        for attempt in attempts
            .iter()
            .rev()
            .filter(|a| matches!(a.captured, Some((Outcome::Ok, _)) | None))
        {
            let id = &attempt.requested.item;
            if let Some(bag) = self.sealed(id).await? {
                return self.sealed_item(id, bag, attempt).await;
            }
        }
        if let Some(last) = attempts.last() {
            match &last.captured {
                Some((Outcome::Ok, captured)) => return self.seal(last, captured).await,
                Some((_, captured)) => {
                    // An image whose hashes differed is sealed as found, also when the run that
                    // found the difference stopped before sealing it.
                    if captured.stored.is_some()
                        && self.sealed(&last.requested.item).await?.is_none()
                        && let Err(e) = self.seal(last, captured).await
                    {
                        tracing::warn!(item = %last.requested.item, error = %e, "the mismatched capture could not be sealed");
                    }
                }
                None => match &last.command_id {
                    Some(command_id) => {
                        tracing::info!(
                            item = %last.requested.item,
                            command = %command_id,
                            "resuming a memory capture whose command was sent"
                        );
                        return self.finish(&last.requested, command_id).await;
                    }
                    None => self.abandon(&last.requested).await?,
                },
            }
        }
        let id = item_id(&self.plan.instance_id, attempts.len() + 1);
        let requested = self.request(&id, target).await?;
        let command_id = self.send(&requested).await?;
        self.finish(&requested, &command_id).await
    }

    async fn sealed(&self, id: &str) -> Result<Option<SealedBag>, MemoryError> {
        item::sealed(self.store, &self.prefix(id))
            .await
            .map_err(|e| self.error("read the bag", e, "check the evidence bucket and run again"))
    }

    /// A capture requested by a run that died before it recorded the command id: whether the
    /// command went out is unknown, so its upload is aborted (a host still sending finds it
    /// gone) and the attempt closed; a new attempt follows.
    async fn abandon(&self, requested: &MemoryCaptureRequested) -> Result<(), MemoryError> {
        tracing::warn!(
            item = %requested.item,
            upload = %requested.upload_id,
            "a memory capture was requested by a run that stopped before SendCommand was recorded: abandoning it"
        );
        self.abort(requested).await;
        let _ = self.transfer.delete_transfer(&requested.plan_key).await;
        let err = self.error(
            "send the command",
            "the run that requested this capture stopped before SendCommand was recorded; its upload was aborted",
            "nothing: a new capture follows",
        );
        let _ = self
            .record(
                self.draft(MemoryCaptured {
                    item: requested.item.clone(),
                    ..MemoryCaptured::default()
                })
                .failed(err.to_string()),
            )
            .await;
        Ok(())
    }

    /// End the attempt's upload (recorded): nothing more can arrive in it.
    async fn abort(&self, requested: &MemoryCaptureRequested) {
        let (key, upload_id) = (&requested.key, &requested.upload_id);
        let held = self.store.handoff_parts(key, upload_id).await.ok();
        let result = self.store.abort_upload(key, upload_id).await;
        let already_gone = matches!(&result, Err(e) if e.kind == ErrorKind::NotFound);
        if let Err(e) = &result
            && !already_gone
        {
            tracing::warn!(key = %key, upload = %upload_id, error = %e, "the capture's upload could not be aborted; `forensnap leftovers --end` ends it");
            return;
        }
        let parts = held.unwrap_or_default();
        let _ = self
            .record(
                self.draft(UploadAborted {
                    key: key.clone(),
                    upload_id: upload_id.clone(),
                    parts: parts.len() as u32,
                    bytes: parts.iter().map(|p| p.size).sum(),
                    already_gone,
                })
                .before([format!("s3://{}/{key}", self.store.bucket())]),
            )
            .await;
    }

    /// Steps 1 and 2: checks, the upload, the plan, `memory.capture-requested`.
    async fn request(
        &self,
        id: &str,
        target: &MemoryTarget,
    ) -> Result<MemoryCaptureRequested, MemoryError> {
        let plan = self.plan;
        let instance = &plan.instance_id;
        let none = MemoryCaptured::default;
        if target
            .platform
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("windows"))
        {
            let err = self.error(
                "check the platform",
                "the instance runs Windows; forensnap captures Linux memory with AVML only",
                "capture Windows memory with WinPmem by hand (see the README); the disks are collected",
            );
            return Err(self.failed(id, none(), err).await);
        }
        let managed = match self.ssm.instance_information(instance).await {
            Ok(m) => m,
            Err(e) => {
                let err = self.error(
                    "ask SSM about the instance's agent",
                    e,
                    "check the member role's ssm:DescribeInstanceInformation right, then run `forensnap memory` again",
                );
                return Err(self.failed(id, none(), err).await);
            }
        };
        let Some(managed) = managed else {
            let err = self.error(
                "reach the SSM agent",
                "the instance is not a managed instance (no SSM agent registered)",
                "memory cannot be captured through SSM: the agent must run and reach SSM (an instance profile with AmazonSSMManagedInstanceCore, or Default Host Management); the disks are collected",
            );
            return Err(self.failed(id, none(), err).await);
        };
        if managed.ping_status != "Online" {
            let err = self.error(
                "reach the SSM agent",
                format!("the SSM agent is {} (not Online)", managed.ping_status),
                "check the instance's network path to SSM and its agent, then run `forensnap memory --case` again while it still runs; the disks are collected",
            );
            return Err(self.failed(id, none(), err).await);
        }
        if let Some(platform) = &managed.platform_type
            && platform != "Linux"
        {
            let err = self.error(
                "check the platform",
                format!("SSM reports the platform {platform}; forensnap captures Linux memory with AVML only"),
                "capture it with that platform's tool by hand (WinPmem for Windows); the disks are collected",
            );
            return Err(self.failed(id, none(), err).await);
        }
        let Some(instance_type) = target.instance_type.clone() else {
            let err = self.error(
                "size the capture",
                "DescribeInstances gave no instance type",
                "run again; if it persists, report it",
            );
            return Err(self.failed(id, none(), err).await);
        };
        let memory_mib = match self.ssm.memory_mib(&instance_type).await {
            Ok(m) => m,
            Err(e) => {
                let err = self.error(
                    "size the capture",
                    format!("DescribeInstanceTypes of {instance_type}: {e}"),
                    "check the member role's ec2:DescribeInstanceTypes right, then run again",
                );
                return Err(self.failed(id, none(), err).await);
            }
        };
        let document = match self.ssm.document(&plan.document).await {
            Ok(d) => d,
            Err(e) => {
                let err = self.error(
                    "describe the document",
                    format!("{}: {e}", plan.document),
                    "deploy member-role.yaml (it creates the document) or set memory.document, then run again",
                );
                return Err(self.failed(id, none(), err).await);
            }
        };
        if let Some(pinned) = &plan.document_sha256
            && document.hash.as_deref() != Some(pinned.as_str())
        {
            let err = self.error(
                "check the document",
                format!(
                    "{} in account {} has SHA-256 {}, not the pinned {pinned}",
                    plan.document,
                    plan.account,
                    document.hash.as_deref().unwrap_or("(none reported)")
                ),
                "find out who changed the document; redeploy member-role.yaml, or pin the new hash in memory.document_sha256 once it is reviewed",
            );
            return Err(self.failed(id, none(), err).await);
        }

        let key = self.custody.layout().item(id).file(IMAGE_PATH);
        let upload_id = match self.store.open_handoff(&key).await {
            Ok(u) => u,
            Err(e) => {
                let err = self.error(
                    "open the image's upload",
                    format!("s3://{}/{key}: {e}", self.store.bucket()),
                    "check the evidence bucket and the collector role, then run again",
                );
                return Err(self.failed(id, none(), err).await);
            }
        };
        let parts = parts_for(memory_mib, plan.part_bytes);
        let opened = MemoryCaptureRequested {
            item: id.to_string(),
            instance: instance.clone(),
            document: plan.document.clone(),
            document_version: document.version.clone(),
            document_hash: document.hash.clone(),
            avml_key: plan.avml_key.clone(),
            avml_sha256: plan.avml_sha256.clone(),
            key: key.clone(),
            upload_id: upload_id.clone(),
            part_bytes: plan.part_bytes,
            parts,
            instance_type: Some(instance_type),
            memory_mib,
            urls_expire: String::new(),
            transfer_bucket: self.transfer.transfer_bucket().to_string(),
            plan_key: String::new(),
            plan_sha256: String::new(),
            timeout_seconds: plan.timeout_seconds,
        };
        match self.hand_over(opened.clone()).await {
            Ok(requested) => Ok(requested),
            Err(err) => {
                self.abort(&opened).await;
                Err(self.failed(id, none(), err).await)
            }
        }
    }

    /// The plan of presigned part URLs put in the transfer bucket, and the request recorded.
    async fn hand_over(
        &self,
        mut requested: MemoryCaptureRequested,
    ) -> Result<MemoryCaptureRequested, MemoryError> {
        let plan = self.plan;
        let (key, upload_id) = (requested.key.clone(), requested.upload_id.clone());
        let expires = OffsetDateTime::now_utc() + plan.url_lifetime;
        let presigned = futures::stream::iter(1..=requested.parts)
            .map(|n| {
                self.store
                    .presign_part(&key, &upload_id, n, plan.url_lifetime)
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| {
                self.error(
                    "presign the part URLs",
                    e,
                    "check the collector role's credentials, then run again",
                )
            })?;
        let transfer = TransferPlan::new(plan.part_bytes, presigned);
        let bytes = serde_json::to_vec(&transfer).unwrap_or_default();
        requested.plan_sha256 = hex::encode(Sha256::digest(&bytes));
        // Unguessable and naming no case: the host sees this key in its command.
        requested.plan_key = format!("memory/{}.json", &requested.plan_sha256[..32]);
        requested.urls_expire = expires.format(&Rfc3339).unwrap_or_default();
        self.transfer
            .put_transfer(&requested.plan_key, bytes)
            .await
            .map_err(|e| {
                self.error(
                    "store the transfer plan",
                    format!(
                        "s3://{}/{}: {e}",
                        self.transfer.transfer_bucket(),
                        requested.plan_key
                    ),
                    "check memory.transfer_bucket (forensic-account.yaml's TransferBucketName) and the collector role, then run again",
                )
            })?;
        let draft = self
            .draft(requested.clone())
            .before([self.plan.instance_id.clone()])
            .after([format!("s3://{}/{key}", self.store.bucket())]);
        if let Err(e) = self.record(draft).await {
            let _ = self.transfer.delete_transfer(&requested.plan_key).await;
            return Err(e);
        }
        Ok(requested)
    }

    /// Step 3: SendCommand, `memory.command-sent`.
    async fn send(&self, requested: &MemoryCaptureRequested) -> Result<String, MemoryError> {
        let plan = self.plan;
        let id = &requested.item;
        let urls = async {
            let avml = self
                .store
                .presign_get(&plan.avml_key, plan.url_lifetime)
                .await?;
            let transfer = self
                .transfer
                .presign_transfer(&requested.plan_key, plan.url_lifetime)
                .await?;
            Ok::<_, forensnap_store::CloudError>((avml, transfer))
        };
        let sent = match urls.await {
            Ok((avml, transfer)) => {
                let parameters = BTreeMap::from([
                    ("AvmlUrl".to_string(), avml),
                    ("AvmlSha256".to_string(), plan.avml_sha256.clone()),
                    ("PlanUrl".to_string(), transfer),
                ]);
                self.ssm
                    .send_command(
                        &plan.document,
                        requested.document_hash.as_deref(),
                        &plan.instance_id,
                        &parameters,
                        plan.timeout_seconds,
                        plan.comment.as_deref().unwrap_or(""),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        match sent {
            Ok(command) => {
                let command_id = command.value;
                self.record(
                    self.draft(MemoryCommandSent {
                        item: id.clone(),
                        command_id: command_id.clone(),
                    })
                    .before([plan.instance_id.clone()])
                    .request_ids(command.request_id),
                )
                .await?;
                Ok(command_id)
            }
            Err(e) => {
                self.abort(requested).await;
                let _ = self.transfer.delete_transfer(&requested.plan_key).await;
                let err = self.error(
                    "send the capture command",
                    e,
                    "check that the SSM agent is Online and that the member role may send the document (member-role.yaml), then run `forensnap memory --case` again; the disks are collected",
                );
                Err(self.failed(id, MemoryCaptured::default(), err).await)
            }
        }
    }

    /// Steps 4 and 5: the invocation followed to its end, the image completed, hashed, compared.
    async fn finish(
        &self,
        requested: &MemoryCaptureRequested,
        command_id: &str,
    ) -> Result<MemoryItem, MemoryError> {
        let invocation = self.wait(command_id).await;
        if let Err(e) = self.transfer.delete_transfer(&requested.plan_key).await {
            tracing::warn!(key = %requested.plan_key, error = %e, "the transfer plan could not be deleted; the transfer bucket's lifecycle rule removes it within a day");
        }
        let id = &requested.item;
        let mut captured = MemoryCaptured {
            item: id.clone(),
            command_id: Some(command_id.to_string()),
            ..MemoryCaptured::default()
        };
        let invocation = match invocation {
            Ok(i) => i,
            Err(err) => {
                // forensnap stopped waiting: nothing more may arrive.
                self.abort(requested).await;
                return Err(self.failed(id, captured, err).await);
            }
        };
        captured.status = Some(invocation.status.clone());
        captured.response_code = invocation.response_code;
        captured.started = invocation.started.clone();
        captured.ended = invocation.ended.clone();
        if invocation.status != "Success" {
            self.abort(requested).await;
            let err = self.command_failed(requested, &invocation);
            return Err(self.failed(id, captured, err).await);
        }
        let Some(report) = host_report(&invocation.stdout) else {
            self.abort(requested).await;
            let err = self.error(
                "read the host's report",
                format!(
                    "command {command_id} succeeded but printed no `forensnap-memory sha256=...` line (stdout: {:?})",
                    tail(&invocation.stdout, 300)
                ),
                "check the document in the member account is forensnap's (memory.document_sha256 pins it), then capture again",
            );
            return Err(self.failed(id, captured, err).await);
        };
        captured.host_sha256 = Some(report.sha256.clone());
        if report.avml_sha256 != requested.avml_sha256 {
            let err = self.error(
                "check the host's report",
                format!(
                    "the host reports running AVML {}, not the pinned {}",
                    report.avml_sha256, requested.avml_sha256
                ),
                "treat the capture as untrustworthy; investigate the document and the host",
            );
            self.abort(requested).await;
            return Err(self.failed(id, captured, err).await);
        }
        // The command's record (the bag's data/command.json once the image is in).
        let record = serde_json::json!({
            "command_id": command_id,
            "document": requested.document,
            "document_version": requested.document_version,
            "document_hash": requested.document_hash,
            "instance": requested.instance,
            "instance_type": requested.instance_type,
            "memory_mib": requested.memory_mib,
            "avml_key": requested.avml_key,
            "avml_sha256": requested.avml_sha256,
            "parameters": ["AvmlUrl", "AvmlSha256", "PlanUrl"],
            "timeout_seconds": requested.timeout_seconds,
            "status": invocation.status,
            "response_code": invocation.response_code,
            "started": invocation.started,
            "ended": invocation.ended,
            "upload_id": requested.upload_id,
            "part_bytes": requested.part_bytes,
            "parts_presigned": requested.parts,
            "urls_expire": requested.urls_expire,
            "plan_sha256": requested.plan_sha256,
            "host_report": report,
            // The trade-off the responder accepted by asking for memory.
            "visibility": "SSM Run Command ran this document on the instance as root: a root user watching the host could see the command, AVML in its scratch space and the upload, and read the plan's part URLs (which name this item's key)",
        });
        let image = match self.complete(requested, report.parts).await {
            Ok(image) => image,
            Err(err) => return Err(self.failed(id, captured, err).await),
        };
        captured.parts = Some(image.parts);
        let (image_sha256, bytes) = match self.hash(&requested.key, image.size).await {
            Ok(h) => h,
            Err(err) => return Err(self.failed(id, captured, err).await),
        };
        captured.image_sha256 = Some(image_sha256.clone());
        captured.bytes = Some(bytes);
        captured.stored = Some(StoredObject {
            key: requested.key.clone(),
            version_id: image.version_id.clone(),
            sha256: image_sha256.clone(),
            size: bytes,
            adopted: false,
            unstored_sha256: None,
        });
        captured.lime_ranges = match self.lime(&requested.key, bytes).await {
            Ok(n) => Some(n),
            Err(why) => {
                tracing::warn!(item = %id, why = %why, "the stored image's LiME headers do not read");
                None
            }
        };
        // The host's output and the command's record, payload of the bag beside the image.
        let prefix = self.prefix(id);
        let mut command = serde_json::to_vec_pretty(&record).unwrap_or_default();
        command.push(b'\n');
        for (path, bytes, kind) in [
            (
                STDOUT_PATH,
                invocation.stdout.clone().into_bytes(),
                "text/plain; charset=utf-8",
            ),
            (
                STDERR_PATH,
                invocation.stderr.clone().into_bytes(),
                "text/plain; charset=utf-8",
            ),
            (COMMAND_PATH, command, "application/json"),
        ] {
            if let Err(e) = store_once(self.store, &prefix, path, bytes, kind).await {
                let err = self.error("store the host's output", e, "run again");
                return Err(self.failed(id, captured, err).await);
            }
        }
        let attempt = Attempt {
            requested: requested.clone(),
            command_id: Some(command_id.to_string()),
            captured: None,
        };
        if image_sha256 != report.sha256 || bytes != report.bytes {
            let err = self.error(
                "compare the host's hash with S3's",
                format!(
                    "the host reported sha256 {} over {} bytes; s3://{}/{} holds sha256 {image_sha256} over {bytes} bytes. The image is kept and sealed as found, its bag naming both hashes, and `forensnap verify` reports the difference",
                    report.sha256,
                    report.bytes,
                    self.store.bucket(),
                    requested.key
                ),
                "investigate what altered the upload; memory has changed since, so capture again with `forensnap memory --case` (a new item)",
            );
            let err = self.failed(id, captured.clone(), err).await;
            if let Err(e) = self.seal(&attempt, &captured).await {
                tracing::warn!(item = %id, error = %e, "the mismatched capture could not be sealed");
            }
            return Err(err);
        }
        let draft = self
            .draft(captured.clone())
            .before([self.plan.instance_id.clone()])
            .after([format!("s3://{}/{}", self.store.bucket(), requested.key)]);
        self.record(draft).await?;
        self.seal(&attempt, &captured).await
    }

    fn command_failed(
        &self,
        requested: &MemoryCaptureRequested,
        invocation: &Invocation,
    ) -> MemoryError {
        let stderr = tail(&invocation.stderr, 500);
        let (why, next) = match (invocation.status.as_str(), invocation.response_code) {
            ("TimedOut", _) => (
                format!("the command timed out after {} s", requested.timeout_seconds),
                "raise memory.timeout_minutes (a large host at tens of MB/s needs minutes per GiB), then capture again".to_string(),
            ),
            (_, Some(3)) => (
                "the host refused the AVML build: its SHA-256 is not the pinned one (AVML was not run)".into(),
                "check memory.avml_key and memory.avml_sha256 name the same build, then capture again".into(),
            ),
            (_, Some(2)) => (
                "the host could not read the plan or the AVML build through their URLs".into(),
                "check the instance can reach S3 (an S3 endpoint in its VPC, or a route out), then capture again".into(),
            ),
            (_, Some(4)) => (
                "the capture failed on the host (AVML, or its tmpfs scratch space)".into(),
                "see the host's standard error below; free memory for /dev/shm or lower memory.part_mib, then capture again".into(),
            ),
            (_, Some(5)) => (
                "the upload failed: a part could not be sent, or the capture is larger than the presigned parts".into(),
                "see the host's standard error below; check the instance reaches S3, then capture again".into(),
            ),
            (status, code) => (
                format!("the command ended {status} (exit {})", code.map_or("-".into(), |c| c.to_string())),
                "see the host's standard error below, then capture again".into(),
            ),
        };
        self.error(
            "run the capture command",
            format!("{why}; the host's standard error ends: {stderr:?}"),
            next,
        )
    }

    /// Step 4: the invocation, asked every `poll` until it ends (or its timeout and a slack pass:
    /// then the upload is aborted so that a host still running can store nothing more).
    async fn wait(&self, command_id: &str) -> Result<Invocation, MemoryError> {
        let plan = self.plan;
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(plan.timeout_seconds))
            + WAIT_SLACK;
        let mut misses = 0;
        loop {
            match self.ssm.invocation(command_id, &plan.instance_id).await {
                Ok(invocation) if invocation.is_done() => return Ok(invocation),
                Ok(_) => misses = 0,
                Err(e) => {
                    misses += 1;
                    if misses >= INVOCATION_MISSES {
                        return Err(self.error(
                            "follow the capture command",
                            format!("GetCommandInvocation of {command_id}: {e}"),
                            "check the member role's ssm:GetCommandInvocation right, then run again (the command is followed again)",
                        ));
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.error(
                    "follow the capture command",
                    format!(
                        "command {command_id} had not ended {} s after its timeout",
                        WAIT_SLACK.as_secs()
                    ),
                    "check the instance's SSM agent; the upload was aborted, so capture again",
                ));
            }
            tokio::time::sleep(plan.poll).await;
        }
    }

    /// The upload completed from the parts S3 holds (or found completed by an earlier run).
    async fn complete(
        &self,
        requested: &MemoryCaptureRequested,
        reported_parts: u32,
    ) -> Result<Image, MemoryError> {
        let key = &requested.key;
        let bucket = self.store.bucket();
        let parts = match self.store.handoff_parts(key, &requested.upload_id).await {
            Ok(parts) => parts,
            Err(e) if e.kind == ErrorKind::NotFound => {
                // Completed by a run that stopped before recording it.
                let head = self.store.head(key).await.map_err(|e| {
                    self.error(
                        "read the image",
                        format!("s3://{bucket}/{key}: {e}"),
                        "run again",
                    )
                })?;
                return match head {
                    Some(object) => Ok(Image {
                        version_id: object.version_id,
                        size: object.size.unwrap_or(0),
                        parts: reported_parts,
                    }),
                    None => Err(self.error(
                        "complete the image",
                        format!(
                            "upload {} of s3://{bucket}/{key} is gone and no image was stored",
                            requested.upload_id
                        ),
                        "capture again",
                    )),
                };
            }
            Err(e) => {
                return Err(self.error(
                    "list the image's parts",
                    format!("s3://{bucket}/{key}: {e}"),
                    "check the collector role's s3:ListMultipartUploadParts right, then run again",
                ));
            }
        };
        let numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
        let contiguous = numbers.iter().enumerate().all(|(i, n)| *n == i as u32 + 1);
        if parts.is_empty() || !contiguous || parts.len() as u32 != reported_parts {
            self.abort(requested).await;
            return Err(self.error(
                "complete the image",
                format!(
                    "the host reported {reported_parts} parts; S3 holds parts {numbers:?} of upload {}",
                    requested.upload_id
                ),
                "capture again; check the instance's path to S3",
            ));
        }
        let size = parts.iter().map(|p| p.size).sum();
        let version_id = self
            .store
            .complete_handoff(key, &requested.upload_id, &parts)
            .await
            .map_err(|e| {
                self.error(
                    "complete the image",
                    format!("s3://{bucket}/{key}: {e}"),
                    "run again: the parts are kept until the upload is completed or aborted",
                )
            })?;
        Ok(Image {
            version_id,
            size,
            parts: parts.len() as u32,
        })
    }

    /// forensnap's own SHA-256 of the stored image, read in ranges (a few MiB in memory).
    async fn hash(&self, key: &str, size: u64) -> Result<(String, u64), MemoryError> {
        forensnap_evidence::memory::sha256_of(
            self.store,
            key,
            size,
            &forensnap_evidence::NoProgress,
        )
        .await
        .map(|sha| (sha, size))
        .map_err(|e| {
            self.error(
                "hash the stored image",
                format!("s3://{}/{key}: {e}", self.store.bucket()),
                "run again: the image is stored",
            )
        })
    }

    /// The stored image's LiME ranges, read from its headers alone.
    async fn lime(&self, key: &str, size: u64) -> Result<u64, String> {
        forensnap_evidence::memory::lime_ranges_of(self.store, key, size)
            .await
            .map(|r| r.len() as u64)
    }

    /// Step 6: the bag sealed from what `memory.captured` recorded, `evidence.sealed`.
    async fn seal(
        &self,
        attempt: &Attempt,
        captured: &MemoryCaptured,
    ) -> Result<MemoryItem, MemoryError> {
        let requested = &attempt.requested;
        let id = &requested.item;
        let prefix = self.prefix(id);
        let (Some(image_sha256), Some(bytes), Some(host_sha256)) = (
            &captured.image_sha256,
            captured.bytes,
            &captured.host_sha256,
        ) else {
            return Err(self.error(
                "seal the bag",
                "memory.captured records no image",
                "capture again",
            ));
        };
        let mut payload = vec![PayloadFile {
            path: IMAGE_PATH.to_string(),
            sha256: image_sha256.clone(),
            size: bytes,
        }];
        for path in [COMMAND_PATH, STDERR_PATH, STDOUT_PATH] {
            let key = ItemLayout::at(&prefix).file(path);
            let stored = self
                .store
                .get(&key)
                .await
                .map_err(|e| {
                    self.error("seal the bag", format!("reading {key}: {e}"), "run again")
                })?
                .ok_or_else(|| {
                    self.error("seal the bag", format!("{key} is missing"), "capture again")
                })?;
            payload.push(PayloadFile {
                path: path.to_string(),
                sha256: hex::encode(Sha256::digest(&stored)),
                size: stored.len() as u64,
            });
        }
        payload.sort_by(|a, b| a.path.cmp(&b.path));
        let summary = summary(requested, captured, attempt.command_id.as_deref());
        let mut info = crate::bag_fields(&crate::BagSource {
            kind: ItemKind::Memory,
            id,
            case: &self.case,
            tool: &self.plan.tool,
            account: &self.plan.account,
            region: &self.plan.region,
            instance: Some(&self.plan.instance_id),
            forensic_account: &self.plan.forensic_account,
        });
        info.extend(
            [
                ("Memory-Format", "LiME (AVML)".to_string()),
                ("Memory-Bytes", bytes.to_string()),
                ("Host-SHA256", host_sha256.clone()),
                ("Image-SHA256", image_sha256.clone()),
                ("Command-Id", summary.command_id.clone()),
                ("SSM-Document", requested.document.clone()),
                ("AVML-SHA256", requested.avml_sha256.clone()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        if let Some(hash) = &requested.document_hash {
            info.push(("SSM-Document-SHA256".into(), hash.clone()));
        }
        if let Some(t) = &requested.instance_type {
            info.push(("Instance-Type".into(), t.clone()));
        }
        let bag = item::seal_small(
            self.store,
            &prefix,
            &payload,
            &info,
            self.signer,
            item::Guide {
                id,
                case: &self.case,
                kind: ItemKind::Memory,
            },
        )
        .await
        .map_err(|e| self.error("seal the bag", e, "run again"))?;
        self.sealed_event(id, &prefix, &bag).await?;
        Ok(MemoryItem {
            id: id.clone(),
            bag,
            summary,
        })
    }

    async fn sealed_event(
        &self,
        id: &str,
        prefix: &str,
        bag: &SealedBag,
    ) -> Result<(), MemoryError> {
        let draft = self
            .draft(EvidenceSealed {
                item: id.to_string(),
                kind: ItemKind::Memory,
                prefix: prefix.to_string(),
                payload_sha256: bag.files.clone(),
            })
            .after([format!("s3://{}/{prefix}", self.store.bucket())]);
        self.record(draft).await
    }

    /// A capture an earlier run sealed; `evidence.sealed` recorded if that run died first.
    async fn sealed_item(
        &self,
        id: &str,
        bag: SealedBag,
        attempt: &Attempt,
    ) -> Result<MemoryItem, MemoryError> {
        let events = self.custody.events().await;
        let recorded = events.iter().any(|e| {
            e.outcome == Outcome::Ok
                && matches!(e.details(), Ok(Some(Details::EvidenceSealed(ref s))) if s.item == id)
        });
        if !recorded {
            self.sealed_event(id, &self.prefix(id), &bag).await?;
        }
        let captured = match &attempt.captured {
            Some((Outcome::Ok, c)) => c.clone(),
            _ => {
                return Err(self.error(
                    "read the capture",
                    format!("the bag of {id} is sealed but the custody log records no successful memory.captured"),
                    "investigate the case's custody log before relying on this item",
                ));
            }
        };
        Ok(MemoryItem {
            id: id.to_string(),
            bag,
            summary: summary(&attempt.requested, &captured, attempt.command_id.as_deref()),
        })
    }
}

struct Image {
    version_id: Option<String>,
    size: u64,
    parts: u32,
}

fn summary(
    requested: &MemoryCaptureRequested,
    captured: &MemoryCaptured,
    command_id: Option<&str>,
) -> MemorySummary {
    MemorySummary {
        host_sha256: captured.host_sha256.clone().unwrap_or_default(),
        image_sha256: captured.image_sha256.clone().unwrap_or_default(),
        bytes: captured.bytes.unwrap_or(0),
        parts: captured.parts.unwrap_or(0),
        lime_ranges: captured.lime_ranges.unwrap_or(0),
        command_id: captured
            .command_id
            .clone()
            .or(command_id.map(str::to_string))
            .unwrap_or_default(),
        avml_sha256: requested.avml_sha256.clone(),
        document_hash: requested.document_hash.clone(),
    }
}

/// The last `n` characters of `text`.
fn tail(text: &str, n: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(n)).collect()
}

#[cfg(test)]
#[path = "memory_tests.rs"]
pub(crate) mod tests;
