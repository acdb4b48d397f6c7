//! `forensnap verify`: everything of one case re-read and checked, by someone who need not
//! trust forensnap's earlier runs.
//!
//! * the custody chain: every event's link to the previous one's SHA-256;
//! * the signed checkpoints (CloudTrail-digest style): each signature against the trusted
//!   public key, their own locations, their links, the chain heads they vouch for, and events not
//!   yet covered by one;
//! * every evidence item: its tag manifest's signature, its tag manifest against the one the
//!   latest checkpoint recorded, every tag file, every payload file (a volume's data object block
//!   by block against the block map, the block map, the image SHA-256), and no payload file that
//!   the manifest does not list;
//! * CloudTrail items ([`cloudtrail`]): every query's pages complete and in the timeline, the
//!   trail's copied files validating as recorded;
//! * memory items ([`memory`]): the image streamed and re-hashed against the manifest, the
//!   host's and forensnap's capture hashes equal to it, its LiME headers;
//! * online only: every object still under COMPLIANCE retention, not shorter than configured,
//!   with its legal hold as configured.
//!
//! The store is a seam ([`EvidenceAudit`]): S3 online, a downloaded folder offline
//! (`aws s3 sync s3://BUCKET/cases/CASE/ DIR`, see [`forensnap_store::FolderStore`]). Nothing is written here;
//! the caller records the result as a custody event.

mod cloudtrail;
mod memory;

use forensnap_core::keys::{ItemLayout, signature_of};
use std::collections::{BTreeMap, BTreeSet};

use forensnap_core::details::Details;
use forensnap_core::seal::{
    Checkpoint, CheckpointObject, PUBLIC_KEY_PATH, fingerprint, parse_public_key_pem,
    public_key_pem, verify_checkpoints, verify_signature,
};
use forensnap_core::{CaseId, CaseLayout, Event, Outcome};
use forensnap_evidence::export::{check_payload, read_bag};
use forensnap_evidence::item::TAG_MANIFEST;
use forensnap_evidence::{ByteProgress, NoProgress};
use forensnap_store::{CloudError, EvidenceAudit};

/// What the Object Lock rules should be (online).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Retention configured, in days from upload.
    pub retention_days: u32,
    /// Legal hold configured.
    pub legal_hold: bool,
    /// Now, seconds since the epoch.
    pub now: i64,
}

/// One line of the verification table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// What was checked (`custody chain`, `checkpoints`, `signature`, `payload`, ...).
    pub check: String,
    /// What it was checked on (an item, a key, a block).
    pub subject: String,
    /// Whether it holds.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// The whole verification.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// The case.
    pub case: String,
    /// Fingerprint (SHA-256 of the DER) of the public key signatures were checked with.
    pub public_key_sha256: String,
    /// Custody events read.
    pub events: usize,
    /// Checkpoints read.
    pub checkpoints: usize,
    /// Evidence items checked.
    pub items: usize,
    /// Objects whose retention was checked (online).
    pub objects_locked: usize,
    /// Every check.
    pub rows: Vec<Row>,
    /// What the verification read and found, for a custody report to describe exactly what
    /// was verified (not printed: the rows say it for people).
    #[serde(skip)]
    pub facts: Facts,
}

/// What a verification read, in the form a report needs: each fact as found, whether or not it
/// passed (the rows say that).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The custody events that parse, in chain order.
    pub events: Vec<ReadEvent>,
    /// The checkpoints that parse, in order.
    pub checkpoints: Vec<CheckpointFact>,
    /// Per evidence item.
    pub items: BTreeMap<String, ItemFact>,
    /// Per stored object version (online only).
    pub locks: Vec<LockFact>,
    /// Per CloudTrail events item: its timeline as re-read.
    pub timelines: BTreeMap<String, TimelineFact>,
}

/// A CloudTrail events item's timeline, as re-read from its bag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineFact {
    /// Start of the window, RFC 3339.
    pub start: String,
    /// End of the window, RFC 3339.
    pub end: String,
    /// Rows in the timeline.
    pub rows: u64,
    /// The flagged rows, in time order.
    pub flagged: Vec<FlaggedAction>,
}

/// One flagged action of a CloudTrail timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlaggedAction {
    /// When, RFC 3339.
    pub time: String,
    /// Who (the principal's ARN).
    pub principal: String,
    /// `service:EventName`.
    pub action: String,
    /// `persistence`, `defence-evasion`, `privilege-escalation`, `credential-access`.
    pub flag: String,
    /// Why it is flagged.
    pub why: String,
    /// From where.
    pub source_ip: String,
    /// The error AWS answered, if the action failed.
    pub error_code: Option<String>,
}

/// One custody event as read.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadEvent {
    /// The event.
    pub event: Event,
    /// SHA-256 of its stored bytes (what the next event links to).
    pub sha256: String,
    /// Its stored bytes (one line of JSON and a newline, as forensnap writes events).
    pub bytes: Vec<u8>,
}

/// One signed checkpoint as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFact {
    /// Its number.
    pub number: u64,
    /// When it was made.
    pub time: String,
    /// Its own key, as recorded in it.
    pub key: String,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
    /// The last event it seals.
    pub chain_seq: u64,
    /// The KMS key that signs it.
    pub signing_key_arn: String,
    /// The fingerprint it records for that key.
    pub public_key_sha256: String,
    /// Whether its signature verifies with the trusted key.
    pub signature_verified: bool,
}

/// One evidence item as re-read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFact {
    /// SHA-256 of its tag manifest (absent when missing).
    pub tagmanifest_sha256: Option<String>,
    /// Whether the tag manifest's signature verifies with the trusted key.
    pub signature_verified: bool,
    /// Whether the payload matched the manifest (and, for a volume, the block map).
    pub payload_verified: bool,
    /// A volume's image SHA-256 as this verification computed it.
    pub image_sha256: Option<String>,
    /// A volume's size in bytes.
    pub volume_bytes: Option<u64>,
    /// Stored blocks checked against the block map.
    pub blocks_checked: Option<u64>,
    /// A memory item's capture, as its bag records it and this verification re-read it.
    pub memory: Option<MemoryFact>,
}

/// A memory item's capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryFact {
    /// The host's SHA-256 of the image it streamed.
    pub host_sha256: String,
    /// forensnap's SHA-256 of S3's copy at capture (the manifest's, re-hashed now).
    pub image_sha256: String,
    /// The image's size.
    pub bytes: u64,
    /// LiME ranges read from its headers (absent when they do not read).
    pub lime_ranges: Option<u64>,
    /// The SSM command that captured it.
    pub command_id: Option<String>,
}

/// One stored object version's Object Lock state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFact {
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: String,
    /// Retention mode.
    pub mode: Option<String>,
    /// Retain-until, seconds since the epoch.
    pub retain_until: Option<i64>,
    /// Legal hold on.
    pub legal_hold: bool,
}

impl Report {
    /// Whether every check holds.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }

    fn push(
        &mut self,
        check: &str,
        subject: impl Into<String>,
        ok: bool,
        detail: impl Into<String>,
    ) {
        self.rows.push(Row {
            check: check.into(),
            subject: subject.into(),
            ok,
            detail: detail.into(),
        });
    }
}

/// Why verification could not run at all (a failed check is a [`Row`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Reading the store failed.
    #[error(
        "reading {what}: {source}. Next: check access to the case's objects and run verify again"
    )]
    Read {
        /// What was being read.
        what: String,
        /// Cause.
        source: CloudError,
    },
    /// The case has nothing stored.
    #[error(
        "case {case} has no custody events under {root}: wrong case id, evidence prefix or folder?"
    )]
    Empty {
        /// Case.
        case: String,
        /// Where it looked.
        root: String,
    },
}

fn read(what: impl Into<String>) -> impl FnOnce(CloudError) -> VerifyError {
    let what = what.into();
    move |source| VerifyError::Read { what, source }
}

/// Verify the case laid out as `layout` (`CaseLayout::new(prefix, case)` in S3,
/// `CaseLayout::downloaded()` in a folder), trusting `public_key` (DER SPKI); with `expected`,
/// check Object Lock too.
pub async fn verify<F: EvidenceAudit>(
    files: &F,
    case: &CaseId,
    layout: &CaseLayout,
    public_key: &[u8],
    expected: Option<Expected>,
    progress: &dyn ByteProgress,
) -> Result<Report, VerifyError> {
    let root = layout.root();
    let keys = files
        .list(root)
        .await
        .map_err(read(format!("the list of {root}")))?;
    let mut report = Report {
        case: case.to_string(),
        public_key_sha256: fingerprint(public_key),
        events: 0,
        checkpoints: 0,
        items: 0,
        objects_locked: 0,
        rows: Vec::new(),
        facts: Facts::default(),
    };
    let relative: Vec<&str> = keys.iter().filter_map(|k| k.strip_prefix(root)).collect();

    // Custody events, in key order (zero-padded sequence numbers).
    let events = read_json(files, root, &relative, "custody/events/").await?;
    if events.is_empty() {
        return Err(VerifyError::Empty {
            case: case.to_string(),
            root: root.to_string(),
        });
    }
    report.events = events.len();
    report.facts.events = events
        .iter()
        .filter_map(|(_, bytes)| {
            Some(ReadEvent {
                event: serde_json::from_slice::<Event>(bytes).ok()?,
                sha256: forensnap_core::sha256_hex(bytes),
                bytes: bytes.clone(),
            })
        })
        .collect();
    match forensnap_core::custody::verify_chain(case, &events) {
        Ok((_, head)) => report.push(
            "custody chain",
            format!("{} events", events.len()),
            true,
            format!(
                "each event links to the previous one's SHA-256; head seq {} sha256 {}",
                head.seq, head.sha256
            ),
        ),
        Err(e) => report.push(
            "custody chain",
            format!("{} events", events.len()),
            false,
            e.to_string(),
        ),
    }

    // Checkpoints. Their recorded keys are S3 keys; a folder holds them relative to the case, so
    // the S3 root is taken from the first checkpoint (a moved one still shows as moved).
    let mut checkpoints: Vec<CheckpointObject> = Vec::new();
    for (key, bytes) in read_json(files, root, &relative, "custody/checkpoints/").await? {
        let signature_key = signature_of(&key);
        let signature = files
            .get(&signature_key)
            .await
            .map_err(read(signature_key))?;
        checkpoints.push((key, bytes, signature));
    }
    report.checkpoints = checkpoints.len();
    report.facts.checkpoints = checkpoints
        .iter()
        .filter_map(|(_, bytes, signature)| {
            let checkpoint = Checkpoint::from_bytes(bytes).ok()?;
            Some(CheckpointFact {
                number: checkpoint.number,
                time: checkpoint.time,
                key: checkpoint.key,
                sha256: forensnap_core::sha256_hex(bytes),
                chain_seq: checkpoint.chain.seq,
                signing_key_arn: checkpoint.signing_key_arn,
                public_key_sha256: checkpoint.public_key_sha256,
                signature_verified: signature
                    .as_ref()
                    .is_some_and(|s| verify_signature(public_key, bytes, s).is_ok()),
            })
        })
        .collect();
    let recorded_root = checkpoints
        .first()
        .and_then(|(key, bytes, _)| {
            let rel = key.strip_prefix(root)?;
            let recorded = Checkpoint::from_bytes(bytes).ok()?.key;
            recorded.strip_suffix(rel).map(str::to_string)
        })
        .unwrap_or_else(|| root.to_string());
    let as_recorded =
        |key: &str| format!("{recorded_root}{}", key.strip_prefix(root).unwrap_or(key));
    let events_as_recorded: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|(k, b)| (as_recorded(k), b.clone()))
        .collect();
    let checkpoints_as_recorded: Vec<CheckpointObject> = checkpoints
        .iter()
        .map(|(k, b, s)| (as_recorded(k), b.clone(), s.clone()))
        .collect();
    let findings = verify_checkpoints(
        case,
        &events_as_recorded,
        &checkpoints_as_recorded,
        public_key,
    );
    if findings.is_empty() {
        report.push(
            "checkpoints",
            format!("{} checkpoints", checkpoints.len()),
            true,
            "every signature verifies, links hold, every event is covered",
        );
    }
    for finding in findings {
        report.push("checkpoints", finding.what, false, finding.problem);
    }

    // The latest checkpoint whose signature verifies: what it says each item's tag manifest is.
    let sealed: BTreeMap<String, String> = checkpoints
        .iter()
        .rev()
        .find_map(|(_, bytes, signature)| {
            let signature = signature.as_ref()?;
            verify_signature(public_key, bytes, signature).ok()?;
            Checkpoint::from_bytes(bytes).ok()
        })
        .map(|c| {
            c.items
                .into_iter()
                .map(|i| (i.id, i.tagmanifest_sha256))
                .collect()
        })
        .unwrap_or_default();

    // Evidence items: every folder under evidence/, and every item a checkpoint names.
    let mut ids: BTreeSet<String> = relative
        .iter()
        .filter_map(|k| k.strip_prefix("evidence/"))
        .filter_map(|k| k.split_once('/').map(|(id, _)| id.to_string()))
        .collect();
    ids.extend(sealed.keys().cloned());
    report.items = ids.len();
    let recorded = recorded_items(&events);
    for id in &ids {
        let item = layout.item(id);
        let prefix = item.prefix();
        let present: Vec<&str> = relative
            .iter()
            .filter_map(|k| {
                k.strip_prefix("evidence/")?
                    .strip_prefix(id.as_str())?
                    .strip_prefix('/')
            })
            .collect();
        check_item(
            files,
            &mut report,
            id,
            prefix,
            &present,
            sealed.get(id),
            public_key,
            progress,
        )
        .await?;
        check_item_events(&mut report, id, &present, &recorded);
    }

    check_reports(files, &mut report, root, &recorded_root).await?;
    if let Some(expected) = expected {
        check_locks(files, &mut report, root, expected).await?;
    }
    Ok(report)
}

/// Every custody report the chain records (`report.generated`) must still be stored as
/// recorded: each file re-read and re-hashed.
async fn check_reports<F: EvidenceAudit>(
    files: &F,
    report: &mut Report,
    root: &str,
    recorded_root: &str,
) -> Result<(), VerifyError> {
    let generated: Vec<forensnap_core::details::ReportGenerated> = report
        .facts
        .events
        .iter()
        .filter(|e| e.event.outcome == Outcome::Ok)
        .filter_map(|e| match e.event.details() {
            Ok(Some(Details::ReportGenerated(g))) => Some(g),
            _ => None,
        })
        .collect();
    for g in generated {
        for file in g.files {
            let recorded = &file.stored.key;
            let key = match recorded.strip_prefix(recorded_root) {
                Some(rel) => format!("{root}{rel}"),
                None => recorded.clone(),
            };
            let subject = format!("{} {}", g.report_id, key.rsplit('/').next().unwrap_or(&key));
            match files.get(&key).await.map_err(read(&key))? {
                None => report.push(
                    "report",
                    subject,
                    false,
                    format!("{recorded} is missing: the chain records it as stored"),
                ),
                Some(bytes) => {
                    let digest = forensnap_core::sha256_hex(&bytes);
                    if digest == file.stored.sha256 {
                        report.push(
                            "report",
                            subject,
                            true,
                            format!("sha256 {digest} as report.generated records"),
                        );
                    } else {
                        report.push(
                            "report",
                            subject,
                            false,
                            format!(
                                "sha256 {digest}, report.generated records {}: the stored report was changed",
                                file.stored.sha256
                            ),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// The items the chain records as acquired (`acquisition.completed` with data) and as sealed
/// (`evidence.sealed`), successful events only.
struct RecordedItems {
    acquired: BTreeSet<String>,
    sealed: BTreeSet<String>,
}

fn recorded_items(events: &[(String, Vec<u8>)]) -> RecordedItems {
    let mut recorded = RecordedItems {
        acquired: BTreeSet::new(),
        sealed: BTreeSet::new(),
    };
    for (_, bytes) in events {
        let Ok(event) = serde_json::from_slice::<Event>(bytes) else {
            continue; // the chain check names an unreadable event
        };
        if event.outcome != Outcome::Ok {
            continue;
        }
        match event.details() {
            Ok(Some(Details::AcquisitionCompleted(a))) if a.data.is_some() => {
                recorded.acquired.insert(a.item);
            }
            Ok(Some(Details::EvidenceSealed(s))) => {
                recorded.sealed.insert(s.item);
            }
            _ => {}
        }
    }
    recorded
}

/// An item stored without the events that record it: a run stopped between storing and
/// recording (the next `collect` of the case writes them), or objects nobody recorded.
fn check_item_events(report: &mut Report, id: &str, present: &[&str], recorded: &RecordedItems) {
    let volume = present.iter().any(|p| p.starts_with("data/blockmap.tsv"));
    let mut missing = Vec::new();
    if volume && !recorded.acquired.contains(id) {
        missing.push("acquisition.completed");
    }
    if !recorded.sealed.contains(id) {
        missing.push("evidence.sealed");
    }
    if missing.is_empty() {
        report.push(
            "custody events",
            id,
            true,
            "the chain records the item's acquisition and seal",
        );
    } else {
        report.push(
            "custody events",
            id,
            false,
            format!(
                "no {} event records this item: a run stopped before writing it (run `forensnap collect` for the case again: it records what is missing and collects nothing twice), or the item was stored outside forensnap",
                missing.join(" or ")
            ),
        );
    }
}

/// The `.json` objects of one custody folder (`folder` relative to the case), with their bytes,
/// in key order (zero-padded sequence numbers).
async fn read_json<F: EvidenceAudit>(
    files: &F,
    root: &str,
    relative: &[&str],
    folder: &str,
) -> Result<Vec<(String, Vec<u8>)>, VerifyError> {
    let mut objects = Vec::new();
    for rel in relative
        .iter()
        .filter(|k| k.starts_with(folder) && k.ends_with(".json"))
    {
        let key = format!("{root}{rel}");
        let bytes = files
            .get(&key)
            .await
            .map_err(read(&key))?
            .unwrap_or_default();
        objects.push((key, bytes));
    }
    Ok(objects)
}

#[allow(clippy::too_many_arguments)]
async fn check_item<F: EvidenceAudit>(
    files: &F,
    report: &mut Report,
    id: &str,
    prefix: &str,
    present: &[&str],
    sealed: Option<&String>,
    public_key: &[u8],
    progress: &dyn ByteProgress,
) -> Result<(), VerifyError> {
    let subject = |what: &str| format!("{id} {what}");
    let tag_manifest = files
        .get(&ItemLayout::at(prefix).file(TAG_MANIFEST))
        .await
        .map_err(read(ItemLayout::at(prefix).file(TAG_MANIFEST)))?;
    let fact = report.facts.items.entry(id.to_string()).or_default();
    let Some(tag_manifest) = tag_manifest else {
        report.push(
            "item",
            id,
            false,
            format!("{TAG_MANIFEST} is missing: the item is not sealed or was deleted"),
        );
        return Ok(());
    };
    fact.tagmanifest_sha256 = Some(forensnap_core::sha256_hex(&tag_manifest));
    let signature_key = signature_of(&ItemLayout::at(prefix).file(TAG_MANIFEST));
    match files
        .get(&signature_key)
        .await
        .map_err(read(&signature_key))?
    {
        None => report.push(
            "signature",
            subject(TAG_MANIFEST),
            false,
            "no signature (tagmanifest-sha256.txt.sig is missing)",
        ),
        Some(signature) => match verify_signature(public_key, &tag_manifest, &signature) {
            Ok(()) => {
                if let Some(fact) = report.facts.items.get_mut(id) {
                    fact.signature_verified = true;
                }
                report.push(
                    "signature",
                    subject(TAG_MANIFEST),
                    true,
                    "signed by the trusted key",
                )
            }
            Err(e) => report.push("signature", subject(TAG_MANIFEST), false, e.to_string()),
        },
    }
    // Auditors with standard tools check the signature with the key the bag carries
    // (`openssl dgst -verify signing-key.pem`): it must be the key this run trusts, as written.
    let key_path = ItemLayout::at(prefix).file(PUBLIC_KEY_PATH);
    let bag_key = files.get(&key_path).await.map_err(read(&key_path))?;
    let (ok, detail) = match bag_key {
        None => (
            false,
            format!(
                "{PUBLIC_KEY_PATH} is missing: an auditor checking the signature with openssl has no key"
            ),
        ),
        Some(pem) if pem == public_key_pem(public_key).as_bytes() => {
            (true, format!("{PUBLIC_KEY_PATH} is the trusted key"))
        }
        Some(pem) => {
            let theirs = std::str::from_utf8(&pem)
                .ok()
                .and_then(|text| parse_public_key_pem(text).ok())
                .map_or("not a PEM public key".to_string(), |der| {
                    format!("fingerprint {}", fingerprint(&der))
                });
            (
                false,
                format!(
                    "{PUBLIC_KEY_PATH} is not the trusted key as forensnap writes it ({theirs}; trusted {}): an auditor running openssl with it would check against another key",
                    fingerprint(public_key)
                ),
            )
        }
    };
    report.push("bag key", subject(PUBLIC_KEY_PATH), ok, detail);
    let digest = forensnap_core::sha256_hex(&tag_manifest);
    match sealed {
        Some(recorded) if *recorded == digest => report.push(
            "sealed",
            subject(TAG_MANIFEST),
            true,
            "as the latest signed checkpoint records",
        ),
        Some(recorded) => report.push(
            "sealed",
            subject(TAG_MANIFEST),
            false,
            format!("SHA-256 {digest}, the latest signed checkpoint records {recorded}"),
        ),
        None => report.push(
            "sealed",
            subject(TAG_MANIFEST),
            false,
            "no signed checkpoint names this item",
        ),
    }
    let view = match read_bag(files, prefix).await {
        Ok(view) => {
            report.push(
                "bag",
                subject("tag files"),
                true,
                format!("{} tag files match the tag manifest", view.tags.len()),
            );
            view
        }
        Err(e) => {
            report.push("bag", subject("tag files"), false, e.to_string());
            return Ok(());
        }
    };
    let unlisted: Vec<&&str> = present
        .iter()
        .filter(|p| p.starts_with("data/") && !view.manifest.contains_key(**p))
        .collect();
    if !unlisted.is_empty() {
        report.push(
            "payload",
            subject("data/"),
            false,
            format!("files the manifest does not list: {unlisted:?}"),
        );
    }
    let checked = check_payload(files, prefix, &view, progress).await;
    if let Some(fact) = report.facts.items.get_mut(id) {
        fact.payload_verified = checked.is_ok() && unlisted.is_empty();
        if let Ok(Some(volume)) = &checked {
            fact.image_sha256 = Some(volume.image_sha256.clone());
            fact.volume_bytes = Some(volume.volume_bytes);
            fact.blocks_checked = Some(volume.blocks_checked);
        }
    }
    match checked {
        Ok(Some(volume)) => report.push(
            "payload",
            subject("image"),
            true,
            format!(
                "image sha256 {} ({} bytes, {} stored blocks each matching the block map)",
                volume.image_sha256, volume.volume_bytes, volume.blocks_checked
            ),
        ),
        Ok(None) => report.push(
            "payload",
            subject("data/"),
            true,
            format!("{} files match the manifest", view.manifest.len()),
        ),
        Err(e) => report.push("payload", subject("data/"), false, e.to_string()),
    }
    let kind = view
        .info
        .iter()
        .find(|(label, _)| label == "Evidence-Kind")
        .map(|(_, value)| value.as_str());
    match kind {
        Some("cloudtrail-events") => {
            cloudtrail::check_events(files, report, id, prefix, &view).await?
        }
        Some("cloudtrail-logs") => cloudtrail::check_logs(files, report, id, prefix).await?,
        Some("memory") => memory::check(files, report, id, prefix, &view).await?,
        _ => {}
    }
    Ok(())
}

/// Every stored version under `root`, noncurrent ones included, must be under COMPLIANCE
/// retention not shorter than configured (S3 refuses to shorten COMPLIANCE; a version that is
/// shorter was never locked as configured), with the legal hold if configured; a delete marker
/// means someone deleted a name (the locked versions stay, but the case is no longer whole).
async fn check_locks<F: EvidenceAudit>(
    files: &F,
    report: &mut Report,
    root: &str,
    expected: Expected,
) -> Result<(), VerifyError> {
    const DAY: i64 = 86_400;
    let versions = files
        .versions(root)
        .await
        .map_err(read(format!("the versions under {root}")))?;
    let mut earliest: Option<i64> = None;
    let mut failures = 0;
    for version in versions {
        let subject = format!("{} (version {})", version.key, version.version_id);
        if version.delete_marker {
            failures += 1;
            report.push(
                "retention",
                subject,
                false,
                "a delete marker hides this key: someone deleted it (its locked versions remain)",
            );
            continue;
        }
        let lock = files
            .lock(&version.key, &version.version_id)
            .await
            .map_err(read(format!("the retention of {subject}")))?;
        report.objects_locked += 1;
        report.facts.locks.push(LockFact {
            key: version.key.clone(),
            version_id: version.version_id.clone(),
            mode: lock.mode.clone(),
            retain_until: lock.retain_until,
            legal_hold: lock.legal_hold,
        });
        let until = lock.retain_until.unwrap_or_default();
        let problem = if lock.mode.as_deref() != Some("COMPLIANCE") {
            Some(format!("retention mode {:?}, not COMPLIANCE", lock.mode))
        } else if until <= expected.now {
            Some("retention has expired or is missing".to_string())
        } else if let Some(written) = lock.last_modified
            && until < written + i64::from(expected.retention_days) * DAY - DAY
        {
            Some(format!(
                "retained only {} days from upload, {} configured: shortened",
                (until - written) / DAY,
                expected.retention_days
            ))
        } else if expected.legal_hold && !lock.legal_hold {
            Some("the legal hold was removed".to_string())
        } else {
            None
        };
        match problem {
            Some(problem) => {
                failures += 1;
                report.push("retention", subject, false, problem);
            }
            None => earliest = Some(earliest.map_or(until, |e| e.min(until))),
        }
    }
    if failures == 0 {
        let until = earliest
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        report.push(
            "retention",
            format!("{} object versions", report.objects_locked),
            true,
            format!("all under COMPLIANCE retention, the earliest until {until}"),
        );
    }
    Ok(())
}

/// Progress that reports nothing (verification of small cases).
pub fn quiet() -> &'static dyn ByteProgress {
    &NoProgress
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use forensnap_store::{BucketLock, Called, ErrorKind, EvidenceRead, LockState, Version};

    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    /// Object versions with given lock states (`None`: a delete marker); nothing to read.
    struct Locks(BTreeMap<String, Option<LockState>>);

    fn no_such(key: &str, what: &str) -> CloudError {
        CloudError::new(ErrorKind::NotFound, "read", format!("{key}: {what}"))
    }

    impl EvidenceRead for Locks {
        async fn get_range(&self, key: &str, _: u64, _: u64) -> Result<Vec<u8>, CloudError> {
            Err(no_such(key, "not stored in this fake"))
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, CloudError> {
            Ok(None)
        }
        async fn list(&self, _: &str) -> Result<Vec<String>, CloudError> {
            Ok(self.0.keys().cloned().collect())
        }
    }

    impl EvidenceAudit for Locks {
        async fn bucket_lock(&self) -> Result<Called<BucketLock>, CloudError> {
            Err(no_such("bucket", "not in this fake"))
        }
        async fn versions(&self, _: &str) -> Result<Vec<Version>, CloudError> {
            Ok(self
                .0
                .iter()
                .map(|(key, lock)| Version {
                    key: key.clone(),
                    version_id: "v1".into(),
                    delete_marker: lock.is_none(),
                })
                .collect())
        }
        async fn lock(&self, key: &str, _: &str) -> Result<LockState, CloudError> {
            self.0
                .get(key)
                .cloned()
                .flatten()
                .ok_or_else(|| no_such(key, "no such version"))
        }
    }

    fn locked(days: i64, hold: bool) -> LockState {
        LockState {
            mode: Some("COMPLIANCE".into()),
            retain_until: Some(NOW - DAY + days * DAY),
            legal_hold: hold,
            last_modified: Some(NOW - DAY),
        }
    }

    async fn retention_rows(objects: &[(&str, Option<LockState>)], legal_hold: bool) -> Vec<Row> {
        let files = Locks(
            objects
                .iter()
                .map(|(k, l)| (k.to_string(), l.clone()))
                .collect(),
        );
        let mut report = Report {
            case: "C".into(),
            public_key_sha256: String::new(),
            events: 0,
            checkpoints: 0,
            items: 0,
            objects_locked: 0,
            rows: Vec::new(),
            facts: Facts::default(),
        };
        let expected = Expected {
            retention_days: 30,
            legal_hold,
            now: NOW,
        };
        check_locks(&files, &mut report, "", expected)
            .await
            .expect("checked");
        report.rows
    }

    #[tokio::test]
    async fn retention_is_checked_per_version_and_each_weakening_is_named() {
        let good = retention_rows(
            &[
                ("a", Some(locked(30, true))),
                ("b", Some(locked(400, true))),
            ],
            true,
        )
        .await;
        assert_eq!(good.len(), 1);
        assert!(
            good[0].ok && good[0].subject == "2 object versions",
            "{good:?}"
        );

        let governance = LockState {
            mode: Some("GOVERNANCE".into()),
            ..locked(30, false)
        };
        let expired = LockState {
            retain_until: Some(NOW - 1),
            ..locked(30, false)
        };
        let bad = retention_rows(
            &[
                ("ok", Some(locked(30, true))),
                ("shortened", Some(locked(10, true))),
                ("governance", Some(governance)),
                ("expired", Some(expired)),
                ("no-hold", Some(locked(30, false))),
                ("deleted", None),
            ],
            true,
        )
        .await;
        let failed: BTreeMap<&str, &str> = bad
            .iter()
            .filter(|r| !r.ok)
            .map(|r| {
                (
                    r.subject.split(' ').next().unwrap_or_default(),
                    r.detail.as_str(),
                )
            })
            .collect();
        assert_eq!(failed.len(), 5, "{bad:?}");
        assert!(failed["shortened"].contains("shortened"));
        assert!(failed["governance"].contains("GOVERNANCE"));
        assert!(failed["expired"].contains("expired"));
        assert!(failed["no-hold"].contains("legal hold"));
        assert!(failed["deleted"].contains("delete marker"));
        assert!(
            !bad.iter().any(|r| r.ok),
            "no summary pass row when one fails"
        );
    }
}
