//! `forensnap trail`: a case's CloudTrail evidence alone (what `collect` does beside the
//! volumes): the LookupEvents pages of the case's instance and the named principals, the
//! trail's files validated, the timeline; sealed and checkpointed in the case.

use anyhow::{Context, bail};
use forensnap_collect::{collect_trail, plan};
use forensnap_config::Config;
use forensnap_core::details::Details;
use forensnap_core::seal::SealedItem;
use forensnap_core::{CaseId, CaseLayout};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::forensic::{Attribution, Forensic};
use crate::lease::Held;
use crate::{Common, Output};

/// Arguments of `forensnap trail`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Member account whose CloudTrail is read (default: the account of the case's instance).
    #[arg(long)]
    account: Option<String>,
    /// Region (default: the region of the case's instance, else the forensic region).
    #[arg(long)]
    region: Option<String>,
    /// A principal to look up besides the case's instance: an access key id, an IAM user ARN
    /// or a role ARN. Repeat for more.
    #[arg(long = "principal")]
    principals: Vec<String>,
    /// Start of the window, RFC 3339 (default: `cloudtrail.lookback_hours` before the case's
    /// first custody event).
    #[arg(long)]
    since: Option<String>,
    /// End of the window, RFC 3339 (default: now).
    #[arg(long)]
    until: Option<String>,
    #[command(flatten)]
    who: Attribution,
}

fn time_arg(flag: &str, text: Option<&str>) -> anyhow::Result<Option<OffsetDateTime>> {
    text.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339).with_context(|| {
            format!("{flag} {t:?} is not an RFC 3339 time such as 2026-12-01T09:00:00Z")
        })
    })
    .transpose()
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = &args.common.config;
    let config = Config::load(path)?;
    let case = CaseId::parse(&args.common.case)?;
    for principal in &args.principals {
        forensnap_config::check_principal(principal)
            .map_err(|m| anyhow::anyhow!("--principal: {m}"))?;
    }
    let since = time_arg("--since", args.since.as_deref())?;
    let until = time_arg("--until", args.until.as_deref())?;
    if let (Some(s), Some(u)) = (since, until)
        && s >= u
    {
        bail!("--since must be before --until");
    }
    let forensic = Forensic::connect(&config, &args.who).await?;
    let lease = Held::take(&forensic, &config, &case).await?;
    let result = lease
        .guard(trail_case(&config, &forensic, &case, &args, since, until))
        .await;
    let items = result?;
    print(&items, args.common.output, &config, &case)?;
    if args.common.output == Output::Text {
        flagged(&forensic, &config, &case, &items).await?;
    }
    Ok(())
}

/// The timeline's flagged rows, read back from the sealed events item (what was preserved).
async fn flagged(
    forensic: &Forensic,
    config: &Config,
    case: &CaseId,
    items: &[forensnap_collect::TrailItem],
) -> anyhow::Result<()> {
    use forensnap_store::EvidenceRead;
    let layout = CaseLayout::new(&config.forensic.evidence_prefix, case);
    let store = forensic.store();
    for item in items
        .iter()
        .filter(|i| i.kind == forensnap_core::ItemKind::CloudtrailEvents)
    {
        let key = layout.item(&item.id).file("data/timeline.jsonl");
        let Some(bytes) = store.get(&key).await? else {
            continue;
        };
        let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|r: &serde_json::Value| !r["flag"].is_null())
            .collect();
        if rows.is_empty() {
            continue;
        }
        println!(
            "  flagged in the timeline of {} (s3://{}/{key}):",
            item.id, config.forensic.evidence_bucket
        );
        for row in rows {
            let text = |k: &str| row[k].as_str().unwrap_or("-").to_string();
            println!(
                "    {}  {:<28} {}  by {} from {}",
                text("time"),
                format!(
                    "{}:{}",
                    text("event_source").trim_end_matches(".amazonaws.com"),
                    text("event_name")
                ),
                text("why"),
                text("principal"),
                text("source_ip"),
            );
        }
    }
    Ok(())
}

async fn trail_case(
    config: &Config,
    forensic: &Forensic,
    case: &CaseId,
    args: &Args,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> anyhow::Result<Vec<forensnap_collect::TrailItem>> {
    let custody = forensic
        .custody_for(config, case, args.who.purpose.clone())
        .await?;
    // The case's instance, as its custody log recorded it (never asked of EC2 again).
    let recorded = custody.events().await.into_iter().find_map(|e| {
        let subject = e.subject()?;
        matches!(e.details(), Ok(Some(Details::InstanceRecorded(_))))
            .then(|| (subject, e.region.clone()))
    });
    let (instance, account, region) = match (&recorded, &args.account) {
        (Some((subject, region)), None) => (
            Some(subject.instance.clone()),
            subject.member_account.clone(),
            args.region.clone().or(region.clone()),
        ),
        (Some((subject, region)), Some(account)) if *account == subject.member_account => (
            Some(subject.instance.clone()),
            account.clone(),
            args.region.clone().or(region.clone()),
        ),
        (_, Some(account)) => (None, account.clone(), args.region.clone()),
        (None, None) => bail!(
            "case {case} has no instance record yet: give --account (and --region) and at least one --principal, or run `forensnap collect` first"
        ),
    };
    let region = region.unwrap_or_else(|| config.forensic.region.clone());
    let member = config.member(&args.common.config, &account)?.clone();
    let plan = plan::trail_plan(
        config,
        &member,
        &region,
        instance.as_deref(),
        &args.principals,
        since,
        until,
    );
    let signer = forensic.signer(config).await?;
    let source = forensic.account.member_trail(&member, case, &region);
    let sink = forensic.store();
    let items = match collect_trail(&plan, &source, &custody, &sink, &signer).await {
        Ok(items) => items,
        Err(e) => {
            // The events recorded so far are sealed; the next run resumes.
            let _ = custody.checkpoint(&signer, Vec::new()).await;
            bail!("CloudTrail evidence of case {case}: {e}");
        }
    };
    let layout = custody.layout().clone();
    let sealed = items
        .iter()
        .map(|i| SealedItem {
            id: i.id.clone(),
            prefix: layout.item(&i.id).prefix().to_string(),
            tagmanifest_sha256: i.bag.tagmanifest_sha256.clone(),
        })
        .collect();
    custody.checkpoint(&signer, sealed).await?;
    Ok(items)
}

fn print(
    items: &[forensnap_collect::TrailItem],
    output: Output,
    config: &Config,
    case: &CaseId,
) -> anyhow::Result<()> {
    let layout = CaseLayout::new(&config.forensic.evidence_prefix, case);
    match output {
        Output::Json => {
            let json: Vec<_> = items
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.id,
                        "kind": i.kind,
                        "bucket": config.forensic.evidence_bucket,
                        "prefix": layout.item(&i.id).prefix(),
                        "cloudtrail": i.summary,
                        "files": i.bag.files,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Output::Text => {
            for i in items {
                let s = &i.summary;
                println!(
                    "{:<40} {:<17} s3://{}/{}",
                    i.id,
                    i.kind.as_str(),
                    config.forensic.evidence_bucket,
                    layout.item(&i.id).prefix()
                );
                println!("    window {} .. {}", s.start, s.end);
                if let Some(events) = s.events {
                    println!(
                        "    {events} events in the timeline, {} flagged (data/timeline.csv, data/timeline.jsonl)",
                        s.flagged.unwrap_or(0)
                    );
                }
                if let (Some(arn), Some(validation)) = (&s.trail_arn, &s.validation) {
                    println!("    trail {arn}: {validation}");
                    match (s.logging, &s.stopped_at) {
                        (Some(false), Some(at)) => {
                            println!("    the trail is NOT logging: stopped at {at}")
                        }
                        (Some(false), None) => println!("    the trail is NOT logging"),
                        _ => {}
                    }
                    for finding in &s.findings {
                        println!("      {finding}");
                    }
                }
            }
        }
    }
    Ok(())
}
