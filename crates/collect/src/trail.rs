//! CloudTrail evidence of a case: the member account's own record of who did what, preserved
//! with the same custody as a disk and never queried live again.
//!
//! Two evidence items per subject (an instance, or an account and region):
//! * `cloudtrail-events-<scope>` -- LookupEvents pages, one query per lookup attribute (the
//!   instance, its volumes and network interfaces, its instance profile, the instance's own role
//!   session, each named principal), paged under CloudTrail's quota of 2 requests per second,
//!   every page stored as the exact request sent and response received; the pages are checked
//!   complete (tokens chained, last page without a token, events newest first inside the
//!   window); the timeline derived from them (and from the trail's log records about the same
//!   subjects) as JSON lines and CSV.
//! * `cloudtrail-logs-<scope>` -- where a trail delivers to S3: its digest and log files over
//!   the window, copied with their metadata (the digest signatures live there), CloudTrail's
//!   public keys, and the validation `aws cloudtrail validate-logs` would make (signatures,
//!   chain, every log file's SHA-256), each failure naming its file.
//!
//! The window and queries are fixed by the first run (`cloudtrail.lookup-started`), so a run
//! that was stopped resumes with the same questions: stored pages are kept, the next page is
//! asked with the last stored page's token, and a stored object is never written twice (Object
//! Lock): finding it stored, the run compares the bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use forensnap_cloudtrail::{digest, lookup, timeline};
use forensnap_core::bag::PayloadFile;
use forensnap_core::details::{
    Details, EvidenceSealed, TrailEventsStored, TrailFinding, TrailLogsStored, TrailLookupStarted,
    TrailQuery,
};
use forensnap_core::keys::INSTANCE_RECORD_PATH;
use forensnap_core::seal::Signer;
use forensnap_core::{CaseLayout, EventDraft, ItemKind, Outcome, Subject};
use forensnap_evidence::item::{self, SealedBag};
use forensnap_ports::{LookupCall, Trail, TrailInfo};
use forensnap_preserve::Custody;
use forensnap_store::{ErrorKind, EvidenceAudit, EvidenceWrite};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Events per LookupEvents page (AWS's maximum).
const PAGE_EVENTS: u32 = 50;
/// Attempts of one throttled page before the run stops (it resumes from that page).
const THROTTLE_ATTEMPTS: u32 = 10;

/// What a CloudTrail collection reads, over which window, and how fast.
#[derive(Debug, Clone)]
pub struct TrailPlan {
    /// The forensic account (where the events of this step are recorded).
    pub forensic_account: String,
    /// The member account whose CloudTrail is read.
    pub account: String,
    /// Its region.
    pub region: String,
    /// The instance the case is about, when there is one (its record gives the subjects).
    pub instance_id: Option<String>,
    /// Principals looked up besides the instance's subjects: access key ids, user or role ARNs.
    pub principals: Vec<String>,
    /// Hours before the case's first custody event the window starts.
    pub lookback_hours: u32,
    /// Start of the window, overriding the look-back.
    pub since: Option<OffsetDateTime>,
    /// End of the window (default: now, at the first run).
    pub until: Option<OffsetDateTime>,
    /// LookupEvents requests per second.
    pub requests_per_second: f64,
    /// Copy and validate the trail's files.
    pub trail_logs: bool,
    /// The trail to copy (name or ARN), else the region's trail with log file validation.
    pub trail: Option<String>,
    /// The trail's bucket, overriding DescribeTrails'.
    pub trail_bucket: Option<String>,
    /// The trail's prefix in `trail_bucket`.
    pub trail_prefix: Option<String>,
    /// Name and version of the tool, for bag-info.txt.
    pub tool: String,
}

impl TrailPlan {
    /// What the item ids are suffixed with: the instance, or the account and region; and, for a
    /// window given explicitly, its ends (a later window of the same case is its own item).
    pub fn scope(&self) -> String {
        let mut scope = match &self.instance_id {
            Some(instance) => instance.clone(),
            None => format!("{}-{}", self.account, self.region),
        };
        let compact = |at: OffsetDateTime| {
            format!(
                "{:04}{:02}{:02}t{:02}{:02}{:02}z",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            )
        };
        if self.since.is_some() || self.until.is_some() {
            scope.push('-');
            scope.push_str(&self.since.map_or("lookback".into(), compact));
            scope.push('-');
            scope.push_str(&self.until.map_or("now".into(), compact));
        }
        scope
    }

    /// The events item's id.
    pub fn events_item(&self) -> String {
        format!("cloudtrail-events-{}", self.scope())
    }

    /// The logs item's id.
    pub fn logs_item(&self) -> String {
        format!("cloudtrail-logs-{}", self.scope())
    }
}

/// One sealed CloudTrail item, as `collect --output json` prints it beside the volumes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrailSummary {
    /// Start of the window, RFC 3339.
    pub start: String,
    /// End of the window, RFC 3339.
    pub end: String,
    /// Events item: distinct events in the timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// Events item: timeline rows flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged: Option<u64>,
    /// Logs item: the trail copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trail_arn: Option<String>,
    /// Logs item: `valid`, or `INVALID` when a finding fails the validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// Logs item: what the validation found, file by file.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    /// Logs item: whether the trail was logging when copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<bool>,
    /// Logs item: when its logging was last stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
}

/// A sealed item of this step: its id, kind, bag and summary.
#[derive(Debug, Clone)]
pub struct TrailItem {
    /// Item id.
    pub id: String,
    /// `cloudtrail-events` or `cloudtrail-logs`.
    pub kind: ItemKind,
    /// Its bag.
    pub bag: SealedBag,
    /// What it holds.
    pub summary: TrailSummary,
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

fn whole_second(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

fn parse_time(text: &str, what: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("{what} {text:?}: {e}"))
}

/// The LookupEvents queries of a case: from the instance's stored DescribeInstances record
/// (the instance, its volumes and network interfaces, its instance profile, and the instance's
/// own role session, whose name is the instance id) and the named principals.
pub fn queries(record: Option<&serde_json::Value>, principals: &[String]) -> Vec<TrailQuery> {
    let mut out: Vec<TrailQuery> = Vec::new();
    let mut add = |key: &str, value: &str, reason: &str| {
        if value.is_empty() || out.iter().any(|q| q.key == key && q.value == value) {
            return;
        }
        out.push(TrailQuery {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
            pages: None,
            events: None,
        });
    };
    if let Some(record) = record {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let instance = text(&record["instance_id"]);
        add("ResourceName", &instance, "instance");
        add("Username", &instance, "instance-session");
        for mapping in record["block_device_mappings"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add("ResourceName", &text(&mapping["volume_id"]), "volume");
        }
        for eni in record["network_interfaces"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add("ResourceName", &text(&eni["id"]), "network-interface");
        }
        if let Some(profile) = record["iam_instance_profile"].as_str()
            && let Some((_, name)) = profile.rsplit_once('/')
        {
            add("ResourceName", name, "instance-profile");
        }
    }
    for principal in principals {
        if principal.starts_with("AKIA") || principal.starts_with("ASIA") {
            add("AccessKeyId", principal, "principal");
        } else if let Some((_, resource)) = principal.rsplit_once(':') {
            match resource.split_once('/') {
                Some(("user", name)) => add(
                    "Username",
                    name.rsplit('/').next().unwrap_or(name),
                    "principal",
                ),
                Some(("role", name)) => add(
                    "ResourceName",
                    name.rsplit('/').next().unwrap_or(name),
                    "principal",
                ),
                _ => {}
            }
        }
    }
    out
}

fn lookup_query(
    query: &TrailQuery,
    start: OffsetDateTime,
    end: OffsetDateTime,
) -> Result<lookup::Query, String> {
    let key =
        serde_json::from_value(serde_json::Value::String(query.key.clone())).map_err(|_| {
            format!(
                "lookup attribute {:?} is not one CloudTrail takes",
                query.key
            )
        })?;
    Ok(lookup::Query {
        key,
        value: query.value.clone(),
        start,
        end,
    })
}

/// Paces calls at a fixed rate (CloudTrail's LookupEvents quota), across every query.
struct Pace {
    interval: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    fn new(per_second: f64) -> Pace {
        Pace {
            interval: Duration::from_secs_f64(1.0 / per_second.clamp(0.01, 2.0)),
            next: tokio::time::Instant::now(),
        }
    }

    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
        self.next = tokio::time::Instant::now() + self.interval;
    }
}

/// A file of a bag stored once: `put_new`, or, when an earlier run stored it, the stored bytes
/// compared with these.
pub(crate) async fn store_once<K: EvidenceWrite>(
    sink: &K,
    prefix: &str,
    path: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> Result<PayloadFile, String> {
    let key = forensnap_core::ItemLayout::at(prefix).file(path);
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len() as u64;
    match sink.put_new(&key, bytes, content_type).await {
        Ok(_) => {}
        Err(e) if e.kind == ErrorKind::Exists => {
            let stored = sink
                .get(&key)
                .await
                .map_err(|e| format!("reading s3://{}/{key} back: {e}", sink.bucket()))?
                .unwrap_or_default();
            let stored_sha256 = hex::encode(Sha256::digest(&stored));
            if stored_sha256 != sha256 {
                return Err(format!(
                    "s3://{}/{key} was stored by an earlier run with other bytes (sha256 {stored_sha256}) than this run read (sha256 {sha256}): the source changed between the runs. The earlier copy is kept (Object Lock); investigate before sealing",
                    sink.bucket()
                ));
            }
        }
        Err(e) => return Err(format!("storing s3://{}/{key}: {e}", sink.bucket())),
    }
    Ok(PayloadFile {
        path: path.to_string(),
        sha256,
        size,
    })
}

/// Runs the CloudTrail step of one case.
struct Step<'a, T, S, K, G> {
    plan: &'a TrailPlan,
    source: &'a T,
    custody: &'a Custody<S>,
    sink: &'a K,
    signer: &'a G,
    case: String,
    bucket: String,
    layout: CaseLayout,
}

/// Preserve the case's CloudTrail evidence (see the module docs): the trail's files when a
/// trail delivers to S3, then the LookupEvents pages and the timeline. Returns the items sealed
/// (an item sealed by an earlier run is read, not redone).
pub async fn collect_trail<
    T: Trail,
    S: EvidenceWrite + EvidenceAudit,
    K: EvidenceWrite,
    G: Signer,
>(
    plan: &TrailPlan,
    source: &T,
    custody: &Custody<S>,
    sink: &K,
    signer: &G,
) -> Result<Vec<TrailItem>, String> {
    let step = Step {
        plan,
        source,
        custody,
        sink,
        signer,
        case: custody.case().to_string(),
        bucket: sink.bucket().to_string(),
        layout: custody.layout().clone(),
    };
    step.run().await
}

impl<T: Trail, S: EvidenceWrite + EvidenceAudit, K: EvidenceWrite, G: Signer> Step<'_, T, S, K, G> {
    fn subject(&self) -> Option<Subject> {
        self.plan.instance_id.as_ref().map(|instance| Subject {
            instance: instance.clone(),
            member_account: self.plan.account.clone(),
        })
    }

    fn draft(&self, details: impl Into<Details>) -> EventDraft {
        let draft = EventDraft::new(details).at(&self.plan.account, &self.plan.region);
        match self.subject() {
            Some(subject) => draft.about(&subject),
            None => draft,
        }
    }

    async fn record(&self, draft: EventDraft) -> Result<(), String> {
        self.custody
            .record(draft)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn prefix(&self, id: &str) -> String {
        self.layout.item(id).prefix().to_string()
    }

    async fn run(&self) -> Result<Vec<TrailItem>, String> {
        let started = self.started().await?;
        let start = parse_time(&started.start, "cloudtrail.lookup-started start")?;
        let end = parse_time(&started.end, "cloudtrail.lookup-started end")?;
        let events_prefix = self.prefix(&started.item);
        let events_sealed = item::sealed(self.sink, &events_prefix)
            .await
            .map_err(|e| e.to_string())?;
        let mut items = Vec::new();
        // Pages first: the trail's records about the same principals join the timeline.
        let pages = match &events_sealed {
            Some(_) => None,
            None => Some(self.lookups(&started, start, end).await?),
        };
        let mut log_records = Vec::new();
        if self.plan.trail_logs
            && let Some((logs, records)) = self.logs(&started, start, end, pages.as_ref()).await?
        {
            items.push(logs);
            log_records = records;
        }
        let events = match events_sealed {
            Some(bag) => {
                self.sealed_item(&started.item, ItemKind::CloudtrailEvents, bag, &started)
                    .await?
            }
            None => {
                let pages = pages.unwrap_or_default();
                self.seal_events(&started, pages, log_records).await?
            }
        };
        items.insert(0, events);
        Ok(items)
    }

    /// The window and queries: the first run's (`cloudtrail.lookup-started`), or fixed now.
    async fn started(&self) -> Result<TrailLookupStarted, String> {
        let item = self.plan.events_item();
        let events = self.custody.events().await;
        let earlier = events.iter().find_map(|e| match e.details() {
            Ok(Some(Details::TrailLookupStarted(d)))
                if e.outcome == Outcome::Ok && d.item == item =>
            {
                Some(d)
            }
            _ => None,
        });
        if let Some(started) = earlier {
            tracing::info!(item = %item, start = %started.start, end = %started.end, "resuming the CloudTrail lookups of an earlier run");
            return Ok(started);
        }
        let first = events
            .first()
            .and_then(|e| OffsetDateTime::parse(&e.time, &Rfc3339).ok())
            .unwrap_or_else(OffsetDateTime::now_utc);
        let end = self.plan.until.unwrap_or_else(OffsetDateTime::now_utc);
        let start = self
            .plan
            .since
            .unwrap_or(first - time::Duration::hours(i64::from(self.plan.lookback_hours)));
        // Whole seconds: LookupEvents takes its window in seconds.
        let (start, end) = (whole_second(start), whole_second(end));
        if start >= end {
            return Err(format!(
                "the CloudTrail window starts at {} and ends at {}: give --since before --until",
                rfc3339(start),
                rfc3339(end)
            ));
        }
        let record = self.instance_record().await?;
        let queries = queries(record.as_ref(), &self.plan.principals);
        if queries.is_empty() {
            return Err(format!(
                "case {}: nothing to look up in CloudTrail: the case has no instance record and no principal was named; give --principal (an access key id, user or role ARN)",
                self.case
            ));
        }
        let started = TrailLookupStarted {
            item,
            account: self.plan.account.clone(),
            region: self.plan.region.clone(),
            start: rfc3339(start),
            end: rfc3339(end),
            queries,
        };
        self.record(self.draft(started.clone())).await?;
        Ok(started)
    }

    /// The instance's DescribeInstances record as the case stored it (never asked again).
    async fn instance_record(&self) -> Result<Option<serde_json::Value>, String> {
        let Some(instance) = &self.plan.instance_id else {
            return Ok(None);
        };
        let key = self
            .layout
            .item(&forensnap_core::custody::instance_record_item(instance))
            .file(INSTANCE_RECORD_PATH);
        let bytes = self
            .sink
            .get(&key)
            .await
            .map_err(|e| format!("reading the instance record s3://{}/{key}: {e}", self.bucket))?
            .ok_or_else(|| {
                format!(
                    "case {}: instance {instance} has no stored record at s3://{}/{key}; run `forensnap collect` for it first",
                    self.case, self.bucket
                )
            })?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "the instance record s3://{}/{key} is not JSON: {e}",
                self.bucket
            )
        })
    }

    /// Every query's pages: the stored ones read back, the rest asked and stored.
    async fn lookups(
        &self,
        started: &TrailLookupStarted,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Result<Pages, String> {
        let prefix = self.prefix(&started.item);
        let mut pace = Pace::new(self.plan.requests_per_second);
        let mut pages = Pages::default();
        for query in &started.queries {
            let lookup = lookup_query(query, start, end)?;
            let slug = lookup.slug();
            let dir = format!("data/lookup/{slug}");
            let mut stored = self.stored_pages(&prefix, &dir).await?;
            if !stored.is_empty() {
                tracing::info!(query = %slug, pages = stored.len(), "pages stored by an earlier run kept");
            }
            let mut files = Vec::new();
            for page in &stored {
                for (suffix, bytes) in [("request", &page.request), ("response", &page.response)] {
                    files.push(PayloadFile {
                        path: format!("{dir}/{:04}.{suffix}.json", page.number),
                        sha256: hex::encode(Sha256::digest(bytes)),
                        size: bytes.len() as u64,
                    });
                }
            }
            let mut token = match stored.last() {
                None => None,
                Some(last) => match lookup::parse_page(&last.response) {
                    Ok(page) => match page.next_token {
                        Some(token) => Some(token),
                        None => {
                            pages.queries.push((query.clone(), lookup, stored, files));
                            continue;
                        }
                    },
                    Err(e) => {
                        return Err(format!(
                            "the stored page {dir}/{:04}.response.json of case {} does not read: {e}; investigate before collecting again",
                            last.number, self.case
                        ));
                    }
                },
            };
            // Bounded: a query of 90 days at 50 events a page stops long before this.
            for number in (stored.len() as u32 + 1)..=1_000_000 {
                let call = LookupCall {
                    key: query.key.clone(),
                    value: query.value.clone(),
                    start,
                    end,
                    max_results: PAGE_EVENTS,
                    next_token: token.clone(),
                };
                let exchange = self
                    .lookup(&mut pace, &call, &slug, number, &mut pages)
                    .await?;
                let page = lookup::parse_page(&exchange.response).map_err(|e| {
                    format!(
                        "LookupEvents page {number} of {} {} answered what does not read: {e}",
                        query.key, query.value
                    )
                })?;
                for (suffix, bytes) in [
                    ("request", &exchange.request),
                    ("response", &exchange.response),
                ] {
                    files.push(
                        store_once(
                            self.sink,
                            &prefix,
                            &format!("{dir}/{number:04}.{suffix}.json"),
                            bytes.clone(),
                            "application/json",
                        )
                        .await?,
                    );
                }
                stored.push(lookup::StoredPage {
                    number,
                    request: exchange.request,
                    response: exchange.response,
                });
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            pages.queries.push((query.clone(), lookup, stored, files));
        }
        Ok(pages)
    }

    /// One page, paced under the quota; a throttled call waits and is asked again.
    async fn lookup(
        &self,
        pace: &mut Pace,
        call: &LookupCall,
        slug: &str,
        number: u32,
        pages: &mut Pages,
    ) -> Result<forensnap_ports::Exchange, String> {
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=THROTTLE_ATTEMPTS {
            pace.wait().await;
            match self.source.lookup_events(call).await {
                Ok(exchange) => {
                    pages.requests += 1;
                    return Ok(exchange);
                }
                Err(e) if e.kind == ErrorKind::Throttled && attempt < THROTTLE_ATTEMPTS => {
                    pages.throttled += 1;
                    tracing::debug!(
                        query = slug,
                        page = number,
                        attempt,
                        "LookupEvents throttled; waiting"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(20));
                }
                Err(e) => {
                    return Err(format!(
                        "LookupEvents of {} {} (page {number}) in account {} {}: {e}. Next: check cloudtrail:LookupEvents in the member role; the stored pages are kept and the next run continues from page {number}",
                        call.key, call.value, self.plan.account, self.plan.region
                    ));
                }
            }
        }
        Err(format!(
            "LookupEvents of {} {} (page {number}) stayed throttled after {THROTTLE_ATTEMPTS} attempts; another tool may be using the account's quota of 2 requests per second. The stored pages are kept: run again later",
            call.key, call.value
        ))
    }

    /// The pages of one query an earlier run stored, in order (a page whose response is missing
    /// is asked again).
    async fn stored_pages(
        &self,
        prefix: &str,
        dir: &str,
    ) -> Result<Vec<lookup::StoredPage>, String> {
        let base = forensnap_core::ItemLayout::at(prefix).file(dir);
        let keys = self
            .sink
            .list(&format!("{base}/"))
            .await
            .map_err(|e| format!("listing s3://{}/{base}/: {e}", self.bucket))?;
        let mut pages = Vec::new();
        for number in 1u32.. {
            let request_key = format!("{base}/{number:04}.request.json");
            let response_key = format!("{base}/{number:04}.response.json");
            if !(keys.contains(&request_key) && keys.contains(&response_key)) {
                break;
            }
            let read = |key: String| async move {
                self.sink
                    .get(&key)
                    .await
                    .map_err(|e| format!("reading s3://{}/{key}: {e}", self.bucket))?
                    .ok_or_else(|| format!("s3://{}/{key} was listed but is gone", self.bucket))
            };
            pages.push(lookup::StoredPage {
                number,
                request: read(request_key).await?,
                response: read(response_key).await?,
            });
        }
        Ok(pages)
    }

    /// The events bag: pages checked complete, the timeline and the queries written, sealed.
    async fn seal_events(
        &self,
        started: &TrailLookupStarted,
        pages: Pages,
        log_records: Vec<serde_json::Value>,
    ) -> Result<TrailItem, String> {
        let prefix = self.prefix(&started.item);
        let mut payload = Vec::new();
        let mut records = Vec::new();
        let mut queries = Vec::new();
        let mut problems = Vec::new();
        for (query, lookup, stored, files) in &pages.queries {
            match lookup::check_query(lookup, stored) {
                Ok(summary) => {
                    let mut done = query.clone();
                    done.pages = Some(summary.pages);
                    done.events = Some(summary.events);
                    queries.push(done);
                }
                Err(found) => problems.extend(
                    found
                        .iter()
                        .map(|p| format!("{} {}: {p}", query.key, query.value)),
                ),
            }
            for page in stored {
                if let Ok(parsed) = lookup::parse_page(&page.response) {
                    records.extend(
                        parsed
                            .events
                            .into_iter()
                            .map(|e| (timeline::Source::Lookup, e.record)),
                    );
                }
            }
            payload.extend(files.iter().cloned());
        }
        if !problems.is_empty() {
            let err = format!(
                "the stored LookupEvents pages of {} are not complete: {}",
                started.item,
                problems.join("; ")
            );
            let draft = self
                .draft(TrailEventsStored {
                    item: started.item.clone(),
                    ..TrailEventsStored::default()
                })
                .failed(err.clone());
            let _ = self.record(draft).await;
            return Err(err);
        }
        records.extend(
            log_records
                .into_iter()
                .map(|r| (timeline::Source::TrailLog, r)),
        );
        let rows = timeline::build(records);
        let flagged = rows.iter().filter(|r| r.flag.is_some()).count() as u64;
        let mut window = serde_json::to_vec_pretty(&serde_json::json!({
            "account": started.account,
            "region": started.region,
            "start": started.start,
            "end": started.end,
            "queries": queries,
            "requests": pages.requests,
            "throttled": pages.throttled,
        }))
        .map_err(|e| e.to_string())?;
        window.push(b'\n');
        for (path, bytes, content_type) in [
            ("data/queries.json", window, "application/json"),
            (
                "data/timeline.jsonl",
                timeline::to_jsonl(&rows),
                "application/x-ndjson",
            ),
            (
                "data/timeline.csv",
                timeline::to_csv(&rows),
                "text/csv; charset=utf-8",
            ),
        ] {
            payload.push(store_once(self.sink, &prefix, path, bytes, content_type).await?);
        }
        payload.sort_by(|a, b| a.path.cmp(&b.path));
        let stored = TrailEventsStored {
            item: started.item.clone(),
            queries,
            requests: pages.requests,
            throttled: pages.throttled,
            timeline_rows: rows.len() as u64,
            flagged,
        };
        self.record(
            self.draft(stored)
                .after([format!("s3://{}/{prefix}data/", self.bucket)]),
        )
        .await?;
        let bag = self
            .seal(
                &started.item,
                ItemKind::CloudtrailEvents,
                &prefix,
                &payload,
                started,
            )
            .await?;
        Ok(TrailItem {
            id: started.item.clone(),
            kind: ItemKind::CloudtrailEvents,
            bag,
            summary: TrailSummary {
                start: started.start.clone(),
                end: started.end.clone(),
                events: Some(rows.len() as u64),
                flagged: Some(flagged),
                trail_arn: None,
                validation: None,
                findings: Vec::new(),
                logging: None,
                stopped_at: None,
            },
        })
    }

    async fn seal(
        &self,
        id: &str,
        kind: ItemKind,
        prefix: &str,
        payload: &[PayloadFile],
        started: &TrailLookupStarted,
    ) -> Result<SealedBag, String> {
        let mut info = crate::bag_fields(&crate::BagSource {
            kind,
            id,
            case: &self.case,
            tool: &self.plan.tool,
            account: &self.plan.account,
            region: &self.plan.region,
            instance: self.plan.instance_id.as_deref(),
            forensic_account: &self.plan.forensic_account,
        });
        info.extend([
            ("Window-Start".to_string(), started.start.clone()),
            ("Window-End".to_string(), started.end.clone()),
        ]);
        let bag = item::seal_small(
            self.sink,
            prefix,
            payload,
            &info,
            self.signer,
            item::Guide {
                id,
                case: &self.case,
                kind,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        self.sealed_event(id, kind, prefix, &bag).await?;
        Ok(bag)
    }

    async fn sealed_event(
        &self,
        id: &str,
        kind: ItemKind,
        prefix: &str,
        bag: &SealedBag,
    ) -> Result<(), String> {
        let draft = self
            .draft(EvidenceSealed {
                item: id.to_string(),
                kind,
                prefix: prefix.to_string(),
                payload_sha256: bag.files.clone(),
            })
            .after([format!("s3://{}/{prefix}", self.bucket)]);
        self.record(draft).await
    }

    /// An item an earlier run sealed: its summary from the custody log, `evidence.sealed`
    /// recorded if that run died before writing it.
    async fn sealed_item(
        &self,
        id: &str,
        kind: ItemKind,
        bag: SealedBag,
        started: &TrailLookupStarted,
    ) -> Result<TrailItem, String> {
        let events = self.custody.events().await;
        let sealed = events.iter().any(|e| {
            e.outcome == Outcome::Ok
                && matches!(e.details(), Ok(Some(Details::EvidenceSealed(ref s))) if s.item == id)
        });
        if !sealed {
            self.sealed_event(id, kind, &self.prefix(id), &bag).await?;
        }
        let mut summary = TrailSummary {
            start: started.start.clone(),
            end: started.end.clone(),
            events: None,
            flagged: None,
            trail_arn: None,
            validation: None,
            findings: Vec::new(),
            logging: None,
            stopped_at: None,
        };
        for event in events.iter().rev().filter(|e| e.outcome == Outcome::Ok) {
            match event.details() {
                Ok(Some(Details::TrailEventsStored(d))) if d.item == id => {
                    summary.events = Some(d.timeline_rows);
                    summary.flagged = Some(d.flagged);
                    break;
                }
                Ok(Some(Details::TrailLogsStored(d))) if d.item == id => {
                    summary.trail_arn = Some(d.trail_arn.clone());
                    summary.validation = Some(verdict(&d.findings).into());
                    summary.findings = d.findings.iter().map(|f| f.text.clone()).collect();
                    summary.logging = d.logging;
                    summary.stopped_at = d.stopped_at.clone();
                    break;
                }
                _ => {}
            }
        }
        Ok(TrailItem {
            id: id.to_string(),
            kind,
            bag,
            summary,
        })
    }

    /// The trail to copy: the configured one, else the region's trail that delivers to S3 with
    /// log file validation (`None`, logged, when there is none).
    async fn chosen_trail(&self) -> Result<Option<TrailInfo>, String> {
        let trails = self.source.describe_trails().await.map_err(|e| {
            format!(
                "DescribeTrails in account {} {}: {e}. Next: allow cloudtrail:DescribeTrails in the member role, or set cloudtrail.trail_logs = false",
                self.plan.account, self.plan.region
            )
        })?;
        let mut candidates: Vec<TrailInfo> = trails
            .value
            .into_iter()
            .filter(|t| match &self.plan.trail {
                Some(wanted) => &t.name == wanted || &t.arn == wanted,
                None => t.bucket.is_some(),
            })
            .collect();
        // Organisation trails keep their files under AWSLogs/<organisation id>/<account>/, in a
        // log-archive account's bucket: not read yet (README), the event history still is.
        candidates.retain(|t| {
            if t.organization {
                tracing::warn!(trail = %t.arn, "an organisation trail: its files are not copied (not supported yet); LookupEvents pages are");
                false
            } else {
                true
            }
        });
        candidates.sort_by_key(|t| {
            (
                !t.log_file_validation,
                !t.organization,
                !t.multi_region,
                t.name.clone(),
            )
        });
        let mut chosen = candidates.into_iter().next();
        if chosen.is_none() && self.plan.trail.is_some() {
            return Err(format!(
                "cloudtrail.trail {:?} is not a trail DescribeTrails shows in account {} {}; check the name",
                self.plan.trail, self.plan.account, self.plan.region
            ));
        }
        if let Some(trail) = chosen.as_mut()
            && let Some(bucket) = &self.plan.trail_bucket
        {
            trail.bucket = Some(bucket.clone());
            trail.prefix = self.plan.trail_prefix.clone();
        }
        Ok(chosen)
    }

    /// The logs item: sealed already, or copied, validated and sealed now. Also returns the
    /// trail's records about the case's principals and subjects, for the timeline.
    async fn logs(
        &self,
        started: &TrailLookupStarted,
        start: OffsetDateTime,
        end: OffsetDateTime,
        pages: Option<&Pages>,
    ) -> Result<Option<(TrailItem, Vec<serde_json::Value>)>, String> {
        let id = self.plan.logs_item();
        let prefix = self.prefix(&id);
        let relevant = Relevant::new(started, pages);
        if let Some(bag) = item::sealed(self.sink, &prefix)
            .await
            .map_err(|e| e.to_string())?
        {
            let item = self
                .sealed_item(&id, ItemKind::CloudtrailLogs, bag, started)
                .await?;
            // Its records are read back only for a timeline still to be written.
            let records = match pages {
                Some(_) => {
                    self.stored_log_records(&prefix, &item.bag, &relevant)
                        .await?
                }
                None => Vec::new(),
            };
            return Ok(Some((item, records)));
        }
        let Some(trail) = self.chosen_trail().await? else {
            tracing::info!(account = %self.plan.account, region = %self.plan.region, "no trail delivers to S3 in this region: only the event history is preserved");
            return Ok(None);
        };
        let Some(bucket) = trail.bucket.clone() else {
            return Ok(None);
        };
        let copied = self
            .copy_trail(&trail, &bucket, start, end, &prefix, &relevant)
            .await?;
        let findings: Vec<TrailFinding> = copied
            .validation
            .findings
            .iter()
            .map(|f| TrailFinding {
                code: f.code().to_string(),
                key: f.key().map(str::to_string),
                text: f.to_string(),
                failure: f.is_failure(),
            })
            .chain(copied.undigested.iter().map(|key| TrailFinding {
                code: "log-not-in-digest".into(),
                key: Some(key.clone()),
                text: format!("Log file\ts3://{bucket}/{key}\tnot listed in any digest of the window (delivered in its last hour, or added by someone else)"),
                failure: false,
            }))
            .chain(coverage(&trail, &bucket, copied.digests, copied.logs))
            .collect();
        let stored = TrailLogsStored {
            item: id.clone(),
            trail_arn: trail.arn.clone(),
            bucket: bucket.clone(),
            prefix: trail.prefix.clone(),
            start: started.start.clone(),
            end: started.end.clone(),
            digest_files: copied.digests,
            log_files: copied.logs,
            digests_valid: copied.validation.digests_valid,
            logs_valid: copied.validation.logs_valid,
            findings: findings.clone(),
            public_keys: copied.fingerprints.clone(),
            logging: copied.logging,
            stopped_at: copied.stopped_at.clone(),
        };
        let mut payload = copied.payload;
        let mut validation = serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?;
        validation.push(b'\n');
        payload.push(
            store_once(
                self.sink,
                &prefix,
                "data/validation.json",
                validation,
                "application/json",
            )
            .await?,
        );
        payload.sort_by(|a, b| a.path.cmp(&b.path));
        let draft = self
            .draft(stored.clone())
            .after([format!("s3://{}/{prefix}data/", self.bucket)]);
        let draft = if findings.iter().any(|f| f.failure) {
            draft.failed(format!(
                "trail {} in s3://{bucket}: {} of its files failed validation; the copies are kept as evidence of it",
                trail.arn,
                findings.iter().filter(|f| f.failure).count()
            ))
        } else {
            draft
        };
        self.record(draft).await?;
        let bag = self
            .seal(&id, ItemKind::CloudtrailLogs, &prefix, &payload, started)
            .await?;
        Ok(Some((
            TrailItem {
                id,
                kind: ItemKind::CloudtrailLogs,
                bag,
                summary: TrailSummary {
                    start: started.start.clone(),
                    end: started.end.clone(),
                    events: None,
                    flagged: None,
                    trail_arn: Some(trail.arn),
                    validation: Some(verdict(&findings).into()),
                    findings: findings.iter().map(|f| f.text.clone()).collect(),
                    logging: stored.logging,
                    stopped_at: stored.stopped_at.clone(),
                },
            },
            copied.records,
        )))
    }

    /// The trail's digest files over the window (and the hour after it, where the last logs
    /// are digested), every log file they or the window's listing name, CloudTrail's public
    /// keys, copied into the bag and validated.
    async fn copy_trail(
        &self,
        trail: &TrailInfo,
        bucket: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        prefix: &str,
        relevant: &Relevant,
    ) -> Result<Copied, String> {
        let account = &self.plan.account;
        let region = &self.plan.region;
        let base = match &trail.prefix {
            Some(p) => format!("{}/AWSLogs/{account}", p.trim_end_matches('/')),
            None => format!("AWSLogs/{account}"),
        };
        let digest_end = end + time::Duration::hours(1);
        let mut digest_keys = Vec::new();
        let mut log_keys = BTreeSet::new();
        let mut day = (start - time::Duration::hours(1)).date();
        while day <= digest_end.date() {
            let ymd = format!(
                "{:04}/{:02}/{:02}",
                day.year(),
                u8::from(day.month()),
                day.day()
            );
            let listed = |what: &'static str| {
                let p = format!("{base}/{what}/{region}/{ymd}/");
                async move {
                    self.source.list_objects(bucket, &p).await.map_err(|e| {
                        format!(
                            "listing s3://{bucket}/{p}: {e}. Next: allow s3:ListBucket on the trail bucket in the member role (TrailBucketName), or set cloudtrail.trail_logs = false"
                        )
                    })
                }
            };
            for o in listed("CloudTrail-Digest").await? {
                let name_ok = o
                    .key
                    .contains(&format!("_CloudTrail-Digest_{region}_{}_", trail.name));
                if name_ok
                    && digest::digest_key_time(&o.key)
                        .is_some_and(|t| t >= start && t <= digest_end)
                {
                    digest_keys.push(o.key);
                }
            }
            for o in listed("CloudTrail").await? {
                if log_key_time(&o.key)
                    .is_some_and(|t| t >= start - time::Duration::minutes(5) && t <= end)
                {
                    log_keys.insert(o.key);
                }
            }
            match day.next_day() {
                Some(next) => day = next,
                None => break,
            }
        }
        let (keys, exchange) = self
            .source
            .list_public_keys(start - time::Duration::days(1), digest_end)
            .await
            .map_err(|e| format!("ListPublicKeys in {region}: {e}. Next: allow cloudtrail:ListPublicKeys in the member role"))?;
        let mut payload = vec![
            store_once(
                self.sink,
                prefix,
                "data/public-keys.request.json",
                exchange.request,
                "application/json",
            )
            .await?,
            store_once(
                self.sink,
                prefix,
                "data/public-keys.response.json",
                exchange.response,
                "application/json",
            )
            .await?,
        ];
        // Whether the trail still logs, and when it was stopped: an attacker blinding the
        // defenders stops it.
        let status = self.source.trail_status(&trail.arn).await.map_err(|e| {
            format!("GetTrailStatus of {}: {e}. Next: allow cloudtrail:GetTrailStatus in the member role", trail.arn)
        })?;
        let parsed: serde_json::Value =
            serde_json::from_slice(&status.response).unwrap_or_default();
        let logging = parsed["IsLogging"].as_bool();
        let stopped_at = parsed["StopLoggingTime"]
            .as_f64()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t as i64).ok())
            .map(rfc3339);
        payload.push(
            store_once(
                self.sink,
                prefix,
                "data/trail-status.request.json",
                status.request,
                "application/json",
            )
            .await?,
        );
        payload.push(
            store_once(
                self.sink,
                prefix,
                "data/trail-status.response.json",
                status.response,
                "application/json",
            )
            .await?,
        );
        let public_keys: Vec<digest::PublicKey> = keys
            .iter()
            .map(|k| digest::PublicKey {
                fingerprint: k.fingerprint.clone(),
                der: k.der.clone(),
                valid_from: k.valid_from,
                valid_until: k.valid_until,
            })
            .collect();
        let mut objects = Vec::new();
        let mut digests = Vec::new();
        for key in &digest_keys {
            let Some(fetched) = self.fetch(bucket, key).await? else {
                continue;
            };
            payload.push(
                store_once(
                    self.sink,
                    prefix,
                    &trail_path(key),
                    fetched.bytes.clone(),
                    "application/gzip",
                )
                .await?,
            );
            objects.push(object_entry(bucket, key, &fetched));
            digests.push(digest::TrailObject {
                bucket: bucket.to_string(),
                key: key.clone(),
                bytes: fetched.bytes,
                metadata: fetched.metadata,
            });
        }
        // Every log file the digests list, and any other the window's listing shows.
        let mut listed_in_digests = BTreeSet::new();
        for d in &digests {
            if let Ok(parsed) = digest::parse_digest(d) {
                for log in parsed.log_files() {
                    if log.bucket == bucket {
                        listed_in_digests.insert(log.key.clone());
                    }
                }
            }
        }
        let all_logs: BTreeSet<String> = log_keys.union(&listed_in_digests).cloned().collect();
        let mut hashes: BTreeMap<String, digest::LogRead> = BTreeMap::new();
        let mut records = Vec::new();
        let mut logs = 0u64;
        for key in &all_logs {
            let Some(fetched) = self.fetch(bucket, key).await? else {
                hashes.insert(key.clone(), digest::LogRead::Missing);
                continue;
            };
            logs += 1;
            let read = digest::read_log(&fetched.bytes);
            if let Ok(log) = &read {
                records.extend(log.records.iter().filter(|r| relevant.matches(r)).cloned());
            }
            hashes.insert(
                key.clone(),
                match read {
                    Ok(log) => digest::LogRead::Sha256(log.sha256),
                    // Whole gzip whose content is not CloudTrail's: its hash still decides.
                    Err(digest::LogError::NotRecords { sha256, .. }) => {
                        digest::LogRead::Sha256(sha256)
                    }
                    Err(_) => digest::LogRead::NotGzip,
                },
            );
            payload.push(
                store_once(
                    self.sink,
                    prefix,
                    &trail_path(key),
                    fetched.bytes.clone(),
                    "application/gzip",
                )
                .await?,
            );
            objects.push(object_entry(bucket, key, &fetched));
        }
        let mut listing = serde_json::to_vec_pretty(&serde_json::json!({
            "trail": {
                "name": trail.name, "arn": trail.arn, "home_region": trail.home_region,
                "bucket": bucket, "prefix": trail.prefix,
                "log_file_validation": trail.log_file_validation,
                "multi_region": trail.multi_region, "organization": trail.organization,
            },
            "objects": objects,
        }))
        .map_err(|e| e.to_string())?;
        listing.push(b'\n');
        payload.push(
            store_once(
                self.sink,
                prefix,
                "data/trail-objects.json",
                listing,
                "application/json",
            )
            .await?,
        );
        let validation = digest::validate_with(
            &digests,
            &public_keys,
            &|b: &str, k: &str| {
                if b != bucket {
                    return digest::LogRead::Missing;
                }
                hashes.get(k).cloned().unwrap_or(digest::LogRead::Missing)
            },
            Some(start),
        );
        let undigested = log_keys.difference(&listed_in_digests).cloned().collect();
        Ok(Copied {
            payload,
            digests: digests.len() as u64,
            logs,
            validation,
            undigested,
            fingerprints: keys.iter().map(|k| k.fingerprint.clone()).collect(),
            records,
            logging,
            stopped_at,
        })
    }

    async fn fetch(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<forensnap_ports::FetchedObject>, String> {
        self.source.get_object(bucket, key).await.map_err(|e| {
            format!("reading s3://{bucket}/{key}: {e}. Next: allow s3:GetObject on the trail bucket's AWSLogs/ in the member role")
        })
    }

    /// The relevant records of the log files a sealed logs item holds (a resumed run).
    async fn stored_log_records(
        &self,
        prefix: &str,
        bag: &SealedBag,
        relevant: &Relevant,
    ) -> Result<Vec<serde_json::Value>, String> {
        let mut records = Vec::new();
        for (path, _) in &bag.files {
            if !(path.starts_with("data/trail/") && path.contains("/CloudTrail/")) {
                continue;
            }
            let key = forensnap_core::ItemLayout::at(prefix).file(path);
            let bytes = self
                .sink
                .get(&key)
                .await
                .map_err(|e| format!("reading s3://{}/{key}: {e}", self.bucket))?
                .unwrap_or_default();
            if let Ok(log) = digest::read_log(&bytes) {
                records.extend(log.records.into_iter().filter(|r| relevant.matches(r)));
            }
        }
        Ok(records)
    }
}

/// What the copy as a whole says about the trail's integrity evidence: validation switched off
/// (nothing proves the logs unaltered), log files without any digest (digests deleted, or
/// validation switched off for the window), or no file at all in the window.
fn coverage(trail: &TrailInfo, bucket: &str, digests: u64, logs: u64) -> Option<TrailFinding> {
    let (code, failure, text) = if !trail.log_file_validation {
        (
            "validation-off",
            false,
            format!(
                "Trail {}: log file validation is off: no digest proves its log files unaltered",
                trail.arn
            ),
        )
    } else if digests == 0 && logs > 0 {
        (
            "digests-absent",
            true,
            format!(
                "Trail {}: {logs} log files in s3://{bucket} over the window and not one digest file: digests deleted, or validation switched off",
                trail.arn
            ),
        )
    } else if digests == 0 {
        (
            "no-files",
            false,
            format!(
                "Trail {}: no log or digest file in s3://{bucket} over the window (was it logging?)",
                trail.arn
            ),
        )
    } else {
        return None;
    };
    Some(TrailFinding {
        code: code.into(),
        key: None,
        text,
        failure,
    })
}

fn verdict(findings: &[TrailFinding]) -> &'static str {
    if findings.iter().any(|f| f.failure) {
        "INVALID"
    } else {
        "valid"
    }
}

/// Where a trail object goes in the bag: its key under `data/trail/`.
fn trail_path(key: &str) -> String {
    format!("data/trail/{key}")
}

/// A log file key's delivery time (`..._CloudTrail_<region>_YYYYMMDDTHHMMZ_<id>.json.gz`).
fn log_key_time(key: &str) -> Option<OffsetDateTime> {
    let name = key.rsplit('/').next()?;
    let stamp = name.split('_').find(|part| {
        part.len() == 14 && part.ends_with('Z') && part.as_bytes().get(8) == Some(&b'T')
    })?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute]Z");
    time::PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .map(|t| t.assume_utc())
}

fn object_entry(
    bucket: &str,
    key: &str,
    fetched: &forensnap_ports::FetchedObject,
) -> serde_json::Value {
    serde_json::json!({
        "bucket": bucket,
        "key": key,
        "path": trail_path(key),
        "size": fetched.bytes.len(),
        "sha256": hex::encode(Sha256::digest(&fetched.bytes)),
        "version_id": fetched.version_id,
        "etag": fetched.etag,
        "last_modified": fetched.last_modified,
        "metadata": fetched.metadata,
    })
}

/// What one run of the lookups read: per query its pages and their bag files.
#[derive(Default)]
struct Pages {
    queries: Vec<(
        TrailQuery,
        lookup::Query,
        Vec<lookup::StoredPage>,
        Vec<PayloadFile>,
    )>,
    requests: u64,
    throttled: u64,
}

struct Copied {
    payload: Vec<PayloadFile>,
    digests: u64,
    logs: u64,
    validation: digest::Validation,
    undigested: Vec<String>,
    fingerprints: Vec<String>,
    records: Vec<serde_json::Value>,
    logging: Option<bool>,
    stopped_at: Option<String>,
}

/// Which trail records join the timeline: those naming a queried value (the instance, its
/// volumes, interfaces, profile, a principal's key or name), those of a principal the lookups
/// found acting on the case's subjects, and every flagged action.
struct Relevant {
    values: Vec<String>,
    principals: BTreeSet<String>,
}

impl Relevant {
    fn new(started: &TrailLookupStarted, pages: Option<&Pages>) -> Relevant {
        let values = started
            .queries
            .iter()
            .map(|q| q.value.clone())
            .filter(|v| v.len() >= 4)
            .collect();
        let mut principals = BTreeSet::new();
        for (_, _, stored, _) in pages.map(|p| p.queries.as_slice()).unwrap_or_default() {
            for page in stored {
                if let Ok(parsed) = lookup::parse_page(&page.response) {
                    for event in parsed.events {
                        if let Some(arn) = event.record["userIdentity"]["arn"].as_str() {
                            principals.insert(arn.to_string());
                        }
                    }
                }
            }
        }
        Relevant { values, principals }
    }

    fn matches(&self, record: &serde_json::Value) -> bool {
        if record["userIdentity"]["arn"]
            .as_str()
            .is_some_and(|a| self.principals.contains(a))
        {
            return true;
        }
        let source = record["eventSource"].as_str().unwrap_or_default();
        let name = record["eventName"].as_str().unwrap_or_default();
        if timeline::flag(source, name).is_some() {
            return true;
        }
        let text = record.to_string();
        self.values.iter().any(|v| text.contains(v.as_str()))
    }
}

#[cfg(test)]
#[path = "trail_tests.rs"]
mod fakes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_come_from_the_record_and_the_principals() {
        let record = serde_json::json!({
            "instance_id": "i-0abc",
            "iam_instance_profile": "arn:aws:iam::111111111111:instance-profile/web-1-role",
            "block_device_mappings": [{"volume_id": "vol-1"}, {"volume_id": "vol-2"}],
            "network_interfaces": [{"id": "eni-1"}],
        });
        let found = queries(
            Some(&record),
            &[
                "ASIAEXAMPLE123456".into(),
                "arn:aws:iam::111111111111:user/ops/alice".into(),
                "arn:aws:iam::111111111111:role/admin".into(),
            ],
        );
        let pairs: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|q| (q.key.as_str(), q.value.as_str(), q.reason.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("ResourceName", "i-0abc", "instance"),
                ("Username", "i-0abc", "instance-session"),
                ("ResourceName", "vol-1", "volume"),
                ("ResourceName", "vol-2", "volume"),
                ("ResourceName", "eni-1", "network-interface"),
                ("ResourceName", "web-1-role", "instance-profile"),
                ("AccessKeyId", "ASIAEXAMPLE123456", "principal"),
                ("Username", "alice", "principal"),
                ("ResourceName", "admin", "principal"),
            ]
        );
    }

    #[test]
    fn log_keys_give_their_delivery_time() {
        let key = "AWSLogs/111111111111/CloudTrail/us-east-1/2026/12/01/111111111111_CloudTrail_us-east-1_20261201T1035Z_abcdefABCDEF0123.json.gz";
        let at = log_key_time(key).expect("a time");
        assert_eq!(rfc3339(at), "2026-12-01T10:35:00Z");
        assert_eq!(log_key_time("AWSLogs/x/other.json"), None);
    }
}
