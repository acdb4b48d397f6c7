//! The CloudTrail step on in-memory doubles: a scripted CloudTrail (paging, throttling, a
//! refusal) and the memory store. Time is paused: the pacing under the quota is virtual.

use std::sync::Mutex;

use forensnap_cloudtrail::lookup::{self, AttributeKey};
use forensnap_core::{CaseId, ItemLayout};
use forensnap_ports::{
    Called, CloudError, Exchange, FetchedObject, ListedObject, LookupCall, PublicKeyInfo, TrailInfo,
};
use forensnap_store::{ErrorKind, EvidenceRead, MemoryStore};
use time::OffsetDateTime;

use super::*;

const KEY: &str = "ASIAEXAMPLEATTACKER1";

/// What one LookupEvents call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Serve,
    Throttle,
    Refuse,
}

/// A CloudTrail holding `events` (seconds since the epoch), every one by [`KEY`], answering
/// calls as `script` says (then serving), `page` events a page.
struct ScriptedTrail {
    events: Vec<i64>,
    page: usize,
    script: Mutex<Vec<Answer>>,
    calls: Mutex<Vec<LookupCall>>,
}

impl ScriptedTrail {
    fn new(events: usize, page: usize, script: &[Answer]) -> ScriptedTrail {
        ScriptedTrail {
            events: (0..events as i64).map(|i| 1_790_000_000 + 60 * i).collect(),
            page,
            script: Mutex::new(script.iter().rev().copied().collect()),
            calls: Mutex::new(Vec::new()),
        }
    }

    fn calls(&self) -> Vec<LookupCall> {
        self.calls.lock().expect("lock").clone()
    }
}

fn record(at: i64) -> serde_json::Value {
    let time = OffsetDateTime::from_unix_timestamp(at).expect("time");
    serde_json::json!({
        "eventVersion": "1.11",
        "eventID": format!("ev-{at}"),
        "eventTime": time.format(&Rfc3339).expect("format"),
        "eventSource": "iam.amazonaws.com",
        "eventName": if (at - 1_790_000_000) / 60 % 2 == 1 { "CreateAccessKey" } else { "ListUsers" },
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.50",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111111111111:assumed-role/r/i-1", "accessKeyId": KEY},
    })
}

impl Trail for ScriptedTrail {
    fn account(&self) -> &str {
        "111111111111"
    }

    fn region(&self) -> &str {
        "us-east-1"
    }

    async fn lookup_events(&self, call: &LookupCall) -> Result<Exchange, CloudError> {
        self.calls.lock().expect("lock").push(call.clone());
        match self
            .script
            .lock()
            .expect("lock")
            .pop()
            .unwrap_or(Answer::Serve)
        {
            Answer::Throttle => {
                return Err(CloudError::new(
                    ErrorKind::Throttled,
                    "LookupEvents",
                    "Rate exceeded",
                ));
            }
            Answer::Refuse => {
                return Err(CloudError::new(
                    ErrorKind::Denied,
                    "LookupEvents",
                    "not authorized",
                ));
            }
            Answer::Serve => {}
        }
        let mut matching: Vec<i64> = self
            .events
            .iter()
            .copied()
            .filter(|t| *t >= call.start.unix_timestamp() && *t <= call.end.unix_timestamp())
            .filter(|_| call.key == "AccessKeyId" && call.value == KEY)
            .collect();
        matching.reverse();
        let from: usize = call
            .next_token
            .as_deref()
            .map_or(0, |t| t.parse().expect("token"));
        let to = (from + self.page).min(matching.len());
        let events: Vec<serde_json::Value> = matching[from..to]
            .iter()
            .map(|t| {
                let r = record(*t);
                serde_json::json!({
                    "EventId": r["eventID"], "EventName": r["eventName"], "ReadOnly": "false",
                    "AccessKeyId": KEY, "EventTime": t, "EventSource": r["eventSource"],
                    "Username": "i-1", "Resources": [], "CloudTrailEvent": r.to_string(),
                })
            })
            .collect();
        let mut response = serde_json::json!({ "Events": events });
        if to < matching.len() {
            response["NextToken"] = serde_json::Value::String(to.to_string());
        }
        let query = lookup::Query {
            key: AttributeKey::AccessKeyId,
            value: call.value.clone(),
            start: call.start,
            end: call.end,
        };
        Ok(Exchange {
            request: lookup::request_body(&query, call.max_results, call.next_token.as_deref()),
            response: serde_json::to_vec(&response).expect("json"),
            request_id: None,
        })
    }

    async fn describe_trails(&self) -> Result<Called<Vec<TrailInfo>>, CloudError> {
        Ok(Called::new(Vec::new(), None))
    }

    async fn trail_status(&self, _: &str) -> Result<Exchange, CloudError> {
        unreachable!("no trail: no status asked")
    }

    async fn list_public_keys(
        &self,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<(Vec<PublicKeyInfo>, Exchange), CloudError> {
        unreachable!("no trail: no keys asked")
    }

    async fn list_objects(&self, _: &str, _: &str) -> Result<Vec<ListedObject>, CloudError> {
        Ok(Vec::new())
    }

    async fn get_object(&self, _: &str, _: &str) -> Result<Option<FetchedObject>, CloudError> {
        Ok(None)
    }
}

fn plan() -> TrailPlan {
    TrailPlan {
        forensic_account: "123456789012".into(),
        account: "111111111111".into(),
        region: "us-east-1".into(),
        instance_id: None,
        principals: vec![KEY.into()],
        lookback_hours: 24,
        since: Some(OffsetDateTime::from_unix_timestamp(1_789_000_000).expect("time")),
        until: Some(OffsetDateTime::from_unix_timestamp(1_791_000_000).expect("time")),
        requests_per_second: 2.0,
        trail_logs: true,
        trail: None,
        trail_bucket: None,
        trail_prefix: None,
        tool: "forensnap test".into(),
    }
}

async fn custody(bucket: &MemoryStore) -> Custody<MemoryStore> {
    let (_, _, actor) = forensnap_preserve::fake::accounts(&Default::default());
    let case = CaseId::parse("CT-1").expect("case");
    Custody::open(bucket.clone(), "", &case, actor, None)
        .await
        .expect("custody")
}

fn signer() -> forensnap_core::seal::MemorySigner {
    forensnap_core::seal::MemorySigner::from_seed(5, "arn:aws:kms:us-east-1:123456789012:key/test")
}

#[tokio::test(start_paused = true)]
async fn pages_are_paced_throttled_pages_asked_again_and_the_item_sealed_once() {
    let bucket = MemoryStore::default();
    let custody = custody(&bucket).await;
    let trail = ScriptedTrail::new(5, 2, &[Answer::Serve, Answer::Throttle, Answer::Throttle]);
    let started = tokio::time::Instant::now();
    let items = collect_trail(&plan(), &trail, &custody, &bucket, &signer())
        .await
        .expect("collected");
    assert_eq!(
        items.len(),
        1,
        "no trail delivers to S3: the events item only"
    );
    let item = &items[0];
    assert_eq!(item.kind, ItemKind::CloudtrailEvents);
    assert_eq!(item.summary.events, Some(5));
    assert_eq!(item.summary.flagged, Some(2), "CreateAccessKey twice");
    // Three pages of 2, 2 and 1; the second asked three times (twice throttled).
    let calls = trail.calls();
    let tokens: Vec<Option<&str>> = calls.iter().map(|c| c.next_token.as_deref()).collect();
    assert_eq!(tokens, [None, Some("2"), Some("2"), Some("2"), Some("4")]);
    // Paced at 2 a second, and backed off after each throttle.
    assert!(
        started.elapsed() >= Duration::from_millis(2_000),
        "{:?}",
        started.elapsed()
    );
    let pages: Vec<&str> = item
        .bag
        .files
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| p.starts_with("data/lookup/"))
        .collect();
    assert_eq!(pages.len(), 6, "{pages:?}");
    let events = custody.events().await;
    let stored = events
        .iter()
        .find_map(|e| match e.details() {
            Ok(Some(Details::TrailEventsStored(d))) => Some(d),
            _ => None,
        })
        .expect("cloudtrail.events-stored");
    assert_eq!((stored.requests, stored.throttled), (3, 2));
    assert_eq!(stored.queries[0].pages, Some(3));

    // Run again: the sealed item is read, nothing is asked.
    let again = collect_trail(&plan(), &trail, &custody, &bucket, &signer())
        .await
        .expect("again");
    assert_eq!(again[0].bag.tagmanifest_sha256, item.bag.tagmanifest_sha256);
    assert_eq!(trail.calls().len(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_refused_page_stops_the_run_and_the_next_run_continues_from_it() {
    let bucket = MemoryStore::default();
    let custody = custody(&bucket).await;
    let refusing = ScriptedTrail::new(5, 2, &[Answer::Serve, Answer::Refuse]);
    let err = collect_trail(&plan(), &refusing, &custody, &bucket, &signer())
        .await
        .expect_err("refused");
    assert!(
        err.contains("page 2") && err.contains("continues from page 2"),
        "{err}"
    );
    let serving = ScriptedTrail::new(5, 2, &[]);
    let items = collect_trail(&plan(), &serving, &custody, &bucket, &signer())
        .await
        .expect("resumed");
    // Page 1 was kept: the resumed run asked from page 2's token on.
    let tokens: Vec<Option<String>> = serving.calls().into_iter().map(|c| c.next_token).collect();
    assert_eq!(tokens, [Some("2".to_string()), Some("4".to_string())]);
    assert_eq!(items[0].summary.events, Some(5));
    // Same window as the first run fixed.
    let windows: Vec<(i64, i64)> = refusing
        .calls()
        .iter()
        .chain(serving.calls().iter())
        .map(|c| (c.start.unix_timestamp(), c.end.unix_timestamp()))
        .collect();
    assert!(windows.windows(2).all(|w| w[0] == w[1]), "{windows:?}");
    let key =
        ItemLayout::at(custody.layout().item(&items[0].id).prefix()).file("data/timeline.csv");
    let csv = bucket.get(&key).await.expect("read").expect("stored");
    assert_eq!(String::from_utf8(csv).expect("utf-8").lines().count(), 6);
}

#[test]
fn an_explicit_window_is_an_item_of_its_own() {
    let explicit = plan();
    assert_eq!(
        explicit.events_item(),
        "cloudtrail-events-111111111111-us-east-1-20260910t002640z-20261003t040000z"
    );
    let collection = TrailPlan {
        instance_id: Some("i-0abc".into()),
        since: None,
        until: None,
        ..plan()
    };
    assert_eq!(collection.events_item(), "cloudtrail-events-i-0abc");
    assert_eq!(collection.logs_item(), "cloudtrail-logs-i-0abc");
}
