//! A collection's plans built from the config: what preservation is told to do (names, tags
//! and the snapshot description with `{case}` filled in, re-encryption, polling) and how volumes
//! are acquired (the `[acquire]` table).

use std::time::Duration;

use forensnap_acquire::{AcquireOptions, FetchPolicy};
use forensnap_config::{Config, Member, Reencrypt};
use forensnap_core::CaseId;
use forensnap_preserve::Plan;
use forensnap_preserve::wait::Backoff;

use crate::AcquirePlan;

/// Name and version of the tool, recorded in custody events and bag-info.txt.
pub fn tool() -> String {
    format!("forensnap {}", env!("CARGO_PKG_VERSION"))
}

/// The preservation plan of `instance_id` of `member` in `region` for `case`, with the forensic
/// EBS key's ARN as KMS resolved it.
pub fn preserve_plan(
    config: &Config,
    case: &CaseId,
    member: &Member,
    instance_id: &str,
    region: &str,
    forensic_key_arn: &str,
) -> Plan {
    let fill = |s: &str| s.replace("{case}", case.as_str());
    let collect = &config.collect;
    Plan {
        case: case.clone(),
        member_account: member.account.clone(),
        member_region: region.to_string(),
        instance_id: instance_id.to_string(),
        forensic_account: config.forensic.account.clone(),
        forensic_key_arn: forensic_key_arn.to_string(),
        role_arn: member.role_arn(),
        session_name: case.session_name(),
        source_identity: case.source_identity(),
        member_tags: collect
            .member_tags
            .iter()
            .map(|(k, v)| (fill(k), fill(v)))
            .collect(),
        description: fill(&collect.snapshot_description),
        reencrypt_always: collect.reencrypt == Reencrypt::Always,
        max_concurrent_copies: collect.max_concurrent_copies as usize,
        backoff: Backoff {
            initial: Duration::from_secs_f64(collect.poll_initial_seconds),
            max: Duration::from_secs_f64(collect.poll_max_seconds),
            limit: Duration::from_secs(collect.wait_timeout_minutes * 60),
        },
        tool: tool(),
        retention_days: config.forensic.retention_days,
    }
}

/// Acquisition settings from the config's `[acquire]` table.
pub fn acquire_plan(config: &Config) -> AcquirePlan {
    let a = &config.acquire;
    AcquirePlan {
        options: AcquireOptions {
            window: a.window_blocks as usize,
            uploads: a.uploads_per_volume as usize,
            part_bytes: u64::from(a.part_mib) << 20,
            list_page: 10_000,
            policy: FetchPolicy::default(),
            layout: a.layout,
        },
        concurrent_volumes: a.concurrent_volumes as usize,
        initial_reads: (a.max_reads_per_volume as usize).min(16),
        max_reads: a.max_reads_per_volume as usize,
        snapshot_rps: f64::from(a.requests_per_second_per_snapshot),
        account_rps: f64::from(a.requests_per_second_per_account),
        tool: tool(),
    }
}

/// The CloudTrail plan of a case from the config's `[cloudtrail]` table: `member`'s account in
/// `region`, about `instance` when there is one, with `principals` looked up besides the
/// configured ones and the window's ends when given.
pub fn trail_plan(
    config: &Config,
    member: &Member,
    region: &str,
    instance: Option<&str>,
    principals: &[String],
    since: Option<time::OffsetDateTime>,
    until: Option<time::OffsetDateTime>,
) -> crate::TrailPlan {
    let t = &config.cloudtrail;
    let mut all = t.principals.clone();
    all.extend(
        principals
            .iter()
            .filter(|p| !t.principals.contains(p))
            .cloned(),
    );
    crate::TrailPlan {
        forensic_account: config.forensic.account.clone(),
        account: member.account.clone(),
        region: region.to_string(),
        instance_id: instance.map(str::to_string),
        principals: all,
        lookback_hours: t.lookback_hours,
        since,
        until,
        requests_per_second: t.lookup_requests_per_second,
        trail_logs: t.trail_logs,
        trail: t.trail.clone(),
        trail_bucket: t.trail_bucket.clone(),
        trail_prefix: t.trail_prefix.clone(),
        tool: tool(),
    }
}

/// The memory capture plan of `instance` from the config's `[memory]` table, or what the config
/// lacks for one (each missing key named, with where its value comes from).
pub fn memory_plan(
    config: &Config,
    member: &Member,
    region: &str,
    instance: &str,
) -> Result<crate::MemoryPlan, String> {
    let m = &config.memory;
    let mut missing = Vec::new();
    if m.transfer_bucket.is_none() {
        missing.push("memory.transfer_bucket (forensic-account.yaml output TransferBucketName)");
    }
    if m.avml_key.is_none() || m.avml_sha256.is_none() {
        missing.push(
            "memory.avml_key and memory.avml_sha256 (an AVML build you put in the evidence bucket, and its SHA-256)",
        );
    }
    let (Some(avml_key), Some(avml_sha256), true) = (
        m.avml_key.clone(),
        m.avml_sha256.clone(),
        missing.is_empty(),
    ) else {
        return Err(format!(
            "memory capture needs {} in the config",
            missing.join(" and ")
        ));
    };
    Ok(crate::MemoryPlan {
        forensic_account: config.forensic.account.clone(),
        account: member.account.clone(),
        region: region.to_string(),
        instance_id: instance.to_string(),
        document: m.document.clone(),
        document_sha256: m.document_sha256.clone(),
        avml_key,
        avml_sha256: avml_sha256.to_ascii_lowercase(),
        timeout_seconds: m.timeout_minutes.saturating_mul(60),
        part_bytes: u64::from(m.part_mib) << 20,
        url_lifetime: std::time::Duration::from_secs(u64::from(m.url_minutes) * 60),
        poll: std::time::Duration::from_secs(3),
        comment: m.comment.clone().filter(|c| !c.is_empty()),
        tool: tool(),
    })
}
