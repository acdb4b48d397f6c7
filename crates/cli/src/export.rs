//! `forensnap export`: one volume item streamed out of S3 into a raw (sparse) image file, every
//! hash checked on the way, and the export recorded as a custody event of the case.

use std::path::PathBuf;

use anyhow::{Context, bail};
use forensnap_acquire::export::export;
use forensnap_acquire::item;
use forensnap_config::Config;
use forensnap_core::{Action, CaseId, CaseLayout, EventDraft};

use crate::forensic::{Attribution, Forensic};
use crate::progress::TermProgress;
use crate::{Common, Output};

/// Arguments of `forensnap export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Evidence item id (the `id` of `collect --output json`, e.g. the volume id).
    #[arg(long)]
    evidence: String,
    /// Raw image file to write (must not exist; written as <out>.partial until verified).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    who: Attribution,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let path = &args.common.config;
    let config = Config::load(path)?;
    let case = CaseId::parse(&args.common.case)?;
    if args.evidence.is_empty() || args.evidence.contains('/') {
        bail!(
            "--evidence {:?} is not an evidence item id; use an `id` from `forensnap collect --output json`",
            args.evidence
        );
    }
    let forensic = Forensic::connect(&config, &args.who).await?;
    let signer = forensic.signer(&config).await?;
    let bucket = &config.forensic.evidence_bucket;
    let sink = forensic.store(&config);
    let layout = CaseLayout::new(&config.forensic.evidence_prefix, &case).item(&args.evidence);
    let prefix = layout.prefix();
    if item::sealed(&sink, prefix).await?.is_none() {
        bail!(
            "evidence item {} of case {case} is not in s3://{bucket}/{prefix} (no tagmanifest-sha256.txt: missing or not finished); list the case's items with `forensnap collect ... --output json`, or run the collection again to finish it",
            args.evidence
        );
    }
    let mut log = forensic.custody_log(&config, &case, &args.who).await?;

    let progress = TermProgress::new(args.common.output == Output::Json);
    let result = export(&sink, prefix, &args.out, &progress).await;
    progress.finish();
    let draft = EventDraft::new(Action::EvidenceExported)
        .at(&config.forensic.account, &config.forensic.region)
        .before([format!("s3://{bucket}/{prefix}")])
        .detail("item", &args.evidence)
        .detail("out", args.out.display().to_string());
    let exported = match result {
        Ok(exported) => {
            log.record(
                draft
                    .after([args.out.display().to_string()])
                    .detail("image_sha256", &exported.image_sha256)
                    .detail("blocks_checked", exported.blocks_checked)
                    .detail("result", "match"),
            )
            .await?;
            log.checkpoint(&signer, Vec::new()).await?;
            exported
        }
        Err(err) => {
            let _ = log
                .record(draft.detail("result", "mismatch").failed(err.to_string()))
                .await;
            let _ = log.checkpoint(&signer, Vec::new()).await;
            return Err(err).context(format!(
                "exporting evidence item {} of case {case}: nothing was left at {}",
                args.evidence,
                args.out.display()
            ));
        }
    };
    match args.common.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&exported)?),
        Output::Text => println!(
            "{}: {} bytes, image sha256 {} (every stored block matched the block map; data object, block map and image hashes match the bag)",
            exported.path.display(),
            exported.volume_bytes,
            exported.image_sha256
        ),
    }
    Ok(())
}
