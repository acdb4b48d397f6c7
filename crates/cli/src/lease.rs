//! The case's lease for commands run by hand (`collect`, `export`, `verify`): taken in the case
//! table before anything changes, renewed while the command runs, released at the end, on an
//! error, and on Ctrl-C or SIGTERM (which also stop the command at a resumable point). Without a
//! `[daemon] case_table` in the config there is no lease, as before the daemon existed.

use std::future::Future;
use std::time::Duration;

use anyhow::bail;
use forensnap_aws::DynamoCaseTable;
use forensnap_config::Config;
use forensnap_core::CaseId;
use forensnap_daemon::now_ms;
use forensnap_ports::{CaseState, CaseTable, Lease, LeaseError, Target};

use crate::forensic::Forensic;

/// A held lease (or none, without a case table).
pub struct Held {
    held: Option<(DynamoCaseTable, Lease, u64)>,
    /// Whether the command collects: the case's state follows it (running, then completed or
    /// failed).
    collects: bool,
}

/// This process as a lease owner: `cli:<user>@<host>:<pid>`.
pub fn cli_owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    format!("cli:{user}@{}:{}", host(), std::process::id())
}

/// This machine's name, for lease owners.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_string())
}

impl Held {
    /// Take `case`'s lease for this process, or refuse naming the holder.
    pub async fn take(forensic: &Forensic, config: &Config, case: &CaseId) -> anyhow::Result<Held> {
        Self::take_for(forensic, config, case, None).await
    }

    /// [`Held::take`], naming the instance the command collects.
    pub async fn take_for(
        forensic: &Forensic,
        config: &Config,
        case: &CaseId,
        target: Option<&Target>,
    ) -> anyhow::Result<Held> {
        let Some(table) = forensic.account.case_table() else {
            return Ok(Held {
                held: None,
                collects: false,
            });
        };
        let ttl = config.daemon.lease_seconds * 1000;
        match table
            .take(case.as_str(), &cli_owner(), ttl, now_ms(), target)
            .await
        {
            Ok(lease) => {
                // A split case's volumes are worked under their own leases while the case's is
                // free: a volume another holder works refuses the command too.
                let now = now_ms();
                let busy = match table.case(case.as_str()).await {
                    Ok(Some((_, items))) => items.into_iter().find(|i| {
                        !i.owner.is_empty()
                            && i.owner != lease.owner
                            && i.expires_ms.is_some_and(|e| e >= now)
                    }),
                    _ => None,
                };
                if let Some(item) = busy {
                    let _ = table.release(&lease, now).await;
                    bail!(
                        "volume {} of case {case} is being worked by {} (lease until {} UTC, token {}); forensnap will not act on a case another holder works. Next: wait for it (`forensnap status --case {case}`), or after the holder is gone wait until the lease lapses",
                        item.item,
                        item.owner,
                        forensnap_ports::state::utc_ms(item.expires_ms.unwrap_or_default()),
                        item.token
                    );
                }
                Ok(Held {
                    held: Some((table, lease, ttl)),
                    collects: false,
                })
            }
            Err(e @ LeaseError::Held { .. }) => bail!("{e}"),
            Err(e) => bail!(
                "case table {}: cannot take the case's lease: {e}. Next: check [daemon] case_table and the dynamodb:UpdateItem permission, or remove case_table from the config to work without leases",
                table.name()
            ),
        }
    }

    /// The command collects: the case's state in the table follows it.
    pub fn collecting(mut self) -> Self {
        self.collects = true;
        self
    }

    /// Run `work` under the lease: renewed every third of its length; on Ctrl-C or SIGTERM,
    /// or when the lease is lost, `work` stops where it is (resumable, as after a crash). The
    /// lease is released whatever the end.
    pub async fn guard<T>(
        self,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.guard_then(work, async {}).await
    }

    /// [`Held::guard`], running `on_signal` after `work` was stopped by Ctrl-C or SIGTERM and
    /// before the lease is released (to undo what must not stay half-done, such as a share).
    pub async fn guard_then<T>(
        self,
        work: impl Future<Output = anyhow::Result<T>>,
        on_signal: impl Future<Output = ()>,
    ) -> anyhow::Result<T> {
        let stopped = |signal: &str| {
            anyhow::anyhow!(
                "{signal}: stopped at a resumable point; run the same command again to continue"
            )
        };
        let Some((table, lease, ttl)) = self.held else {
            let result = tokio::select! {
                result = work => Ok(result),
                signal = interrupted() => Err(signal),
            };
            return match result {
                Ok(result) => result,
                Err(signal) => {
                    on_signal.await;
                    Err(stopped(signal))
                }
            };
        };
        let beat = async {
            let mut lease = lease.clone();
            loop {
                tokio::time::sleep(Duration::from_millis(ttl / 3)).await;
                match table.renew(&lease, ttl, now_ms()).await {
                    Ok(renewed) => lease = renewed,
                    Err(e @ LeaseError::Lost { .. }) => return e,
                    Err(e) if now_ms() < lease.expires_ms => {
                        tracing::warn!(error = %e, "cannot renew the case's lease; trying again");
                    }
                    Err(e) => return e,
                }
            }
        };
        if self.collects
            && let Err(e) = table
                .set_state(&lease, CaseState::Running, None, now_ms())
                .await
        {
            tracing::warn!(error = %e, "cannot mark the case running in the case table");
        }
        let result = tokio::select! {
            result = work => result,
            lost = beat => Err(anyhow::anyhow!("{lost}")),
            signal = interrupted() => {
                on_signal.await;
                Err(stopped(signal))
            }
        };
        if self.collects {
            let (state, message) = match &result {
                Ok(_) => (CaseState::Completed, None),
                Err(e) => (CaseState::Failed, Some(format!("{e:#}"))),
            };
            // The lease may have been renewed meanwhile: the token and owner are what count.
            let current = Lease {
                expires_ms: now_ms() + ttl,
                ..lease.clone()
            };
            match table
                .end(&current, state, message.as_deref(), now_ms())
                .await
            {
                Ok(()) => return result,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record the case's state in the case table")
                }
            }
        }
        if let Err(e) = table.release(&lease, now_ms()).await {
            tracing::warn!(error = %e, "cannot release the case's lease; it lapses by itself");
        }
        result
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, naming which.
pub async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted (SIGINT)";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted (SIGINT)",
        _ = term.recv() => "terminated (SIGTERM)",
    }
}
