//! LookupEvents: the queries forensnap asks, the exact request bodies it sends, the pages CloudTrail
//! returns, and the check that one query's stored pages are whole.
//!
//! LookupEvents takes one lookup attribute a call and returns at most 50 events a page, newest
//! first, with a `NextToken` while more remain. Each page is stored raw beside the exact request
//! that produced it ([`StoredPage`]); [`check_query`] reads them back and proves the set is the
//! complete answer to the [`Query`]: numbered without a hole, every token chained, the last page
//! final, every event inside the window and in order.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::times;

/// Events per page: the API's maximum (and default), so a query takes as few calls as it can
/// under the 2 requests/s quota.
pub const MAX_RESULTS: u32 = 50;

/// Values longer than this are shortened in a [`Query::slug`] (with a hash suffix), so a slug
/// stays a comfortable file name even for a long role ARN.
const SLUG_VALUE_MAX: usize = 48;

/// The attribute a LookupEvents call filters on, spelt as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttributeKey {
    /// `EventId`: one event.
    EventId,
    /// `EventName`: an API action, e.g. `StopLogging`.
    EventName,
    /// `ReadOnly`: `true` or `false`.
    ReadOnly,
    /// `Username`: the principal's user or role session name.
    Username,
    /// `ResourceType`: e.g. `AWS::EC2::Instance`.
    ResourceType,
    /// `ResourceName`: e.g. an instance id or a role ARN.
    ResourceName,
    /// `EventSource`: a service endpoint, e.g. `iam.amazonaws.com`.
    EventSource,
    /// `AccessKeyId`: an access key (long-term `AKIA...` or temporary `ASIA...`).
    AccessKeyId,
}

impl AttributeKey {
    /// Every key, in the API's order.
    pub const ALL: [AttributeKey; 8] = [
        AttributeKey::EventId,
        AttributeKey::EventName,
        AttributeKey::ReadOnly,
        AttributeKey::Username,
        AttributeKey::ResourceType,
        AttributeKey::ResourceName,
        AttributeKey::EventSource,
        AttributeKey::AccessKeyId,
    ];

    /// The AWS spelling (`ResourceName`).
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeKey::EventId => "EventId",
            AttributeKey::EventName => "EventName",
            AttributeKey::ReadOnly => "ReadOnly",
            AttributeKey::Username => "Username",
            AttributeKey::ResourceType => "ResourceType",
            AttributeKey::ResourceName => "ResourceName",
            AttributeKey::EventSource => "EventSource",
            AttributeKey::AccessKeyId => "AccessKeyId",
        }
    }

    /// The key of an AWS spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<AttributeKey> {
        AttributeKey::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for AttributeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One LookupEvents query: one lookup attribute (the API takes one per call) over a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// The attribute filtered on.
    pub key: AttributeKey,
    /// Its value (an instance id, a user name, an access key id, ...).
    pub value: String,
    /// The window's start (inclusive; sent and compared to the second).
    #[serde(with = "times::serde_rfc3339")]
    pub start: OffsetDateTime,
    /// The window's end (inclusive; sent and compared to the second).
    #[serde(with = "times::serde_rfc3339")]
    pub end: OffsetDateTime,
}

impl Query {
    /// A file-name-safe, unique, stable slug of the attribute and value: `resourcename-i-0abc123`,
    /// `username-alice`. Lowercase `[a-z0-9.-]` only. A value that does not survive that
    /// unchanged (upper case, `:` or `/` in an ARN) or is longer than 48 characters gets a
    /// 12-hex-digit SHA-256 suffix of the exact value, so two values never share a slug
    /// (`accesskeyid-asiaexample-3f1c...`). The window is not part of it: a case asks each
    /// attribute once per window.
    pub fn slug(&self) -> String {
        let cleaned: String = self
            .value
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '.' | '-' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '-',
            })
            .collect();
        // A leading dot would make a hidden file; "." and ".." are not names.
        let lossless = cleaned == self.value && !cleaned.starts_with('.') && !cleaned.is_empty();
        let key = self.key.as_str().to_ascii_lowercase();
        if lossless && cleaned.len() <= SLUG_VALUE_MAX {
            return format!("{key}-{cleaned}");
        }
        let hash = hex::encode(Sha256::digest(self.value.as_bytes()));
        let short: String = cleaned
            .trim_start_matches('.')
            .chars()
            .take(SLUG_VALUE_MAX)
            .collect();
        let short = short.trim_end_matches(['-', '.']);
        if short.is_empty() {
            format!("{key}-{}", &hash[..12])
        } else {
            format!("{key}-{short}-{}", &hash[..12])
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RequestBody<'a> {
    lookup_attributes: [LookupAttribute<'a>; 1],
    start_time: i64,
    end_time: i64,
    max_results: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LookupAttribute<'a> {
    attribute_key: &'static str,
    attribute_value: &'a str,
}

/// The JSON body of a LookupEvents request as CloudTrail's JSON 1.1 API takes it:
/// `{"LookupAttributes":[{"AttributeKey":..,"AttributeValue":..}],"StartTime":<epoch seconds>,
/// "EndTime":<epoch seconds>,"MaxResults":50,"NextToken":".."}` (`NextToken` only when `Some`).
/// Times are whole epoch seconds (rounded down). Deterministic bytes.
pub fn request_body(query: &Query, max_results: u32, next_token: Option<&str>) -> Vec<u8> {
    let body = RequestBody {
        lookup_attributes: [LookupAttribute {
            attribute_key: query.key.as_str(),
            attribute_value: &query.value,
        }],
        start_time: query.start.unix_timestamp(),
        end_time: query.end.unix_timestamp(),
        max_results,
        next_token,
    };
    // Strings and integers in a struct always serialise.
    serde_json::to_vec(&body).expect("a LookupEvents body of strings and integers serialises")
}

/// One event as LookupEvents returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupEvent {
    /// `EventId`.
    pub event_id: String,
    /// `EventName`, e.g. `CreateAccessKey`.
    pub event_name: String,
    /// `EventSource`, e.g. `iam.amazonaws.com`.
    pub event_source: String,
    /// `EventTime`.
    pub event_time: OffsetDateTime,
    /// `Username`, when CloudTrail gives one.
    pub username: Option<String>,
    /// `AccessKeyId`, when the call was signed with one.
    pub access_key_id: Option<String>,
    /// `ReadOnly` (`"true"`/`"false"` in the response).
    pub read_only: Option<bool>,
    /// `Resources` as (`ResourceType`, `ResourceName`); a missing half is empty.
    pub resources: Vec<(String, String)>,
    /// The parsed `CloudTrailEvent` string: the full CloudTrail record.
    pub record: Value,
}

/// One page of a LookupEvents response.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Its events, as returned (newest first).
    pub events: Vec<LookupEvent>,
    /// The token of the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// Why a LookupEvents response body does not read. The caller names the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// Not a JSON object.
    #[error("the LookupEvents response is not a JSON object: {0}")]
    NotJson(String),
    /// A top-level field is missing or of the wrong type.
    #[error("the LookupEvents response's {field} {why}")]
    Response {
        /// The field (`Events`, `NextToken`).
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A field of one event is missing or of the wrong type.
    #[error("the LookupEvents response's event {index} ({event_id}): {field} {why}")]
    Event {
        /// The event's position in `Events`, from 0.
        index: usize,
        /// Its `EventId`, or `?` when that is what is missing.
        event_id: String,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// Parse a LookupEvents response body: `{"Events":[{"EventId","EventName","ReadOnly":"true"|
/// "false","AccessKeyId","EventTime":<epoch seconds, int or float>,"EventSource","Username",
/// "Resources":[{"ResourceType","ResourceName"}],"CloudTrailEvent":"<json string>"}],
/// "NextToken":".."}`.
///
/// `EventId`, `EventName`, `EventSource`, `EventTime` and `CloudTrailEvent` (a JSON object) are
/// required; the others may be absent or null.
pub fn parse_page(body: &[u8]) -> Result<Page, PageError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PageError::NotJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| PageError::NotJson("the body is JSON but not an object".into()))?;
    let next_token = match object.get("NextToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(token.clone()),
        Some(_) => {
            return Err(PageError::Response {
                field: "NextToken",
                why: "is not a string".into(),
            });
        }
    };
    let events = object
        .get("Events")
        .ok_or_else(|| PageError::Response {
            field: "Events",
            why: "is missing".into(),
        })?
        .as_array()
        .ok_or_else(|| PageError::Response {
            field: "Events",
            why: "is not a list".into(),
        })?;
    let events = events
        .iter()
        .enumerate()
        .map(|(index, event)| parse_event(index, event))
        .collect::<Result<_, _>>()?;
    Ok(Page { events, next_token })
}

fn parse_event(index: usize, event: &Value) -> Result<LookupEvent, PageError> {
    let object = event.as_object().ok_or_else(|| PageError::Event {
        index,
        event_id: "?".into(),
        field: "the event",
        why: "is not an object".into(),
    })?;
    let event_id = required(object, index, "?", "EventId")?;
    let bad = |field: &'static str, why: &str| PageError::Event {
        index,
        event_id: event_id.clone(),
        field,
        why: why.to_string(),
    };
    let event_name = required(object, index, &event_id, "EventName")?;
    let event_source = required(object, index, &event_id, "EventSource")?;
    let event_time = object
        .get("EventTime")
        .ok_or_else(|| bad("EventTime", "is missing"))
        .and_then(|v| {
            times::from_epoch(v).ok_or_else(|| bad("EventTime", "is not epoch seconds"))
        })?;
    let username = optional(object, index, &event_id, "Username")?;
    let access_key_id = optional(object, index, &event_id, "AccessKeyId")?;
    let read_only = match optional(object, index, &event_id, "ReadOnly")?.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(bad("ReadOnly", "is neither \"true\" nor \"false\"")),
    };
    let resources = match object.get("Resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|r| {
                let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                (text("ResourceType"), text("ResourceName"))
            })
            .collect(),
        Some(_) => return Err(bad("Resources", "is not a list")),
    };
    let record_text = required(object, index, &event_id, "CloudTrailEvent")?;
    let record: Value = serde_json::from_str(&record_text)
        .map_err(|e| bad("CloudTrailEvent", &format!("is not JSON: {e}")))?;
    if !record.is_object() {
        return Err(bad("CloudTrailEvent", "is not a JSON object"));
    }
    Ok(LookupEvent {
        event_id,
        event_name,
        event_source,
        event_time,
        username,
        access_key_id,
        read_only,
        resources,
        record,
    })
}

fn required(
    object: &Map<String, Value>,
    index: usize,
    event_id: &str,
    field: &'static str,
) -> Result<String, PageError> {
    optional(object, index, event_id, field)?.ok_or_else(|| PageError::Event {
        index,
        event_id: event_id.to_string(),
        field,
        why: "is missing".into(),
    })
}

fn optional(
    object: &Map<String, Value>,
    index: usize,
    event_id: &str,
    field: &'static str,
) -> Result<Option<String>, PageError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(PageError::Event {
            index,
            event_id: event_id.to_string(),
            field,
            why: "is not a string".into(),
        }),
    }
}

/// One stored page: the exact request body sent and the exact response body received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPage {
    /// Its number in the query, from 1.
    pub number: u32,
    /// The request body, byte for byte.
    pub request: Vec<u8>,
    /// The response body, byte for byte.
    pub response: Vec<u8>,
}

/// What [`check_query`] found in a complete query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySummary {
    /// Pages stored.
    pub pages: u32,
    /// Events across them.
    pub events: u64,
    /// The newest event's time (the first page's first event).
    #[serde(with = "times::serde_rfc3339_option")]
    pub newest: Option<OffsetDateTime>,
    /// The oldest event's time (the last page's last event).
    #[serde(with = "times::serde_rfc3339_option")]
    pub oldest: Option<OffsetDateTime>,
}

/// A problem with a query's stored pages, naming the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageProblem {
    /// Page numbers between 1 and the highest stored are absent (page 1 when none is stored):
    /// one problem per hole, `page..=last`.
    #[error("{}: missing (the stored pages must be numbered 1..n without a hole)",
        missing_text(*.page, *.last))]
    Missing {
        /// The first absent number.
        page: u32,
        /// The last absent number of the same hole.
        last: u32,
    },
    /// The same number is stored more than once.
    #[error("page {page}: stored more than once")]
    Duplicate {
        /// The repeated number.
        page: u32,
    },
    /// The stored request is not a LookupEvents request body.
    #[error("page {page}: the stored request is not a LookupEvents request: {why}")]
    BadRequest {
        /// The page.
        page: u32,
        /// What is wrong.
        why: String,
    },
    /// The stored response does not read.
    #[error("page {page}: the stored response does not read: {error}")]
    BadResponse {
        /// The page.
        page: u32,
        /// Why.
        error: PageError,
    },
    /// The request asks for another attribute or window than the query.
    #[error("page {page}: the request asks for {found}, not the query's {expected}")]
    OtherQuery {
        /// The page.
        page: u32,
        /// The query's attribute and window.
        expected: String,
        /// The request's.
        found: String,
    },
    /// The request's `NextToken` is not the previous response's (page 1: it has one).
    #[error("page {page}: {}", token_text(*.page, .expected, .found))]
    TokenDoesNotChain {
        /// The page.
        page: u32,
        /// The token it should carry: page `page - 1`'s response `NextToken` (`None` for page 1,
        /// or when that response ended the query).
        expected: Option<String>,
        /// The token it carries.
        found: Option<String>,
    },
    /// The last stored response has a `NextToken`: the query stopped before its end.
    #[error(
        "page {page}: the last stored response has a NextToken: the query's later pages were never stored (incomplete)"
    )]
    Incomplete {
        /// The last page.
        page: u32,
    },
    /// An event outside the query's window.
    #[error("page {page}: event {event_id} at {} is outside the window {} .. {}",
        times::rfc3339(*.time), times::rfc3339(*.start), times::rfc3339(*.end))]
    OutsideWindow {
        /// The page.
        page: u32,
        /// The event.
        event_id: String,
        /// Its time.
        time: OffsetDateTime,
        /// The window's start.
        start: OffsetDateTime,
        /// The window's end.
        end: OffsetDateTime,
    },
    /// An event newer than the one before it: the pages are not newest first.
    #[error("page {page}: event {event_id} at {} is newer than the event before it ({}): the pages are not newest first",
        times::rfc3339(*.time), times::rfc3339(*.previous))]
    OutOfOrder {
        /// The page.
        page: u32,
        /// The event.
        event_id: String,
        /// Its time.
        time: OffsetDateTime,
        /// The time of the event before it (same or previous page).
        previous: OffsetDateTime,
    },
}

fn missing_text(page: u32, last: u32) -> String {
    if page == last {
        format!("page {page}")
    } else {
        format!("pages {page}..{last}")
    }
}

fn token_text(page: u32, expected: &Option<String>, found: &Option<String>) -> String {
    match (expected, found) {
        (None, Some(found)) if page == 1 => {
            format!("the first request carries a NextToken ({found:?}); it must have none")
        }
        (None, Some(found)) => format!(
            "the request carries a NextToken ({found:?}) but page {}'s response had none (the query had ended)",
            page - 1
        ),
        (Some(expected), None) => format!(
            "the request has no NextToken; page {}'s response gave {expected:?}",
            page - 1
        ),
        (Some(expected), Some(found)) => format!(
            "the request's NextToken {found:?} is not page {}'s response's {expected:?}",
            page - 1
        ),
        (None, None) => "the NextToken chains".into(),
    }
}

impl PageProblem {
    /// The page the problem is about.
    pub fn page(&self) -> u32 {
        match self {
            PageProblem::Missing { page, .. }
            | PageProblem::Duplicate { page }
            | PageProblem::BadRequest { page, .. }
            | PageProblem::BadResponse { page, .. }
            | PageProblem::OtherQuery { page, .. }
            | PageProblem::TokenDoesNotChain { page, .. }
            | PageProblem::Incomplete { page }
            | PageProblem::OutsideWindow { page, .. }
            | PageProblem::OutOfOrder { page, .. } => *page,
        }
    }
}

/// What a stored request asks: attribute, window (whole seconds) and token.
struct Asked {
    key: String,
    value: String,
    start: i64,
    end: i64,
    next_token: Option<String>,
}

fn read_request(body: &[u8]) -> Result<Asked, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let attributes = value
        .get("LookupAttributes")
        .and_then(Value::as_array)
        .ok_or("LookupAttributes is missing or not a list")?;
    let [attribute] = attributes.as_slice() else {
        return Err(format!(
            "LookupAttributes holds {} attributes; the API takes exactly one",
            attributes.len()
        ));
    };
    let text = |v: &Value, field: &str| -> Result<String, String> {
        v.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{field} is missing or not a string"))
    };
    let second = |field: &str| -> Result<i64, String> {
        value
            .get(field)
            .and_then(times::from_epoch)
            .map(OffsetDateTime::unix_timestamp)
            .ok_or_else(|| format!("{field} is missing or not epoch seconds"))
    };
    let next_token = match value.get("NextToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(token.clone()),
        Some(_) => return Err("NextToken is not a string".into()),
    };
    Ok(Asked {
        key: text(attribute, "AttributeKey")?,
        value: text(attribute, "AttributeValue")?,
        start: second("StartTime")?,
        end: second("EndTime")?,
        next_token,
    })
}

fn describe(key: &str, value: &str, start: i64, end: i64) -> String {
    let at = |s: i64| {
        OffsetDateTime::from_unix_timestamp(s)
            .map(times::rfc3339)
            .unwrap_or_else(|_| s.to_string())
    };
    format!("{key}={value:?} from {} to {}", at(start), at(end))
}

/// Check one query's stored pages as a whole: numbered 1..n without a hole; every request names
/// the query's attribute and window (compared to the second; `StartTime`/`EndTime` may be integer
/// or fractional epoch seconds); page 1's request has no `NextToken` and page k>1's carries page
/// k-1's response `NextToken`; the last response has none (complete); every event lies in
/// `[start, end]` (to the second); events are newest first across the pages (non-increasing
/// `EventTime`: that is what "no gap in time" means for a paged answer).
///
/// Pages may be given in any order. Returns the summary, or every problem found, in page order.
pub fn check_query(query: &Query, pages: &[StoredPage]) -> Result<QuerySummary, Vec<PageProblem>> {
    let mut problems = Vec::new();
    let mut by_number: BTreeMap<u32, &StoredPage> = BTreeMap::new();
    for page in pages {
        if page.number == 0 {
            problems.push(PageProblem::BadRequest {
                page: 0,
                why: "pages are numbered from 1".into(),
            });
        } else if let Entry::Vacant(slot) = by_number.entry(page.number) {
            slot.insert(page);
        } else {
            problems.push(PageProblem::Duplicate { page: page.number });
        }
    }
    let highest = by_number.keys().next_back().copied().unwrap_or(0);
    if highest == 0 {
        problems.push(PageProblem::Missing { page: 1, last: 1 });
    }

    let expected = describe(
        query.key.as_str(),
        &query.value,
        query.start.unix_timestamp(),
        query.end.unix_timestamp(),
    );
    let (start, end) = (query.start.unix_timestamp(), query.end.unix_timestamp());
    // The previous page's response token: Some(token) when known, None when unknown (that page
    // is missing or did not read), so its successor's token is not judged twice.
    let mut previous_token: Option<Option<String>> = Some(None);
    let mut previous_time: Option<OffsetDateTime> = None;
    let mut events = 0u64;
    let (mut newest, mut oldest) = (None, None);
    let mut last_page_token: Option<String> = None;

    let mut expected_number = 1u32;
    for (&number, page) in &by_number {
        if number > expected_number {
            problems.push(PageProblem::Missing {
                page: expected_number,
                last: number - 1,
            });
            previous_token = None;
        }
        expected_number = number.saturating_add(1);
        match read_request(&page.request) {
            Err(why) => problems.push(PageProblem::BadRequest { page: number, why }),
            Ok(asked) => {
                let found = describe(&asked.key, &asked.value, asked.start, asked.end);
                if found != expected {
                    problems.push(PageProblem::OtherQuery {
                        page: number,
                        expected: expected.clone(),
                        found,
                    });
                }
                if let Some(expected_token) = &previous_token
                    && *expected_token != asked.next_token
                {
                    problems.push(PageProblem::TokenDoesNotChain {
                        page: number,
                        expected: expected_token.clone(),
                        found: asked.next_token,
                    });
                }
            }
        }
        let parsed = match parse_page(&page.response) {
            Ok(parsed) => parsed,
            Err(error) => {
                problems.push(PageProblem::BadResponse {
                    page: number,
                    error,
                });
                previous_token = None;
                last_page_token = None;
                continue;
            }
        };
        for event in &parsed.events {
            events += 1;
            let second = event.event_time.unix_timestamp();
            if second < start || second > end {
                problems.push(PageProblem::OutsideWindow {
                    page: number,
                    event_id: event.event_id.clone(),
                    time: event.event_time,
                    start: query.start,
                    end: query.end,
                });
            }
            if let Some(previous) = previous_time
                && event.event_time > previous
            {
                problems.push(PageProblem::OutOfOrder {
                    page: number,
                    event_id: event.event_id.clone(),
                    time: event.event_time,
                    previous,
                });
            }
            previous_time = Some(event.event_time);
            newest = Some(newest.map_or(event.event_time, |n: OffsetDateTime| {
                n.max(event.event_time)
            }));
            oldest = Some(oldest.map_or(event.event_time, |o: OffsetDateTime| {
                o.min(event.event_time)
            }));
        }
        last_page_token = parsed.next_token.clone();
        previous_token = Some(parsed.next_token);
    }
    if highest > 0 && last_page_token.is_some() {
        problems.push(PageProblem::Incomplete { page: highest });
    }

    if problems.is_empty() {
        Ok(QuerySummary {
            pages: highest,
            events,
            newest,
            oldest,
        })
    } else {
        problems.sort_by_key(PageProblem::page);
        Err(problems)
    }
}

#[cfg(test)]
mod tests;
