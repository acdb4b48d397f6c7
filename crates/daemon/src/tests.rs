//! The daemon over the in-memory queue and table, with a collector that only counts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use forensnap_core::CaseId;
use forensnap_core::intake::SubmitRequest;
use forensnap_ports::queue::MemoryQueue;
use forensnap_ports::state::MemoryCaseTable;
use forensnap_ports::{CaseState, Lease};

use super::*;

const ACCOUNT: &str = "111111111111";
const INSTANCE: &str = "i-0123456789abcdef0";

/// Counts collections; each takes `hold` (forever when `None`) and ends as `outcome`.
struct Counting {
    collected: Arc<Mutex<Vec<String>>>,
    merged: Arc<Mutex<Vec<(String, String)>>>,
    stopped: Arc<Mutex<Vec<String>>>,
    prepared: Arc<Mutex<Vec<String>>>,
    items: Arc<Mutex<Vec<String>>>,
    hold: Option<Duration>,
    outcome: Outcome,
    running: Arc<AtomicUsize>,
}

impl Counting {
    fn new(hold: Option<Duration>, outcome: Outcome) -> Self {
        Counting {
            collected: Arc::default(),
            merged: Arc::default(),
            stopped: Arc::default(),
            prepared: Arc::default(),
            items: Arc::default(),
            hold,
            outcome,
            running: Arc::default(),
        }
    }
}

impl Collector for Counting {
    async fn collect(&self, request: &CaseRequest, sink: Arc<dyn ItemSink>) -> Outcome {
        self.running.fetch_add(1, Ordering::SeqCst);
        self.collected
            .lock()
            .expect("lock")
            .push(request.case.to_string());
        sink.item("vol-1", "acquiring", 512 * 1024, 1024 * 1024);
        match self.hold {
            Some(hold) => tokio::time::sleep(hold).await,
            None => std::future::pending::<()>().await,
        }
        sink.item("vol-1", "sealed", 1024 * 1024, 1024 * 1024);
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.outcome.clone()
    }

    async fn complete(&self, request: &CaseRequest, sink: Arc<dyn ItemSink>) -> Outcome {
        self.collect(request, sink).await
    }

    async fn prepare(
        &self,
        request: &CaseRequest,
        sink: Arc<dyn ItemSink>,
    ) -> Result<Vec<String>, String> {
        self.prepared
            .lock()
            .expect("lock")
            .push(request.case.to_string());
        sink.item("vol-0aaaaaaa", "snapshot forensic 100%", 0, 0);
        Ok(vec!["vol-0aaaaaaa".to_string(), "vol-0bbbbbbb".to_string()])
    }

    async fn item(&self, request: &CaseRequest, item: &str, sink: Arc<dyn ItemSink>) -> Outcome {
        self.items
            .lock()
            .expect("lock")
            .push(format!("{}/{item}", request.case));
        sink.item(item, "acquiring", 1, 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        sink.item(item, "acquired", 2, 2);
        Outcome::Completed
    }

    async fn stopped(&self, request: &CaseRequest) {
        self.stopped
            .lock()
            .expect("lock")
            .push(request.case.to_string());
    }

    async fn merged(&self, into: &str, request: &CaseRequest) -> Result<(), String> {
        self.merged
            .lock()
            .expect("lock")
            .push((into.to_string(), request.case.to_string()));
        Ok(())
    }
}

fn settings() -> Settings {
    Settings {
        owner: "daemon:test:1".into(),
        lease: Duration::from_secs(30),
        wait: Duration::from_millis(10),
        max_cases: 4,
        max_cases_per_account: 4,
        shutdown: Duration::from_secs(5),
        split_volumes: false,
        rules: IntakeRules {
            accounts: vec![ACCOUNT.into()],
            default_region: "us-east-1".into(),
            guardduty_types: vec!["Backdoor:EC2/*".into()],
            guardduty_min_severity: 7.0,
            case_prefix: "IR".into(),
        },
    }
}

fn submit(case: &str, instance: &str) -> String {
    SubmitRequest::new(
        &CaseId::parse(case).expect("case"),
        ACCOUNT,
        instance,
        Some("us-east-1"),
        Some("test"),
        Some("tester"),
    )
    .to_json()
}

type TestDaemon = Daemon<Arc<MemoryQueue>, Arc<MemoryCaseTable>, Counting>;

/// Run `daemon` until `until` holds (checked every 10 ms, at most 5 s), then shut it down.
async fn run_until<C: Collector>(
    daemon: &Daemon<Arc<MemoryQueue>, Arc<MemoryCaseTable>, C>,
    until: impl Fn() -> bool,
) {
    let (tx, rx) = watch::channel(false);
    let run = daemon.run(rx);
    let watch = async {
        for _ in 0..500 {
            if until() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tx.send(true);
    };
    tokio::join!(run, watch);
}

fn daemon(
    queue: &Arc<MemoryQueue>,
    table: &Arc<MemoryCaseTable>,
    collector: Counting,
) -> TestDaemon {
    Daemon::new(
        Arc::clone(queue),
        Arc::clone(table),
        collector,
        settings(),
        Arc::new(Metrics::new()),
    )
}

#[tokio::test]
async fn a_request_is_collected_once_and_its_message_deleted_after_the_outcome() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send(&submit("IR-1", INSTANCE)).await.expect("send");
    let collector = Counting::new(Some(Duration::from_millis(20)), Outcome::Completed);
    let collected = Arc::clone(&collector.collected);
    let d = daemon(&queue, &table, collector);
    let metrics = d.metrics();
    run_until(&d, || metrics.completed_count() == 1 && queue.is_empty()).await;
    assert_eq!(*collected.lock().expect("lock"), vec!["IR-1".to_string()]);
    assert!(queue.is_empty(), "deleted once its outcome was recorded");
    let (record, items) = table.case("IR-1").await.expect("read").expect("row");
    assert_eq!(record.state, CaseState::Completed);
    assert_eq!(record.owner, None, "lease released");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].step, "sealed");
    assert!(
        metrics
            .render()
            .contains("forensnap_blocks_acquired_total 2")
    );
}

#[tokio::test]
async fn refused_requests_go_to_the_dead_letter_queue_with_their_reason_and_the_daemon_goes_on() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send("not json").await.expect("send");
    let foreign = submit("IR-2", INSTANCE).replace(ACCOUNT, "222222222222");
    queue.send(&foreign).await.expect("send");
    queue.send(&submit("IR-3", INSTANCE)).await.expect("send");
    let collector = Counting::new(Some(Duration::ZERO), Outcome::Completed);
    let d = daemon(&queue, &table, collector);
    let metrics = d.metrics();
    run_until(&d, || queue.is_empty() && metrics.completed_count() == 1).await;
    let dead = queue.dead_letters();
    let codes: Vec<&str> = dead.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, vec!["malformed", "unauthorised"]);
    assert!(
        dead[1].reason.contains("222222222222"),
        "{}",
        dead[1].reason
    );
    assert_eq!(
        table
            .case("IR-3")
            .await
            .expect("read")
            .expect("row")
            .0
            .state,
        CaseState::Completed
    );
}

#[tokio::test]
async fn a_second_request_for_an_instance_is_merged_into_the_running_case() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send(&submit("IR-4", INSTANCE)).await.expect("send");
    let collector = Counting::new(Some(Duration::from_millis(300)), Outcome::Completed);
    let (collected, merged) = (
        Arc::clone(&collector.collected),
        Arc::clone(&collector.merged),
    );
    let d = daemon(&queue, &table, collector);
    let metrics = d.metrics();
    let sent = async {
        // Once IR-4 runs, a finding about the same instance arrives as another case.
        for _ in 0..100 {
            if !collected.lock().expect("lock").is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        queue.send(&submit("IR-5", INSTANCE)).await.expect("send");
    };
    let (_, ()) = tokio::join!(
        run_until(&d, || metrics.completed_count() == 1 && queue.is_empty()),
        sent
    );
    assert_eq!(*collected.lock().expect("lock"), vec!["IR-4".to_string()]);
    assert_eq!(
        *merged.lock().expect("lock"),
        vec![("IR-4".to_string(), "IR-5".to_string())]
    );
    let record = table.case("IR-4").await.expect("read").expect("row").0;
    assert_eq!(record.requests, 2);
    assert!(table.case("IR-5").await.expect("read").is_none());
}

#[tokio::test]
async fn a_case_another_holder_works_is_not_collected_again() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    // A responder's `collect` holds the case.
    let cli: Lease = table
        .take("IR-6", "cli:op@host:1", 60_000, now_ms(), None)
        .await
        .expect("cli lease");
    queue.send(&submit("IR-6", INSTANCE)).await.expect("send");
    let collector = Counting::new(Some(Duration::ZERO), Outcome::Completed);
    let (collected, merged) = (
        Arc::clone(&collector.collected),
        Arc::clone(&collector.merged),
    );
    let d = daemon(&queue, &table, collector);
    run_until(&d, || queue.is_empty()).await;
    assert!(collected.lock().expect("lock").is_empty());
    assert_eq!(merged.lock().expect("lock").len(), 1);
    assert_eq!(
        table
            .case("IR-6")
            .await
            .expect("read")
            .expect("row")
            .0
            .owner,
        Some(cli.owner)
    );
}

#[tokio::test]
async fn shutdown_stops_a_case_at_a_resumable_point_releases_it_and_returns_the_message() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send(&submit("IR-7", INSTANCE)).await.expect("send");
    let collector = Counting::new(None, Outcome::Completed);
    let running = Arc::clone(&collector.running);
    let stopped = Arc::clone(&collector.stopped);
    let d = daemon(&queue, &table, collector);
    let started = std::time::Instant::now();
    run_until(&d, || running.load(Ordering::SeqCst) == 1).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let (record, _) = table.case("IR-7").await.expect("read").expect("row");
    assert_eq!(record.state, CaseState::Queued);
    assert_eq!(record.owner, None, "lease released");
    assert_eq!(
        *stopped.lock().expect("lock"),
        vec!["IR-7".to_string()],
        "undone what must not stay half-done"
    );
    assert_eq!(queue.len(), 1, "the request stays for another daemon");
    let visible = queue
        .receive(1, Duration::ZERO, Duration::from_secs(1))
        .await
        .expect("receive");
    assert_eq!(visible.len(), 1, "and is visible again at once");
}

#[tokio::test]
async fn a_failed_case_is_recorded_and_its_request_dead_lettered_for_a_person() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send(&submit("IR-8", INSTANCE)).await.expect("send");
    let collector = Counting::new(
        Some(Duration::ZERO),
        Outcome::Failed("snapshot copy failed".into()),
    );
    let d = daemon(&queue, &table, collector);
    run_until(&d, || queue.is_empty()).await;
    let (record, _) = table.case("IR-8").await.expect("read").expect("row");
    assert_eq!(record.state, CaseState::Failed);
    assert_eq!(record.message.as_deref(), Some("snapshot copy failed"));
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].code, "collection-failed");
    assert!(dead[0].reason.contains("IR-8"));
}

#[tokio::test]
async fn a_duplicate_delivery_of_a_request_in_hand_starts_no_second_collection() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send(&submit("IR-9", INSTANCE)).await.expect("send");
    // And the same case requested again by another message (EventBridge re-delivery).
    let collector = Counting::new(Some(Duration::from_millis(300)), Outcome::Completed);
    let (collected, running) = (
        Arc::clone(&collector.collected),
        Arc::clone(&collector.running),
    );
    let d = daemon(&queue, &table, collector);
    let metrics = d.metrics();
    let duplicate = async {
        for _ in 0..100 {
            if running.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        queue.redeliver();
        queue.send(&submit("IR-9", INSTANCE)).await.expect("send");
    };
    let (_, ()) = tokio::join!(
        run_until(&d, || metrics.completed_count() == 1 && queue.is_empty()),
        duplicate
    );
    assert_eq!(
        *collected.lock().expect("lock"),
        vec!["IR-9".to_string()],
        "one collection"
    );
    let text = metrics.render();
    assert!(
        text.contains("forensnap_requests_duplicate_total 1"),
        "{text}"
    );
    assert!(text.contains("forensnap_requests_merged_total 1"), "{text}");
    assert!(queue.is_empty());
}

#[tokio::test]
async fn a_split_case_is_prepared_once_its_volumes_worked_by_two_daemons_and_completed_once() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send(&submit("IR-S-1", INSTANCE)).await.expect("send");
    let split = |owner: &str, collector| {
        let mut settings = settings();
        settings.owner = owner.into();
        settings.split_volumes = true;
        Daemon::new(
            Arc::clone(&queue),
            Arc::clone(&table),
            collector,
            settings,
            Arc::new(Metrics::new()),
        )
    };
    let (one, two) = (
        Counting::new(Some(Duration::ZERO), Outcome::Completed),
        Counting::new(Some(Duration::ZERO), Outcome::Completed),
    );
    let record = [
        (
            Arc::clone(&one.prepared),
            Arc::clone(&one.items),
            Arc::clone(&one.collected),
        ),
        (
            Arc::clone(&two.prepared),
            Arc::clone(&two.items),
            Arc::clone(&two.collected),
        ),
    ];
    let (a, b) = (split("daemon:a:1", one), split("daemon:b:2", two));
    let (ma, mb) = (a.metrics(), b.metrics());
    let done = || ma.completed_count() + mb.completed_count() == 1 && queue.is_empty();
    let (tx, rx) = watch::channel(false);
    let watch = async {
        for _ in 0..500 {
            if done() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tx.send(true);
    };
    tokio::join!(a.run(rx.clone()), b.run(rx), watch);
    let prepared: usize = record.iter().map(|r| r.0.lock().expect("lock").len()).sum();
    let mut items: Vec<String> = record
        .iter()
        .flat_map(|r| r.1.lock().expect("lock").clone())
        .collect();
    items.sort();
    let completions: usize = record.iter().map(|r| r.2.lock().expect("lock").len()).sum();
    assert_eq!(prepared, 1, "prepared once");
    assert_eq!(
        items,
        vec!["IR-S-1/vol-0aaaaaaa", "IR-S-1/vol-0bbbbbbb"],
        "each volume once"
    );
    assert_eq!(
        completions, 1,
        "completed once, by the last volume's daemon"
    );
    let (case, rows) = table.case("IR-S-1").await.expect("read").expect("row");
    assert_eq!(case.state, CaseState::Completed);
    assert!(rows.iter().all(|r| r.step == "sealed"), "{rows:?}");
    assert!(queue.is_empty());
}

#[tokio::test]
async fn a_split_case_failed_by_one_volume_completes_once_that_volume_is_redriven() {
    let (queue, table) = (
        Arc::new(MemoryQueue::new()),
        Arc::new(MemoryCaseTable::new()),
    );
    queue.send(&submit("IR-S-2", INSTANCE)).await.expect("send");
    let mut settings = settings();
    settings.split_volumes = true;
    // Every volume fails the first time it is tried.
    let collector = Counting::new(Some(Duration::ZERO), Outcome::Completed);
    let failing = Arc::new(AtomicUsize::new(2));
    let d = Daemon::new(
        Arc::clone(&queue),
        Arc::clone(&table),
        FailFirst {
            inner: collector,
            failing: Arc::clone(&failing),
        },
        settings,
        Arc::new(Metrics::new()),
    );
    run_until(&d, || queue.is_empty() && queue.dead_letters().len() == 2).await;
    let (case, _) = table.case("IR-S-2").await.expect("read").expect("row");
    assert_eq!(case.state, CaseState::Failed, "{case:?}");
    // A person redrives both dead letters: the volumes are sealed and the case completes.
    for dead in queue.dead_letters() {
        queue.send(&dead.body).await.expect("redrive");
    }
    let metrics = d.metrics();
    run_until(&d, || metrics.completed_count() == 1 && queue.is_empty()).await;
    let (case, rows) = table.case("IR-S-2").await.expect("read").expect("row");
    assert_eq!(case.state, CaseState::Completed, "{case:?}");
    assert!(rows.iter().all(|r| r.step == "sealed"), "{rows:?}");
}

/// A collector whose first `failing` volume runs fail.
struct FailFirst {
    inner: Counting,
    failing: Arc<AtomicUsize>,
}

impl Collector for FailFirst {
    async fn collect(&self, request: &CaseRequest, sink: Arc<dyn ItemSink>) -> Outcome {
        self.inner.collect(request, sink).await
    }
    async fn complete(&self, request: &CaseRequest, sink: Arc<dyn ItemSink>) -> Outcome {
        self.inner.complete(request, sink).await
    }
    async fn prepare(
        &self,
        request: &CaseRequest,
        sink: Arc<dyn ItemSink>,
    ) -> Result<Vec<String>, String> {
        self.inner.prepare(request, sink).await
    }
    async fn item(&self, request: &CaseRequest, item: &str, sink: Arc<dyn ItemSink>) -> Outcome {
        let left = self.failing.load(Ordering::SeqCst);
        if left > 0 {
            self.failing.store(left - 1, Ordering::SeqCst);
            return Outcome::Failed(format!("{item}: injected failure"));
        }
        self.inner.item(request, item, sink).await
    }
    async fn stopped(&self, request: &CaseRequest) {
        self.inner.stopped(request).await
    }
    async fn merged(&self, into: &str, request: &CaseRequest) -> Result<(), String> {
        self.inner.merged(into, request).await
    }
}
