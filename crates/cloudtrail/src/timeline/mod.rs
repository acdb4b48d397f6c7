//! The timeline derived from preserved events (never from a live query): one row per CloudTrail
//! event, deduplicated across the sources it was read from, ordered by time, with the actions
//! investigators look for flagged; written as JSON lines and RFC 4180 CSV.
//!
//! Submodules: `flags` (which actions are flagged and why) and `export` (the two file formats).

mod export;
mod flags;

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::times;

pub use export::{CSV_COLUMNS, to_csv, to_jsonl};
pub use flags::{Flag, flag, flag_record};

/// Where a row's event was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A LookupEvents page (`CloudTrailEvent`).
    Lookup,
    /// A trail log file (`Records`), validated against its digest.
    TrailLog,
}

impl Source {
    /// The stable code (`lookup`, `trail-log`).
    pub fn code(self) -> &'static str {
        match self {
            Source::Lookup => "lookup",
            Source::TrailLog => "trail-log",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// `eventTime`.
    #[serde(with = "times::serde_rfc3339")]
    pub time: OffsetDateTime,
    /// `eventID`.
    pub event_id: String,
    /// `recipientAccountId`, else `userIdentity.accountId`; empty when neither is given.
    pub account: String,
    /// `awsRegion`.
    pub region: String,
    /// Who acted: `userIdentity.arn`, else `principalId`, else `type` (`AWSService`, ...).
    pub principal: String,
    /// `userIdentity.accessKeyId`.
    pub access_key_id: Option<String>,
    /// `eventSource`.
    pub event_source: String,
    /// `eventName`.
    pub event_name: String,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// `userAgent`.
    pub user_agent: Option<String>,
    /// What it touched: `resources[].ARN`, then the request's and response's identifiers
    /// (`instanceId=i-0abc`, `userName=alice`, `accessKeyId=AKIA...` of a new key, ...).
    pub resources: Vec<String>,
    /// `errorCode`: the call failed (an attempt is still evidence).
    pub error_code: Option<String>,
    /// `readOnly`.
    pub read_only: Option<bool>,
    /// The flag, when it is an action investigators look for.
    pub flag: Option<Flag>,
    /// Why it is flagged: "new access key: persistence" (with "(failed: AccessDenied)" when
    /// the call failed).
    pub why: Option<String>,
    /// Where the event was read (each source once, in [`Source`] order).
    pub sources: Vec<Source>,
}

/// Why a record cannot become a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a JSON object.
    #[error("the CloudTrail record is not a JSON object")]
    NotAnObject,
    /// `eventID` missing or not a string.
    #[error("the CloudTrail record has no eventID")]
    NoEventId,
    /// `eventTime` missing or not RFC 3339.
    #[error("the CloudTrail record {event_id} has no readable eventTime")]
    NoEventTime {
        /// Its `eventID`.
        event_id: String,
    },
}

/// Request fields naming what a call touched, shown as `name=value`.
const REQUEST_IDS: &[&str] = &[
    "instanceId",
    "volumeId",
    "snapshotId",
    "networkInterfaceId",
    "groupId",
    "keyName",
    "userName",
    "roleName",
    "groupName",
    "policyArn",
    "instanceProfileName",
    "accessKeyId",
    "functionName",
    "bucketName",
    "trailName",
    "detectorId",
    "secretId",
    "logGroupName",
    "configurationRecorderName",
];

impl Row {
    /// The row of one full CloudTrail record (LookupEvents' `CloudTrailEvent`, or one of a log
    /// file's `Records`). Records without an `eventID` or a readable `eventTime` are refused:
    /// a timeline row must be placed and deduplicated.
    pub fn from_record(source: Source, record: &Value) -> Result<Row, RecordError> {
        if !record.is_object() {
            return Err(RecordError::NotAnObject);
        }
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let event_id = text(record, "eventID").ok_or(RecordError::NoEventId)?;
        let time = text(record, "eventTime")
            .and_then(|t| times::parse_rfc3339(&t))
            .ok_or_else(|| RecordError::NoEventTime {
                event_id: event_id.clone(),
            })?;
        let identity = record.get("userIdentity").unwrap_or(&Value::Null);
        let principal = text(identity, "arn")
            .or_else(|| text(identity, "principalId"))
            .or_else(|| text(identity, "type"))
            .unwrap_or_default();
        let error_code = text(record, "errorCode");
        let read_only = match record.get("readOnly") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s == "true" => Some(true),
            Some(Value::String(s)) if s == "false" => Some(false),
            _ => None,
        };
        let flagged = flags::flag_record(record);
        let why = flagged.map(|(flag, reason)| match &error_code {
            Some(code) => format!("{reason}: {flag} (failed: {code})"),
            None => format!("{reason}: {flag}"),
        });
        Ok(Row {
            time,
            event_id,
            account: text(record, "recipientAccountId")
                .or_else(|| text(identity, "accountId"))
                .unwrap_or_default(),
            region: text(record, "awsRegion").unwrap_or_default(),
            principal,
            access_key_id: text(identity, "accessKeyId"),
            event_source: text(record, "eventSource").unwrap_or_default(),
            event_name: text(record, "eventName").unwrap_or_default(),
            source_ip: text(record, "sourceIPAddress"),
            user_agent: text(record, "userAgent"),
            resources: resources(record),
            error_code,
            read_only,
            flag: flagged.map(|(flag, _)| flag),
            why,
            sources: vec![source],
        })
    }
}

/// `resources[].ARN`, then the request's identifiers, then a new access key's id; each once.
fn resources(record: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |item: String| {
        if !out.contains(&item) {
            out.push(item);
        }
    };
    if let Some(list) = record.get("resources").and_then(Value::as_array) {
        for arn in list
            .iter()
            .filter_map(|r| r.get("ARN").and_then(Value::as_str))
        {
            push(arn.to_string());
        }
    }
    let request = record.get("requestParameters").unwrap_or(&Value::Null);
    for name in REQUEST_IDS {
        if let Some(value) = request.get(*name).and_then(Value::as_str) {
            push(format!("{name}={value}"));
        }
    }
    // RunInstances / StopInstances / TerminateInstances name instances in a set.
    if let Some(items) = request
        .pointer("/instancesSet/items")
        .and_then(Value::as_array)
    {
        for id in items
            .iter()
            .filter_map(|i| i.get("instanceId").and_then(Value::as_str))
        {
            push(format!("instanceId={id}"));
        }
    }
    if let Some(key) = record
        .pointer("/responseElements/accessKey/accessKeyId")
        .and_then(Value::as_str)
    {
        push(format!("accessKeyId={key}"));
    }
    out
}

/// Rows from CloudTrail records (full records: LookupEvents' `CloudTrailEvent` or a log file's
/// `Records`), deduplicated by `eventID` (sources merged), ordered by time then event id.
///
/// When an event was read from both sources, the row's fields are the trail log's (the copy a
/// digest vouches for); otherwise the first record read. Records that cannot be rows (no
/// `eventID`, no readable `eventTime`: see [`Row::from_record`]) are left out; call that
/// function to count them.
pub fn build(records: impl IntoIterator<Item = (Source, Value)>) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (source, record) in records {
        let Ok(row) = Row::from_record(source, &record) else {
            continue;
        };
        match index.get(&row.event_id) {
            None => {
                index.insert(row.event_id.clone(), rows.len());
                rows.push(row);
            }
            Some(&at) => {
                let existing = &mut rows[at];
                let mut sources = existing.sources.clone();
                sources.push(source);
                sources.sort();
                sources.dedup();
                if source == Source::TrailLog && !existing.sources.contains(&Source::TrailLog) {
                    *existing = row;
                }
                existing.sources = sources;
            }
        }
    }
    rows.sort_by(|a, b| (a.time, &a.event_id).cmp(&(b.time, &b.event_id)));
    rows
}

#[cfg(test)]
mod tests;
