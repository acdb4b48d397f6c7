//! `forensnap export`: one volume item streamed out of S3 into a raw (sparse) image file, or a
//! memory item into its LiME image, every hash checked on the way, and the export recorded as a
//! custody event of the case.

use std::path::PathBuf;

use anyhow::{Context, bail};
use forensnap_collect::recorded::{At, ExportItemError, export_item};
use forensnap_config::Config;
use forensnap_core::CaseId;

use crate::forensic::{Attribution, Forensic};
use crate::lease::Held;
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
    let lease = Held::take(&forensic, &config, &case).await?;
    let signer = forensic.signer(&config).await?;
    let custody = forensic.custody(&config, &case, &args.who).await?;
    let at = At {
        account: &config.forensic.account,
        region: &config.forensic.region,
    };
    let progress = TermProgress::new(args.common.output == Output::Json);
    let result = lease
        .guard(async {
            Ok(export_item(&custody, &args.evidence, &args.out, &signer, at, &progress).await)
        })
        .await?;
    progress.finish();
    let exported = match result {
        Ok(exported) => exported,
        Err(err @ ExportItemError::NotSealed { .. }) => return Err(err.into()),
        Err(err) => {
            return Err(err).context(format!(
                "exporting evidence item {} of case {case}: nothing was left at {}",
                args.evidence,
                args.out.display()
            ));
        }
    };
    match args.common.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&exported)?),
        Output::Text if exported.memory => println!(
            "{}: {} bytes, LiME image sha256 {} (the manifest's, as the host and forensnap hashed it at capture)",
            exported.path.display(),
            exported.volume_bytes,
            exported.image_sha256
        ),
        Output::Text => println!(
            "{}: {} bytes, image sha256 {} (every stored block matched the block map; data object, block map and image hashes match the bag)",
            exported.path.display(),
            exported.volume_bytes,
            exported.image_sha256
        ),
    }
    Ok(())
}
