//! `forensnap verify`: a case checked end to end, online against S3 (Object Lock included, the
//! result recorded as a custody event and sealed by a checkpoint) or offline on a downloaded
//! case folder with no AWS access at all.

use std::path::PathBuf;

use anyhow::{Context, bail};
use forensnap_collect::recorded::{At, record_verification};
use forensnap_config::Config;
use forensnap_core::seal::{PUBLIC_KEY_PATH, Signer, fingerprint, parse_public_key_pem};
use forensnap_core::{CaseId, CaseLayout};
use forensnap_store::FolderStore;
use forensnap_verify::{Expected, Report, verify};

use crate::Output;
use crate::forensic::{Attribution, Forensic};
use crate::lease::Held;
use crate::progress::TermProgress;

/// Arguments of `forensnap verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// forensnap config file (online verification).
    #[arg(long, env = "FORENSNAP_CONFIG", required_unless_present = "offline")]
    config: Option<PathBuf>,
    /// Case id, e.g. IR-2026-0042.
    #[arg(long)]
    case: String,
    /// Verify a downloaded case folder instead (`aws s3 sync s3://BUCKET/cases/CASE/ DIR`), with
    /// no AWS access.
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    offline: Option<PathBuf>,
    /// The public key to trust (PEM), e.g. from `aws kms get-public-key`; offline only. Default:
    /// custody/signing-key.pem in the folder, whose fingerprint is printed for you to compare.
    #[arg(long, requires = "offline")]
    public_key: Option<PathBuf>,
    /// Result format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(flatten)]
    who: Attribution,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let case = CaseId::parse(&args.case)?;
    let progress = TermProgress::new(args.output == Output::Json);
    let report = match &args.offline {
        Some(dir) => offline(&case, dir, args.public_key.as_deref(), &progress).await?,
        None => online(&args, &case, &progress).await?,
    };
    progress.finish();
    print(&report, args.output)?;
    if !report.passed() {
        bail!(
            "case {case}: {} of {} checks failed (see the table); the evidence does not match its record",
            report.rows.iter().filter(|r| !r.ok).count(),
            report.rows.len()
        );
    }
    Ok(())
}

/// Verify a downloaded case folder, trusting `public_key` (PEM file) or the key stored with it.
pub(crate) async fn offline(
    case: &CaseId,
    dir: &std::path::Path,
    public_key: Option<&std::path::Path>,
    progress: &TermProgress,
) -> anyhow::Result<Report> {
    if !dir.join("custody").is_dir() {
        bail!(
            "{} has no custody/ folder: download the case with `aws s3 sync s3://BUCKET/cases/{case}/ {}`",
            dir.display(),
            dir.display()
        );
    }
    let (pem_path, stored) = match public_key {
        Some(path) => (path.to_path_buf(), false),
        None => (dir.join("custody/checkpoints").join(PUBLIC_KEY_PATH), true),
    };
    let pem = std::fs::read_to_string(&pem_path)
        .with_context(|| format!("reading the public key {}", pem_path.display()))?;
    let public_key = parse_public_key_pem(&pem)
        .with_context(|| format!("the public key {}", pem_path.display()))?;
    if stored {
        eprintln!(
            "note: trusting the key stored with the case ({}), fingerprint {}; compare it with `aws kms get-public-key --key-id <signing key> --query PublicKey --output text | base64 -d | sha256sum`, or pass --public-key",
            pem_path.display(),
            fingerprint(&public_key)
        );
    }
    Ok(verify(
        &FolderStore::new(dir),
        case,
        &CaseLayout::downloaded(),
        &public_key,
        None,
        progress,
    )
    .await?)
}

async fn online(args: &Args, case: &CaseId, progress: &TermProgress) -> anyhow::Result<Report> {
    let Some(path) = &args.config else {
        bail!("--config FILE or --offline DIR is needed");
    };
    let config = Config::load(path)?;
    let forensic = Forensic::connect(&config, &args.who).await?;
    // Verification records its result in the custody chain: one writer at a time.
    let lease = Held::take(&forensic, &config, case).await?;
    lease
        .guard(verify_online(&args.who, &config, &forensic, case, progress))
        .await
}

/// Verify the case in S3 (Object Lock included) and record the result in its custody chain;
/// the caller holds the case's lease.
pub(crate) async fn verify_online(
    who: &Attribution,
    config: &Config,
    forensic: &Forensic,
    case: &CaseId,
    progress: &TermProgress,
) -> anyhow::Result<Report> {
    let signer = forensic.signer(config).await?;
    let sink = forensic.store();
    let custody = forensic.custody(config, case, who).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expected = Expected {
        retention_days: config.forensic.retention_days,
        legal_hold: config.forensic.legal_hold,
        now,
    };
    let layout = CaseLayout::new(&config.forensic.evidence_prefix, case);
    let report = verify(
        &sink,
        case,
        &layout,
        signer.public_key_der(),
        Some(expected),
        progress,
    )
    .await?;
    // The verification is itself a custody event, sealed like every run. A chain that does not
    // verify is not written after (the custody service refuses), and the report says why.
    let at = At {
        account: &config.forensic.account,
        region: &config.forensic.region,
    };
    match &custody {
        Ok(custody) => record_verification(custody, &report, &signer, at).await?,
        Err(e) => eprintln!("note: the verification is not recorded in the custody log: {e:#}"),
    }
    Ok(report)
}

fn print(report: &Report, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "case {}: {} events, {} checkpoints, {} evidence items, {} locked objects; signatures checked with key sha256 {}",
        report.case,
        report.events,
        report.checkpoints,
        report.items,
        report.objects_locked,
        report.public_key_sha256
    );
    let width = report
        .rows
        .iter()
        .map(|r| r.subject.len())
        .max()
        .unwrap_or(7)
        .min(60);
    println!(
        "{:<14} {:<width$} {:<6} DETAIL",
        "CHECK", "SUBJECT", "RESULT"
    );
    for row in &report.rows {
        println!(
            "{:<14} {:<width$} {:<6} {}",
            row.check,
            row.subject,
            if row.ok { "PASS" } else { "FAIL" },
            row.detail
        );
    }
    println!(
        "{}",
        if report.passed() {
            "RESULT: PASS (every check holds)"
        } else {
            "RESULT: FAIL"
        }
    );
    Ok(())
}
