//! CloudTrail of one member account and region, and the bucket its trail delivers to, as the
//! CloudTrail evidence step reads them. Read only: nothing here changes a trail, its bucket or
//! its objects (an investigation must not tip off the attacker it watches).
//!
//! The adapter hands back the exact bytes of every LookupEvents request it sent and of the
//! response it got: those bytes are the evidence, stored as they were exchanged.

use std::collections::BTreeMap;
use std::future::Future;

use forensnap_store::{Called, CloudError};
use time::OffsetDateTime;

/// One LookupEvents call: one lookup attribute (the API takes one per call) over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupCall {
    /// The attribute key, spelled as the API does (`ResourceName`, `Username`, ...).
    pub key: String,
    /// Its value.
    pub value: String,
    /// Start of the window (inclusive).
    pub start: OffsetDateTime,
    /// End of the window (inclusive).
    pub end: OffsetDateTime,
    /// Events per page (AWS: at most 50).
    pub max_results: u32,
    /// The previous page's `NextToken`.
    pub next_token: Option<String>,
}

/// The bytes of one exchange with AWS: the request body sent and the response body received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The request body, as sent.
    pub request: Vec<u8>,
    /// The response body, as received.
    pub response: Vec<u8>,
    /// AWS's request id.
    pub request_id: Option<String>,
}

/// A trail, as DescribeTrails reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailInfo {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its home region.
    pub home_region: String,
    /// The bucket it delivers to.
    pub bucket: Option<String>,
    /// Its key prefix in that bucket.
    pub prefix: Option<String>,
    /// Whether it writes digest files.
    pub log_file_validation: bool,
    /// Whether it records every region.
    pub multi_region: bool,
    /// Whether it is an organisation trail.
    pub organization: bool,
}

/// One of CloudTrail's public keys for digest signatures (ListPublicKeys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// Hex fingerprint, as digests name it.
    pub fingerprint: String,
    /// The PKCS#1 RSAPublicKey, DER.
    pub der: Vec<u8>,
    /// Start of its validity.
    pub valid_from: OffsetDateTime,
    /// End of its validity.
    pub valid_until: OffsetDateTime,
}

/// An object listed in the trail's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An object read from the trail's bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedObject {
    /// Its bytes, as stored (CloudTrail's files are gzip).
    pub bytes: Vec<u8>,
    /// Its user metadata: keys lowercase, without `x-amz-meta-` (`signature`, ...).
    pub metadata: BTreeMap<String, String>,
    /// Its version id, if the bucket is versioned.
    pub version_id: Option<String>,
    /// Its ETag.
    pub etag: Option<String>,
    /// When it was last modified, RFC 3339.
    pub last_modified: Option<String>,
}

/// CloudTrail of one account and region, and read access to its trail's bucket.
pub trait Trail: Send + Sync {
    /// The account this reads.
    fn account(&self) -> &str;
    /// The region this reads.
    fn region(&self) -> &str;
    /// One LookupEvents page. The adapter does not retry: throttling comes back as a
    /// [`CloudError`] of kind `Throttled`, and the caller paces and retries.
    fn lookup_events(
        &self,
        call: &LookupCall,
    ) -> impl Future<Output = Result<Exchange, CloudError>> + Send;
    /// DescribeTrails of the region (shadow trails of multi-region trails included).
    fn describe_trails(
        &self,
    ) -> impl Future<Output = Result<Called<Vec<TrailInfo>>, CloudError>> + Send;
    /// GetTrailStatus of a trail (is it logging, when did it stop), with the exchange's bytes.
    fn trail_status(
        &self,
        trail_arn: &str,
    ) -> impl Future<Output = Result<Exchange, CloudError>> + Send;
    /// ListPublicKeys over a window, with the exchange's bytes.
    fn list_public_keys(
        &self,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> impl Future<Output = Result<(Vec<PublicKeyInfo>, Exchange), CloudError>> + Send;
    /// Every key under `prefix` in `bucket`, in key order.
    fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ListedObject>, CloudError>> + Send;
    /// One object, or `None` when it does not exist.
    fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<FetchedObject>, CloudError>> + Send;
}

/// No CloudTrail: for collections that preserve none (every call is refused as not permitted).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrail;

fn not_here(operation: &'static str) -> CloudError {
    CloudError::new(
        forensnap_store::ErrorKind::NotPermitted,
        operation,
        "this collection reads no CloudTrail",
    )
}

impl Trail for NoTrail {
    fn account(&self) -> &str {
        ""
    }

    fn region(&self) -> &str {
        ""
    }

    async fn lookup_events(&self, _: &LookupCall) -> Result<Exchange, CloudError> {
        Err(not_here("LookupEvents"))
    }

    async fn describe_trails(&self) -> Result<Called<Vec<TrailInfo>>, CloudError> {
        Err(not_here("DescribeTrails"))
    }

    async fn trail_status(&self, _: &str) -> Result<Exchange, CloudError> {
        Err(not_here("GetTrailStatus"))
    }

    async fn list_public_keys(
        &self,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<(Vec<PublicKeyInfo>, Exchange), CloudError> {
        Err(not_here("ListPublicKeys"))
    }

    async fn list_objects(&self, _: &str, _: &str) -> Result<Vec<ListedObject>, CloudError> {
        Err(not_here("ListObjectsV2"))
    }

    async fn get_object(&self, _: &str, _: &str) -> Result<Option<FetchedObject>, CloudError> {
        Err(not_here("GetObject"))
    }
}
