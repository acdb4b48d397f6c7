//! The timeline's files: JSON lines (one object per row, the [`Row`] fields in snake_case, times
//! RFC 3339) and RFC 4180 CSV (UTF-8, CRLF, a header row), both deterministic bytes.
//!
//! As in the custody report's CSV, a text cell a spreadsheet would read as a formula (starting
//! with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'` (OWASP's advice
//! against CSV injection): user agents and request values are the caller's, possibly the
//! attacker's, words. Ids, ARNs and times never start with one. The JSON lines keep every value
//! exactly.

use super::Row;
use crate::times;

/// The CSV header.
pub const CSV_COLUMNS: [&str; 16] = [
    "time",
    "event_id",
    "account",
    "region",
    "principal",
    "access_key_id",
    "event_source",
    "event_name",
    "source_ip",
    "user_agent",
    "resources",
    "error_code",
    "read_only",
    "flag",
    "why",
    "sources",
];

/// One JSON object per row, each on its own line (`\n`).
pub fn to_jsonl(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        // A struct of strings, booleans and lists always serialises.
        serde_json::to_writer(&mut out, row).expect("a timeline row serialises");
        out.push(b'\n');
    }
    out
}

fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    }
}

fn opt(text: &Option<String>) -> String {
    text.as_deref().map(cell).unwrap_or_default()
}

/// RFC 4180 CSV with [`CSV_COLUMNS`] as its header; lists joined with `"; "`.
pub fn to_csv(rows: &[Row]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to memory cannot fail; a record of the wrong width would be our bug.
    writer
        .write_record(CSV_COLUMNS)
        .expect("the header writes to memory");
    for row in rows {
        let record = [
            times::rfc3339(row.time),
            cell(&row.event_id),
            cell(&row.account),
            cell(&row.region),
            cell(&row.principal),
            opt(&row.access_key_id),
            cell(&row.event_source),
            cell(&row.event_name),
            opt(&row.source_ip),
            opt(&row.user_agent),
            cell(&row.resources.join("; ")),
            opt(&row.error_code),
            row.read_only.map(|b| b.to_string()).unwrap_or_default(),
            row.flag.map(|f| f.code().to_string()).unwrap_or_default(),
            opt(&row.why),
            row.sources
                .iter()
                .map(|s| s.code())
                .collect::<Vec<_>>()
                .join("; "),
        ];
        writer
            .write_record(&record)
            .expect("a row writes to memory");
    }
    writer.into_inner().expect("a memory writer flushes")
}
