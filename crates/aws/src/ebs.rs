//! [`BlockSource`] over the EBS direct APIs (ListSnapshotBlocks, GetSnapshotBlock).
//!
//! The SDK's own retries are switched off for this client: the acquisition engine retries
//! block reads itself, so that throttling also shrinks its concurrency (see
//! `forensnap_acquire::limit`) instead of being absorbed silently.

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_ebs::config::http::HttpResponse;
use aws_sdk_ebs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ebs::operation::get_snapshot_block::GetSnapshotBlockError;
use bytes::BytesMut;
use forensnap_ports::{
    BlockPage, BlockSource, FetchedBlock, ListedBlock, SourceError, ThrottleScope,
};
use forensnap_store::ErrorKind;

use crate::errors::aws_error;

/// GetSnapshotBlock and ListSnapshotBlocks of one account.
#[derive(Debug, Clone)]
pub struct EbsSource {
    /// EBS client without SDK retries.
    ebs: aws_sdk_ebs::Client,
}

impl EbsSource {
    /// A source for the account of `sdk`, with an optional EBS endpoint (VPC endpoint).
    pub fn new(sdk: &SdkConfig, endpoint: Option<&str>) -> Self {
        let mut config =
            aws_sdk_ebs::config::Builder::from(sdk).retry_config(RetryConfig::disabled());
        if let Some(url) = endpoint {
            config = config.endpoint_url(url);
        }
        EbsSource {
            ebs: aws_sdk_ebs::Client::from_conf(config.build()),
        }
    }
}

/// The engine's view of a failed EBS call: throttling shrinks its concurrency, a transient
/// failure is retried, anything else stops the volume (kinds as [`aws_error`] classifies them).
fn classify<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let err = aws_error(operation, err);
    match err.kind {
        ErrorKind::Throttled => SourceError::Throttled(ThrottleScope::Unknown, err.to_string()),
        ErrorKind::Transient => SourceError::Transient(err.to_string()),
        // An answer whose code we do not know is AWS's own trouble more often than ours.
        ErrorKind::Other if err.code.is_none() => SourceError::Transient(err.to_string()),
        _ => SourceError::Fatal(err.to_string()),
    }
}

impl BlockSource for EbsSource {
    async fn list(
        &self,
        snapshot_id: &str,
        starting_index: u64,
        page_token: Option<&str>,
        max_results: u32,
    ) -> Result<BlockPage, SourceError> {
        let mut request = self
            .ebs
            .list_snapshot_blocks()
            .snapshot_id(snapshot_id)
            .max_results(max_results as i32);
        request = match page_token {
            Some(token) => request.next_token(token),
            None => request.starting_block_index(starting_index as i32),
        };
        let out = request
            .send()
            .await
            .map_err(|e| classify("ListSnapshotBlocks", e))?;
        let block_size = out.block_size().unwrap_or_default().max(0) as u64;
        Ok(BlockPage {
            blocks: out
                .blocks()
                .iter()
                .filter_map(|b| {
                    Some(ListedBlock {
                        index: b.block_index()?.max(0) as u64,
                        token: b.block_token()?.to_string(),
                    })
                })
                .collect(),
            next_token: out.next_token().map(str::to_string),
            volume_bytes: out.volume_size().unwrap_or_default().max(0) as u64 * (1 << 30),
            block_size,
        })
    }

    async fn get(
        &self,
        snapshot_id: &str,
        index: u64,
        token: &str,
    ) -> Result<FetchedBlock, SourceError> {
        let out = self
            .ebs
            .get_snapshot_block()
            .snapshot_id(snapshot_id)
            .block_index(index as i32)
            .block_token(token)
            .send()
            .await
            .map_err(|e| {
                // AWS names the quota it enforced: the engine slows the snapshot or the account.
                let scope = match e.as_service_error() {
                    Some(GetSnapshotBlockError::RequestThrottledException(t)) => {
                        Some(ThrottleScope::from_reason(t.reason().map(|r| r.as_str())))
                    }
                    _ => None,
                };
                match (scope, classify("GetSnapshotBlock", e)) {
                    (Some(scope), SourceError::Throttled(_, message)) => {
                        SourceError::Throttled(scope, message)
                    }
                    (_, other) => other,
                }
            })?;
        let checksum = out.checksum().unwrap_or_default().to_string();
        let algorithm = out
            .checksum_algorithm()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let data_length = out.data_length().unwrap_or_default().max(0) as u64;
        // The frames are copied once, into one buffer of the announced length; from there the
        // block is shared (`Bytes`) up to the part upload.
        let mut data = BytesMut::with_capacity(data_length.min(1 << 20) as usize);
        let mut body = out.block_data;
        while let Some(frame) = body.next().await {
            let frame = frame.map_err(|e| {
                SourceError::Transient(format!(
                    "GetSnapshotBlock {snapshot_id} block {index}: body: {e}"
                ))
            })?;
            data.extend_from_slice(&frame);
        }
        Ok(FetchedBlock {
            data: data.freeze(),
            checksum,
            algorithm,
            data_length,
        })
    }
}
