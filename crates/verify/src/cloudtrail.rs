//! The CloudTrail items' own checks, from their bags alone (no AWS call): every LookupEvents
//! query's stored pages are complete (tokens chained, the last page without a token, events
//! newest first inside the window) and every event they hold is in the timeline; a trail's
//! copied digest and log files validate now as the collection recorded (signatures with the
//! public keys the bag holds, the chain, every log file's SHA-256).

use std::collections::{BTreeMap, BTreeSet};

use forensnap_cloudtrail::{digest, lookup};
use forensnap_core::ItemLayout;
use forensnap_evidence::export::BagView;
use forensnap_store::EvidenceAudit;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Report, VerifyError, read};

/// The check's name in the report.
const CHECK: &str = "cloudtrail";

async fn file<F: EvidenceAudit>(
    files: &F,
    prefix: &str,
    path: &str,
) -> Result<Option<Vec<u8>>, VerifyError> {
    let key = ItemLayout::at(prefix).file(path);
    files.get(&key).await.map_err(read(&key))
}

async fn json<F: EvidenceAudit>(
    files: &F,
    report: &mut Report,
    id: &str,
    prefix: &str,
    path: &str,
) -> Result<Option<serde_json::Value>, VerifyError> {
    match file(files, prefix, path).await? {
        None => {
            report.push(CHECK, format!("{id} {path}"), false, "missing from the bag");
            Ok(None)
        }
        Some(bytes) => match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                report.push(
                    CHECK,
                    format!("{id} {path}"),
                    false,
                    format!("not JSON: {e}"),
                );
                Ok(None)
            }
        },
    }
}

fn time_of(value: &serde_json::Value) -> Option<OffsetDateTime> {
    value
        .as_str()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

/// A `cloudtrail-events` item: its queries' pages and its timeline.
pub(crate) async fn check_events<F: EvidenceAudit>(
    files: &F,
    report: &mut Report,
    id: &str,
    prefix: &str,
    view: &BagView,
) -> Result<(), VerifyError> {
    let Some(queries) = json(files, report, id, prefix, "data/queries.json").await? else {
        return Ok(());
    };
    let (Some(start), Some(end)) = (time_of(&queries["start"]), time_of(&queries["end"])) else {
        report.push(
            CHECK,
            format!("{id} data/queries.json"),
            false,
            "no RFC 3339 start and end",
        );
        return Ok(());
    };
    let mut event_ids = BTreeSet::new();
    for q in queries["queries"].as_array().into_iter().flatten() {
        let (key, value) = (
            q["key"].as_str().unwrap_or_default(),
            q["value"].as_str().unwrap_or_default(),
        );
        let subject = format!("{id} {key} {value}");
        let Some(attribute) = lookup::AttributeKey::parse(key) else {
            report.push(
                CHECK,
                subject,
                false,
                format!("{key:?} is not a lookup attribute"),
            );
            continue;
        };
        let query = lookup::Query {
            key: attribute,
            value: value.to_string(),
            start,
            end,
        };
        let dir = format!("data/lookup/{}/", query.slug());
        let mut numbers: Vec<u32> = view
            .manifest
            .keys()
            .filter_map(|p| {
                p.strip_prefix(&dir)?
                    .strip_suffix(".response.json")?
                    .parse()
                    .ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut pages = Vec::new();
        for number in numbers {
            let request = file(files, prefix, &format!("{dir}{number:04}.request.json")).await?;
            let response = file(files, prefix, &format!("{dir}{number:04}.response.json")).await?;
            pages.push(lookup::StoredPage {
                number,
                request: request.unwrap_or_default(),
                response: response.unwrap_or_default(),
            });
        }
        match lookup::check_query(&query, &pages) {
            Ok(summary) => {
                let recorded = (q["pages"].as_u64(), q["events"].as_u64());
                let found = (Some(u64::from(summary.pages)), Some(summary.events));
                report.push(
                    CHECK,
                    subject,
                    recorded == found,
                    if recorded == found {
                        format!("{} pages, {} events: complete, in order, inside the window", summary.pages, summary.events)
                    } else {
                        format!("the stored pages hold {found:?} (pages, events); queries.json records {recorded:?}")
                    },
                );
                for page in &pages {
                    if let Ok(parsed) = lookup::parse_page(&page.response) {
                        event_ids.extend(parsed.events.into_iter().map(|e| e.event_id));
                    }
                }
            }
            Err(problems) => report.push(
                CHECK,
                subject,
                false,
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }
    let timeline = file(files, prefix, "data/timeline.jsonl")
        .await?
        .unwrap_or_default();
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&timeline)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    let in_timeline: BTreeSet<String> = rows
        .iter()
        .filter_map(|row| row["event_id"].as_str().map(str::to_string))
        .collect();
    let text =
        |row: &serde_json::Value, key: &str| row[key].as_str().unwrap_or_default().to_string();
    report.facts.timelines.insert(
        id.to_string(),
        crate::TimelineFact {
            start: text(&queries, "start"),
            end: text(&queries, "end"),
            rows: rows.len() as u64,
            flagged: rows
                .iter()
                .filter(|row| row["flag"].is_string())
                .map(|row| crate::FlaggedAction {
                    time: text(row, "time"),
                    principal: text(row, "principal"),
                    action: format!(
                        "{}:{}",
                        text(row, "event_source").trim_end_matches(".amazonaws.com"),
                        text(row, "event_name")
                    ),
                    flag: text(row, "flag"),
                    why: text(row, "why"),
                    source_ip: text(row, "source_ip"),
                    error_code: row["error_code"].as_str().map(str::to_string),
                })
                .collect(),
        },
    );
    let absent: Vec<&String> = event_ids.difference(&in_timeline).collect();
    report.push(
        CHECK,
        format!("{id} data/timeline.jsonl"),
        absent.is_empty(),
        if absent.is_empty() {
            format!(
                "every one of the {} preserved events is in the timeline ({} rows)",
                event_ids.len(),
                in_timeline.len()
            )
        } else {
            format!(
                "{} preserved events are not in the timeline, e.g. {}",
                absent.len(),
                absent[0]
            )
        },
    );
    Ok(())
}

/// A `cloudtrail-logs` item: the copies validated again and compared with the recorded result.
pub(crate) async fn check_logs<F: EvidenceAudit>(
    files: &F,
    report: &mut Report,
    id: &str,
    prefix: &str,
) -> Result<(), VerifyError> {
    let Some(listing) = json(files, report, id, prefix, "data/trail-objects.json").await? else {
        return Ok(());
    };
    let Some(recorded) = json(files, report, id, prefix, "data/validation.json").await? else {
        return Ok(());
    };
    let keys = match file(files, prefix, "data/public-keys.response.json").await? {
        Some(bytes) => match digest::parse_public_keys(&bytes) {
            Ok(keys) => keys,
            Err(e) => {
                report.push(
                    CHECK,
                    format!("{id} data/public-keys.response.json"),
                    false,
                    e.to_string(),
                );
                return Ok(());
            }
        },
        None => Vec::new(),
    };
    let mut digests = Vec::new();
    let mut logs: BTreeMap<(String, String), digest::LogRead> = BTreeMap::new();
    for object in listing["objects"].as_array().into_iter().flatten() {
        let (bucket, key, path) = (
            object["bucket"].as_str().unwrap_or_default().to_string(),
            object["key"].as_str().unwrap_or_default().to_string(),
            object["path"].as_str().unwrap_or_default().to_string(),
        );
        let bytes = file(files, prefix, &path).await?;
        if key.contains("/CloudTrail-Digest/") {
            let metadata = object["metadata"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(bytes) = bytes {
                digests.push(digest::TrailObject {
                    bucket,
                    key,
                    bytes,
                    metadata,
                });
            }
        } else {
            let read = match bytes {
                None => digest::LogRead::Missing,
                Some(bytes) => match digest::read_log(&bytes) {
                    Ok(log) => digest::LogRead::Sha256(log.sha256),
                    Err(digest::LogError::NotRecords { sha256, .. }) => {
                        digest::LogRead::Sha256(sha256)
                    }
                    Err(_) => digest::LogRead::NotGzip,
                },
            };
            logs.insert((bucket, key), read);
        }
    }
    let since = time_of(&recorded["start"]);
    let validation = digest::validate_with(
        &digests,
        &keys,
        &|bucket: &str, key: &str| {
            logs.get(&(bucket.to_string(), key.to_string()))
                .cloned()
                .unwrap_or(digest::LogRead::Missing)
        },
        since,
    );
    let found: BTreeSet<(String, String)> = validation
        .findings
        .iter()
        .filter(|f| f.is_failure())
        .map(|f| {
            (
                f.code().to_string(),
                f.key().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = recorded["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["failure"] == true && f["code"] != "log-not-in-digest")
        .map(|f| {
            (
                f["code"].as_str().unwrap_or_default().to_string(),
                f["key"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let same = found == expected
        && recorded["digests_valid"].as_u64() == Some(validation.digests_valid)
        && recorded["logs_valid"].as_u64() == Some(validation.logs_valid);
    let detail = if same {
        format!(
            "the copies validate as recorded: {} digest files and {} log files valid, {} failing findings{}",
            validation.digests_valid,
            validation.logs_valid,
            found.len(),
            if found.is_empty() {
                String::new()
            } else {
                " (the trail was tampered with before it was copied; see validation.json)".into()
            }
        )
    } else {
        format!(
            "the copies validate differently from the record: now {} digests and {} logs valid, findings {:?}; recorded {} and {}, findings {:?}",
            validation.digests_valid,
            validation.logs_valid,
            found,
            recorded["digests_valid"],
            recorded["logs_valid"],
            expected
        )
    };
    report.push(CHECK, format!("{id} trail files"), same, detail);
    Ok(())
}
