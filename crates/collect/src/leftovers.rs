//! The leftovers of an abandoned case, for `forensnap leftovers`: open multipart uploads of the
//! case in the evidence bucket (forensic account), and what its runs left in each member
//! account it touched (snapshots still shared with the forensic account, intermediate copies).
//! Listed from the custody chain and S3; ended on request, each end a custody event
//! (`upload.aborted`, `snapshot.unshared`, `snapshot.deleted`).
//!
//! A run stopped for good leaves these on purpose: an open upload is what the next run resumes
//! from, a share or an intermediate copy what its next step needs. Ending them gives that up: a
//! later `collect` of the case reads the aborted items again from their first part and makes a
//! new intermediate copy where one is needed. Stored evidence and the member snapshots of the
//! volumes are never touched.

use forensnap_core::details::UploadAborted;
use forensnap_core::{CaseLayout, Event, EventDraft, Outcome};
use forensnap_custody::{Custody, CustodyError};
use forensnap_store::{CloudError, EvidenceAudit, EvidenceWrite, PendingUpload};

/// A member account and instance a case's runs acted on (from its `role.assumed` events).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Touched {
    /// The member account.
    pub account: String,
    /// The region.
    pub region: String,
    /// The instance.
    pub instance: String,
}

/// Every member account, region and instance the case's runs assumed into.
pub fn touched(events: &[Event]) -> Vec<Touched> {
    let mut found: Vec<Touched> = events
        .iter()
        .filter(|e| e.action == "role.assumed" && e.outcome == Outcome::Ok)
        .filter_map(|e| {
            let subject = e.subject()?;
            Some(Touched {
                account: subject.member_account,
                region: e.region.clone()?,
                instance: subject.instance,
            })
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Why listing or ending an upload failed.
#[derive(Debug, thiserror::Error)]
pub enum LeftoverError {
    /// S3 refused or failed.
    #[error("{step} in bucket {bucket} for {key}: {source}. Next: {next}")]
    Store {
        /// What was being done.
        step: &'static str,
        /// The bucket.
        bucket: String,
        /// The key or prefix.
        key: String,
        /// The call's error.
        source: CloudError,
        /// What to do.
        next: &'static str,
    },
    /// The custody chain could not record the end.
    #[error(transparent)]
    Custody(#[from] CustodyError),
}

/// The multipart uploads open under the case's prefix.
pub async fn pending_uploads<S: EvidenceWrite + EvidenceAudit>(
    custody: &Custody<S>,
    layout: &CaseLayout,
) -> Result<Vec<PendingUpload>, LeftoverError> {
    let store = custody.store();
    store
        .pending_uploads(layout.root())
        .await
        .map_err(|source| LeftoverError::Store {
            step: "list the case's open multipart uploads",
            bucket: store.bucket().to_string(),
            key: layout.root().to_string(),
            source,
            next: "check the forensic credentials' s3:ListBucketMultipartUploads and s3:ListMultipartUploadParts rights",
        })
}

/// Abort each upload, recording `upload.aborted` (in the forensic `account` and `region`) for
/// each. Stops at the first failure, which is recorded too.
pub async fn abort_uploads<S: EvidenceWrite + EvidenceAudit>(
    custody: &Custody<S>,
    uploads: &[PendingUpload],
    account: &str,
    region: &str,
) -> Result<usize, LeftoverError> {
    let store = custody.store();
    for upload in uploads {
        let draft = |already_gone| {
            EventDraft::new(UploadAborted {
                key: upload.key.clone(),
                upload_id: upload.upload_id.clone(),
                parts: upload.parts,
                bytes: upload.bytes,
                already_gone,
            })
            .at(account, region)
            .before([format!("s3://{}/{}", store.bucket(), upload.key)])
        };
        match store.abort_upload(&upload.key, &upload.upload_id).await {
            Ok(done) => {
                custody
                    .record(draft(false).request_ids(done.request_id))
                    .await?;
            }
            Err(e) if e.is_not_found() => {
                custody.record(draft(true)).await?;
            }
            Err(source) => {
                let _ = custody
                    .record(draft(false).failed(source.to_string()))
                    .await;
                return Err(LeftoverError::Store {
                    step: "abort the open multipart upload",
                    bucket: store.bucket().to_string(),
                    key: upload.key.clone(),
                    source,
                    next: "check the forensic credentials' s3:AbortMultipartUpload right (forensic-account.yaml grants it on cases/*), then run again",
                });
            }
        }
    }
    Ok(uploads.len())
}

#[cfg(test)]
mod tests {
    use forensnap_core::{Actor, CaseId};
    use forensnap_store::{EvidenceWrite, MemoryStore, PartBody};

    use super::*;

    #[tokio::test]
    async fn open_uploads_of_the_case_are_listed_and_aborted_once_each_recorded() {
        let store = MemoryStore::new();
        let case = CaseId::parse("IR-1").expect("case");
        let layout = CaseLayout::new("", &case);
        let key = format!("{}evidence/vol-1/data/blocks.bin", layout.root());
        let (upload, _) = store.open_upload(&key).await.expect("open");
        store
            .upload_part(&key, &upload, 1, PartBody::from(vec![7u8; 1024]))
            .await
            .expect("part");
        // Another case's upload is not this case's leftover.
        store
            .open_upload("cases/IR-2/evidence/vol-9/data/blocks.bin")
            .await
            .expect("other");
        let actor = Actor {
            arn: "arn:aws:iam::123456789012:user/op".into(),
            operator: "op".into(),
        };
        let custody = Custody::open(store, "", &case, actor, None)
            .await
            .expect("custody");
        let pending = pending_uploads(&custody, &layout).await.expect("list");
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].parts, pending[0].bytes), (1, 1024));
        let ended = abort_uploads(&custody, &pending, "123456789012", "us-east-1")
            .await
            .expect("abort");
        assert_eq!(ended, 1);
        assert!(
            pending_uploads(&custody, &layout)
                .await
                .expect("list")
                .is_empty()
        );
        // Aborting it again (a run that died before recording) records it as already gone.
        abort_uploads(&custody, &pending, "123456789012", "us-east-1")
            .await
            .expect("again");
        let events = custody.events().await;
        let aborted: Vec<_> = events
            .iter()
            .filter(|e| e.action == "upload.aborted")
            .collect();
        assert_eq!(aborted.len(), 2);
        assert_eq!(aborted[0].details["upload_id"], upload.id.as_str());
        assert_eq!(aborted[1].details["already_gone"], true);
    }
}
