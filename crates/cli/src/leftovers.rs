//! `forensnap leftovers`: what an abandoned case left open or shared, listed, and ended with
//! `--end` under the case's lease, each end recorded in the case's custody chain (see
//! [`forensnap_collect::leftovers`]).

use anyhow::{Context, bail};
use forensnap_collect::leftovers::{Touched, abort_uploads, pending_uploads, touched};
use forensnap_collect::plan;
use forensnap_config::Config;
use forensnap_core::{CaseId, CaseLayout};
use forensnap_preserve::{MemberLeftover, end_member_leftovers, member_leftovers};
use forensnap_store::PendingUpload;

use crate::forensic::{Attribution, Forensic};
use crate::lease::Held;
use crate::{Common, Output};

/// Arguments of `forensnap leftovers`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// End them: abort the open uploads, remove the shares, delete the intermediate copies, each
    /// recorded in the custody chain. A later `collect` of the case reads the aborted items again
    /// from their first part.
    #[arg(long)]
    end: bool,
    #[command(flatten)]
    who: Attribution,
}

/// What one member account and instance holds for the case.
#[derive(Debug, serde::Serialize)]
struct MemberReport {
    #[serde(flatten)]
    touched: Touched,
    leftovers: Vec<MemberLeftover>,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    case: String,
    bucket: String,
    uploads: Vec<PendingUpload>,
    members: Vec<MemberReport>,
    /// Whether they were ended by this command.
    ended: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = &args.common.config;
    let config = Config::load(path)?;
    let case = CaseId::parse(&args.common.case)?;
    let forensic = Forensic::connect(&config, &args.who).await?;
    // Ending changes the case: not while a daemon or another responder works it.
    let lease = if args.end {
        Some(Held::take(&forensic, &config, &case).await?)
    } else {
        None
    };
    let work = find_and_end(&config, path, &forensic, &case, &args);
    let report = match lease {
        Some(lease) => lease.guard(work).await?,
        None => work.await?,
    };
    print(&report, args.common.output)
}

async fn find_and_end(
    config: &Config,
    path: &std::path::Path,
    forensic: &Forensic,
    case: &CaseId,
    args: &Args,
) -> anyhow::Result<Report> {
    let custody = forensic
        .custody_for(config, case, args.who.purpose.clone())
        .await?;
    let events = custody.events().await;
    if events.is_empty() {
        bail!(
            "case {case} has no custody events in bucket {}: nothing was collected under this id (check --case and the config's evidence bucket)",
            config.forensic.evidence_bucket
        );
    }
    let layout = CaseLayout::new(&config.forensic.evidence_prefix, case);
    let uploads = pending_uploads(&custody, &layout).await?;
    let key_arn = config.forensic.ebs_key_arn.clone();
    let mut members = Vec::new();
    for touched in touched(&events) {
        let member = config.member(path, &touched.account).with_context(|| {
            format!(
                "case {case} acted in member account {}, which the config no longer lists: add it back to list and end what is left there",
                touched.account
            )
        })?;
        let ec2 = forensic.account.member_ec2(member, case, &touched.region);
        let plan = plan::preserve_plan(
            config,
            case,
            member,
            &touched.instance,
            &touched.region,
            &key_arn,
        );
        let leftovers = member_leftovers(&plan, &ec2, &custody).await?;
        if args.end && !leftovers.is_empty() {
            end_member_leftovers(&plan, &ec2, &custody, &leftovers).await?;
        }
        members.push(MemberReport { touched, leftovers });
    }
    if args.end && !uploads.is_empty() {
        abort_uploads(
            &custody,
            &uploads,
            &config.forensic.account,
            &config.forensic.region,
        )
        .await?;
    }
    Ok(Report {
        case: case.to_string(),
        bucket: config.forensic.evidence_bucket.clone(),
        uploads,
        members,
        ended: args.end,
    })
}

fn print(report: &Report, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let verb = if report.ended { "ended" } else { "left" };
    let count = report.uploads.len()
        + report
            .members
            .iter()
            .map(|m| m.leftovers.len())
            .sum::<usize>();
    if count == 0 {
        println!("case {}: nothing left open or shared", report.case);
        return Ok(());
    }
    println!("case {}: {count} {verb}", report.case);
    for upload in &report.uploads {
        println!(
            "  s3://{}/{}: open multipart upload {} ({} parts, {} bytes)",
            report.bucket, upload.key, upload.upload_id, upload.parts, upload.bytes
        );
    }
    for member in &report.members {
        for leftover in &member.leftovers {
            println!(
                "  account {} {} ({}): {leftover}",
                member.touched.account, member.touched.region, member.touched.instance
            );
        }
    }
    if !report.ended {
        println!(
            "end them with `forensnap leftovers --config ... --case {} --end` (recorded in the custody chain; a later collect reads aborted items again)",
            report.case
        );
    }
    Ok(())
}
