//! The report's content, built once from the custody chain and a fresh verification: every
//! format (PDF, CSV, JSON) renders this and nothing else, so they cannot disagree.
//!
//! Facts come only from what the verification read (the stored custody events, checkpoints,
//! bags and Object Lock states), never from a live query of the member account.

use std::collections::BTreeMap;

use forensnap_core::Action;
use forensnap_core::details::{Details, ItemKind, Stage, StoredObject};
use forensnap_core::{Event, Outcome};
use forensnap_verify::{Facts, LockFact, ReadEvent};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The JSON schema of [`CustodyReport`] (documented in `docs/report-schema.md`).
pub const REPORT_SCHEMA: &str = "forensnap.report/v1";

/// Who a principal or operator is, as the config maps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonMapping {
    /// An operator name or an IAM principal ARN, as the custody events name it.
    pub principal: String,
    /// Full name.
    pub name: String,
    /// Role in the investigation.
    pub role: Option<String>,
    /// Contact.
    pub contact: Option<String>,
}

/// The tool that wrote the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tool {
    /// `forensnap`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its build (commit), `unknown` when not recorded.
    pub build: String,
}

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// The fresh verification of the case (its facts included).
    pub verification: &'a forensnap_verify::Report,
    /// `online` (the case in S3, Object Lock checked) or `offline` (a downloaded folder).
    pub mode: VerificationMode,
    /// The matter, from the config.
    pub matter: Option<String>,
    /// The collecting organisation, from the config.
    pub organisation: Option<String>,
    /// Who the principals are, from the config.
    pub personnel: Vec<PersonMapping>,
    /// When the report is made (`SOURCE_DATE_EPOCH` when set).
    pub generated_at: OffsetDateTime,
    /// The tool.
    pub tool: Tool,
    /// The trusted public key, PEM (attached to the PDF).
    pub public_key_pem: String,
    /// The evidence bucket, when known (online).
    pub bucket: Option<String>,
}

/// Where the verification read the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerificationMode {
    /// In S3, with Object Lock checked, by a principal of the forensic account.
    Online,
    /// A downloaded copy of the case, with no AWS access (Object Lock not checked).
    Offline,
}

/// A whole custody report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustodyReport {
    /// Always [`REPORT_SCHEMA`].
    pub schema: String,
    /// `FR-` and 16 hex digits of the SHA-256 of the case, its chain head, the verification
    /// result and the generation time.
    pub report_id: String,
    /// The case.
    pub case: String,
    /// The matter (config).
    pub matter: Option<String>,
    /// The collecting organisation (config).
    pub organisation: Option<String>,
    /// RFC 3339 UTC.
    pub generated_at: String,
    /// The tool that wrote the report.
    pub tool: Tool,
    /// The verification this report states.
    pub verification: Verification,
    /// The last event of the chain the report covers.
    pub chain_head: ChainHead,
    /// Who authorised the collection and why, as the custody events record it.
    pub authorisations: Vec<Authorisation>,
    /// Every principal and operator that acted.
    pub personnel: Vec<Personnel>,
    /// Member-account roles forensnap acted through.
    pub roles_assumed: Vec<RoleAssumed>,
    /// One entry per evidence item.
    pub items: Vec<Item>,
    /// Every custody event, in chain order.
    pub events: Vec<EventRow>,
    /// Every signed checkpoint.
    pub checkpoints: Vec<CheckpointRow>,
    /// Failed steps, retries and resumed runs ("none recorded" when empty).
    pub gaps: Vec<Gap>,
    /// Per CloudTrail events item: the flagged actions of its timeline, as re-read.
    pub cloudtrail: Vec<TrailActivity>,
}

/// The account activity a CloudTrail events item preserved: its window and flagged actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailActivity {
    /// The item.
    pub item: String,
    /// Start of the window, RFC 3339.
    pub start: String,
    /// End of the window, RFC 3339.
    pub end: String,
    /// Rows in its timeline (`data/timeline.csv`).
    pub rows: u64,
    /// The flagged rows, in time order.
    pub flagged: Vec<FlaggedAction>,
}

/// One flagged action (persistence, defence evasion, ...) of a CloudTrail timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlaggedAction {
    /// When, RFC 3339.
    pub time: String,
    /// Who.
    pub principal: String,
    /// `service:EventName`.
    pub action: String,
    /// The flag.
    pub flag: String,
    /// Why.
    pub why: String,
    /// From where.
    pub source_ip: String,
    /// The error AWS answered, if it failed.
    pub error_code: Option<String>,
}

/// The verification's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// `pass` or `fail`.
    pub result: String,
    /// Where the case was read.
    pub mode: VerificationMode,
    /// Checks run.
    pub checks: usize,
    /// Checks failed.
    pub failed: usize,
    /// Custody events read.
    pub events: usize,
    /// Checkpoints read.
    pub checkpoints: usize,
    /// Evidence items checked.
    pub items: usize,
    /// Object versions whose Object Lock was checked.
    pub objects_locked: usize,
    /// Fingerprint of the trusted public key.
    pub public_key_sha256: String,
    /// Every check.
    pub rows: Vec<CheckRow>,
}

impl Verification {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.failed == 0
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRow {
    /// What was checked.
    pub check: String,
    /// On what.
    pub subject: String,
    /// `pass` or `fail`.
    pub result: String,
    /// What was found.
    pub detail: String,
}

/// The chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// Sequence number of the last event.
    pub seq: u64,
    /// SHA-256 of its stored bytes.
    pub sha256: String,
}

/// A recorded authority for the collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorisation {
    /// The event.
    pub seq: u64,
    /// When.
    pub time: String,
    /// `collection.started` or `request.received`.
    pub action: String,
    /// The principal.
    pub principal: String,
    /// The operator.
    pub operator: String,
    /// The stated purpose or reason.
    pub purpose: Option<String>,
    /// Where a queued request came from (`submit`, `guardduty`, `security-hub`).
    pub source: Option<String>,
}

/// A principal or operator that acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Personnel {
    /// The IAM principal ARN the calls were signed with.
    pub principal: String,
    /// The operator name recorded.
    pub operator: String,
    /// The person, when the config maps the operator or principal.
    pub name: Option<String>,
    /// Their role.
    pub role: Option<String>,
    /// Their contact.
    pub contact: Option<String>,
    /// Events recorded under this principal and operator.
    pub events: u64,
    /// First event time.
    pub first: String,
    /// Last event time.
    pub last: String,
}

/// A member role assumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleAssumed {
    /// The role.
    pub role_arn: String,
    /// The STS session name.
    pub session_name: String,
    /// Times assumed.
    pub times: u64,
}

/// One evidence item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The item id.
    pub id: String,
    /// `volume`, `instance-record`, `console-output`.
    pub kind: String,
    /// Where it came from.
    pub source: Source,
    /// First `acquisition.started` (volumes) or the record's event time.
    pub acquisition_started: Option<String>,
    /// `acquisition.completed` (volumes) or the record's event time.
    pub acquisition_completed: Option<String>,
    /// `evidence.sealed`.
    pub sealed_at: Option<String>,
    /// The image's SHA-256 as acquired (volumes) or the stored object's (records).
    pub sha256_acquired: Option<String>,
    /// The same as this verification computed it.
    pub sha256_verified: Option<String>,
    /// Whether both are present and equal.
    pub sha256_match: bool,
    /// The host's own SHA-256 of a memory image it streamed (memory: equal to
    /// `sha256_acquired`, forensnap's hash of S3's copy, or the capture was not sealed).
    pub host_sha256: Option<String>,
    /// SHA-256 of the data object as stored (volumes).
    pub data_sha256: Option<String>,
    /// SHA-256 of the block map (volumes).
    pub block_map_sha256: Option<String>,
    /// Blocks stored (volumes).
    pub blocks_stored: Option<u64>,
    /// Blocks whose AWS SHA-256 matched ours (volumes).
    pub aws_checksums_matched: Option<u64>,
    /// Bytes (volume size, or object size).
    pub size_bytes: Option<u64>,
    /// Where it is stored.
    pub storage: Storage,
    /// SHA-256 of its tag manifest, as re-read.
    pub tagmanifest_sha256: Option<String>,
    /// Whether the tag manifest's signature verified.
    pub signature_verified: bool,
    /// Whether the payload matched the manifest (and the block map).
    pub payload_verified: bool,
    /// Payload files and their SHA-256, as sealed.
    pub payload: Vec<PayloadFile>,
    /// Custody events about the item.
    pub events: Vec<u64>,
}

/// Where an item came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Member account.
    pub account: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Instance.
    pub instance: Option<String>,
    /// Volume.
    pub volume_id: Option<String>,
    /// Device name.
    pub device: Option<String>,
    /// Volume size, GiB.
    pub size_gib: Option<u64>,
    /// The member-account snapshot.
    pub member_snapshot_id: Option<String>,
    /// The forensic-account snapshot read.
    pub snapshot_id: Option<String>,
    /// The forensic snapshot's KMS key.
    pub kms_key_id: Option<String>,
}

/// Where an item's data object is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Storage {
    /// Bucket.
    pub bucket: Option<String>,
    /// Key.
    pub key: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
    /// Object Lock mode (online).
    pub object_lock_mode: Option<String>,
    /// Retain-until, RFC 3339 (online).
    pub retain_until: Option<String>,
    /// Legal hold (online).
    pub legal_hold: Option<bool>,
}

/// A payload file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayloadFile {
    /// Path in the bag.
    pub path: String,
    /// SHA-256.
    pub sha256: String,
}

/// One custody event, as a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Sequence number.
    pub seq: u64,
    /// UTC time.
    pub time: String,
    /// Action.
    pub action: String,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The evidence item it is about, if one.
    pub item: Option<String>,
    /// Principal.
    pub principal: String,
    /// Operator.
    pub operator: String,
    /// The operator's name from the config.
    pub custodian: Option<String>,
    /// Account acted on.
    pub account: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// What the step started from.
    pub from: Vec<String>,
    /// What it produced or changed.
    pub to: Vec<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// SHA-256 of the event's stored bytes.
    pub sha256: String,
    /// The previous event's.
    pub prev_sha256: String,
}

/// One signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointRow {
    /// Number.
    pub number: u64,
    /// Time.
    pub time: String,
    /// Last event sealed.
    pub chain_seq: u64,
    /// Signing key.
    pub signing_key_arn: String,
    /// Algorithm.
    pub algorithm: String,
    /// Key fingerprint it records.
    pub public_key_sha256: String,
    /// SHA-256 of the checkpoint.
    pub sha256: String,
    /// Whether its signature verified.
    pub signature_verified: bool,
}

/// A gap, error or retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The event.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Its action.
    pub action: String,
    /// What happened.
    pub what: String,
}

/// The algorithm forensnap signs checkpoints and tag manifests with.
pub const SIGNING_ALGORITHM: &str = "ECDSA_SHA_256 (KMS, NIST P-256)";

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn person_for<'m>(
    personnel: &'m [PersonMapping],
    operator: &str,
    principal: &str,
) -> Option<&'m PersonMapping> {
    let role = role_of(principal);
    personnel
        .iter()
        .find(|p| p.principal == operator)
        .or_else(|| personnel.iter().find(|p| p.principal == principal))
        .or_else(|| {
            role.as_deref()
                .and_then(|r| personnel.iter().find(|p| p.principal == r))
        })
}

/// `arn:aws:sts::A:assumed-role/R/S` is role `arn:aws:iam::A:role/R`.
fn role_of(principal: &str) -> Option<String> {
    let rest = principal.strip_prefix("arn:aws:sts::")?;
    let (account, rest) = rest.split_once(':')?;
    let role = rest.strip_prefix("assumed-role/")?.split('/').next()?;
    Some(format!("arn:aws:iam::{account}:role/{role}"))
}

/// The item an event is about, if one.
fn item_of(event: &Event, details: &Details, volumes: &BTreeMap<String, String>) -> Option<String> {
    let by_volume = |v: &str| volumes.get(v).cloned();
    let instance = || event.subject().map(|s| s.instance);
    match details {
        Details::InstanceRecorded(_) => {
            instance().map(|i| forensnap_core::custody::instance_record_item(&i))
        }
        Details::ConsoleRecorded(_) => {
            instance().map(|i| forensnap_core::custody::console_output_item(&i))
        }
        Details::AcquisitionStarted(d) => Some(d.item.clone()),
        Details::AcquisitionCompleted(d) => Some(d.item.clone()),
        Details::EvidenceSealed(d) => Some(d.item.clone()),
        Details::EvidenceExported(d) => Some(d.item.clone()),
        Details::SnapshotCompleted(d) => by_volume(&d.volume_id),
        Details::CopyRequested(d) => by_volume(&d.volume_id),
        Details::SnapshotCopied(d) => by_volume(&d.volume_id),
        _ => None,
    }
}

impl CustodyReport {
    /// Build the report from a verification and the config's facts.
    pub fn build(input: &ReportInput<'_>) -> CustodyReport {
        let verification = input.verification;
        let facts = &verification.facts;
        let failed = verification.rows.iter().filter(|r| !r.ok).count();
        let generated_at = rfc3339(input.generated_at);
        let head = facts
            .events
            .last()
            .map(|e| ChainHead {
                seq: e.event.seq,
                sha256: e.sha256.clone(),
            })
            .unwrap_or(ChainHead {
                seq: 0,
                sha256: String::new(),
            });
        let result = if failed == 0 { "pass" } else { "fail" };
        let report_id = {
            let digest = forensnap_core::sha256_hex(
                format!(
                    "{}\n{}\n{}\n{result}\n{generated_at}",
                    verification.case, head.seq, head.sha256
                )
                .as_bytes(),
            );
            format!("FR-{}", &digest[..16].to_uppercase())
        };
        let volumes = volume_items(facts);
        let events = event_rows(facts, &input.personnel, &volumes);
        CustodyReport {
            schema: REPORT_SCHEMA.to_string(),
            report_id,
            case: verification.case.clone(),
            matter: input.matter.clone(),
            organisation: input.organisation.clone(),
            generated_at,
            tool: input.tool.clone(),
            verification: Verification {
                result: result.to_string(),
                mode: input.mode,
                checks: verification.rows.len(),
                failed,
                events: verification.events,
                checkpoints: verification.checkpoints,
                items: verification.items,
                objects_locked: verification.objects_locked,
                public_key_sha256: verification.public_key_sha256.clone(),
                rows: verification
                    .rows
                    .iter()
                    .map(|r| CheckRow {
                        check: r.check.clone(),
                        subject: r.subject.clone(),
                        result: if r.ok { "pass" } else { "fail" }.to_string(),
                        detail: r.detail.clone(),
                    })
                    .collect(),
            },
            chain_head: head,
            authorisations: authorisations(facts),
            personnel: personnel(facts, &input.personnel),
            roles_assumed: roles_assumed(facts),
            items: items(facts, input.bucket.as_deref(), &events),
            checkpoints: facts
                .checkpoints
                .iter()
                .map(|c| CheckpointRow {
                    number: c.number,
                    time: c.time.clone(),
                    chain_seq: c.chain_seq,
                    signing_key_arn: c.signing_key_arn.clone(),
                    algorithm: SIGNING_ALGORITHM.to_string(),
                    public_key_sha256: c.public_key_sha256.clone(),
                    sha256: c.sha256.clone(),
                    signature_verified: c.signature_verified,
                })
                .collect(),
            gaps: gaps(facts),
            cloudtrail: facts
                .timelines
                .iter()
                .map(|(item, t)| TrailActivity {
                    item: item.clone(),
                    start: t.start.clone(),
                    end: t.end.clone(),
                    rows: t.rows,
                    flagged: t
                        .flagged
                        .iter()
                        .map(|f| FlaggedAction {
                            time: f.time.clone(),
                            principal: f.principal.clone(),
                            action: f.action.clone(),
                            flag: f.flag.clone(),
                            why: f.why.clone(),
                            source_ip: f.source_ip.clone(),
                            error_code: f.error_code.clone(),
                        })
                        .collect(),
                })
                .collect(),
            events,
        }
    }
}

/// Volume id to item id, from `acquisition.started`.
fn volume_items(facts: &Facts) -> BTreeMap<String, String> {
    facts
        .events
        .iter()
        .filter_map(|e| match e.event.details() {
            Ok(Some(Details::AcquisitionStarted(d))) => Some((d.volume_id, d.item)),
            _ => None,
        })
        .collect()
}

fn event_rows(
    facts: &Facts,
    people: &[PersonMapping],
    volumes: &BTreeMap<String, String>,
) -> Vec<EventRow> {
    facts
        .events
        .iter()
        .map(|ReadEvent { event, sha256, .. }| {
            let details = event.details().ok().flatten();
            EventRow {
                seq: event.seq,
                time: event.time.clone(),
                action: event.action.clone(),
                outcome: match event.outcome {
                    Outcome::Ok => "ok",
                    Outcome::Failed => "failed",
                }
                .to_string(),
                item: details.as_ref().and_then(|d| item_of(event, d, volumes)),
                principal: event.actor.arn.clone(),
                operator: event.actor.operator.clone(),
                custodian: person_for(people, &event.actor.operator, &event.actor.arn)
                    .map(|p| p.name.clone()),
                account: event.account.clone(),
                region: event.region.clone(),
                from: event.before.clone(),
                to: event.after.clone(),
                purpose: event.purpose.clone(),
                error: event.error.clone(),
                sha256: sha256.clone(),
                prev_sha256: event.prev_sha256.clone(),
            }
        })
        .collect()
}

fn authorisations(facts: &Facts) -> Vec<Authorisation> {
    facts
        .events
        .iter()
        .filter_map(|ReadEvent { event, .. }| {
            let source = match event.details() {
                Ok(Some(Details::RequestReceived(r))) => Some(r.source),
                Ok(Some(Details::CollectionStarted(_))) => None,
                _ => return None,
            };
            Some(Authorisation {
                seq: event.seq,
                time: event.time.clone(),
                action: event.action.clone(),
                principal: event.actor.arn.clone(),
                operator: event.actor.operator.clone(),
                purpose: event.purpose.clone(),
                source,
            })
        })
        .collect()
}

fn personnel(facts: &Facts, people: &[PersonMapping]) -> Vec<Personnel> {
    let mut seen: BTreeMap<(String, String), Personnel> = BTreeMap::new();
    for ReadEvent { event, .. } in &facts.events {
        let key = (event.actor.arn.clone(), event.actor.operator.clone());
        let entry = seen.entry(key).or_insert_with(|| {
            let person = person_for(people, &event.actor.operator, &event.actor.arn);
            Personnel {
                principal: event.actor.arn.clone(),
                operator: event.actor.operator.clone(),
                name: person.map(|p| p.name.clone()),
                role: person.and_then(|p| p.role.clone()),
                contact: person.and_then(|p| p.contact.clone()),
                events: 0,
                first: event.time.clone(),
                last: event.time.clone(),
            }
        });
        entry.events += 1;
        entry.last = event.time.clone();
    }
    seen.into_values().collect()
}

fn roles_assumed(facts: &Facts) -> Vec<RoleAssumed> {
    let mut roles: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in &facts.events {
        if let Ok(Some(Details::RoleAssumed(r))) = e.event.details() {
            *roles.entry((r.role_arn, r.session_name)).or_default() += 1;
        }
    }
    roles
        .into_iter()
        .map(|((role_arn, session_name), times)| RoleAssumed {
            role_arn,
            session_name,
            times,
        })
        .collect()
}

fn storage_of(
    bucket: Option<&str>,
    key: &str,
    version_id: Option<&str>,
    locks: &[LockFact],
) -> Storage {
    let lock = locks
        .iter()
        .find(|l| l.key == key && Some(l.version_id.as_str()) == version_id);
    Storage {
        bucket: bucket.map(str::to_string),
        key: Some(key.to_string()),
        version_id: version_id.map(str::to_string),
        object_lock_mode: lock.and_then(|l| l.mode.clone()),
        retain_until: lock
            .and_then(|l| l.retain_until)
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .map(rfc3339),
        legal_hold: lock.map(|l| l.legal_hold),
    }
}

fn items(facts: &Facts, bucket: Option<&str>, events: &[EventRow]) -> Vec<Item> {
    let mut items: BTreeMap<String, Item> = BTreeMap::new();
    // The bucket as the chain records it, when the caller does not know it (offline).
    let bucket = bucket.map(str::to_string).or_else(|| {
        facts.events.iter().find_map(|e| match e.event.details() {
            Ok(Some(Details::BucketChecked(b))) => Some(b.bucket),
            _ => None,
        })
    });
    let bucket = bucket.as_deref();
    let mut instance = Source::default();
    let mut volumes: BTreeMap<String, Source> = BTreeMap::new();
    let record = |items: &mut BTreeMap<String, Item>,
                  id: String,
                  kind: ItemKind,
                  stored: &StoredObject,
                  event: &Event| {
        let item = items.entry(id.clone()).or_default();
        item.id = id;
        item.kind = kind.as_str().to_string();
        item.acquisition_started = Some(event.time.clone());
        item.acquisition_completed = Some(event.time.clone());
        item.sha256_acquired = Some(stored.sha256.clone());
        item.size_bytes = Some(stored.size);
        item.storage = storage_of(
            bucket,
            &stored.key,
            stored.version_id.as_deref(),
            &facts.locks,
        );
    };
    for ReadEvent { event, .. } in &facts.events {
        if event.outcome != Outcome::Ok {
            continue;
        }
        let Ok(Some(details)) = event.details() else {
            continue;
        };
        if let Some(subject) = event.subject() {
            instance.instance = Some(subject.instance);
            instance.account = Some(subject.member_account);
        }
        if event.kind() == Some(Action::RoleAssumed) {
            instance.region = event.region.clone();
        }
        match details {
            Details::InstanceRecorded(d) => {
                instance.availability_zone = d.availability_zone.clone();
                if let (Some(stored), Some(id)) = (&d.stored, event.subject()) {
                    let item_id = forensnap_core::custody::instance_record_item(&id.instance);
                    record(&mut items, item_id, ItemKind::InstanceRecord, stored, event);
                }
            }
            Details::ConsoleRecorded(d) => {
                if let (Some(stored), Some(id)) = (&d.stored, event.subject()) {
                    let item_id = forensnap_core::custody::console_output_item(&id.instance);
                    record(&mut items, item_id, ItemKind::ConsoleOutput, stored, event);
                }
            }
            Details::PreservationCompleted(d) => {
                for v in d.volumes {
                    let source = volumes.entry(v.volume_id.clone()).or_default();
                    source.volume_id = Some(v.volume_id);
                    source.device = Some(v.device);
                    source.member_snapshot_id = Some(v.member_snapshot_id);
                    source.snapshot_id = Some(v.snapshot_id);
                    source.kms_key_id = Some(v.kms_key_id);
                }
            }
            Details::SnapshotCompleted(d) if d.stage == Stage::Forensic => {
                if let Some(done) = d.completed {
                    volumes.entry(d.volume_id).or_default().size_gib = Some(done.volume_size_gib);
                }
            }
            Details::AcquisitionStarted(d) => {
                let item = items.entry(d.item.clone()).or_default();
                item.id = d.item;
                item.kind = ItemKind::Volume.as_str().to_string();
                item.source.volume_id = Some(d.volume_id);
                if item.acquisition_started.is_none() {
                    item.acquisition_started = Some(event.time.clone());
                }
            }
            Details::AcquisitionCompleted(d) => {
                if let Some(data) = d.data {
                    let item = items.entry(d.item.clone()).or_default();
                    item.id = d.item;
                    item.acquisition_completed = Some(event.time.clone());
                    item.sha256_acquired = Some(data.image_sha256);
                    item.data_sha256 = Some(data.data_sha256);
                    item.block_map_sha256 = Some(data.block_map_sha256);
                    item.blocks_stored = Some(data.blocks_stored);
                    item.aws_checksums_matched = data.aws_checksums_matched;
                    item.storage =
                        storage_of(bucket, &data.key, data.version_id.as_deref(), &facts.locks);
                }
            }
            Details::MemoryCaptureRequested(d) => {
                let item = items.entry(d.item.clone()).or_default();
                item.id = d.item;
                item.kind = ItemKind::Memory.as_str().to_string();
                item.acquisition_started = Some(event.time.clone());
            }
            Details::MemoryCaptured(d) => {
                if let Some(stored) = d.stored {
                    let item = items.entry(d.item.clone()).or_default();
                    item.id = d.item;
                    item.acquisition_completed = Some(event.time.clone());
                    item.sha256_acquired = Some(stored.sha256.clone());
                    item.host_sha256 = d.host_sha256;
                    item.size_bytes = Some(stored.size);
                    item.storage = storage_of(
                        bucket,
                        &stored.key,
                        stored.version_id.as_deref(),
                        &facts.locks,
                    );
                }
            }
            Details::EvidenceSealed(d) => {
                let item = items.entry(d.item.clone()).or_default();
                item.id = d.item;
                item.kind = d.kind.as_str().to_string();
                item.sealed_at = Some(event.time.clone());
                item.payload = d
                    .payload_sha256
                    .into_iter()
                    .map(|(path, sha256)| PayloadFile { path, sha256 })
                    .collect();
            }
            _ => {}
        }
    }
    // Items the verification found that no event names (stored outside the record).
    for id in facts.items.keys() {
        items.entry(id.clone()).or_insert_with(|| Item {
            id: id.clone(),
            kind: "unrecorded".to_string(),
            ..Item::default()
        });
    }
    for item in items.values_mut() {
        let mut source = instance.clone();
        if let Some(volume) = item.source.volume_id.as_ref().and_then(|v| volumes.get(v)) {
            source.volume_id = volume.volume_id.clone();
            source.device = volume.device.clone();
            source.size_gib = volume.size_gib;
            source.member_snapshot_id = volume.member_snapshot_id.clone();
            source.snapshot_id = volume.snapshot_id.clone();
            source.kms_key_id = volume.kms_key_id.clone();
        }
        item.source = source;
        if let Some(fact) = facts.items.get(&item.id) {
            item.tagmanifest_sha256 = fact.tagmanifest_sha256.clone();
            item.signature_verified = fact.signature_verified;
            item.payload_verified = fact.payload_verified;
            if let Some(bytes) = fact.volume_bytes {
                item.size_bytes = Some(bytes);
            }
            item.sha256_verified = if item.kind == ItemKind::Volume.as_str() {
                fact.image_sha256.clone()
            } else if let Some(memory) = &fact.memory {
                // The image was streamed and matched the manifest, which lists this hash.
                fact.payload_verified.then(|| memory.image_sha256.clone())
            } else if fact.payload_verified {
                // A record's payload file matched the manifest, which lists its SHA-256.
                item.payload.first().map(|p| p.sha256.clone())
            } else {
                None
            };
        }
        item.sha256_match = item.sha256_acquired.is_some()
            && item.sha256_acquired == item.sha256_verified
            && item.payload_verified;
        item.events = events
            .iter()
            .filter(|e| e.item.as_deref() == Some(item.id.as_str()))
            .map(|e| e.seq)
            .collect();
    }
    items.into_values().collect()
}

fn gaps(facts: &Facts) -> Vec<Gap> {
    let mut gaps = Vec::new();
    for ReadEvent { event, .. } in &facts.events {
        let mut push = |what: String| {
            gaps.push(Gap {
                seq: event.seq,
                time: event.time.clone(),
                action: event.action.clone(),
                what,
            })
        };
        if event.outcome == Outcome::Failed {
            push(format!(
                "failed: {}",
                event.error.as_deref().unwrap_or("no reason recorded")
            ));
            continue;
        }
        match event.details() {
            Ok(Some(Details::CollectionStarted(d))) if d.resumed => push(format!(
                "run {} resumed the case after an earlier run stopped",
                d.run
            )),
            Ok(Some(Details::AcquisitionCompleted(d))) => {
                if let Some(data) = d.data {
                    if data.answers_discarded > 0 {
                        push(format!(
                            "{}: {} block answers discarded and read again (checksum mismatch or cut transfer)",
                            d.item, data.answers_discarded
                        ));
                    }
                    if data.resumed_parts > 0 {
                        push(format!(
                            "{}: {} parts kept from an earlier run (each checked against its checkpoint)",
                            d.item, data.resumed_parts
                        ));
                    }
                }
            }
            Ok(Some(Details::InstanceRecorded(d))) => {
                if let Some(s) = d.stored.filter(|s| s.adopted) {
                    push(adopted(&s));
                }
            }
            Ok(Some(Details::ConsoleRecorded(d))) => {
                if let Some(s) = d.stored.filter(|s| s.adopted) {
                    push(adopted(&s));
                }
            }
            Ok(None) | Err(_) if Action::parse(&event.action).is_none() => {
                push("an action this version does not know".to_string())
            }
            _ => {}
        }
    }
    gaps
}

fn adopted(stored: &StoredObject) -> String {
    let mut text = format!(
        "{} was stored by an earlier run that stopped before recording it; taken as stored",
        stored.key
    );
    if let Some(other) = &stored.unstored_sha256 {
        text.push_str(&format!(
            " (this run's own capture, SHA-256 {other}, differed and was not stored)"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_sessions_map_to_their_role() {
        assert_eq!(
            role_of("arn:aws:sts::111111111111:assumed-role/Responder/alice").as_deref(),
            Some("arn:aws:iam::111111111111:role/Responder")
        );
        assert_eq!(role_of("arn:aws:iam::111111111111:user/bob"), None);
        let people = vec![PersonMapping {
            principal: "arn:aws:iam::111111111111:role/Responder".into(),
            name: "Alice".into(),
            role: None,
            contact: None,
        }];
        assert_eq!(
            person_for(
                &people,
                "someone",
                "arn:aws:sts::111111111111:assumed-role/Responder/x"
            )
            .map(|p| p.name.as_str()),
            Some("Alice")
        );
        assert!(person_for(&people, "someone", "arn:aws:iam::1:user/u").is_none());
    }
}
