//! forensnap's daemon: case requests taken from the request queue and worked under a lease in
//! the case table, by as many daemons (on as many machines) as the queue needs. AWS's services
//! schedule; forensnap only agrees through conditional writes.
//!
//! For every message:
//!
//! 1. **Intake** ([`forensnap_core::intake::parse`]): a malformed, unknown or unauthorised
//!    message goes to the dead-letter queue with its reason and never stops the daemon; a
//!    GuardDuty finding the rules do not collect is deleted with a log line; a Security Hub
//!    action naming several instances is split into one request message per instance.
//! 2. **Claim and lease** ([`forensnap_ports::CaseTable`]): an instance another unfinished case
//!    holds, or a case another holder works, merges the request into that case (recorded in its
//!    custody chain and counted); a case already completed is a duplicate delivery.
//! 3. **Work** ([`Collector::collect`]) under a heartbeat every third of the lease: the lease is
//!    renewed, the message kept invisible, item progress written to the table. A lease lost to
//!    another holder stops the work at once, leaving message and table to the new holder.
//!    With [`Settings::split_volumes`], the daemon only prepares the case
//!    ([`Collector::prepare`]: preservation, small items) and queues one item request per volume
//!    (`forensnap.item-request/1`); any daemon takes one under the volume's own lease (a row of
//!    the case table with owner, expiry and token), acquires and seals it
//!    ([`Collector::item`]), and the one that finds every volume sealed takes the case lease and
//!    completes the case (a whole run that finds everything done).
//! 4. **Outcome**: the collector has recorded it in the custody chain; the case's state follows
//!    (`completed`, or `failed` with the error, the request then dead-lettered for a person, where
//!    redriving it resumes the case), the lease is released, and only then the message deleted.
//!
//! Cases run at most [`Settings::max_cases`] at once per daemon and
//! [`Settings::max_cases_per_account`] per member account. On shutdown (SIGTERM, SIGINT) the
//! daemon takes no more messages, stops its cases at a resumable point, releases their leases,
//! makes their messages visible again for another daemon, and returns within
//! [`Settings::shutdown`].
//!
//! * [`metrics`] -- counters and gauges, as Prometheus text.
//! * [`ops`]     -- the operations endpoint: `/healthz` and `/metrics`.

pub mod metrics;
pub mod ops;
mod worker;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forensnap_core::intake::{CaseRequest, IntakeRules};
use forensnap_ports::{CaseTable, RequestQueue};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub use metrics::Metrics;

/// How often the queue's depth is read for the metrics.
const DEPTH_EVERY: Duration = Duration::from_secs(30);

/// The least time between two receives that found nothing.
const EMPTY_RECEIVE_PAUSE: Duration = Duration::from_millis(50);

/// How a daemon behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who this daemon is in the case table (`daemon:<host>:<pid>`).
    pub owner: String,
    /// Lease length; the heartbeat renews it every third.
    pub lease: Duration,
    /// Long-polling wait of one receive.
    pub wait: Duration,
    /// Cases worked at once.
    pub max_cases: usize,
    /// Cases of one member account worked at once.
    pub max_cases_per_account: usize,
    /// How long shutdown may take.
    pub shutdown: Duration,
    /// Split a case: the daemon that takes it preserves it and queues one item request per
    /// volume, which any daemon acquires; the last to finish completes the case.
    pub split_volumes: bool,
    /// What intake accepts.
    pub rules: IntakeRules,
}

/// Progress of a case's evidence items, as the collector reports it; the daemon writes the
/// latest of each item to the case table on every heartbeat.
pub trait ItemSink: Send + Sync {
    /// Item `item` is at `step`, `done` of `total` bytes.
    fn item(&self, item: &str, step: &str, done: u64, total: u64);
}

/// What a collection ended as, for the table and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Collected and sealed; the custody chain says so.
    Completed,
    /// Stopped on an error recorded in the custody chain (`collection.failed`), or before
    /// anything was recorded (then the message names why).
    Failed(String),
}

/// The collection itself, outside this crate (the binary implements it on the AWS adapters).
pub trait Collector: Send + Sync + 'static {
    /// Collect `request` (resuming the case when it has begun); report item progress to `sink`.
    /// The future may be dropped at any await point (shutdown, lost lease): the case must stay
    /// resumable, as after a crash.
    fn collect(
        &self,
        request: &CaseRequest,
        sink: Arc<dyn ItemSink>,
    ) -> impl Future<Output = Outcome> + Send;

    /// Complete a split case whose every volume is sealed (a whole run that finds everything
    /// done; its request was recorded by the preparation).
    fn complete(
        &self,
        request: &CaseRequest,
        sink: Arc<dyn ItemSink>,
    ) -> impl Future<Output = Outcome> + Send;

    /// A split case's preparation: preservation and the small items, sealed. Returns the
    /// volume item ids to queue.
    fn prepare(
        &self,
        request: &CaseRequest,
        sink: Arc<dyn ItemSink>,
    ) -> impl Future<Output = Result<Vec<String>, String>> + Send;

    /// One volume of a prepared case, acquired and sealed.
    fn item(
        &self,
        request: &CaseRequest,
        item: &str,
        sink: Arc<dyn ItemSink>,
    ) -> impl Future<Output = Outcome> + Send;

    /// The collection of `request` was stopped for shutdown (its future dropped): undo what
    /// must not stay half-done until the case resumes (a member snapshot left shared).
    fn stopped(&self, request: &CaseRequest) -> impl Future<Output = ()> + Send;

    /// Record in case `into`'s custody chain that `request` was merged into it.
    fn merged(
        &self,
        into: &str,
        request: &CaseRequest,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Milliseconds since the epoch on this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A shutdown signal: `true` once the daemon must stop.
pub type Shutdown = watch::Receiver<bool>;

/// The daemon: one queue, one table, one collector.
pub struct Daemon<Q, T, C> {
    shared: Arc<Shared<Q, T, C>>,
}

struct Shared<Q, T, C> {
    queue: Q,
    table: T,
    collector: C,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// Case slots.
    cases: Arc<Semaphore>,
    /// Per-account slots, made on first use.
    accounts: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Messages this daemon works: id -> the latest receipt handle (a duplicate delivery of a
    /// message in hand brings a new one, which SQS then expects for visibility changes).
    receipts: Mutex<HashMap<String, String>>,
    /// Cases this daemon works (its lease cannot tell two of its own tasks apart).
    running: Mutex<HashSet<String>>,
    /// The latest step of every item of the cases worked here: case -> item -> step.
    steps: Mutex<HashMap<String, HashMap<String, String>>>,
}

impl<Q: RequestQueue + 'static, T: CaseTable + 'static, C: Collector> Daemon<Q, T, C> {
    /// A daemon over `queue` and `table`.
    pub fn new(
        queue: Q,
        table: T,
        collector: C,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = settings.max_cases.max(1);
        Daemon {
            shared: Arc::new(Shared {
                queue,
                table,
                collector,
                cases: Arc::new(Semaphore::new(slots)),
                accounts: Mutex::new(HashMap::new()),
                receipts: Mutex::new(HashMap::new()),
                running: Mutex::new(HashSet::new()),
                steps: Mutex::new(HashMap::new()),
                metrics,
                settings,
            }),
        }
    }

    /// Take and work messages until `shutdown` turns true, then stop every case at a
    /// resumable point and return within the shutdown time. Queue errors are logged and retried
    /// after a pause; they never stop the daemon.
    pub async fn run(&self, mut shutdown: Shutdown) {
        let shared = &self.shared;
        let mut tasks = JoinSet::new();
        tracing::info!(owner = %shared.settings.owner, queue = shared.queue.name(), table = shared.table.name(), max_cases = shared.settings.max_cases, "daemon started");
        let mut pause = Duration::from_millis(200);
        let mut depth_read: Option<tokio::time::Instant> = None;
        loop {
            shared.metrics.tick();
            if *shutdown.borrow() {
                break;
            }
            if depth_read.is_none_or(|at| at.elapsed() >= DEPTH_EVERY) {
                depth_read = Some(tokio::time::Instant::now());
                match shared.queue.depth().await {
                    Ok(d) => shared.metrics.depth(d.waiting, d.in_flight, d.dead_letters),
                    Err(e) => tracing::warn!(error = %e, "cannot read the queue's depth"),
                }
            }
            // Reap finished cases.
            while let Some(done) = tasks.try_join_next() {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a case task panicked");
                }
            }
            // Receive only as many messages as there are free slots.
            let free = shared.cases.available_permits();
            if free == 0 {
                // Wake now and then while full, so the loop (and the watchdog) stay alive.
                tokio::select! {
                    _ = tasks.join_next() => {}
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
            let asked = tokio::time::Instant::now();
            let received = tokio::select! {
                r = shared.queue.receive(free.min(10) as u32, shared.settings.wait, shared.settings.lease) => r,
                _ = shutdown.changed() => continue,
            };
            match received {
                Ok(messages) => {
                    pause = Duration::from_millis(200);
                    if messages.is_empty() && asked.elapsed() < EMPTY_RECEIVE_PAUSE {
                        // No long polling (wait 0, or a queue that answers at once): do not spin.
                        tokio::select! {
                            _ = tokio::time::sleep(EMPTY_RECEIVE_PAUSE) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                    for message in messages {
                        shared.metrics.received(message.sent_ms, now_ms());
                        if shared.adopt_duplicate(&message) {
                            continue;
                        }
                        let Ok(permit) = Arc::clone(&shared.cases).try_acquire_owned() else {
                            // More messages than slots (cannot happen with the sizing above):
                            // leave it for its visibility timeout.
                            continue;
                        };
                        let shared = Arc::clone(shared);
                        let stop = shutdown.clone();
                        tasks.spawn(async move {
                            let id = message.id.clone();
                            worker::handle(&shared, message, stop).await;
                            shared.lock_receipts().remove(&id);
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    shared.metrics.queue_error();
                    tracing::warn!(queue = shared.queue.name(), error = %e, pause_ms = pause.as_millis() as u64, "cannot receive from the request queue; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
        tracing::info!(
            running = tasks.len(),
            timeout_s = shared.settings.shutdown.as_secs(),
            "daemon stopping: no more messages taken; bringing cases to a resumable point"
        );
        let drained = tokio::time::timeout(shared.settings.shutdown, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "shutdown time ran out; the remaining cases stop where they are (their leases lapse, their messages reappear)"
            );
            tasks.abort_all();
        }
        tracing::info!("daemon stopped");
    }

    /// The metrics it keeps.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }
}

impl<Q, T, C> Shared<Q, T, C> {
    fn lock_receipts(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.receipts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `message` is one this daemon already works (a duplicate delivery): its newer
    /// receipt handle is adopted and no second task starts.
    fn adopt_duplicate(&self, message: &forensnap_ports::Message) -> bool {
        let mut receipts = self.lock_receipts();
        match receipts.get_mut(&message.id) {
            Some(receipt) => {
                *receipt = message.receipt.clone();
                self.metrics.duplicate();
                tracing::info!(message_id = %message.id, "duplicate delivery of a request in hand; its new receipt adopted");
                true
            }
            None => {
                receipts.insert(message.id.clone(), message.receipt.clone());
                false
            }
        }
    }

    /// `message` with the latest receipt handle this daemon holds for it.
    fn current(&self, message: &forensnap_ports::Message) -> forensnap_ports::Message {
        let mut current = message.clone();
        if let Some(receipt) = self.lock_receipts().get(&message.id) {
            current.receipt = receipt.clone();
        }
        current
    }

    /// Record the steps of `case`'s items (`None`: the case is no longer worked here) and
    /// refresh the items-by-step gauges.
    fn item_steps(&self, case: &str, steps: Option<&std::collections::BTreeMap<String, String>>) {
        let mut all = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        match steps {
            Some(steps) => {
                let entry = all.entry(case.to_string()).or_default();
                for (item, step) in steps {
                    entry.insert(item.clone(), step.clone());
                }
            }
            None => {
                all.remove(case);
            }
        }
        let mut by_step = std::collections::BTreeMap::new();
        for step in all.values().flat_map(|items| items.values()) {
            // "snapshot forensic 42%" counts as "snapshot".
            let kind = step
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            *by_step.entry(kind).or_insert(0i64) += 1;
        }
        self.metrics.items(&by_step);
    }

    /// Mark `case` as worked here; `None` when a task of this daemon already works it.
    fn start_case(&self, case: &str) -> Option<RunningCase<'_>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.insert(case.to_string()).then(|| RunningCase {
            running: &self.running,
            case: case.to_string(),
        })
    }

    fn account_slots(&self, account: &str) -> Arc<Semaphore> {
        let mut map = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(account.to_string()).or_insert_with(|| {
            Arc::new(Semaphore::new(self.settings.max_cases_per_account.max(1)))
        }))
    }
}

/// A case a task of this daemon works, until dropped.
struct RunningCase<'a> {
    running: &'a Mutex<HashSet<String>>,
    case: String,
}

impl Drop for RunningCase<'_> {
    fn drop(&mut self) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.case);
    }
}

#[cfg(test)]
mod tests;
