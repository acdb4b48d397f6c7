//! `forensnap collect`.

use std::time::Duration;

use anyhow::{Context, bail};
use forensnap_acquire::{AcquireOptions, FetchPolicy};
use forensnap_aws::{CaseRoleProvider, Clients, EbsSource, SdkEc2};
use forensnap_collect::{AcquirePlan, Collected, collect};
use forensnap_config::{Config, Reencrypt};
use forensnap_core::layout::Layout;
use forensnap_core::{CaseId, CaseLayout};
use forensnap_preserve::Plan;
use forensnap_preserve::wait::Backoff;

use crate::forensic::{Attribution, Forensic};
use crate::progress::TermProgress;
use crate::{Common, Output};

/// Arguments of `forensnap collect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Member account of the instance.
    #[arg(long)]
    account: String,
    /// The instance to preserve.
    #[arg(long)]
    instance: String,
    /// Region of the instance (default: the forensic region).
    #[arg(long)]
    region: Option<String>,
    #[command(flatten)]
    who: Attribution,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = &args.common.config;
    let config = Config::load(path)?;
    let case = CaseId::parse(&args.common.case)?;
    let member = config.member(path, &args.account)?.clone();
    if !args.instance.starts_with("i-") {
        bail!(
            "--instance {:?} is not an EC2 instance id (i-...)",
            args.instance
        );
    }
    let region = args
        .region
        .clone()
        .unwrap_or_else(|| config.forensic.region.clone());

    let forensic = Forensic::connect(&config, &args.who).await?;
    let signer = forensic.signer(&config).await?;
    let forensic_sdk = forensic.sdk.clone();
    let forensic_clients = forensic.clients.clone();
    let key = forensic_clients
        .kms
        .describe_key()
        .key_id(&config.forensic.ebs_key_arn)
        .send()
        .await
        .with_context(|| format!("forensic.ebs_key_arn {}: the key cannot be described in the forensic account; check the ARN and kms:DescribeKey", config.forensic.ebs_key_arn))?;
    let key_arn = key
        .key_metadata()
        .and_then(|m| m.arn())
        .unwrap_or(&config.forensic.ebs_key_arn)
        .to_string();

    let mut log = forensic.custody_log(&config, &case, &args.who).await?;

    let role_arn = member.role_arn();
    let session = CaseRoleProvider::new(
        forensic_clients.sts.clone(),
        &role_arn,
        &member.external_id,
        &case,
        Duration::from_secs(u64::from(config.collect.session_seconds)),
    );
    let member_sdk = session.member_config(&forensic_sdk, &region);
    let member_ec2 = SdkEc2::new(
        Clients::new(&member_sdk, &config.aws.endpoints),
        &member.account,
        &region,
    );
    let forensic_ec2 = SdkEc2::new(
        forensic_clients,
        &config.forensic.account,
        &config.forensic.region,
    );

    let fill = |s: &str| s.replace("{case}", case.as_str());
    let plan = Plan {
        case: case.clone(),
        member_account: member.account.clone(),
        member_region: region,
        instance_id: args.instance.clone(),
        forensic_account: config.forensic.account.clone(),
        forensic_key_arn: key_arn,
        role_arn,
        session_name: case.session_name(),
        source_identity: case.source_identity(),
        member_tags: config
            .collect
            .member_tags
            .iter()
            .map(|(k, v)| (fill(k), fill(v)))
            .collect(),
        description: fill(&config.collect.snapshot_description),
        reencrypt_always: config.collect.reencrypt == Reencrypt::Always,
        max_concurrent_copies: config.collect.max_concurrent_copies as usize,
        backoff: Backoff {
            initial: Duration::from_secs_f64(config.collect.poll_initial_seconds),
            max: Duration::from_secs_f64(config.collect.poll_max_seconds),
            limit: Duration::from_secs(config.collect.wait_timeout_minutes * 60),
        },
        tool: format!("forensnap {}", env!("CARGO_PKG_VERSION")),
    };
    let acquire_plan = acquire_plan(&config);
    let sink = forensic.store(&config);
    let source = EbsSource::new(&forensic_sdk, config.aws.endpoints.ebs.as_deref());
    let progress = TermProgress::new(args.common.output == Output::Json);
    let result = collect(
        &plan,
        &acquire_plan,
        &member_ec2,
        &forensic_ec2,
        &mut log,
        &sink,
        &source,
        &signer,
        &progress,
    )
    .await;
    progress.finish();
    let collected = result?;
    print(&collected, args.common.output, &config)
}

/// Acquisition settings from the config's `[acquire]` table.
fn acquire_plan(config: &Config) -> AcquirePlan {
    let a = &config.acquire;
    AcquirePlan {
        options: AcquireOptions {
            window: a.window_blocks as usize,
            channel_blocks: 4,
            list_page: 10_000,
            policy: FetchPolicy::default(),
            layout: match a.layout {
                forensnap_config::Layout::Blocks => Layout::Blocks,
                forensnap_config::Layout::Raw => Layout::Raw,
            },
        },
        concurrent_volumes: a.concurrent_volumes as usize,
        initial_reads: (a.max_reads_per_volume as usize).min(16),
        max_reads: a.max_reads_per_volume as usize,
        snapshot_rps: f64::from(a.requests_per_second_per_snapshot),
        account_rps: f64::from(a.requests_per_second_per_account),
        tool: format!("forensnap {}", env!("CARGO_PKG_VERSION")),
    }
}

fn print(collected: &Collected, output: Output, config: &Config) -> anyhow::Result<()> {
    let preserved = &collected.preserved;
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(collected)?);
        }
        Output::Text => {
            println!(
                "case {}: instance {} of account {} ({}) preserved",
                preserved.case, preserved.instance_id, preserved.account, preserved.region
            );
            for v in &preserved.volumes {
                println!(
                    "  {:<10} {}  member snapshot {}  ->  forensic snapshot {} ({} GiB, key {})",
                    v.device,
                    v.volume_id,
                    v.member_snapshot_id,
                    v.snapshot_id,
                    v.size_gib,
                    v.kms_key_id
                );
            }
            println!("  evidence items (BagIt bags, Object Lock COMPLIANCE):");
            for item in &collected.evidence {
                let hash = match &item.image_sha256 {
                    Some(image) => format!("image sha256 {image}"),
                    None => item
                        .files
                        .first()
                        .map(|(path, sha)| format!("{path} sha256 {sha}"))
                        .unwrap_or_default(),
                };
                println!(
                    "    {:<34} {:<16} s3://{}/{}  {hash}",
                    item.id,
                    item.kind.as_str(),
                    item.bucket,
                    item.prefix
                );
            }
            println!(
                "  custody: {} events in s3://{}/{}, head sha256 {}",
                preserved.custody_events,
                config.forensic.evidence_bucket,
                CaseLayout::new(
                    &config.forensic.evidence_prefix,
                    &CaseId::parse(&preserved.case)?
                )
                .events(),
                preserved.custody_head_sha256
            );
        }
    }
    Ok(())
}
