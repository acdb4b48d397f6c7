//! `forensnap collect`.

use anyhow::{Context, bail};
use forensnap_collect::{CollectProgress, Collected, Scope, collect_scope, plan};
use forensnap_config::{Config, Member};
use forensnap_core::{CaseId, CaseLayout, EventDraft};

use crate::forensic::{Attribution, Forensic};
use crate::lease::Held;
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
    /// Capture the instance's memory first, through SSM with the pinned AVML build, before its
    /// volumes are snapshotted (`[memory] enabled` does it for every collection). A root user
    /// watching the host can see an SSM command run.
    #[arg(long)]
    memory: bool,
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
    let memory = args.memory || config.memory.enabled;
    if memory {
        // Refused before anything is recorded: the config names what capture needs.
        plan::memory_plan(&config, &member, &region, &args.instance)
            .map_err(|e| anyhow::anyhow!("collect --memory: {e} ({})", path.display()))?;
    }

    let forensic = Forensic::connect(&config, &args.who).await?;
    // The case's lease, before anything changes: a daemon or another responder may work it.
    let lease = Held::take_for(
        &forensic,
        &config,
        &case,
        Some(&forensnap_ports::Target {
            account: member.account.clone(),
            region: region.clone(),
            instance: args.instance.clone(),
        }),
    )
    .await?
    .collecting();
    let progress = TermProgress::new(args.common.output == Output::Json);
    let target = Target {
        member: &member,
        instance: &args.instance,
        region: &region,
        memory,
    };
    let result = lease
        .guard_then(
            collect_case(
                &config,
                &forensic,
                &case,
                &target,
                args.who.purpose.clone(),
                None,
                &progress,
            ),
            release_case_shares(&config, &forensic, &case, &target, args.who.purpose.clone()),
        )
        .await;
    progress.finish();
    let collected = result?;
    print(&collected, args.common.output, &config)
}

/// The instance a collection preserves.
pub struct Target<'a> {
    /// Its member account.
    pub member: &'a Member,
    /// The instance id.
    pub instance: &'a str,
    /// Its region.
    pub region: &'a str,
    /// Capture its memory before the snapshots.
    pub memory: bool,
}

/// After a collection was stopped (Ctrl-C, SIGTERM): remove any member snapshot share it left,
/// recorded in the case's custody chain. Logged, never fatal: the next run removes it too.
pub async fn release_case_shares(
    config: &Config,
    forensic: &Forensic,
    case: &CaseId,
    target: &Target<'_>,
    purpose: Option<String>,
) {
    let released = async {
        let custody = forensic.custody_for(config, case, purpose).await?;
        let member_ec2 = forensic
            .account
            .member_ec2(target.member, case, target.region);
        let key_arn = config.forensic.ebs_key_arn.clone();
        let plan = plan::preserve_plan(
            config,
            case,
            target.member,
            target.instance,
            target.region,
            &key_arn,
        );
        anyhow::Ok(forensnap_preserve::release_shares(&plan, &member_ec2, &custody).await?)
    };
    match released.await {
        Ok(0) => {}
        Ok(n) => eprintln!("forensnap: removed {n} snapshot share(s) the stopped run left"),
        Err(e) => eprintln!(
            "forensnap: could not check for snapshot shares the stopped run left ({e:#}); the next run of the case removes them"
        ),
    }
}

/// Collect one case and instance with the forensic account's adapters: what `collect` and the
/// daemon both run. `first` is recorded before the collection (the daemon's
/// `request.received`).
pub async fn collect_case(
    config: &Config,
    forensic: &Forensic,
    case: &CaseId,
    target: &Target<'_>,
    purpose: Option<String>,
    first: Option<EventDraft>,
    progress: &dyn CollectProgress,
) -> anyhow::Result<Collected> {
    collect_part(
        config,
        forensic,
        case,
        target,
        purpose,
        first,
        progress,
        &Scope::Whole,
    )
    .await
}

/// [`collect_case`] of a part of the case (the daemon's split cases).
#[allow(clippy::too_many_arguments)]
pub async fn collect_part(
    config: &Config,
    forensic: &Forensic,
    case: &CaseId,
    target: &Target<'_>,
    purpose: Option<String>,
    first: Option<EventDraft>,
    progress: &dyn CollectProgress,
    scope: &Scope,
) -> anyhow::Result<Collected> {
    let signer = forensic.signer(config).await?;
    let key_arn = forensic.account.ebs_key_arn().await.with_context(|| {
        format!(
            "forensic.ebs_key_arn {}: the key cannot be described in the forensic account; check the ARN and kms:DescribeKey",
            config.forensic.ebs_key_arn
        )
    })?;

    let custody = forensic.custody_for(config, case, purpose).await?;
    if let Some(draft) = first {
        custody.record(draft).await?;
    }

    let member_ec2 = forensic
        .account
        .member_ec2(target.member, case, target.region);
    let forensic_ec2 = forensic.account.forensic_ec2();

    let plan = plan::preserve_plan(
        config,
        case,
        target.member,
        target.instance,
        target.region,
        &key_arn,
    );
    let acquire_plan = plan::acquire_plan(config);
    let sink = forensic.store();
    let source = forensic.account.block_source();
    let trail_plan = plan::trail_plan(
        config,
        target.member,
        target.region,
        Some(target.instance),
        &[],
        None,
        None,
    );
    let trail_source = forensic
        .account
        .member_trail(target.member, case, target.region);
    let trail = config
        .cloudtrail
        .enabled
        .then_some((&trail_plan, &trail_source));
    // Memory first, when asked (a volume run of a split case never captures it).
    let memory_plan = match target.memory && !matches!(scope, Scope::Volume(_)) {
        true => Some(
            plan::memory_plan(config, target.member, target.region, target.instance)
                .map_err(|e| anyhow::anyhow!("memory capture of {}: {e}", target.instance))?,
        ),
        false => None,
    };
    let ssm = forensic
        .account
        .member_ssm(target.member, case, target.region);
    let transfer = forensic
        .account
        .transfer_store(config.memory.transfer_bucket.as_deref().unwrap_or_default());
    let memory = memory_plan
        .as_ref()
        .map(|plan| forensnap_collect::MemoryJob {
            plan,
            ssm: &ssm,
            transfer: &transfer,
        });
    Ok(collect_scope(
        &plan,
        &acquire_plan,
        &member_ec2,
        &forensic_ec2,
        &custody,
        &sink,
        &source,
        &signer,
        progress,
        scope,
        trail,
        &memory,
    )
    .await?)
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
                let hash = match (&item.image_sha256, &item.cloudtrail) {
                    (Some(image), _) => format!("image sha256 {image}"),
                    (None, Some(trail)) => match (trail.events, &trail.validation) {
                        (Some(events), _) => {
                            format!("{events} events, {} flagged", trail.flagged.unwrap_or(0))
                        }
                        (None, Some(validation)) => format!("trail files {validation}"),
                        (None, None) => String::new(),
                    },
                    (None, None) => item
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
