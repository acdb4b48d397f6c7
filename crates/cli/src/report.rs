//! `forensnap report`: a custody report of a case (PDF/A-3b, CSV or JSON), made from a fresh
//! verification. Online, the verification is recorded, the report is stored in the case under
//! Object Lock and recorded as `report.generated` with its SHA-256, sealed by a checkpoint;
//! offline (a downloaded case folder) nothing is written but the report files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use forensnap_collect::recorded::{At, ReportFileToStore, store_report};
use forensnap_config::Config;
use forensnap_core::CaseId;
use forensnap_core::details::Verdict;
use forensnap_core::seal::{Signer, public_key_pem};
use forensnap_report::{PersonMapping, Report, ReportInput, Tool, VerificationMode, tables};
use time::OffsetDateTime;

use crate::forensic::{Attribution, Forensic};
use crate::lease::Held;
use crate::progress::TermProgress;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// PDF/A-3b, its machine-readable files attached.
    Pdf,
    /// Two RFC 4180 CSV files (evidence items, custody events) in a folder.
    Csv,
    /// The whole report as JSON (schema forensnap.report/v1).
    Json,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// Arguments of `forensnap report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// forensnap config file: the case in S3 (online), and the matter and personnel for the
    /// report (also read with --offline).
    #[arg(long, env = "FORENSNAP_CONFIG", required_unless_present = "offline")]
    config: Option<PathBuf>,
    /// Case id, e.g. IR-2026-0042.
    #[arg(long)]
    case: String,
    /// Report format.
    #[arg(long, value_enum)]
    format: Format,
    /// Where to write it: a file for pdf and json, a folder for csv. Default: in the current
    /// folder, named for the case and the report id. An existing file is never overwritten.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Report on a downloaded case folder (`aws s3 sync s3://BUCKET/cases/CASE/ DIR`) with no
    /// AWS access; the report is not stored in the case.
    #[arg(long, value_name = "DIR")]
    offline: Option<PathBuf>,
    /// The public key to trust (PEM); offline only. Default: the key stored with the case.
    #[arg(long, requires = "offline")]
    public_key: Option<PathBuf>,
    #[command(flatten)]
    who: Attribution,
}

/// The generation time: `SOURCE_DATE_EPOCH` (reproducible builds) when set, else now.
fn generated_at() -> anyhow::Result<OffsetDateTime> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => {
            let seconds: i64 = text.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds since 1970")
            })?;
            OffsetDateTime::from_unix_timestamp(seconds)
                .with_context(|| format!("SOURCE_DATE_EPOCH={seconds} is out of range"))
        }
        Err(_) => {
            let now = OffsetDateTime::now_utc();
            Ok(now.replace_nanosecond(0).unwrap_or(now))
        }
    }
}

/// The tool, its build named by the SHA-256 of the running executable (what an examiner can
/// compare with the binary they were given).
fn tool() -> Tool {
    let build = std::env::current_exe()
        .and_then(std::fs::read)
        .map(|bytes| format!("executable sha256 {}", forensnap_core::sha256_hex(&bytes)))
        .unwrap_or_else(|e| format!("executable unreadable: {e}"));
    Tool {
        name: "forensnap".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        build,
    }
}

fn personnel(config: Option<&Config>) -> Vec<PersonMapping> {
    config
        .map(|c| {
            c.report
                .personnel
                .iter()
                .map(|p| PersonMapping {
                    principal: p.principal.clone(),
                    name: p.name.clone(),
                    role: p.role.clone(),
                    contact: p.contact.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A file of a report: name, content type, bytes.
type File = (String, &'static str, Vec<u8>);

/// The files of `format` (rendered once: the PDF writer is the slow part).
fn files(report: &Report, format: Format) -> anyhow::Result<Vec<File>> {
    let attached = |name: &str| -> anyhow::Result<File> {
        let a = report
            .attachment(name)
            .with_context(|| format!("the report has no {name}"))?;
        Ok((a.name.clone(), a.mime, a.bytes.clone()))
    };
    Ok(match format {
        Format::Pdf => vec![(
            "custody-report.pdf".to_string(),
            "application/pdf",
            report.pdf()?,
        )],
        Format::Csv => vec![attached(tables::ITEMS_CSV)?, attached(tables::EVENTS_CSV)?],
        Format::Json => vec![attached(forensnap_report::REPORT_JSON)?],
    })
}

/// Where each file goes; refuses to overwrite anything.
fn destinations(
    out: Option<&Path>,
    case: &CaseId,
    report_id: &str,
    format: Format,
    names: &[String],
) -> anyhow::Result<Vec<PathBuf>> {
    let default = format!("{case}-{report_id}");
    let paths: Vec<PathBuf> = match format {
        Format::Csv => {
            let dir = out.map_or_else(|| PathBuf::from(&default), Path::to_path_buf);
            if dir.exists() && !dir.is_dir() {
                bail!(
                    "{} exists and is not a folder: --format csv writes two files into a folder; name a new or empty one",
                    dir.display()
                );
            }
            names.iter().map(|n| dir.join(n)).collect()
        }
        Format::Pdf | Format::Json => vec![out.map_or_else(
            || PathBuf::from(format!("{default}.{}", format.as_str())),
            Path::to_path_buf,
        )],
    };
    for path in &paths {
        if path.exists() {
            bail!(
                "{} exists: a report is never written over another file; choose another --out",
                path.display()
            );
        }
    }
    Ok(paths)
}

fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the folder {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let case = CaseId::parse(&args.case)?;
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let at = generated_at()?;
    if let Some(out) = &args.out {
        // Refused before anything is verified, recorded or stored.
        let names = match args.format {
            Format::Csv => vec![
                tables::ITEMS_CSV.to_string(),
                tables::EVENTS_CSV.to_string(),
            ],
            Format::Pdf | Format::Json => Vec::new(),
        };
        destinations(Some(out), &case, "", args.format, &names)?;
    }
    let progress = TermProgress::new(false);
    let (report, files, stored) = match &args.offline {
        Some(dir) => {
            let verification =
                crate::verify::offline(&case, dir, args.public_key.as_deref(), &progress).await?;
            let pem_path = args.public_key.clone().unwrap_or_else(|| {
                dir.join("custody/checkpoints")
                    .join(forensnap_core::seal::PUBLIC_KEY_PATH)
            });
            let pem = std::fs::read_to_string(&pem_path)
                .with_context(|| format!("reading the public key {}", pem_path.display()))?;
            let report = Report::build(&ReportInput {
                verification: &verification,
                mode: VerificationMode::Offline,
                matter: config.as_ref().and_then(|c| c.report.matter.clone()),
                organisation: config.as_ref().and_then(|c| c.report.organisation.clone()),
                personnel: personnel(config.as_ref()),
                generated_at: at,
                tool: tool(),
                public_key_pem: pem,
                bucket: None,
            });
            let files = files(&report, args.format)?;
            (report, files, Vec::new())
        }
        None => {
            let Some(config) = &config else {
                bail!("--config FILE or --offline DIR is needed");
            };
            let forensic = Forensic::connect(config, &args.who).await?;
            let lease = Held::take(&forensic, config, &case).await?;
            lease
                .guard(online(&args, config, &forensic, &case, at, &progress))
                .await?
        }
    };
    progress.finish();
    let names: Vec<String> = files.iter().map(|(n, _, _)| n.clone()).collect();
    let paths = destinations(
        args.out.as_deref(),
        &case,
        &report.report.report_id,
        args.format,
        &names,
    )?;
    for ((_, _, bytes), path) in files.iter().zip(&paths) {
        write_new(path, bytes)?;
        println!("{}  {}", forensnap_core::sha256_hex(bytes), path.display());
    }
    let v = &report.report.verification;
    eprintln!(
        "report {} of case {case}: verification {} ({} checks, {} failed){}",
        report.report.report_id,
        v.result.to_uppercase(),
        v.checks,
        v.failed,
        if stored.is_empty() {
            "; not stored in the case (offline)".to_string()
        } else {
            format!(
                "; stored in the case as {} and recorded (report.generated)",
                stored.join(", ")
            )
        }
    );
    if !v.passed() {
        bail!(
            "case {case}: the report says verification FAILED ({} of {} checks); it was written all the same",
            v.failed,
            v.checks
        );
    }
    Ok(())
}

async fn online(
    args: &Args,
    config: &Config,
    forensic: &Forensic,
    case: &CaseId,
    at: OffsetDateTime,
    progress: &TermProgress,
) -> anyhow::Result<(Report, Vec<File>, Vec<String>)> {
    let verification =
        crate::verify::verify_online(&args.who, config, forensic, case, progress).await?;
    let signer = forensic.signer(config).await?;
    let report = Report::build(&ReportInput {
        verification: &verification,
        mode: VerificationMode::Online,
        matter: config.report.matter.clone(),
        organisation: config.report.organisation.clone(),
        personnel: personnel(Some(config)),
        generated_at: at,
        tool: tool(),
        public_key_pem: public_key_pem(signer.public_key_der()),
        bucket: Some(config.forensic.evidence_bucket.clone()),
    });
    let custody = forensic.custody(config, case, &args.who).await?;
    let files = files(&report, args.format)?;
    let to_store = files
        .iter()
        .map(|(name, content_type, bytes)| ReportFileToStore {
            format: args.format.as_str().to_string(),
            name: name.clone(),
            content_type: (*content_type).to_string(),
            bytes: bytes.clone(),
        })
        .collect();
    let verdict = if report.report.verification.passed() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let stored = store_report(
        &custody,
        &report.report.report_id,
        report.report.chain_head.seq,
        verdict,
        to_store,
        &signer,
        At {
            account: &config.forensic.account,
            region: &config.forensic.region,
        },
    )
    .await?;
    let bucket = &config.forensic.evidence_bucket;
    Ok((
        report,
        files,
        stored
            .iter()
            .map(|f| format!("s3://{bucket}/{}", f.stored.key))
            .collect(),
    ))
}
