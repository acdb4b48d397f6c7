//! `forensnap memory`: a case instance's memory alone (what `collect --memory` does before the
//! snapshots): captured on the host through SSM with the pinned AVML build, streamed into the
//! case through presigned part URLs, both hashes compared, sealed and checkpointed.

use anyhow::{Context, bail};
use forensnap_collect::{MemoryItem, MemoryTarget, capture_memory, plan};
use forensnap_config::Config;
use forensnap_core::details::Details;
use forensnap_core::seal::SealedItem;
use forensnap_core::{CaseId, CaseLayout};
use forensnap_ports::Ec2;

use crate::forensic::{Attribution, Forensic};
use crate::lease::Held;
use crate::{Common, Output};

/// Arguments of `forensnap memory`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Member account of the instance (default: the case's, from its custody log).
    #[arg(long)]
    account: Option<String>,
    /// The instance (default: the case's, from its custody log).
    #[arg(long)]
    instance: Option<String>,
    /// Region of the instance (default: the case's, else the forensic region).
    #[arg(long)]
    region: Option<String>,
    #[command(flatten)]
    who: Attribution,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = &args.common.config;
    let config = Config::load(path)?;
    let case = CaseId::parse(&args.common.case)?;
    if let Some(instance) = &args.instance
        && !instance.starts_with("i-")
    {
        bail!("--instance {instance:?} is not an EC2 instance id (i-...)");
    }
    if args.instance.is_some() != args.account.is_some() {
        bail!("--account and --instance go together (or neither: the case's instance is used)");
    }
    let forensic = Forensic::connect(&config, &args.who).await?;
    let lease = Held::take(&forensic, &config, &case).await?;
    let item = lease
        .guard(memory_case(&config, &forensic, &case, &args))
        .await?;
    print(&item, args.common.output, &config, &case)
}

async fn memory_case(
    config: &Config,
    forensic: &Forensic,
    case: &CaseId,
    args: &Args,
) -> anyhow::Result<MemoryItem> {
    let custody = forensic
        .custody_for(config, case, args.who.purpose.clone())
        .await?;
    // The case's instance, as its custody log recorded it, unless named.
    let recorded = custody.events().await.into_iter().find_map(|e| {
        let subject = e.subject()?;
        matches!(e.details(), Ok(Some(Details::InstanceRecorded(_))))
            .then(|| (subject, e.region.clone()))
    });
    let (account, instance, region) = match (&args.account, &args.instance, recorded) {
        (Some(account), Some(instance), recorded) => (
            account.clone(),
            instance.clone(),
            args.region
                .clone()
                .or(recorded.and_then(|(_, r)| r))
                .unwrap_or_else(|| config.forensic.region.clone()),
        ),
        (_, _, Some((subject, region))) => (
            subject.member_account,
            subject.instance,
            args.region
                .clone()
                .or(region)
                .unwrap_or_else(|| config.forensic.region.clone()),
        ),
        _ => bail!(
            "case {case} has no instance record yet: give --account and --instance (and --region), or run `forensnap collect --memory` to capture memory before the snapshots"
        ),
    };
    let member = config.member(&args.common.config, &account)?.clone();
    let memory_plan = plan::memory_plan(config, &member, &region, &instance)
        .map_err(|e| anyhow::anyhow!("forensnap memory: {e} ({})", args.common.config.display()))?;
    let signer = forensic.signer(config).await?;
    // The instance as it is now: its type sizes the capture, its platform decides the tool.
    let member_ec2 = forensic.account.member_ec2(&member, case, &region);
    let described = member_ec2
        .describe_instance(&instance)
        .await
        .with_context(|| {
            format!(
                "DescribeInstances of {instance} in account {account} ({region}) through the case's member role"
            )
        })?;
    let Some(record) = described.value else {
        bail!(
            "instance {instance} does not exist in account {account} region {region}: check --instance and --region; a terminated instance has no memory left to capture"
        );
    };
    let target = MemoryTarget {
        instance_type: record.instance_type,
        platform: record.platform,
    };
    let ssm = forensic.account.member_ssm(&member, case, &region);
    let transfer = forensic
        .account
        .transfer_store(config.memory.transfer_bucket.as_deref().unwrap_or_default());
    let store = forensic.store();
    let item = match capture_memory(
        &memory_plan,
        &target,
        &ssm,
        &store,
        &transfer,
        &custody,
        &signer,
    )
    .await
    {
        Ok(item) => item,
        Err(e) => {
            // The events recorded so far are sealed; the next run resumes or captures again.
            let _ = custody.checkpoint(&signer, Vec::new()).await;
            bail!("case {case}: {e}");
        }
    };
    let layout = custody.layout().clone();
    custody
        .checkpoint(
            &signer,
            vec![SealedItem {
                id: item.id.clone(),
                prefix: layout.item(&item.id).prefix().to_string(),
                tagmanifest_sha256: item.bag.tagmanifest_sha256.clone(),
            }],
        )
        .await?;
    Ok(item)
}

fn print(item: &MemoryItem, output: Output, config: &Config, case: &CaseId) -> anyhow::Result<()> {
    let layout = CaseLayout::new(&config.forensic.evidence_prefix, case);
    let prefix = layout.item(&item.id).prefix().to_string();
    let s = &item.summary;
    match output {
        Output::Json => {
            let json = serde_json::json!({
                "id": item.id,
                "kind": forensnap_core::ItemKind::Memory,
                "bucket": config.forensic.evidence_bucket,
                "prefix": prefix,
                "image_sha256": s.image_sha256,
                "host_sha256": s.host_sha256,
                "memory": s,
                "files": item.bag.files,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Output::Text => {
            println!(
                "{:<34} memory           s3://{}/{prefix}",
                item.id, config.forensic.evidence_bucket
            );
            println!("    host sha256  {}", s.host_sha256);
            println!(
                "    image sha256 {} (S3's copy, hashed by forensnap: equal)",
                s.image_sha256
            );
            println!(
                "    {} bytes in {} parts, {} LiME ranges; SSM command {}; AVML sha256 {}",
                s.bytes, s.parts, s.lime_ranges, s.command_id, s.avml_sha256
            );
        }
    }
    Ok(())
}
