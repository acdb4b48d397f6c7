//! The machine-readable forms: RFC 4180 CSV (UTF-8, CRLF, a header row) of the evidence items
//! and of the custody events, for e-discovery loads, and the versioned JSON of the whole report.
//!
//! Every text cell that a spreadsheet would read as a formula (it starts with `=`, `+`, `-`, `@`,
//! a tab or a carriage return) is prefixed with `'`, as OWASP advises against CSV injection;
//! hashes, ids and times never start with one, so the columns auditors compare are untouched.

use crate::model::{CustodyReport, Item};

/// File name of the evidence-items CSV.
pub const ITEMS_CSV: &str = "evidence-items.csv";
/// File name of the custody-events CSV.
pub const EVENTS_CSV: &str = "custody-events.csv";

/// Header of [`items_csv`].
pub const ITEM_COLUMNS: [&str; 27] = [
    "case",
    "item_id",
    "kind",
    "account",
    "region",
    "availability_zone",
    "instance_id",
    "volume_id",
    "device",
    "size_gib",
    "member_snapshot_id",
    "snapshot_id",
    "kms_key_id",
    "acquisition_started_utc",
    "acquisition_completed_utc",
    "sha256_acquired",
    "sha256_verified",
    "sha256_match",
    "block_map_sha256",
    "aws_checksums_matched",
    "bucket",
    "key",
    "version_id",
    "object_lock_mode",
    "retain_until_utc",
    "tagmanifest_sha256",
    "custodian",
];

/// Header of [`events_csv`].
pub const EVENT_COLUMNS: [&str; 16] = [
    "case",
    "seq",
    "time_utc",
    "action",
    "outcome",
    "item_id",
    "principal",
    "operator",
    "custodian",
    "account",
    "region",
    "from",
    "to",
    "purpose",
    "sha256",
    "prev_sha256",
];

fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

fn opt(text: &Option<String>) -> String {
    text.as_deref().map(cell).unwrap_or_default()
}

fn num(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

fn write(header: &[&str], rows: Vec<Vec<String>>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory cannot fail; a record with the wrong width would be our bug.
    writer
        .write_record(header)
        .expect("the header writes to memory");
    for row in rows {
        writer.write_record(&row).expect("a row writes to memory");
    }
    writer.into_inner().expect("a memory writer flushes")
}

/// Who had custody of an item: the custodians of the events about it, in order of appearance.
fn custodians(report: &CustodyReport, item: &Item) -> String {
    let mut names: Vec<String> = Vec::new();
    for event in report
        .events
        .iter()
        .filter(|e| item.events.contains(&e.seq))
    {
        let name = event.custodian.clone().unwrap_or(event.operator.clone());
        if !names.contains(&name) {
            names.push(name);
        }
    }
    cell(&names.join("; "))
}

/// One row per evidence item.
pub fn items_csv(report: &CustodyReport) -> Vec<u8> {
    let rows = report
        .items
        .iter()
        .map(|item| {
            let s = &item.source;
            vec![
                cell(&report.case),
                cell(&item.id),
                cell(&item.kind),
                opt(&s.account),
                opt(&s.region),
                opt(&s.availability_zone),
                opt(&s.instance),
                opt(&s.volume_id),
                opt(&s.device),
                num(s.size_gib),
                opt(&s.member_snapshot_id),
                opt(&s.snapshot_id),
                opt(&s.kms_key_id),
                opt(&item.acquisition_started),
                opt(&item.acquisition_completed),
                opt(&item.sha256_acquired),
                opt(&item.sha256_verified),
                item.sha256_match.to_string(),
                opt(&item.block_map_sha256),
                num(item.aws_checksums_matched),
                opt(&item.storage.bucket),
                opt(&item.storage.key),
                opt(&item.storage.version_id),
                opt(&item.storage.object_lock_mode),
                opt(&item.storage.retain_until),
                opt(&item.tagmanifest_sha256),
                custodians(report, item),
            ]
        })
        .collect();
    write(&ITEM_COLUMNS, rows)
}

/// One row per custody event.
pub fn events_csv(report: &CustodyReport) -> Vec<u8> {
    let rows = report
        .events
        .iter()
        .map(|e| {
            vec![
                cell(&report.case),
                e.seq.to_string(),
                cell(&e.time),
                cell(&e.action),
                cell(&e.outcome),
                opt(&e.item),
                cell(&e.principal),
                cell(&e.operator),
                opt(&e.custodian),
                opt(&e.account),
                opt(&e.region),
                cell(&e.from.join(" ")),
                cell(&e.to.join(" ")),
                opt(&e.purpose),
                cell(&e.sha256),
                cell(&e.prev_sha256),
            ]
        })
        .collect();
    write(&EVENT_COLUMNS, rows)
}

/// The whole report as pretty JSON (schema [`crate::REPORT_SCHEMA`]), with a final newline.
pub fn report_json(report: &CustodyReport) -> Vec<u8> {
    let mut bytes =
        serde_json::to_vec_pretty(report).expect("a report of plain fields always serialises");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_hashes_untouched() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("-1+1"), "'-1+1");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("ab12"), "ab12");
        let bytes = write(
            &["a", "b"],
            vec![vec!["x,y".into(), "say \"hi\"\nthen".into()]],
        );
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\nthen\"\r\n"
        );
    }
}
