//! The case table: who works a case now (a lease with an expiry and a fencing token), what state
//! each case is in, each evidence item's step and progress, and which case holds an instance, so
//! that several daemons (and the command line) share cases without a scheduler of their own.
//!
//! The AWS adapter is a DynamoDB table (`case_id` + `item`, as `forensic-vpc/forensic-account.yaml`
//! makes it) written only with conditional writes; [`MemoryCaseTable`] applies the same rules in
//! memory for unit tests. Rows:
//!
//! * `(case, "#case")` -- the case: [`CaseRecord`], its lease (owner, expiry, token) inside.
//! * `(case, item id)` -- an evidence item's step and progress: [`ItemRecord`], written with the
//!   lease's token; a write carrying an older token than the row's is refused (fencing).
//! * `("instance#" + account/region/instance, "#claim")` -- the case that holds an instance until
//!   it completes, so that a second request for the same instance is merged into it.
//!
//! Times are milliseconds since the Unix epoch on the caller's clock: leases are minutes long,
//! so clocks that agree within seconds (NTP) are enough.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use forensnap_store::CloudError;

/// The sort key of a case's own row.
pub const CASE_ROW: &str = "#case";
/// The sort key of an instance's claim row.
pub const CLAIM_ROW: &str = "#claim";

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseState {
    /// Known to the table (a command took its lease) with no collection recorded there.
    Idle,
    /// A request was accepted and waits for a worker.
    Queued,
    /// A holder works it.
    Running,
    /// Collected and sealed.
    Completed,
    /// The last run ended on an error; running it again resumes.
    Failed,
}

impl CaseState {
    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Idle => "idle",
            CaseState::Queued => "queued",
            CaseState::Running => "running",
            CaseState::Completed => "completed",
            CaseState::Failed => "failed",
        }
    }

    /// Read a stored name.
    pub fn parse(text: &str) -> Option<CaseState> {
        [
            CaseState::Idle,
            CaseState::Queued,
            CaseState::Running,
            CaseState::Completed,
            CaseState::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for CaseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The instance a case collects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Target {
    /// Member account.
    pub account: String,
    /// Region.
    pub region: String,
    /// Instance id.
    pub instance: String,
}

impl Target {
    /// The partition key of the instance's claim row.
    pub fn claim_key(&self) -> String {
        format!(
            "instance#{}/{}/{}",
            self.account, self.region, self.instance
        )
    }
}

/// A held lease on a case: proof of who works it, until `expires_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The case.
    pub case: String,
    /// The row leased: [`CASE_ROW`] for the case, an item id for one of its items.
    pub row: String,
    /// Who holds it (`daemon:<host>:<pid>:<n>` or `cli:<user>@<host>:<pid>`).
    pub owner: String,
    /// Fencing token: grows by one every time the lease changes hands (or is taken again).
    pub token: u64,
    /// When it lapses unless renewed.
    pub expires_ms: u64,
}

/// The case's row as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CaseRecord {
    /// The case.
    pub case: String,
    /// Where it stands.
    pub state: CaseState,
    /// The instance, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// The lease holder, while held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The lease's expiry, while held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// The last fencing token handed out.
    pub token: u64,
    /// Requests received for the case (merged duplicates included).
    pub requests: u64,
    /// The last change.
    pub updated_ms: u64,
    /// Why it failed, or what it is doing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One evidence item's step and progress.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ItemRecord {
    /// The case.
    pub case: String,
    /// Item id (`vol-...`, `instance-record`, ...).
    pub item: String,
    /// Its step (`acquiring`, `sealed`, ...).
    pub step: String,
    /// Bytes done.
    pub done_bytes: u64,
    /// Bytes in all (0 when unknown).
    pub total_bytes: u64,
    /// Who wrote it (or holds its lease).
    pub owner: String,
    /// The writer's fencing token.
    pub token: u64,
    /// When its lease lapses, while one is held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
    /// When.
    pub updated_ms: u64,
}

/// Why a lease operation did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    /// Someone else holds the case.
    #[error(
        "case {case} is being worked by {owner} (lease until {} UTC, token {token}); forensnap will not act on a case another holder works. Next: wait for it (`forensnap status --case {case}`), or after the holder is gone wait until the lease lapses"
        , utc_ms(*expires_ms)
    )]
    Held {
        /// The case.
        case: String,
        /// The holder.
        owner: String,
        /// Its expiry.
        expires_ms: u64,
        /// Its token.
        token: u64,
    },
    /// The lease was taken over (it lapsed) or released: the holder must stop.
    #[error(
        "the lease on case {case} held by {owner} with token {token} is no longer ours (it lapsed and another holder took the case); work stopped at a resumable point"
    )]
    Lost {
        /// The case.
        case: String,
        /// Who held it.
        owner: String,
        /// The token that is no longer current.
        token: u64,
    },
    /// The table could not be read or written.
    #[error("case table: {0}")]
    Table(#[from] CloudError),
}

/// What claiming an instance for a case found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The instance is this case's (newly or already).
    Ours,
    /// Another case, not yet completed, holds the instance: merge the request into it.
    Other(String),
}

/// The case table (see the module docs).
pub trait CaseTable: Send + Sync {
    /// The table's name, for messages.
    fn name(&self) -> &str;

    /// Take the case's lease for `owner` until `now_ms + ttl_ms`: granted when nobody holds it,
    /// when the holder's lease lapsed, or when `owner` holds it already; the token grows by one.
    /// Creates the case row (state `idle`) when there is none.
    fn take(
        &self,
        case: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
        target: Option<&Target>,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Take the lease of one item of a case (its row: owner, expiry, token), under the rules of
    /// [`CaseTable::take`]; creates the row (step `pending`) when there is none. With it, one
    /// daemon works that item while others work the case's other items.
    fn take_item(
        &self,
        case: &str,
        item: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Push the expiry of a held lease to `now_ms + ttl_ms`; [`LeaseError::Lost`] when it is no
    /// longer ours.
    fn renew(
        &self,
        lease: &Lease,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send;

    /// Set the case's state (and message) while holding its lease.
    fn set_state(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Set the case's final state and give its lease up, in one write: a reader that sees the
    /// state sees the case free.
    fn end(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Give the lease up (a no-op when it is no longer ours).
    fn release(
        &self,
        lease: &Lease,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Record an item's step and progress under the lease; refused when a newer token wrote
    /// the row.
    fn set_item(
        &self,
        lease: &Lease,
        item: &str,
        step: &str,
        done_bytes: u64,
        total_bytes: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Count one more request for a case (a merged duplicate), without its lease.
    fn count_request(
        &self,
        case: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Claim `target` for `case` unless another case that has not completed holds it.
    fn claim(
        &self,
        target: &Target,
        case: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<Claim, CloudError>> + Send;

    /// The case completed: its instance may be claimed by a new case.
    fn end_claim(
        &self,
        target: &Target,
        case: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// A case's row and its items' rows.
    fn case(
        &self,
        case: &str,
    ) -> impl Future<Output = Result<Option<(CaseRecord, Vec<ItemRecord>)>, CloudError>> + Send;

    /// Every case's row.
    fn cases(&self) -> impl Future<Output = Result<Vec<CaseRecord>, CloudError>> + Send;
}

/// `ms` since the epoch as RFC 3339 UTC (whole seconds), for messages.
pub fn utc_ms(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

/// Whether `owner` may take a lease held by `holder` until `expires_ms`, at `now_ms`: the rule
/// both implementations apply (the DynamoDB adapter as a condition expression).
pub fn may_take(holder: Option<&str>, expires_ms: Option<u64>, owner: &str, now_ms: u64) -> bool {
    match holder {
        None => true,
        Some(h) if h == owner => true,
        Some(_) => expires_ms.is_none_or(|e| e < now_ms),
    }
}

/// The case table in memory, with the adapter's rules, for unit tests.
#[derive(Debug, Default)]
pub struct MemoryCaseTable {
    rows: Mutex<Rows>,
}

#[derive(Debug, Default)]
struct Rows {
    cases: BTreeMap<String, CaseRecord>,
    items: BTreeMap<(String, String), ItemRecord>,
    /// claim key -> (case, completed)
    claims: BTreeMap<String, (String, bool)>,
}

impl MemoryCaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lost(lease: &Lease) -> LeaseError {
    LeaseError::Lost {
        case: lease.case.clone(),
        owner: lease.owner.clone(),
        token: lease.token,
    }
}

/// Whether `lease` is still the case's current one at `now_ms` (same owner and token, and not
/// lapsed).
fn current(record: &CaseRecord, lease: &Lease, now_ms: u64) -> bool {
    record.owner.as_deref() == Some(&lease.owner)
        && record.token == lease.token
        && record.expires_ms.is_some_and(|e| e >= now_ms)
}

impl CaseTable for MemoryCaseTable {
    fn name(&self) -> &str {
        "memory"
    }

    async fn take(
        &self,
        case: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
        target: Option<&Target>,
    ) -> Result<Lease, LeaseError> {
        let mut rows = self.rows();
        let record = rows
            .cases
            .entry(case.to_string())
            .or_insert_with(|| CaseRecord {
                case: case.to_string(),
                state: CaseState::Idle,
                target: None,
                owner: None,
                expires_ms: None,
                token: 0,
                requests: 0,
                updated_ms: now_ms,
                message: None,
            });
        if !may_take(record.owner.as_deref(), record.expires_ms, owner, now_ms) {
            return Err(LeaseError::Held {
                case: case.to_string(),
                owner: record.owner.clone().unwrap_or_default(),
                expires_ms: record.expires_ms.unwrap_or_default(),
                token: record.token,
            });
        }
        record.owner = Some(owner.to_string());
        record.expires_ms = Some(now_ms + ttl_ms);
        record.token += 1;
        record.updated_ms = now_ms;
        if record.target.is_none() {
            record.target = target.cloned();
        }
        Ok(Lease {
            case: case.to_string(),
            row: CASE_ROW.to_string(),
            owner: owner.to_string(),
            token: record.token,
            expires_ms: now_ms + ttl_ms,
        })
    }

    async fn take_item(
        &self,
        case: &str,
        item: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Lease, LeaseError> {
        let mut rows = self.rows();
        let record = rows
            .items
            .entry((case.to_string(), item.to_string()))
            .or_insert_with(|| ItemRecord {
                case: case.to_string(),
                item: item.to_string(),
                step: "pending".to_string(),
                done_bytes: 0,
                total_bytes: 0,
                owner: String::new(),
                token: 0,
                expires_ms: None,
                updated_ms: now_ms,
            });
        let holder = (!record.owner.is_empty() && record.expires_ms.is_some())
            .then_some(record.owner.as_str());
        if !may_take(holder, record.expires_ms, owner, now_ms) {
            return Err(LeaseError::Held {
                case: format!("{case} item {item}"),
                owner: record.owner.clone(),
                expires_ms: record.expires_ms.unwrap_or_default(),
                token: record.token,
            });
        }
        record.owner = owner.to_string();
        record.expires_ms = Some(now_ms + ttl_ms);
        record.token += 1;
        record.updated_ms = now_ms;
        Ok(Lease {
            case: case.to_string(),
            row: item.to_string(),
            owner: owner.to_string(),
            token: record.token,
            expires_ms: now_ms + ttl_ms,
        })
    }

    async fn renew(&self, lease: &Lease, ttl_ms: u64, now_ms: u64) -> Result<Lease, LeaseError> {
        let mut rows = self.rows();
        let renewed = Lease {
            expires_ms: now_ms + ttl_ms,
            ..lease.clone()
        };
        if lease.row != CASE_ROW {
            return match rows.items.get_mut(&(lease.case.clone(), lease.row.clone())) {
                Some(r)
                    if r.owner == lease.owner
                        && r.token == lease.token
                        && r.expires_ms.is_some_and(|e| e >= now_ms) =>
                {
                    r.expires_ms = Some(now_ms + ttl_ms);
                    Ok(renewed)
                }
                _ => Err(lost(lease)),
            };
        }
        match rows.cases.get_mut(&lease.case) {
            Some(record) if current(record, lease, now_ms) => {
                record.expires_ms = Some(now_ms + ttl_ms);
                Ok(renewed)
            }
            _ => Err(lost(lease)),
        }
    }

    async fn set_state(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> Result<(), LeaseError> {
        let mut rows = self.rows();
        match rows.cases.get_mut(&lease.case) {
            Some(record) if current(record, lease, now_ms) => {
                record.state = state;
                record.message = message.map(str::to_string);
                record.updated_ms = now_ms;
                Ok(())
            }
            _ => Err(lost(lease)),
        }
    }

    async fn end(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> Result<(), LeaseError> {
        let mut rows = self.rows();
        match rows.cases.get_mut(&lease.case) {
            Some(record) if current(record, lease, now_ms) => {
                record.state = state;
                record.message = message.map(str::to_string);
                record.owner = None;
                record.expires_ms = None;
                record.updated_ms = now_ms;
                Ok(())
            }
            _ => Err(lost(lease)),
        }
    }

    async fn release(&self, lease: &Lease, now_ms: u64) -> Result<(), LeaseError> {
        let mut rows = self.rows();
        if lease.row != CASE_ROW {
            if let Some(r) = rows.items.get_mut(&(lease.case.clone(), lease.row.clone()))
                && r.owner == lease.owner
                && r.token == lease.token
            {
                r.expires_ms = None;
                r.updated_ms = now_ms;
            }
            return Ok(());
        }
        if let Some(record) = rows.cases.get_mut(&lease.case)
            && record.owner.as_deref() == Some(&lease.owner)
            && record.token == lease.token
        {
            record.owner = None;
            record.expires_ms = None;
            record.updated_ms = now_ms;
        }
        Ok(())
    }

    async fn set_item(
        &self,
        lease: &Lease,
        item: &str,
        step: &str,
        done_bytes: u64,
        total_bytes: u64,
        now_ms: u64,
    ) -> Result<(), LeaseError> {
        let mut rows = self.rows();
        let key = (lease.case.clone(), item.to_string());
        if rows.items.get(&key).is_some_and(|r| r.token > lease.token) {
            return Err(lost(lease));
        }
        let expires_ms = rows.items.get(&key).and_then(|r| r.expires_ms);
        rows.items.insert(
            key,
            ItemRecord {
                expires_ms,
                case: lease.case.clone(),
                item: item.to_string(),
                step: step.to_string(),
                done_bytes,
                total_bytes,
                owner: lease.owner.clone(),
                token: lease.token,
                updated_ms: now_ms,
            },
        );
        Ok(())
    }

    async fn count_request(&self, case: &str, now_ms: u64) -> Result<(), CloudError> {
        let mut rows = self.rows();
        if let Some(record) = rows.cases.get_mut(case) {
            record.requests += 1;
            record.updated_ms = now_ms;
        }
        Ok(())
    }

    async fn claim(&self, target: &Target, case: &str, _now_ms: u64) -> Result<Claim, CloudError> {
        let mut rows = self.rows();
        let key = target.claim_key();
        match rows.claims.get(&key) {
            Some((holder, false)) if holder != case => Ok(Claim::Other(holder.clone())),
            _ => {
                rows.claims.insert(key, (case.to_string(), false));
                Ok(Claim::Ours)
            }
        }
    }

    async fn end_claim(&self, target: &Target, case: &str, _now_ms: u64) -> Result<(), CloudError> {
        let mut rows = self.rows();
        if let Some((holder, done)) = rows.claims.get_mut(&target.claim_key())
            && holder == case
        {
            *done = true;
        }
        Ok(())
    }

    async fn case(&self, case: &str) -> Result<Option<(CaseRecord, Vec<ItemRecord>)>, CloudError> {
        let rows = self.rows();
        Ok(rows.cases.get(case).map(|record| {
            let items = rows
                .items
                .values()
                .filter(|i| i.case == case)
                .cloned()
                .collect();
            (record.clone(), items)
        }))
    }

    async fn cases(&self) -> Result<Vec<CaseRecord>, CloudError> {
        Ok(self.rows().cases.values().cloned().collect())
    }
}

impl<T: CaseTable> CaseTable for std::sync::Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn take(
        &self,
        case: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
        target: Option<&Target>,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send {
        (**self).take(case, owner, ttl_ms, now_ms, target)
    }
    fn take_item(
        &self,
        case: &str,
        item: &str,
        owner: &str,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send {
        (**self).take_item(case, item, owner, ttl_ms, now_ms)
    }
    fn renew(
        &self,
        lease: &Lease,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<Lease, LeaseError>> + Send {
        (**self).renew(lease, ttl_ms, now_ms)
    }
    fn set_state(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).set_state(lease, state, message, now_ms)
    }
    fn end(
        &self,
        lease: &Lease,
        state: CaseState,
        message: Option<&str>,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).end(lease, state, message, now_ms)
    }
    fn release(
        &self,
        lease: &Lease,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).release(lease, now_ms)
    }
    fn set_item(
        &self,
        lease: &Lease,
        item: &str,
        step: &str,
        done_bytes: u64,
        total_bytes: u64,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), LeaseError>> + Send {
        (**self).set_item(lease, item, step, done_bytes, total_bytes, now_ms)
    }
    fn count_request(
        &self,
        case: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        (**self).count_request(case, now_ms)
    }
    fn claim(
        &self,
        target: &Target,
        case: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<Claim, CloudError>> + Send {
        (**self).claim(target, case, now_ms)
    }
    fn end_claim(
        &self,
        target: &Target,
        case: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), CloudError>> + Send {
        (**self).end_claim(target, case, now_ms)
    }
    fn case(
        &self,
        case: &str,
    ) -> impl Future<Output = Result<Option<(CaseRecord, Vec<ItemRecord>)>, CloudError>> + Send
    {
        (**self).case(case)
    }
    fn cases(&self) -> impl Future<Output = Result<Vec<CaseRecord>, CloudError>> + Send {
        (**self).cases()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        // The memory table never awaits: one poll finishes every call.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the memory table awaited"),
        }
    }

    #[test]
    fn a_lease_is_exclusive_until_it_lapses_and_the_token_grows() {
        let table = MemoryCaseTable::new();
        let a = block_on(table.take("C-1", "a", 1000, 0, None)).expect("free");
        assert_eq!(a.token, 1);
        let held = block_on(table.take("C-1", "b", 1000, 500, None)).expect_err("held");
        assert!(matches!(held, LeaseError::Held { ref owner, .. } if owner == "a"));
        assert!(held.to_string().contains("forensnap status --case C-1"));
        // a renews; b still refused; then a stops renewing and b takes over.
        let a = block_on(table.renew(&a, 1000, 900)).expect("renewed");
        assert!(block_on(table.take("C-1", "b", 1000, 1500, None)).is_err());
        let b = block_on(table.take("C-1", "b", 1000, 1901, None)).expect("lapsed");
        assert_eq!(b.token, 2);
        // a's writes are now refused: renew, state, items (fencing).
        assert!(matches!(
            block_on(table.renew(&a, 1000, 1902)),
            Err(LeaseError::Lost { .. })
        ));
        assert!(block_on(table.set_state(&a, CaseState::Completed, None, 1902)).is_err());
        block_on(table.set_item(&b, "vol-1", "acquiring", 1, 2, 1903)).expect("b writes");
        assert!(block_on(table.set_item(&a, "vol-1", "sealed", 2, 2, 1904)).is_err());
        // a's release is a no-op; b's frees the case.
        block_on(table.release(&a, 1905)).expect("no-op");
        assert!(block_on(table.take("C-1", "c", 1000, 1906, None)).is_err());
        block_on(table.release(&b, 1907)).expect("released");
        assert_eq!(
            block_on(table.take("C-1", "c", 1000, 1908, None))
                .expect("free")
                .token,
            3
        );
    }

    #[test]
    fn an_instance_is_claimed_by_one_case_until_it_completes() {
        let table = MemoryCaseTable::new();
        let t = Target {
            account: "111111111111".into(),
            region: "us-east-1".into(),
            instance: "i-0123456789abcdef0".into(),
        };
        assert_eq!(block_on(table.claim(&t, "C-1", 0)).ok(), Some(Claim::Ours));
        assert_eq!(block_on(table.claim(&t, "C-1", 0)).ok(), Some(Claim::Ours));
        assert_eq!(
            block_on(table.claim(&t, "C-2", 0)).ok(),
            Some(Claim::Other("C-1".into()))
        );
        block_on(table.end_claim(&t, "C-2", 0)).expect("not C-2's: no-op");
        assert!(matches!(
            block_on(table.claim(&t, "C-2", 0)),
            Ok(Claim::Other(_))
        ));
        block_on(table.end_claim(&t, "C-1", 0)).expect("ended");
        assert_eq!(block_on(table.claim(&t, "C-2", 0)).ok(), Some(Claim::Ours));
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_ms(1_796_136_330_123), "2026-12-01T14:45:30Z");
    }
}
