//! Export and verification of a case as custody events: what `forensnap export` and
//! `forensnap verify` record, built here so that the binary only parses, runs and prints.
//! Each ends, like every run, with a signed checkpoint over the chain.

use std::path::Path;

use forensnap_core::EventDraft;
use forensnap_core::details::{CaseVerified, EvidenceExported, Verdict};
use forensnap_core::seal::Signer;
use forensnap_custody::{Custody, CustodyError};
use forensnap_evidence::ByteProgress;
use forensnap_evidence::export::{ExportError, Exported, export};
use forensnap_evidence::item::{self, ItemError};
use forensnap_store::EvidenceWrite;
use forensnap_verify::Report;

/// The account and region the forensic work is done in (named in the events).
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// The forensic account.
    pub account: &'a str,
    /// Its region.
    pub region: &'a str,
}

/// Why an export did not produce an image.
#[derive(Debug, thiserror::Error)]
pub enum ExportItemError {
    /// The item is not a sealed bag of the case.
    #[error(
        "evidence item {item} of case {case} is not in s3://{bucket}/{prefix} (no tagmanifest-sha256.txt: missing or not finished). Next: list the case's items with `forensnap collect ... --output json`, or run the collection again to finish it"
    )]
    NotSealed {
        /// Item id.
        item: String,
        /// Case.
        case: String,
        /// Bucket.
        bucket: String,
        /// The item's prefix.
        prefix: String,
    },
    /// The bag could not be read.
    #[error(transparent)]
    Item(#[from] ItemError),
    /// A check failed or the image could not be written; the partial file is gone and the
    /// failure is recorded.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The custody log refused the event or its checkpoint.
    #[error(transparent)]
    Custody(#[from] CustodyError),
}

/// Export evidence item `item_id` of the custody's case to `out` (every hash checked, see
/// [`forensnap_evidence::export`]) and record `evidence.exported`, a match or a mismatch.
pub async fn export_item<S: EvidenceWrite, G: Signer>(
    custody: &Custody<S>,
    item_id: &str,
    out: &Path,
    signer: &G,
    at: At<'_>,
    progress: &dyn ByteProgress,
) -> Result<Exported, ExportItemError> {
    let store = custody.store();
    let item = custody.layout().item(item_id);
    let prefix = item.prefix();
    if item::sealed(store, prefix).await?.is_none() {
        return Err(ExportItemError::NotSealed {
            item: item_id.to_string(),
            case: custody.case().to_string(),
            bucket: store.bucket().to_string(),
            prefix: prefix.to_string(),
        });
    }
    let result = export(store, prefix, out, progress).await;
    let draft = |details: EvidenceExported| {
        EventDraft::new(details)
            .at(at.account, at.region)
            .before([format!("s3://{}/{prefix}", store.bucket())])
    };
    let details = EvidenceExported {
        item: item_id.to_string(),
        out: out.display().to_string(),
        image_sha256: None,
        blocks_checked: None,
        result: Verdict::Mismatch,
    };
    match result {
        Ok(exported) => {
            custody
                .record(
                    draft(EvidenceExported {
                        image_sha256: Some(exported.image_sha256.clone()),
                        blocks_checked: Some(exported.blocks_checked),
                        result: Verdict::Match,
                        ..details
                    })
                    .after([out.display().to_string()]),
                )
                .await?;
            custody.checkpoint(signer, Vec::new()).await?;
            Ok(exported)
        }
        Err(err) => {
            // The export failed: that is recorded too, as far as the log lets it be.
            let failed = draft(details).failed(err.to_string());
            if let Err(e) = custody.record(failed).await {
                tracing::warn!(error = %e, "the failed export could not be recorded");
            }
            if let Err(e) = custody.checkpoint(signer, Vec::new()).await {
                tracing::warn!(error = %e, "the failed export's events could not be sealed");
            }
            Err(err.into())
        }
    }
}

/// Record a verification of the custody's case (`case.verified`, failed when any check failed,
/// naming each) and seal the chain.
pub async fn record_verification<S: EvidenceWrite, G: Signer>(
    custody: &Custody<S>,
    report: &Report,
    signer: &G,
    at: At<'_>,
) -> Result<(), CustodyError> {
    let failed: Vec<String> = report
        .rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| format!("{} {}: {}", r.check, r.subject, r.detail))
        .collect();
    let mut draft = EventDraft::new(CaseVerified {
        checks: report.rows.len() as u64,
        failed: failed.len() as u64,
        items: report.items as u64,
        objects_locked: report.objects_locked as u64,
        public_key_sha256: report.public_key_sha256.clone(),
        result: if report.passed() {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
    })
    .at(at.account, at.region)
    .before([format!(
        "s3://{}/{}",
        custody.store().bucket(),
        custody.layout().root()
    )]);
    if !failed.is_empty() {
        draft = draft.failed(failed.join("; "));
    }
    custody.record(draft).await?;
    custody.checkpoint(signer, Vec::new()).await?;
    Ok(())
}

/// One file of a custody report to store.
#[derive(Debug, Clone)]
pub struct ReportFileToStore {
    /// `pdf`, `csv` or `json`.
    pub format: String,
    /// File name inside the report's folder.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why a report could not be stored and recorded.
#[derive(Debug, thiserror::Error)]
pub enum StoreReportError {
    /// A file could not be stored.
    #[error(
        "storing report {report_id} file {key} failed: {source}. Next: check the forensic credentials' s3:PutObject right on the case prefix and run `forensnap report` again (a new report id is made)"
    )]
    Store {
        /// The report.
        report_id: String,
        /// The key.
        key: String,
        /// Cause.
        source: forensnap_store::CloudError,
    },
    /// The custody log refused the event or its checkpoint.
    #[error(transparent)]
    Custody(#[from] CustodyError),
}

/// Store a custody report's files in the case (under Object Lock, `reports/<id>/`), record
/// `report.generated` with each file's SHA-256 and version, and seal it with a checkpoint. A
/// file that cannot be stored is recorded as a failed `report.generated` before the error
/// returns.
pub async fn store_report<S: EvidenceWrite, G: Signer>(
    custody: &Custody<S>,
    report_id: &str,
    covers_seq: u64,
    verification: Verdict,
    files: Vec<ReportFileToStore>,
    signer: &G,
    at: At<'_>,
) -> Result<Vec<forensnap_core::details::ReportFile>, StoreReportError> {
    use forensnap_core::details::{ReportFile, ReportGenerated, StoredObject};
    let store = custody.store();
    let mut stored = Vec::new();
    let mut failure = None;
    for file in files {
        let key = custody.layout().report(report_id, &file.name);
        match store.put_new(&key, file.bytes, &file.content_type).await {
            Ok(put) => stored.push(ReportFile {
                format: file.format,
                stored: StoredObject {
                    key,
                    version_id: put.value.version_id,
                    sha256: put.value.sha256,
                    size: put.value.size,
                    adopted: false,
                    unstored_sha256: None,
                },
            }),
            Err(source) => {
                failure = Some(StoreReportError::Store {
                    report_id: report_id.to_string(),
                    key,
                    source,
                });
                break;
            }
        }
    }
    let bucket = store.bucket().to_string();
    let mut draft = EventDraft::new(ReportGenerated {
        report_id: report_id.to_string(),
        covers_seq,
        verification,
        files: stored.clone(),
    })
    .at(at.account, at.region)
    .after(
        stored
            .iter()
            .map(|f| format!("s3://{bucket}/{}", f.stored.key)),
    );
    if let Some(e) = &failure {
        draft = draft.failed(e.to_string());
    }
    custody.record(draft).await?;
    custody.checkpoint(signer, Vec::new()).await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(stored),
    }
}
