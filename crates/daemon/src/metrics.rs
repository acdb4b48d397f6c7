//! The daemon's counters and gauges, rendered as Prometheus text on `/metrics`.
//!
//! Names start with `forensnap_`. Counters: requests received, refused (by reason code),
//! merged, duplicated; cases completed and failed; leases lost; queue errors; bytes and 512 KiB
//! blocks acquired (`rate()` of the latter is blocks/s); block reads throttled and retried.
//! Gauges: cases running (per member account), items of those cases by step,
//! the age of the last request received (queue age), and the queue's depth when the
//! operations endpoint asks for it.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// EBS snapshot block size: the unit of `forensnap_blocks_acquired_total`.
const BLOCK: u64 = 512 * 1024;

type Labels = Vec<(String, String)>;

/// Every metric of one daemon.
pub struct Metrics {
    registry: Registry,
    received: Counter,
    refused: Family<Labels, Counter>,
    merged: Counter,
    duplicates: Counter,
    completed: Counter,
    failed: Counter,
    leases_lost: Counter,
    queue_errors: Counter,
    bytes: Counter,
    blocks: Counter,
    throttled: Counter,
    retried: Counter,
    engine_seen: std::sync::Mutex<(u64, u64)>,
    items: Family<Labels, Gauge>,
    block_rest: std::sync::Mutex<u64>,
    running: Family<Labels, Gauge>,
    queue_age: Gauge,
    depth: Family<Labels, Gauge>,
    /// When the receive loop last went round (ms since the epoch), for the watchdog.
    tick_ms: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("forensnap");
        let m = Metrics {
            received: Counter::default(),
            refused: Family::default(),
            merged: Counter::default(),
            duplicates: Counter::default(),
            completed: Counter::default(),
            failed: Counter::default(),
            leases_lost: Counter::default(),
            queue_errors: Counter::default(),
            bytes: Counter::default(),
            blocks: Counter::default(),
            throttled: Counter::default(),
            retried: Counter::default(),
            engine_seen: std::sync::Mutex::new((0, 0)),
            items: Family::default(),
            block_rest: std::sync::Mutex::new(0),
            running: Family::default(),
            queue_age: Gauge::default(),
            depth: Family::default(),
            tick_ms: std::sync::atomic::AtomicU64::new(crate::now_ms()),
            registry: Registry::default(),
        };
        registry.register(
            "requests_received",
            "Requests received from the queue",
            m.received.clone(),
        );
        registry.register(
            "requests_refused",
            "Requests refused, by reason code (dead-lettered, or not triggering)",
            m.refused.clone(),
        );
        registry.register(
            "requests_merged",
            "Requests merged into a case that holds their instance, or repeated",
            m.merged.clone(),
        );
        registry.register(
            "requests_duplicate",
            "Duplicate deliveries of a request this daemon already works",
            m.duplicates.clone(),
        );
        registry.register("cases_completed", "Cases completed", m.completed.clone());
        registry.register(
            "cases_failed",
            "Cases that ended on an error",
            m.failed.clone(),
        );
        registry.register(
            "leases_lost",
            "Leases lost to another holder while working",
            m.leases_lost.clone(),
        );
        registry.register(
            "queue_errors",
            "Failed receives from the request queue",
            m.queue_errors.clone(),
        );
        registry.register(
            "bytes_acquired",
            "Volume bytes acquired and stored",
            m.bytes.clone(),
        );
        registry.register(
            "blocks_acquired",
            "512 KiB blocks acquired and stored",
            m.blocks.clone(),
        );
        registry.register(
            "block_reads_throttled",
            "GetSnapshotBlock reads the service throttled (each retried)",
            m.throttled.clone(),
        );
        registry.register(
            "block_reads_retried",
            "GetSnapshotBlock reads retried (throttling, 5xx, dropped connections, checksum mismatches)",
            m.retried.clone(),
        );
        registry.register(
            "items",
            "Evidence items of the cases this daemon works, by step",
            m.items.clone(),
        );
        registry.register(
            "cases_running",
            "Cases being worked, by member account",
            m.running.clone(),
        );
        registry.register(
            "queue_age_seconds",
            "Age of the last request received when it was received",
            m.queue_age.clone(),
        );
        registry.register(
            "queue_messages",
            "Requests in the queue, by state (waiting, in_flight, dead_letter)",
            m.depth.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A request was received; `sent_ms` is when it was sent.
    pub fn received(&self, sent_ms: Option<u64>, now_ms: u64) {
        self.received.inc();
        if let Some(sent) = sent_ms {
            self.queue_age
                .set(i64::try_from(now_ms.saturating_sub(sent) / 1000).unwrap_or(i64::MAX));
        }
    }

    /// A request was refused with `code`.
    pub fn refused(&self, code: &str) {
        self.refused
            .get_or_create(&vec![("code".to_string(), code.to_string())])
            .inc();
    }

    /// A request was merged.
    pub fn merged(&self) {
        self.merged.inc();
    }

    /// A duplicate delivery of a request in hand.
    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    /// A case of `account` started.
    pub fn started(&self, account: &str) {
        self.running
            .get_or_create(&vec![("account".to_string(), account.to_string())])
            .inc();
    }

    /// A case of `account` stopped working (any outcome).
    pub fn finished(&self, account: &str) {
        self.running
            .get_or_create(&vec![("account".to_string(), account.to_string())])
            .dec();
    }

    /// A case completed.
    pub fn completed(&self) {
        self.completed.inc();
    }

    /// A case failed.
    pub fn failed(&self) {
        self.failed.inc();
    }

    /// A lease was lost.
    pub fn lease_lost(&self) {
        self.leases_lost.inc();
    }

    /// A receive failed.
    pub fn queue_error(&self) {
        self.queue_errors.inc();
    }

    /// `bytes` more were acquired.
    pub fn acquired(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.bytes.inc_by(bytes);
        let mut rest = self.block_rest.lock().unwrap_or_else(|p| p.into_inner());
        *rest += bytes;
        self.blocks.inc_by(*rest / BLOCK);
        *rest %= BLOCK;
    }

    /// The engine's process-wide read counters (throttled, retried) as they stand now.
    pub fn engine(&self, throttled: u64, retried: u64) {
        let mut seen = self.engine_seen.lock().unwrap_or_else(|p| p.into_inner());
        self.throttled.inc_by(throttled.saturating_sub(seen.0));
        self.retried.inc_by(retried.saturating_sub(seen.1));
        *seen = (seen.0.max(throttled), seen.1.max(retried));
    }

    /// Items of the cases being worked, counted by step (steps absent now are set to 0).
    pub fn items(&self, by_step: &std::collections::BTreeMap<String, i64>) {
        for step in ["pending", "snapshot", "acquiring", "acquired", "sealed"] {
            let n = by_step.get(step).copied().unwrap_or(0);
            self.items
                .get_or_create(&vec![("step".to_string(), step.to_string())])
                .set(n);
        }
    }

    /// The queue's depth as last read.
    pub fn depth(&self, waiting: u64, in_flight: u64, dead_letters: u64) {
        for (state, n) in [
            ("waiting", waiting),
            ("in_flight", in_flight),
            ("dead_letter", dead_letters),
        ] {
            self.depth
                .get_or_create(&vec![("state".to_string(), state.to_string())])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The receive loop went round.
    pub fn tick(&self) {
        self.tick_ms
            .store(crate::now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// When the receive loop last went round (ms since the epoch).
    pub fn last_tick_ms(&self) -> u64 {
        self.tick_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Cases completed so far.
    pub fn completed_count(&self) -> u64 {
        self.completed.get()
    }

    /// Every metric as Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::new();
        m.received(Some(1_000), 31_000);
        m.refused("malformed");
        m.started("111111111111");
        m.acquired(BLOCK * 3 + 10);
        let text = m.render();
        for line in [
            "forensnap_requests_received_total 1",
            "forensnap_requests_refused_total{code=\"malformed\"} 1",
            "forensnap_cases_running{account=\"111111111111\"} 1",
            "forensnap_blocks_acquired_total 3",
            "forensnap_queue_age_seconds 30",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
