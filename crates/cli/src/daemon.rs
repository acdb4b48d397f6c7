//! `forensnap daemon`, `forensnap submit` and `forensnap status`: the daemon over the
//! forensic account's request queue and case table ([`forensnap_daemon`]), a request sent to
//! it, and what the table says of each case.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use forensnap_config::Config;
use forensnap_core::details::RequestReceived;
use forensnap_core::intake::{self, CaseRequest, IntakeRules, Source, SubmitRequest};
use forensnap_core::{CaseId, EventDraft};
use forensnap_daemon::{Collector, Daemon, ItemSink, Metrics, Outcome, Settings};
use forensnap_evidence::ByteProgress;
use forensnap_ports::{CaseTable, RequestQueue, SnapshotInfo};
use forensnap_preserve::Progress;
use tokio::sync::watch;

use crate::Output;
use crate::collect::{Target, collect_part, release_case_shares};
use crate::forensic::{Attribution, Forensic};
use crate::lease::{host, interrupted};
use forensnap_collect::{Collected, Scope};

/// Arguments of `forensnap daemon`.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// forensnap config file (see config/forensnap.toml); `[daemon]` names the queue and table.
    #[arg(long, env = "FORENSNAP_CONFIG")]
    config: std::path::PathBuf,
    /// Listen address of /healthz and /metrics (overrides `[daemon] listen`).
    #[arg(long)]
    listen: Option<String>,
    #[command(flatten)]
    who: Attribution,
}

/// The intake rules the config sets.
pub fn rules(config: &Config) -> IntakeRules {
    IntakeRules {
        accounts: config.members.iter().map(|m| m.account.clone()).collect(),
        default_region: config.forensic.region.clone(),
        guardduty_types: config.daemon.guardduty.finding_types.clone(),
        guardduty_min_severity: config.daemon.guardduty.min_severity,
        case_prefix: config.daemon.case_prefix.clone(),
    }
}

fn source_kind(source: &Source) -> &'static str {
    match source {
        Source::Submit { .. } => "submit",
        Source::SecurityHub { .. } => "security-hub",
        Source::GuardDuty { .. } => "guardduty",
    }
}

/// The `request.received` event of a request.
fn received(request: &CaseRequest, merged: bool) -> EventDraft {
    EventDraft::new(RequestReceived {
        message_id: String::new(),
        source: source_kind(&request.source).to_string(),
        requested_case: request.case.to_string(),
        account: request.account.clone(),
        region: request.region.clone(),
        instance: request.instance.clone(),
        reason: request.reason.clone(),
        request: serde_json::to_string(request).unwrap_or_default(),
        merged,
    })
    .at(&request.account, &request.region)
}

/// The collection the daemon runs: `collect` of the request's case and instance.
struct AwsCollector {
    config: Arc<Config>,
    forensic: Arc<Forensic>,
}

/// `collect` of (a part of) the request's case and instance, `request.received` recorded
/// first when the run starts the case.
async fn collect_request(
    config: &Config,
    forensic: &Forensic,
    request: &CaseRequest,
    sink: Arc<dyn ItemSink>,
    scope: &Scope,
    record_request: bool,
) -> Result<Collected, String> {
    let Ok(member) = config.member(std::path::Path::new("config"), &request.account) else {
        return Err(format!(
            "account {} is not one of the config's [[members]]",
            request.account
        ));
    };
    let target = Target {
        member,
        instance: &request.instance,
        region: &request.region,
        memory: config.memory.enabled,
    };
    let progress = Reported::new(sink, scope);
    let first = record_request.then(|| received(request, false));
    collect_part(
        config,
        forensic,
        &request.case,
        &target,
        request.reason.clone(),
        first,
        &progress,
        scope,
    )
    .await
    .map_err(|e| format!("{e:#}"))
}

/// Item progress of a collection, reported to the daemon under each volume's item id (the
/// acquisition reports its forensic snapshot; preservation says which volume that is).
struct Reported {
    sink: Arc<dyn ItemSink>,
    volumes: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// A run of one volume: every position is that volume's.
    only: Option<String>,
}

impl Reported {
    fn new(sink: Arc<dyn ItemSink>, scope: &Scope) -> Self {
        Reported {
            sink,
            volumes: std::sync::Mutex::new(std::collections::HashMap::new()),
            only: match scope {
                Scope::Volume(item) => Some(item.clone()),
                _ => None,
            },
        }
    }
}

impl Progress for Reported {
    fn snapshot(&self, volume_id: &str, stage: &str, info: &SnapshotInfo) {
        if stage == "forensic" {
            self.volumes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(info.id.clone(), volume_id.to_string());
        }
        let step = format!(
            "snapshot {stage} {}",
            info.progress.as_deref().unwrap_or("")
        );
        self.sink.item(volume_id, step.trim(), 0, 0);
    }
    fn step(&self, message: &str) {
        tracing::info!(step = message, "collection step");
    }
}

impl ByteProgress for Reported {
    fn position(&self, id: &str, position: u64, total: u64) {
        let item = self.only.clone().unwrap_or_else(|| {
            self.volumes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .cloned()
                .unwrap_or_else(|| id.to_string())
        });
        let step = if position >= total {
            "acquired"
        } else {
            "acquiring"
        };
        self.sink.item(&item, step, position, total);
    }
}

impl AwsCollector {
    /// Run `scope` of `request`'s case. The collection's future is not provably `Send` (a
    /// compiler limit with the closures of its streams), so it runs on a blocking-pool thread
    /// of its own, as `collect` runs on the main thread; dropping this future (shutdown, lost
    /// lease) cancels it there.
    async fn run(
        &self,
        request: &CaseRequest,
        sink: Arc<dyn ItemSink>,
        scope: Scope,
        record_request: bool,
    ) -> Result<Collected, String> {
        let (config, forensic, request) = (
            Arc::clone(&self.config),
            Arc::clone(&self.forensic),
            request.clone(),
        );
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Handle::current();
        let run = tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                tokio::select! {
                    result = collect_request(&config, &forensic, &request, sink, &scope, record_request) => result,
                    _ = cancelled => Err("cancelled".to_string()),
                }
            })
        });
        let result = run
            .await
            .unwrap_or_else(|e| Err(format!("the collection ended abnormally: {e}")));
        drop(cancel);
        result
    }
}

fn outcome(result: Result<Collected, String>) -> Outcome {
    match result {
        Ok(_) => Outcome::Completed,
        Err(why) => Outcome::Failed(why),
    }
}

impl Collector for AwsCollector {
    async fn collect(&self, request: &CaseRequest, sink: Arc<dyn ItemSink>) -> Outcome {
        outcome(self.run(request, sink, Scope::Whole, true).await)
    }

    async fn complete(&self, request: &CaseRequest, sink: Arc<dyn ItemSink>) -> Outcome {
        outcome(self.run(request, sink, Scope::Whole, false).await)
    }

    async fn prepare(
        &self,
        request: &CaseRequest,
        sink: Arc<dyn ItemSink>,
    ) -> Result<Vec<String>, String> {
        let prepared = self.run(request, sink, Scope::Prepare, true).await?;
        Ok(prepared
            .preserved
            .volumes
            .iter()
            .map(|v| v.volume_id.clone())
            .collect())
    }

    async fn item(&self, request: &CaseRequest, item: &str, sink: Arc<dyn ItemSink>) -> Outcome {
        outcome(
            self.run(request, sink, Scope::Volume(item.to_string()), false)
                .await,
        )
    }

    async fn stopped(&self, request: &CaseRequest) {
        let Ok(member) = self
            .config
            .member(std::path::Path::new("config"), &request.account)
        else {
            return;
        };
        let target = Target {
            member,
            instance: &request.instance,
            region: &request.region,
            memory: false,
        };
        release_case_shares(
            &self.config,
            &self.forensic,
            &request.case,
            &target,
            request.reason.clone(),
        )
        .await;
    }

    async fn merged(&self, into: &str, request: &CaseRequest) -> Result<(), String> {
        let case = CaseId::parse(into).map_err(|e| e.to_string())?;
        let custody = self
            .forensic
            .custody_for(&self.config, &case, request.reason.clone())
            .await
            .map_err(|e| format!("{e:#}"))?;
        custody
            .record(received(request, true))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// `forensnap daemon`.
pub async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let rules = rules(&config);
    rules
        .check()
        .map_err(|e| anyhow::anyhow!("config {}: {e}", args.config.display()))?;
    let forensic = Forensic::connect(&config, &args.who).await?;
    let Some(queue) = forensic.account.request_queue() else {
        bail!(
            "config {}: [daemon] queue_url and dead_letter_queue_url are not set: the daemon takes its requests from the forensic account's request queue (forensic-account.yaml outputs RequestQueueUrl and RequestDeadLetterQueueUrl)",
            args.config.display()
        );
    };
    let Some(table) = forensic.account.case_table() else {
        bail!(
            "config {}: [daemon] case_table is not set: the daemon keeps its leases in the case table (forensic-account.yaml output CaseTableName)",
            args.config.display()
        );
    };
    let d = &config.daemon;
    let settings = Settings {
        owner: format!("daemon:{}:{}", host(), std::process::id()),
        lease: Duration::from_secs(d.lease_seconds),
        wait: Duration::from_secs(d.wait_seconds),
        max_cases: d.max_cases as usize,
        max_cases_per_account: d.max_cases_per_account as usize,
        shutdown: Duration::from_secs(d.shutdown_seconds),
        split_volumes: d.split_volumes,
        rules,
    };
    let metrics = Arc::new(Metrics::new());
    let (stop, stopping) = watch::channel(false);
    let _ops = match args.listen.as_deref().or(d.listen.as_deref()) {
        Some(listen) => Some(
            forensnap_daemon::ops::serve(listen, Arc::clone(&metrics), stopping.clone())
                .await
                .with_context(|| format!("daemon.listen {listen}: cannot listen there"))?,
        ),
        None => None,
    };
    let collector = AwsCollector {
        config: Arc::new(config.clone()),
        forensic: Arc::new(forensic),
    };
    let daemon = Daemon::new(queue, table, collector, settings, Arc::clone(&metrics));
    let signals = async {
        let signal = interrupted().await;
        tracing::info!(signal, "stopping");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        let _ = stop.send(true);
        // The daemon winds down by itself from here (bounded by shutdown_seconds).
        std::future::pending::<()>().await;
    };
    // systemd (Type=notify): ready once the daemon takes work; the watchdog is fed only while
    // the receive loop goes round (a hung loop gets the service restarted). Without systemd
    // (no NOTIFY_SOCKET) these do nothing.
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("taking case requests"),
    ]);
    // The engine's read counters (process-wide) into the metrics, every few seconds.
    let engine = {
        let metrics = Arc::clone(&metrics);
        async move {
            loop {
                let (throttled, retried) = forensnap_acquire::read_counters();
                metrics.engine(throttled, retried);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let watchdog = async {
        let Some(every) = sd_notify::watchdog_enabled() else {
            return std::future::pending::<()>().await;
        };
        loop {
            tokio::time::sleep(every / 2).await;
            let quiet = forensnap_daemon::now_ms().saturating_sub(metrics.last_tick_ms());
            if u128::from(quiet) < every.as_millis() {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::error!(
                    quiet_ms = quiet,
                    "the receive loop has not gone round; not feeding the watchdog"
                );
            }
        }
    };
    tokio::select! {
        () = daemon.run(stopping) => {}
        () = signals => {}
        () = watchdog => {}
        () = engine => {}
    }
    // After the signal, the daemon itself winds down (bounded by shutdown_seconds).
    Ok(())
}

/// Arguments of `forensnap submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// forensnap config file; `[daemon] queue_url` names the queue.
    #[arg(long, env = "FORENSNAP_CONFIG")]
    config: std::path::PathBuf,
    /// Case id, e.g. IR-2026-0042.
    #[arg(long)]
    case: String,
    /// Member account of the instance.
    #[arg(long)]
    account: String,
    /// The instance to preserve.
    #[arg(long)]
    instance: String,
    /// Region of the instance (default: the forensic region).
    #[arg(long)]
    region: Option<String>,
    /// Why, recorded with the case.
    #[arg(long)]
    reason: Option<String>,
    /// Who asks (default: config `operator`, then $USER).
    #[arg(long, env = "FORENSNAP_OPERATOR")]
    operator: Option<String>,
    /// Result format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// `forensnap submit`.
pub async fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let case = CaseId::parse(&args.case)?;
    let who = args
        .operator
        .clone()
        .or_else(|| config.operator.clone())
        .or_else(|| std::env::var("USER").ok());
    let request = SubmitRequest::new(
        &case,
        &args.account,
        &args.instance,
        args.region.as_deref(),
        args.reason.as_deref(),
        who.as_deref(),
    );
    let body = request.to_json();
    // The daemon's own check, before anything is sent.
    intake::parse(&body, &rules(&config))
        .map_err(|e| anyhow::anyhow!("the request would be refused: {e}"))?;
    let forensic = Forensic::connect(
        &config,
        &Attribution {
            operator: who.clone(),
            purpose: args.reason.clone(),
        },
    )
    .await?;
    let Some(queue) = forensic.account.request_queue() else {
        bail!(
            "config {}: [daemon] queue_url and dead_letter_queue_url are not set (forensic-account.yaml outputs RequestQueueUrl and RequestDeadLetterQueueUrl)",
            args.config.display()
        );
    };
    let id = queue
        .send(&body)
        .await
        .with_context(|| format!("sending the request to {}", queue.name()))?;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"message_id": id, "case": case.as_str(), "queue": queue.name()})
        ),
        Output::Text => println!(
            "request for case {case} sent ({id}); follow it with `forensnap status --config {} --case {case}`",
            args.config.display()
        ),
    }
    Ok(())
}

/// Arguments of `forensnap status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// forensnap config file; `[daemon] case_table` names the table.
    #[arg(long, env = "FORENSNAP_CONFIG")]
    config: std::path::PathBuf,
    /// One case (default: every case).
    #[arg(long)]
    case: Option<String>,
    /// Result format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// `forensnap status`.
pub async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let forensic = Forensic::connect(
        &config,
        &Attribution {
            operator: None,
            purpose: None,
        },
    )
    .await?;
    let Some(table) = forensic.account.case_table() else {
        bail!(
            "config {}: [daemon] case_table is not set (forensic-account.yaml output CaseTableName)",
            args.config.display()
        );
    };
    let now = forensnap_daemon::now_ms();
    match &args.case {
        Some(case) => {
            let case = CaseId::parse(case)?;
            let Some((record, items)) = table.case(case.as_str()).await? else {
                bail!(
                    "case {case} is not in the case table {}: no request for it was taken yet",
                    table.name()
                );
            };
            match args.output {
                Output::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"case": record, "items": items})
                    )?
                ),
                Output::Text => {
                    println!("{}", line(&record, now));
                    for item in &items {
                        let pct = if item.total_bytes > 0 {
                            format!(
                                " {:.1}%",
                                item.done_bytes as f64 * 100.0 / item.total_bytes as f64
                            )
                        } else {
                            String::new()
                        };
                        println!(
                            "  {:<28} {:<24} {}/{} bytes{pct}",
                            item.item, item.step, item.done_bytes, item.total_bytes
                        );
                    }
                }
            }
        }
        None => {
            let records = table.cases().await?;
            match args.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&records)?),
                Output::Text => {
                    if records.is_empty() {
                        println!("no cases in {}", table.name());
                    }
                    for record in &records {
                        println!("{}", line(record, now));
                    }
                }
            }
        }
    }
    Ok(())
}

fn line(record: &forensnap_ports::CaseRecord, now: u64) -> String {
    let target = record
        .target
        .as_ref()
        .map(|t| format!(" {} {} {}", t.account, t.region, t.instance))
        .unwrap_or_default();
    let holder = match (&record.owner, record.expires_ms) {
        (Some(owner), Some(expires)) if expires >= now => {
            format!(" held by {owner} for {}s", (expires - now) / 1000)
        }
        (Some(owner), _) => format!(" lease of {owner} lapsed"),
        _ => String::new(),
    };
    let message = record
        .message
        .as_deref()
        .map(|m| format!(" -- {m}"))
        .unwrap_or_default();
    format!(
        "{:<24} {:<9}{target}{holder} requests {}{message}",
        record.case, record.state, record.requests
    )
}
