//! The report as a PDF/A-3b document: nine sections laid out with [`flow`], the evidence
//! files attached (each with its SHA-256 printed in the body), fonts embedded and subset,
//! metadata and its date taken from the report so the same case and verification give the
//! same bytes.

pub mod flow;

use krilla::Document;
use krilla::SerializeSettings;
use krilla::color::luma;
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Attachment;
use crate::ReportError;
use crate::model::{CustodyReport, EventRow, Item, VerificationMode};
use flow::{Column, Flow, Fonts, MARGIN_X, Op, PAGE_HEIGHT, PAGE_WIDTH, Row, Style, WIDTH};

/// Render `report` with its `attachments` as PDF/A-3b bytes.
pub fn render(report: &CustodyReport, attachments: &[Attachment]) -> Result<Vec<u8>, ReportError> {
    let fonts = Fonts::load().ok_or(ReportError::Fonts)?;
    let mut flow = Flow::new(&fonts);
    cover(&mut flow, report);
    personnel(&mut flow, report);
    method(&mut flow, report);
    inventory(&mut flow, report);
    custody_log(&mut flow, report);
    verification(&mut flow, report);
    gaps(&mut flow, report);
    declaration(&mut flow, report);
    appendices(&mut flow, attachments);
    let pages = flow.pages;
    write_pdf(report, &fonts, pages, attachments)
}

fn pass_fail(ok: bool) -> &'static str {
    if ok { "verified" } else { "NOT VERIFIED" }
}

fn or_none(text: &Option<String>) -> String {
    text.clone().unwrap_or_else(|| "not recorded".to_string())
}

/// `2026-12-01T22:11:57.360Z` as `2026-12-01 22:11:57.360 UTC` (milliseconds only when the
/// time has them: events do, the generation time does not).
fn utc(text: &str) -> String {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|t| {
            if t.nanosecond() == 0 && !text.contains('.') {
                t.format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
                ))
            } else {
                t.format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3] UTC"
                ))
            }
            .ok()
        })
        .unwrap_or_else(|| text.to_string())
}

fn cover(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.space(40.0);
    flow.text(Style::Bold, 22.0, 0, "Chain of Custody and Evidence Report");
    flow.space(6.0);
    flow.text(
        Style::Serif,
        12.0,
        60,
        "Amazon EC2 evidence preserved by forensnap",
    );
    flow.space(18.0);
    flow.pairs(&[
        ("Report", r.report_id.clone(), Style::Mono),
        ("Case", r.case.clone(), Style::Mono),
        ("Matter", or_none(&r.matter), Style::Serif),
        ("Organisation", or_none(&r.organisation), Style::Serif),
        (
            "Generated",
            format!(
                "{} (Coordinated Universal Time, UTC+00:00)",
                utc(&r.generated_at)
            ),
            Style::Serif,
        ),
        (
            "Tool",
            format!("{} {} ({})", r.tool.name, r.tool.version, r.tool.build),
            Style::Serif,
        ),
        (
            "Chain head",
            format!("event {} sha256 {}", r.chain_head.seq, r.chain_head.sha256),
            Style::Mono,
        ),
    ]);
    flow.space(8.0);
    let v = &r.verification;
    let mode = match v.mode {
        VerificationMode::Online => "in the evidence bucket, Object Lock included",
        VerificationMode::Offline => {
            "on a downloaded copy of the case, without AWS access (Object Lock not checked)"
        }
    };
    if v.passed() {
        flow.banner(
            &format!(
                "VERIFICATION PASSED: all {} checks hold. Verified {mode} when this report was generated.",
                v.checks
            ),
            215,
        );
    } else {
        flow.banner(
            &format!(
                "VERIFICATION FAILED: {} of {} checks failed. The evidence does not match its record; see the failures below and section 6.",
                v.failed, v.checks
            ),
            40,
        );
        let rows: Vec<Row> = v
            .rows
            .iter()
            .filter(|row| row.result != "pass")
            .map(|row| Row {
                cells: vec![row.check.clone(), row.subject.clone(), row.detail.clone()],
                under: Vec::new(),
            })
            .collect();
        flow.table(
            &[
                col("Check", 0.15, Style::Serif),
                col("Subject", 0.30, Style::Serif),
                col("What failed", 0.55, Style::Serif),
            ],
            &rows,
        );
    }
    flow.subheading("1. Authorisation");
    if r.authorisations.is_empty() {
        flow.para("No collection start or request is recorded in the custody events.");
    } else {
        let rows: Vec<Row> = r
            .authorisations
            .iter()
            .map(|a| Row {
                cells: vec![
                    a.seq.to_string(),
                    utc(&a.time),
                    match &a.source {
                        Some(source) => format!("{} ({source})", a.action),
                        None => a.action.clone(),
                    },
                    a.operator.clone(),
                    a.purpose.clone().unwrap_or_else(|| "none stated".into()),
                ],
                under: vec![format!("principal {}", a.principal)],
            })
            .collect();
        flow.table(
            &[
                col("Event", 0.08, Style::Serif),
                col("Time (UTC)", 0.2, Style::Serif),
                col("Action", 0.22, Style::Serif),
                col("Operator", 0.15, Style::Serif),
                col("Purpose / authority", 0.35, Style::Serif),
            ],
            &rows,
        );
    }
    flow.subheading("Summary");
    flow.para("Contents: 1 authorisation; 2 personnel; 3 scope and method; 4 evidence inventory; 5 custody log; 6 integrity verification; 7 gaps, errors and retries; 8 draft declaration; 9 appendices (attached files).");
    flow.para(&format!(
        "{} evidence items, {} custody events, {} signed checkpoints; {} object versions checked under Object Lock. Signatures were checked with the public key whose SHA-256 fingerprint is {}.",
        r.items.len(),
        r.events.len(),
        r.checkpoints.len(),
        v.objects_locked,
        v.public_key_sha256
    ));
}

fn col(title: &str, share: f32, style: Style) -> Column<'_> {
    Column {
        title,
        share,
        style,
    }
}

fn personnel(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.page_break();
    flow.heading("2. Personnel");
    flow.para("Every principal and operator that acted on the case, as the custody events record them, with the person the configuration maps each to.");
    let rows: Vec<Row> = r
        .personnel
        .iter()
        .map(|p| Row {
            cells: vec![
                p.name.clone().unwrap_or_else(|| "not mapped".into()),
                p.role.clone().unwrap_or_default(),
                p.contact.clone().unwrap_or_default(),
                p.operator.clone(),
                p.events.to_string(),
                format!("{} to {}", utc(&p.first), utc(&p.last)),
            ],
            under: vec![format!("principal {}", p.principal)],
        })
        .collect();
    flow.table(
        &[
            col("Name", 0.17, Style::Serif),
            col("Role", 0.16, Style::Serif),
            col("Contact", 0.2, Style::Serif),
            col("Operator", 0.13, Style::Serif),
            col("Events", 0.07, Style::Serif),
            col("Active", 0.27, Style::Serif),
        ],
        &rows,
    );
    flow.subheading("Member-account roles acted through");
    if r.roles_assumed.is_empty() {
        flow.para("None recorded.");
    } else {
        let rows: Vec<Row> = r
            .roles_assumed
            .iter()
            .map(|a| Row {
                cells: vec![a.session_name.clone(), a.times.to_string()],
                under: vec![format!("role {}", a.role_arn)],
            })
            .collect();
        flow.table(
            &[
                col("STS session (named for the case)", 0.8, Style::Serif),
                col("Times", 0.2, Style::Serif),
            ],
            &rows,
        );
    }
}

fn method(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.heading("3. Scope and method");
    flow.para(&format!(
        "Scope: the Amazon EC2 instance(s) and EBS volumes named in section 4, collected for case {} by {} {} from the member account into the forensic account. Findings and interpretation are outside this report: it records what was preserved, how, by whom, and whether it still verifies.",
        r.case, r.tool.name, r.tool.version
    ));
    for step in [
        "1. The member account is entered through AWS STS AssumeRole with an ExternalId, in a session named for the case; every call is recorded in the custody events with its AWS request ids.",
        "2. The instance is recorded (EC2 DescribeInstances, console output) and every attached EBS volume is snapshotted at once (EC2 CreateSnapshots, crash-consistent), without stopping or changing the instance.",
        "3. Snapshots are copied and re-encrypted under the forensic account's KMS key, shared to the forensic account only as long as the copy takes, and copied there; the share and any intermediate copy are removed and recorded.",
        "4. Every block of each forensic snapshot is read through the EBS direct APIs; AWS's SHA-256 of each block is checked against the bytes read, the bytes are hashed with SHA-256 (block map and whole-image hash), and stored in an Amazon S3 bucket under Object Lock in COMPLIANCE mode, which no one, the account root included, can shorten or delete.",
        "5. Each evidence item is a BagIt 1.0 bag (RFC 8493) with SHA-256 manifests; its tag manifest is signed with the forensic KMS signing key (ECDSA P-256, SHA-256).",
        "6. Every step is a custody event linked to the previous one by SHA-256 (a hash chain); signed checkpoints seal the chain head and every item's tag manifest, and are stored under Object Lock too.",
    ] {
        flow.para(step);
    }
    flow.subheading("Tools and algorithms");
    flow.pairs(&[
        (
            "Collector",
            format!("{} {} ({})", r.tool.name, r.tool.version, r.tool.build),
            Style::Serif,
        ),
        (
            "Hash",
            "SHA-256 (FIPS 180-4) for blocks, images, files, events and checkpoints".into(),
            Style::Serif,
        ),
        (
            "Signature",
            crate::model::SIGNING_ALGORITHM.to_string(),
            Style::Serif,
        ),
        (
            "AWS services",
            "STS, EC2, EBS direct APIs, KMS, S3 (Object Lock COMPLIANCE)".into(),
            Style::Serif,
        ),
        ("Packaging", "BagIt 1.0 (RFC 8493)".into(), Style::Serif),
    ]);
    flow.subheading("Limitations");
    for limitation in [
        "Snapshots are crash-consistent: they hold what the volumes held at one instant, as after a power loss; data only in the instance's memory or caches is not in them.",
        "Memory is not captured unless a memory item appears in section 4.",
        "Snapshots are re-encrypted under the forensic key to be shared and read; the data blocks are unchanged, as the per-block SHA-256 AWS computes and the image hash show.",
        "Unwritten blocks of a volume are not stored; they read as zeros and are hashed as zeros in the image SHA-256.",
        "Times are those of the collecting machine's clock, in UTC, as recorded in each event.",
    ] {
        flow.para(&format!("- {limitation}"));
    }
}

fn inventory(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.page_break();
    flow.heading("4. Evidence inventory");
    if r.items.is_empty() {
        flow.para("No evidence item is recorded.");
    }
    for item in &r.items {
        flow.subheading(&format!("Item {} ({})", item.id, item.kind));
        flow.pairs(&item_pairs(item));
    }
    for activity in &r.cloudtrail {
        flow.subheading(&format!("Account activity preserved in {}", activity.item));
        flow.para(&format!(
            "CloudTrail events from {} to {}: {} in the timeline (data/timeline.csv of the item), {} flagged as investigators look for them (persistence, defence evasion, privilege escalation, credential access). The flags point at actions; they are not findings.",
            utc(&activity.start),
            utc(&activity.end),
            activity.rows,
            activity.flagged.len()
        ));
        if activity.flagged.is_empty() {
            continue;
        }
        let rows: Vec<Row> = activity
            .flagged
            .iter()
            .map(|f| Row {
                cells: vec![
                    utc(&f.time),
                    f.action.clone(),
                    match &f.error_code {
                        Some(code) => format!("{} ({}; failed: {code})", f.flag, f.why),
                        None => format!("{} ({})", f.flag, f.why),
                    },
                    format!("{} from {}", f.principal, f.source_ip),
                ],
                under: Vec::new(),
            })
            .collect();
        flow.table(
            &[
                col("Time (UTC)", 0.18, Style::Serif),
                col("Action", 0.24, Style::Serif),
                col("Flag", 0.26, Style::Serif),
                col("Principal and source", 0.32, Style::Serif),
            ],
            &rows,
        );
    }
}

fn opt_text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

fn item_pairs(item: &Item) -> Vec<(&'static str, String, Style)> {
    let s = &item.source;
    let mut pairs = vec![(
        "Source",
        format!(
            "account {}, region {}, zone {}, instance {}",
            opt_text(&s.account),
            opt_text(&s.region),
            opt_text(&s.availability_zone),
            opt_text(&s.instance)
        ),
        Style::Serif,
    )];
    if s.volume_id.is_some() {
        pairs.push((
            "Volume",
            format!(
                "{} on {}, {} GiB",
                opt_text(&s.volume_id),
                opt_text(&s.device),
                s.size_gib.map_or("-".into(), |g| g.to_string())
            ),
            Style::Serif,
        ));
        pairs.push((
            "Snapshots",
            format!(
                "member {} ; forensic {}",
                opt_text(&s.member_snapshot_id),
                opt_text(&s.snapshot_id)
            ),
            Style::Serif,
        ));
        pairs.push(("Forensic key", opt_text(&s.kms_key_id), Style::Serif));
    }
    pairs.extend([
        (
            "Acquired",
            format!(
                "{} to {}; sealed {}",
                item.acquisition_started.as_deref().map_or("-".into(), utc),
                item.acquisition_completed
                    .as_deref()
                    .map_or("-".into(), utc),
                item.sealed_at.as_deref().map_or("-".into(), utc)
            ),
            Style::Serif,
        ),
        (
            "SHA-256 as acquired",
            opt_text(&item.sha256_acquired),
            Style::Mono,
        ),
        (
            "SHA-256 re-verified",
            opt_text(&item.sha256_verified),
            Style::Mono,
        ),
        (
            "Hashes match",
            if item.sha256_match {
                "yes: the re-verified hash equals the acquired one".into()
            } else {
                "NO: see section 6".into()
            },
            Style::Serif,
        ),
    ]);
    if let Some(host) = &item.host_sha256 {
        pairs.push((
            "SHA-256 on the host",
            format!(
                "{host} ({}; the host reported it, forensnap hashed what arrived in S3)",
                if Some(host) == item.sha256_acquired.as_ref() {
                    "equal to the acquired hash"
                } else {
                    "DIFFERENT from the acquired hash"
                }
            ),
            Style::Mono,
        ));
    }
    if item.block_map_sha256.is_some() {
        pairs.push((
            "Block map SHA-256",
            opt_text(&item.block_map_sha256),
            Style::Mono,
        ));
        pairs.push((
            "Blocks",
            format!(
                "{} stored; AWS block checksums matched: {}",
                item.blocks_stored.map_or("-".into(), |b| b.to_string()),
                item.aws_checksums_matched
                    .map_or("not counted".into(), |b| b.to_string())
            ),
            Style::Serif,
        ));
    }
    if let Some(bytes) = item.size_bytes {
        pairs.push(("Size", format!("{bytes} bytes"), Style::Serif));
    }
    let st = &item.storage;
    pairs.extend([
        (
            "Stored",
            format!(
                "s3://{}/{}",
                st.bucket.as_deref().unwrap_or("-"),
                st.key.as_deref().unwrap_or("-")
            ),
            Style::Mono,
        ),
        ("Version id", opt_text(&st.version_id), Style::Mono),
        (
            "Object Lock",
            match &st.object_lock_mode {
                Some(mode) => format!(
                    "{mode} until {}; legal hold {}",
                    st.retain_until.as_deref().map_or("-".into(), utc),
                    if st.legal_hold == Some(true) {
                        "on"
                    } else {
                        "off"
                    }
                ),
                None => "not checked (offline verification)".into(),
            },
            Style::Serif,
        ),
        (
            "Tag manifest SHA-256",
            opt_text(&item.tagmanifest_sha256),
            Style::Mono,
        ),
        (
            "Signature",
            format!(
                "{}; payload {}",
                pass_fail(item.signature_verified),
                pass_fail(item.payload_verified)
            ),
            Style::Serif,
        ),
    ]);
    for file in &item.payload {
        pairs.push((
            "Payload file",
            format!("{}  {}", file.sha256, file.path),
            Style::Mono,
        ));
    }
    pairs
}

fn event_rows(events: &[&EventRow]) -> Vec<Row> {
    events
        .iter()
        .map(|e| {
            let mut what = format!("{} {}", e.action, e.outcome);
            if !e.from.is_empty() {
                what.push_str(&format!("\nfrom {}", e.from.join(", ")));
            }
            if !e.to.is_empty() {
                what.push_str(&format!("\nto {}", e.to.join(", ")));
            }
            if let Some(error) = &e.error {
                what.push_str(&format!("\nerror: {error}"));
            }
            let actor = match &e.custodian {
                Some(name) => format!("{name} ({})", e.operator),
                None => e.operator.clone(),
            };
            let place = match (&e.account, &e.region) {
                (Some(a), Some(r)) => format!("{a} {r}"),
                (Some(a), None) => a.clone(),
                _ => String::new(),
            };
            Row {
                cells: vec![
                    e.seq.to_string(),
                    utc(&e.time),
                    what,
                    format!("{actor}\n{place}"),
                    e.purpose.clone().unwrap_or_default(),
                ],
                under: vec![
                    format!("sha256 {}", e.sha256),
                    format!("prev   {}", e.prev_sha256),
                ],
            }
        })
        .collect()
}

const LOG_COLUMNS: [Column<'static>; 5] = [
    Column {
        title: "Seq",
        share: 0.05,
        style: Style::Serif,
    },
    Column {
        title: "Time (UTC)",
        share: 0.19,
        style: Style::Serif,
    },
    Column {
        title: "Action, from, to",
        share: 0.41,
        style: Style::Serif,
    },
    Column {
        title: "Actor, where",
        share: 0.2,
        style: Style::Serif,
    },
    Column {
        title: "Purpose",
        share: 0.15,
        style: Style::Serif,
    },
];

fn custody_log(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.page_break();
    flow.heading("5. Custody log");
    flow.para("Each event's SHA-256 is that of its stored bytes; each names the previous event's, so removing, changing or reordering any event breaks every later link.");
    timeline(flow, r);
    for item in &r.items {
        flow.subheading(&format!("Item {}", item.id));
        let events: Vec<&EventRow> = r
            .events
            .iter()
            .filter(|e| item.events.contains(&e.seq))
            .collect();
        if events.is_empty() {
            flow.para("No custody event names this item by itself (it was recorded with the instance's events below).");
        } else {
            flow.table(&LOG_COLUMNS, &event_rows(&events));
        }
    }
    flow.subheading("The whole chain");
    let all: Vec<&EventRow> = r.events.iter().collect();
    flow.table(&LOG_COLUMNS, &event_rows(&all));
}

fn seconds(text: &str) -> Option<f64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

/// A picture of the case over time: every event as a tick on one lane, each item's span from
/// acquisition start to seal on its own lane.
fn timeline(flow: &mut Flow<'_>, r: &CustodyReport) {
    let times: Vec<f64> = r.events.iter().filter_map(|e| seconds(&e.time)).collect();
    let (Some(first), Some(last)) = (
        times.iter().copied().reduce(f64::min),
        times.iter().copied().reduce(f64::max),
    ) else {
        return;
    };
    let span = (last - first).max(1.0);
    let label_width = 150.0;
    let lane = 13.0;
    let lanes = 1 + r.items.len();
    let height = lanes as f32 * lane + 34.0;
    let x_of =
        |t: f64| MARGIN_X + label_width + ((t - first) / span) as f32 * (WIDTH - label_width);
    let fonts = flow.fonts();
    flow.subheading("Timeline");
    flow.picture(height, |top, ops| {
        let mut label = |y: f32, text: &str| {
            let lines = fonts.wrap(Style::Serif, 6.5, label_width - 6.0, text);
            ops.push(Op::Text {
                x: MARGIN_X,
                y,
                style: Style::Serif,
                size: 6.5,
                grey: 0,
                text: lines.into_iter().next().unwrap_or_default(),
            });
        };
        label(top + lane - 3.0, "custody events");
        for (i, item) in r.items.iter().enumerate() {
            label(top + lane * (i as f32 + 2.0) - 3.0, &item.id);
        }
        for t in &times {
            let x = x_of(*t);
            ops.push(Op::Line {
                x1: x,
                y1: top + 2.0,
                x2: x,
                y2: top + lane - 2.0,
                width: 0.5,
                grey: 40,
            });
        }
        for (i, item) in r.items.iter().enumerate() {
            let start = item.acquisition_started.as_deref().and_then(seconds);
            let end = item
                .sealed_at
                .as_deref()
                .or(item.acquisition_completed.as_deref())
                .and_then(seconds);
            if let (Some(start), Some(end)) = (start, end) {
                let x = x_of(start);
                ops.push(Op::Rect {
                    x,
                    y: top + lane * (i as f32 + 1.0) + 3.0,
                    w: (x_of(end) - x).max(1.5),
                    h: lane - 6.0,
                    grey: 110,
                });
            }
        }
        let axis = top + lane * lanes as f32 + 4.0;
        ops.push(Op::Line {
            x1: MARGIN_X + label_width,
            y1: axis,
            x2: MARGIN_X + WIDTH,
            y2: axis,
            width: 0.5,
            grey: 0,
        });
        let first_text = r.events.first().map(|e| utc(&e.time)).unwrap_or_default();
        let last_text = r.events.last().map(|e| utc(&e.time)).unwrap_or_default();
        ops.push(Op::Text {
            x: MARGIN_X + label_width,
            y: axis + 10.0,
            style: Style::Serif,
            size: 6.5,
            grey: 0,
            text: first_text,
        });
        let width = fonts.width(Style::Serif, 6.5, &last_text);
        ops.push(Op::Text {
            x: MARGIN_X + WIDTH - width,
            y: axis + 10.0,
            style: Style::Serif,
            size: 6.5,
            grey: 0,
            text: last_text,
        });
    });
}

fn verification(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.page_break();
    flow.heading("6. Integrity verification");
    let v = &r.verification;
    flow.para(&format!(
        "This run re-read every object of the case and checked it ({}): {} checks, {} failed; {} events, {} checkpoints, {} items, {} object versions under Object Lock.",
        match v.mode {
            VerificationMode::Online => "online, in the evidence bucket",
            VerificationMode::Offline => "offline, on a downloaded copy",
        },
        v.checks,
        v.failed,
        v.events,
        v.checkpoints,
        v.items,
        v.objects_locked
    ));
    let rows: Vec<Row> = v
        .rows
        .iter()
        .map(|row| Row {
            cells: vec![
                row.check.clone(),
                row.subject.clone(),
                row.result.to_uppercase(),
                row.detail.clone(),
            ],
            under: Vec::new(),
        })
        .collect();
    flow.table(
        &[
            col("Check", 0.13, Style::Serif),
            col("Subject", 0.27, Style::Serif),
            col("Result", 0.08, Style::Serif),
            col("Detail", 0.52, Style::Serif),
        ],
        &rows,
    );
    flow.subheading("Signed checkpoints");
    let rows: Vec<Row> = r
        .checkpoints
        .iter()
        .map(|c| Row {
            cells: vec![
                c.number.to_string(),
                utc(&c.time),
                c.chain_seq.to_string(),
                c.algorithm.clone(),
                pass_fail(c.signature_verified).to_string(),
            ],
            under: vec![
                format!("key {}", c.signing_key_arn),
                format!("key sha256 {}", c.public_key_sha256),
                format!("checkpoint sha256 {}", c.sha256),
            ],
        })
        .collect();
    flow.table(
        &[
            col("No.", 0.07, Style::Serif),
            col("Time (UTC)", 0.22, Style::Serif),
            col("Seals event", 0.13, Style::Serif),
            col("Algorithm", 0.38, Style::Serif),
            col("Signature", 0.2, Style::Serif),
        ],
        &rows,
    );
    flow.subheading("Commands an outside party can rerun");
    flow.para("Download the case (read-only access to the evidence bucket suffices) and check it with forensnap or with standard tools alone:");
    for command in [
        format!("aws s3 sync s3://BUCKET/cases/{}/ case/", r.case),
        format!(
            "forensnap verify --offline case --case {} --public-key signing-key.pem",
            r.case
        ),
        "aws kms get-public-key --key-id KEY --query PublicKey --output text | base64 -d | sha256sum"
            .to_string(),
        "cd case/evidence/ITEM && bagit.py --validate . && sha256sum -c manifest-sha256.txt".to_string(),
        "openssl dgst -sha256 -verify signing-key.pem -signature tagmanifest-sha256.txt.sig tagmanifest-sha256.txt".to_string(),
    ] {
        flow.text(Style::Mono, flow::MONO, 0, &command);
        flow.space(3.0);
    }
}

fn gaps(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.heading("7. Gaps, errors and retries");
    if r.gaps.is_empty() {
        flow.para("None recorded.");
        return;
    }
    let rows: Vec<Row> = r
        .gaps
        .iter()
        .map(|g| Row {
            cells: vec![
                g.seq.to_string(),
                utc(&g.time),
                g.action.clone(),
                g.what.clone(),
            ],
            under: Vec::new(),
        })
        .collect();
    flow.table(
        &[
            col("Event", 0.08, Style::Serif),
            col("Time (UTC)", 0.2, Style::Serif),
            col("Action", 0.2, Style::Serif),
            col("What happened", 0.52, Style::Serif),
        ],
        &rows,
    );
}

fn declaration(flow: &mut Flow<'_>, r: &CustodyReport) {
    flow.page_break();
    flow.heading("8. Draft declaration (FRE 902(14) and 902(11); 28 U.S.C. section 1746)");
    flow.para("DRAFT for review by counsel. forensnap never signs this declaration: a qualified person who knows the process completes, reviews and signs it.");
    flow.para(&format!(
        "I, ______________________, declare: I am employed by {} as ______________________ and am qualified by my training and experience to describe the process by which the electronic data identified below was collected. The data was copied from Amazon Web Services account(s) for case {}{} by the process described in section 3 of this report, which produces an accurate copy: each block read was checked against the SHA-256 digest Amazon Web Services computed for it, and each item was identified by its SHA-256 hash value when acquired. On {} the hash value of each item was computed again from the stored copy and {} the value recorded at acquisition, as listed below.",
        r.organisation.as_deref().unwrap_or("______________________"),
        r.case,
        r.matter
            .as_deref()
            .map(|m| format!(" (matter: {m})"))
            .unwrap_or_default(),
        utc(&r.generated_at),
        if r.verification.passed() {
            "matched"
        } else {
            "did NOT in every case match"
        }
    ));
    let rows: Vec<Row> = r
        .items
        .iter()
        .map(|i| Row {
            cells: vec![
                i.id.clone(),
                i.kind.clone(),
                if i.sha256_match { "yes" } else { "NO" }.into(),
            ],
            under: vec![format!("sha256 {}", opt_text(&i.sha256_acquired))],
        })
        .collect();
    flow.table(
        &[
            col("Item", 0.5, Style::Serif),
            col("Kind", 0.3, Style::Serif),
            col("Matched", 0.2, Style::Serif),
        ],
        &rows,
    );
    flow.para("I declare under penalty of perjury under the laws of the United States of America that the foregoing is true and correct.");
    flow.space(24.0);
    for line in [
        "Executed on (date): ______________________   at (place): ______________________",
        "Signature: ____________________________________",
        "Name and title: ____________________________________",
    ] {
        flow.para(line);
        flow.space(14.0);
    }
}

fn appendices(flow: &mut Flow<'_>, attachments: &[Attachment]) {
    flow.heading("9. Appendices: attached files");
    flow.para("These files are embedded in this PDF/A-3 document (extract them with `pdfdetach -saveall report.pdf`, or from any PDF reader's attachments panel); each extracts byte for byte with the SHA-256 given here.");
    let rows: Vec<Row> = attachments
        .iter()
        .map(|a| Row {
            cells: vec![
                a.name.clone(),
                a.description.clone(),
                a.bytes.len().to_string(),
            ],
            under: vec![format!("sha256 {}", a.sha256())],
        })
        .collect();
    flow.table(
        &[
            col("File", 0.3, Style::Serif),
            col("What it holds", 0.55, Style::Serif),
            col("Bytes", 0.15, Style::Serif),
        ],
        &rows,
    );
}

fn pdf_date(text: &str) -> DateTime {
    let t = OffsetDateTime::parse(text, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let year = u16::try_from(t.year()).unwrap_or(1970);
    DateTime::new(year)
        .month(u8::from(t.month()))
        .day(t.day())
        .hour(t.hour())
        .minute(t.minute())
        .second(t.second())
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

fn write_pdf(
    report: &CustodyReport,
    fonts: &Fonts,
    mut pages: Vec<Vec<Op>>,
    attachments: &[Attachment],
) -> Result<Vec<u8>, ReportError> {
    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A3_B)
        .finish()
        .map_err(|e| ReportError::Pdf(format!("{e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        ..SerializeSettings::default()
    };
    let mut document = Document::new_with(settings);
    let date = pdf_date(&report.generated_at);
    document.set_metadata(
        Metadata::new()
            .title(format!("Chain of custody report, case {}", report.case))
            .creator(format!("{} {}", report.tool.name, report.tool.version))
            .language("en".into())
            .creation_date(date)
            .document_id(report.report_id.clone()),
    );
    for attachment in attachments {
        let embedded = EmbeddedFile {
            path: attachment.name.clone(),
            mime_type: MimeType::new(attachment.mime),
            description: Some(attachment.description.clone()),
            association_kind: AssociationKind::Supplement,
            data: attachment.bytes.clone().into(),
            modification_date: Some(date),
            compress: Some(true),
            location: None,
        };
        document.embed_file(embedded).ok_or_else(|| {
            ReportError::Pdf(format!("two attachments named {}", attachment.name))
        })?;
    }
    let font = |style: Style| {
        Font::new(fonts.data(style).into(), 0)
            .ok_or_else(|| ReportError::Pdf("a bundled font did not load".into()))
    };
    let faces = [
        (Style::Serif, font(Style::Serif)?),
        (Style::Bold, font(Style::Bold)?),
        (Style::Mono, font(Style::Mono)?),
    ];
    let total = pages.len();
    for (n, ops) in pages.iter_mut().enumerate() {
        let footer = format!(
            "Case {} - report {} - generated {} - page {} of {}",
            report.case,
            report.report_id,
            utc(&report.generated_at),
            n + 1,
            total
        );
        ops.push(Op::Line {
            x1: MARGIN_X,
            y1: PAGE_HEIGHT - 45.0,
            x2: MARGIN_X + WIDTH,
            y2: PAGE_HEIGHT - 45.0,
            width: 0.4,
            grey: 150,
        });
        ops.push(Op::Text {
            x: MARGIN_X,
            y: PAGE_HEIGHT - 34.0,
            style: Style::Serif,
            size: 7.0,
            grey: 80,
            text: footer,
        });
        ops.push(Op::Text {
            x: MARGIN_X,
            y: 40.0,
            style: Style::Serif,
            size: 7.0,
            grey: 80,
            text: "forensnap chain of custody report".into(),
        });
    }
    for ops in &pages {
        let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
            .ok_or_else(|| ReportError::Pdf("page size".into()))?;
        let mut page = document.start_page_with(settings);
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    style,
                    size,
                    grey,
                    text,
                } => {
                    let face = faces
                        .iter()
                        .find(|(s, _)| s == style)
                        .map(|(_, f)| f.clone())
                        .ok_or_else(|| ReportError::Pdf("font".into()))?;
                    let text = fonts.printable(*style, text);
                    surface.set_stroke(None);
                    surface.set_fill(Some(fill(*grey)));
                    surface.draw_text(
                        Point::from_xy(*x, *y),
                        face,
                        *size,
                        &text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Rect { x, y, w, h, grey } => {
                    let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) else {
                        continue;
                    };
                    let mut path = PathBuilder::new();
                    path.push_rect(rect);
                    if let Some(path) = path.finish() {
                        surface.set_stroke(None);
                        surface.set_fill(Some(fill(*grey)));
                        surface.draw_path(&path);
                    }
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    width,
                    grey,
                } => {
                    let mut path = PathBuilder::new();
                    path.move_to(*x1, *y1);
                    path.line_to(*x2, *y2);
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: luma::Color::new(*grey).into(),
                            width: *width,
                            ..Stroke::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|e| ReportError::Pdf(format!("{e:?}")))
}

fn fill(grey: u8) -> Fill {
    Fill {
        paint: luma::Color::new(grey).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}
