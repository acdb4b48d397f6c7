//! The S3 stand-in for the evidence sink: path-style (`/bucket/key`) REST over hyper, holding
//! objects in memory, with the calls forensnap's S3 adapter makes and S3's answers to them.
//!
//! * this module -- configuration, routing, request bodies with their checksums checked (SHA-256,
//!   CRC-64/NVME: a body is hashed only with the algorithms its request announces), errors;
//! * `objects` -- PutObject (`If-None-Match: *`, Object Lock headers), GetObject (ranges),
//!   HeadObject (checksum mode, lock state), DeleteObject, ListObjectsV2, ListObjectVersions;
//! * `multipart` -- Create/UploadPart/Complete/Abort, ListParts, ListMultipartUploads, with
//!   each part's checksum checked (header or aws-chunked trailer): SHA256 uploads get the
//!   composite `base64(sha256(part digests))-N` on completion, CRC64NVME uploads the full-object
//!   CRC combined from the parts' CRCs and lengths (no bytes needed);
//! * `bucket` -- CreateBucket, HeadBucket, ListBuckets, location, versioning, Object Lock
//!   configuration;
//! * `model` -- what is held; `body` -- bodies as they arrive; `xml` -- documents.
//!
//! Hand-written rather than built on an S3 server crate (`s3s`): the calls are few, and the
//! emulator must control what such crates hide -- latency before the answer, the idle cut of a
//! streaming body, "count" mode that checksums parts and drops their bytes, exact error codes.

mod body;
mod bucket;
mod model;
mod multipart;
mod objects;
mod xml;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{Request, Response};

use self::body::{Hashes, ReadError, ReadOptions, Received};
pub use self::model::Retention;
use self::model::{Bucket, Sums};
use crate::http::{Body, build, percent_decode, query, stats_answer};
use crate::latency::Latency;
use crate::stats::{Stats, add};

/// S3's smallest part (all but the last), 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's largest single upload (PutObject or one part), 5 GiB.
const MAX_UPLOAD: u64 = 5 << 30;
/// Largest XML request body read (a CompleteMultipartUpload of 10,000 parts is ~1.5 MB).
const MAX_XML: u64 = 16 << 20;

/// What happens to uploaded bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Storage {
    /// Keep them (GetObject returns them).
    #[default]
    Keep,
    /// Keep only each part's length and checksums (for benchmarks larger than memory); objects
    /// written by PutObject are still kept (they are small: manifests, resume state).
    Count,
}

/// A bucket that exists from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketSpec {
    /// Name.
    pub name: String,
    /// Versioning enabled.
    pub versioning: bool,
    /// Object Lock enabled (needs versioning).
    pub object_lock: bool,
    /// Default retention of new objects.
    pub default_retention: Option<Retention>,
}

impl BucketSpec {
    /// An evidence bucket as forensnap expects it: versioned, Object Lock on, COMPLIANCE
    /// retention of `days` by default.
    pub fn evidence(name: &str, days: u32) -> BucketSpec {
        BucketSpec {
            name: name.to_string(),
            versioning: true,
            object_lock: true,
            default_retention: Some(Retention {
                mode: "COMPLIANCE".to_string(),
                days,
            }),
        }
    }

    /// A plain bucket: unversioned, no Object Lock.
    pub fn plain(name: &str) -> BucketSpec {
        BucketSpec {
            name: name.to_string(),
            versioning: false,
            object_lock: false,
            default_retention: None,
        }
    }
}

/// What the S3 stand-in holds and how it answers.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Buckets that exist from the start (CreateBucket adds more).
    pub buckets: Vec<BucketSpec>,
    /// Latency of every answer, counted after the request body has arrived.
    pub latency: Latency,
    /// Keep bytes, or only count them.
    pub storage: Storage,
    /// Cut a request body that sends nothing for this long (S3's `RequestTimeout`); off by
    /// default.
    pub idle_timeout: Option<Duration>,
    /// Smallest part but the last (S3: 5 MiB), checked at completion.
    pub min_part_size: u64,
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            buckets: Vec::new(),
            latency: Latency::default(),
            storage: Storage::Keep,
            idle_timeout: None,
            min_part_size: MIN_PART_SIZE,
        }
    }
}

/// An S3 error answer.
#[derive(Debug)]
pub(crate) struct S3Error {
    /// HTTP status.
    status: u16,
    /// S3's code (`BadDigest`, `NoSuchKey`, ...).
    code: &'static str,
    /// Message.
    message: String,
    /// Close the connection after it (the body was not read to its end).
    close: bool,
}

/// An error answer.
pub(crate) fn err(status: u16, code: &'static str, message: impl Into<String>) -> S3Error {
    S3Error {
        status,
        code,
        message: message.into(),
        close: false,
    }
}

/// A handler's result.
pub(crate) type Answer = Result<(http::response::Builder, Body), S3Error>;

/// An XML document answer.
pub(crate) fn xml_answer(doc: String) -> Answer {
    Ok((
        Response::builder().header("content-type", "application/xml"),
        Body::full(doc),
    ))
}

/// One request: where it goes and what it says.
pub(crate) struct Call {
    /// Bucket (empty for the service).
    bucket: String,
    /// Key (empty for the bucket).
    key: String,
    /// Query parameters.
    q: HashMap<String, String>,
    /// Method, headers, URI.
    parts: http::request::Parts,
}

impl Call {
    /// A header's value.
    fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A query parameter.
    fn param(&self, name: &str) -> Option<&str> {
        self.q.get(name).map(String::as_str)
    }
}

/// The running stand-in.
pub(crate) struct S3 {
    /// Latency, storage, idle cut, part size.
    config: S3Config,
    /// Buckets by name.
    buckets: Mutex<BTreeMap<String, Bucket>>,
    /// Source of version and upload ids.
    seq: AtomicU64,
    /// Counters.
    stats: Arc<Stats>,
}

impl S3 {
    /// State for `config`, counting into `stats`.
    pub(crate) fn new(config: S3Config, stats: Arc<Stats>) -> S3 {
        let now = SystemTime::now();
        let buckets = config
            .buckets
            .iter()
            .map(|spec| {
                let bucket = Bucket {
                    created: Some(now),
                    versioning: (spec.versioning || spec.object_lock).then(|| "Enabled".into()),
                    lock_enabled: spec.object_lock,
                    default_retention: spec.default_retention.clone(),
                    ..Bucket::default()
                };
                (spec.name.clone(), bucket)
            })
            .collect();
        S3 {
            config,
            buckets: Mutex::new(buckets),
            seq: AtomicU64::new(1),
            stats,
        }
    }

    /// The buckets, locked.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh id: ascending, so ids sort in creation order.
    fn next_id(&self, prefix: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{n:016x}{:08x}", fastrand::u32(..))
    }

    /// Answer one request.
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if let Some(answer) = stats_answer(&self.stats, &req) {
            return answer;
        }
        add(&self.stats.s3_requests, 1);
        let request_id = self.next_id("");
        let head = req.method() == http::Method::HEAD;
        let (path, mut q) = (req.uri().path().to_string(), query(&req));
        // The SDK names some operations in the query (`x-id=PutObject`); routing ignores it.
        q.remove("x-id");
        let (parts, body) = req.into_parts();
        let trimmed = path.trim_start_matches('/');
        let (bucket, key) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        let call = Call {
            bucket: percent_decode(bucket),
            key: percent_decode(key),
            q,
            parts,
        };
        let answer = self.route(&call, body).await;
        self.config.latency.wait().await;
        match answer {
            Ok((builder, body)) => build(
                builder
                    .header("x-amz-request-id", &request_id)
                    .header("x-amz-id-2", &request_id),
                body,
            ),
            Err(e) => {
                let resource = format!("/{}/{}", call.bucket, call.key);
                let mut builder = Response::builder()
                    .status(e.status)
                    .header("x-amz-request-id", &request_id)
                    .header("x-amz-id-2", &request_id);
                if e.close {
                    builder = builder.header("connection", "close");
                }
                let body = if head {
                    Body::Empty
                } else {
                    builder = builder.header("content-type", "application/xml");
                    let doc = format!(
                        r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{request_id}</RequestId></Error>"#,
                        e.code,
                        xml::escape(&e.message),
                        xml::escape(&resource),
                    );
                    Body::full(doc)
                };
                build(builder, body)
            }
        }
    }

    /// The operation `call` names.
    async fn route(&self, call: &Call, body: Incoming) -> Answer {
        let has = |name: &str| call.q.contains_key(name);
        let method = call.parts.method.as_str();
        if call.bucket.is_empty() {
            return match method {
                "GET" => self.list_buckets(),
                _ => not_implemented(call),
            };
        }
        if call.key.is_empty() {
            return match method {
                "PUT" if has("versioning") => self.put_versioning(call, body).await,
                "PUT" if has("object-lock") => self.put_lock_configuration(call, body).await,
                "PUT" if call.q.is_empty() => self.create_bucket(call),
                "HEAD" => self.head_bucket(call),
                "GET" if has("uploads") => self.list_uploads(call),
                "GET" if has("versions") => self.list_versions(call),
                "GET" if has("versioning") => self.get_versioning(call),
                "GET" if has("object-lock") => self.get_lock_configuration(call),
                "GET" if has("location") => self.location(call),
                "GET" if !has("delete") => self.list_objects(call),
                _ => not_implemented(call),
            };
        }
        match method {
            "PUT" if has("partNumber") && has("uploadId") => self.upload_part(call, body).await,
            "PUT" if call.header("x-amz-copy-source").is_some() => not_implemented(call),
            "PUT" if call.q.is_empty() => self.put_object(call, body).await,
            "POST" if has("uploads") => self.create_upload(call),
            "POST" if has("uploadId") => self.complete_upload(call, body).await,
            "DELETE" if has("uploadId") => self.abort_upload(call),
            "DELETE" => self.delete_object(call),
            "GET" if has("uploadId") => self.list_parts(call),
            "GET" if has("partNumber") => not_implemented(call),
            "GET" => self.get_object(call, false),
            "HEAD" => self.get_object(call, true),
            _ => not_implemented(call),
        }
    }

    /// Receive an upload's body, hashed with the algorithms its request announces, and check the
    /// SHA-256 and CRC-64/NVME the client sent (header or trailer).
    async fn receive(&self, call: &Call, body: Incoming, keep: bool) -> Result<Checked, S3Error> {
        let encoding = call.header("content-encoding").unwrap_or_default();
        let chunked = encoding.contains("aws-chunked")
            || call
                .header("x-amz-content-sha256")
                .is_some_and(|v| v.starts_with("STREAMING-"));
        let decoded_len = call
            .header("x-amz-decoded-content-length")
            .and_then(|v| v.parse::<u64>().ok());
        let announced = decoded_len
            .or_else(|| call.header("content-length").and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        if announced > MAX_UPLOAD {
            return Err(err(
                400,
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed size",
            ));
        }
        let announced_trailers: Vec<String> = call
            .header("x-amz-trailer")
            .unwrap_or_default()
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let options = ReadOptions {
            chunked,
            keep,
            hashes: announced_hashes(call, &announced_trailers),
            idle: self.config.idle_timeout,
            announced,
            limit: MAX_UPLOAD,
        };
        let received = self.read_body(body, options).await?;
        if chunked && decoded_len.is_some_and(|n| n != received.len) {
            return Err(err(
                400,
                "IncompleteBody",
                format!(
                    "x-amz-decoded-content-length says {} bytes, the body had {}",
                    decoded_len.unwrap_or_default(),
                    received.len
                ),
            ));
        }
        if let Some(missing) = announced_trailers
            .iter()
            .find(|t| received.trailer(t).is_none())
        {
            return Err(err(
                400,
                "IncompleteBody",
                format!("the body ended without its announced trailer {missing}"),
            ));
        }
        let computed = received.computed;
        let given = Sums {
            sha256: self
                .verify(call, &received, "SHA256", computed.sha256.map(|d| b64(&d)))?
                .then_some(computed.sha256)
                .flatten(),
            crc64nvme: self
                .verify(
                    call,
                    &received,
                    "CRC64NVME",
                    computed.crc64nvme.map(crc64_b64),
                )?
                .then_some(computed.crc64nvme)
                .flatten(),
        };
        let is_checksum = |name: &str| {
            name.starts_with("x-amz-checksum-")
                && !matches!(
                    name,
                    "x-amz-checksum-algorithm" | "x-amz-checksum-type" | "x-amz-checksum-mode"
                )
        };
        let any_checksum = given != Sums::default()
            || call.parts.headers.contains_key("content-md5")
            || call.parts.headers.keys().any(|n| is_checksum(n.as_str()))
            || received.trailers.iter().any(|(n, _)| is_checksum(n));
        Ok(Checked {
            received,
            given,
            any_checksum,
        })
    }

    /// Check the checksum of algorithm `name` (`SHA256`, `CRC64NVME`) the client sent in a header
    /// or trailer against the one `computed` (base64); whether the client sent one.
    fn verify(
        &self,
        call: &Call,
        received: &Received,
        name: &str,
        computed: Option<String>,
    ) -> Result<bool, S3Error> {
        let field = format!("x-amz-checksum-{}", name.to_ascii_lowercase());
        let Some(given) = call.header(&field).or_else(|| received.trailer(&field)) else {
            return Ok(false);
        };
        // A header announces itself; only a trailer can arrive unannounced (the body was then not
        // hashed with its algorithm).
        let Some(computed) = computed else {
            return Err(err(
                400,
                "InvalidRequest",
                format!("The trailer {field} was not announced in x-amz-trailer"),
            ));
        };
        if given != computed {
            add(&self.stats.s3_bad_digest, 1);
            return Err(err(
                400,
                "BadDigest",
                format!(
                    "The {name} you specified did not match the calculated checksum (given {given}, calculated {computed})"
                ),
            ));
        }
        Ok(true)
    }

    /// A quoted ETag for a received body, from the digest it got: its SHA-256, else its
    /// CRC-64/NVME and length, else (nothing announced, so nothing hashed) a fresh unique value.
    fn body_etag(&self, received: &Received) -> String {
        if let Some(digest) = received.computed.sha256 {
            return etag(&digest, None);
        }
        let (high, low) = match received.computed.crc64nvme {
            Some(crc) => (crc, received.len),
            None => (self.seq.fetch_add(1, Ordering::Relaxed), fastrand::u64(..)),
        };
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&high.to_be_bytes());
        id[8..].copy_from_slice(&low.to_be_bytes());
        etag(&id, None)
    }

    /// Read a body, mapping failures to S3's errors.
    async fn read_body(&self, body: Incoming, options: ReadOptions) -> Result<Received, S3Error> {
        body::read(body, options).await.map_err(|e| match e {
            ReadError::Idle(_) => {
                add(&self.stats.s3_timeouts, 1);
                S3Error {
                    close: true,
                    ..err(
                        400,
                        "RequestTimeout",
                        format!("Your socket connection to the server was not read from or written to within the timeout period ({e})"),
                    )
                }
            }
            ReadError::TooLong(_) => S3Error {
                close: true,
                ..err(400, "EntityTooLarge", e.to_string())
            },
            ReadError::Malformed(_) | ReadError::Transport(_) => S3Error {
                close: true,
                ..err(400, "IncompleteBody", e.to_string())
            },
        })
    }

    /// A small XML request body, as text.
    async fn read_xml(&self, body: Incoming) -> Result<String, S3Error> {
        let options = ReadOptions {
            chunked: false,
            keep: true,
            hashes: Hashes::default(),
            idle: self.config.idle_timeout,
            announced: 0,
            limit: MAX_XML,
        };
        let received = self.read_body(body, options).await?;
        let bytes = received.data.unwrap_or_default();
        String::from_utf8(bytes.to_vec())
            .map_err(|_| err(400, "MalformedXML", "the XML body is not UTF-8"))
    }
}

/// An upload body received and checked.
pub(crate) struct Checked {
    /// The bytes (or their count) and digests.
    received: Received,
    /// The checksums the client sent (all matched).
    given: Sums,
    /// The client sent some checksum or Content-MD5 (Object Lock requires one).
    any_checksum: bool,
}

/// The digests a request announces for its body, to compute as it arrives: from
/// `x-amz-sdk-checksum-algorithm`, `x-amz-trailer` (`announced_trailers`) or an
/// `x-amz-checksum-*` header.
fn announced_hashes(call: &Call, announced_trailers: &[String]) -> Hashes {
    let sdk = call
        .header("x-amz-sdk-checksum-algorithm")
        .unwrap_or_default();
    let announces = |name: &str| {
        let field = format!("x-amz-checksum-{}", name.to_ascii_lowercase());
        sdk.eq_ignore_ascii_case(name)
            || announced_trailers.contains(&field)
            || call.header(&field).is_some()
    };
    Hashes {
        sha256: announces("SHA256"),
        crc64nvme: announces("CRC64NVME"),
    }
}

/// `NotImplemented` for a call the stand-in does not serve.
fn not_implemented(call: &Call) -> Answer {
    Err(err(
        501,
        "NotImplemented",
        format!(
            "{} {}{}: not served by forensnap-emulator",
            call.parts.method,
            call.parts.uri.path(),
            call.parts
                .uri
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        ),
    ))
}

/// `NoSuchBucket`.
fn no_bucket(name: &str) -> S3Error {
    err(
        404,
        "NoSuchBucket",
        format!("The specified bucket {name} does not exist"),
    )
}

/// Base64 of a digest.
fn b64(digest: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Base64 of a CRC-64/NVME, as S3 writes it (its 8 bytes, big-endian).
fn crc64_b64(crc: u64) -> String {
    b64(&crc.to_be_bytes())
}

/// A quoted ETag from a digest (S3's are MD5; any opaque quoted value will do).
fn etag(digest: &[u8], parts: Option<u32>) -> String {
    let hex = hex::encode(&digest[..16.min(digest.len())]);
    match parts {
        Some(n) => format!("\"{hex}-{n}\""),
        None => format!("\"{hex}\""),
    }
}

/// The checksum headers of a body's answer (PutObject, UploadPart): those the client sent.
fn checksum_headers(mut builder: http::response::Builder, given: &Sums) -> http::response::Builder {
    if let Some(digest) = given.sha256 {
        builder = builder.header("x-amz-checksum-sha256", b64(&digest));
    }
    if let Some(crc) = given.crc64nvme {
        builder = builder.header("x-amz-checksum-crc64nvme", crc64_b64(crc));
    }
    builder
}

/// The Object Lock a PutObject or CreateMultipartUpload asks for in its headers.
fn asked_lock(call: &Call) -> Result<model::Lock, S3Error> {
    let mode = call.header("x-amz-object-lock-mode").map(str::to_string);
    let until = call.header("x-amz-object-lock-retain-until-date");
    let retain_until = match until {
        Some(text) => Some(xml::parse_iso(text).ok_or_else(|| {
            err(
                400,
                "InvalidArgument",
                format!("x-amz-object-lock-retain-until-date {text:?} is not an ISO 8601 date"),
            )
        })?),
        None => None,
    };
    if mode.is_some() != retain_until.is_some() {
        return Err(err(
            400,
            "InvalidArgument",
            "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must both be supplied",
        ));
    }
    if let Some(mode) = &mode
        && !matches!(mode.as_str(), "COMPLIANCE" | "GOVERNANCE")
    {
        return Err(err(
            400,
            "InvalidArgument",
            format!("unknown Object Lock mode {mode}"),
        ));
    }
    Ok(model::Lock {
        mode,
        retain_until,
        legal_hold: call
            .header("x-amz-object-lock-legal-hold")
            .is_some_and(|v| v.eq_ignore_ascii_case("ON")),
    })
}

/// Object Lock headers of a version.
fn lock_headers(
    mut builder: http::response::Builder,
    lock: &model::Lock,
) -> http::response::Builder {
    if let Some(mode) = &lock.mode {
        builder = builder.header("x-amz-object-lock-mode", mode);
    }
    if let Some(until) = lock.retain_until {
        builder = builder.header("x-amz-object-lock-retain-until-date", xml::iso(until));
    }
    if lock.legal_hold {
        builder = builder.header("x-amz-object-lock-legal-hold", "ON");
    }
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(headers: &[(&str, &str)]) -> Call {
        let mut request = http::Request::builder().method("PUT").uri("/b/k");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (parts, ()) = request.body(()).expect("request").into_parts();
        Call {
            bucket: "b".into(),
            key: "k".into(),
            q: HashMap::new(),
            parts,
        }
    }

    #[test]
    fn a_body_is_hashed_only_with_the_algorithms_it_announces() {
        let hashes = |headers: &[(&str, &str)], trailers: &[&str]| {
            let trailers: Vec<String> = trailers.iter().map(|t| t.to_string()).collect();
            announced_hashes(&call(headers), &trailers)
        };
        let crc = Hashes {
            sha256: false,
            crc64nvme: true,
        };
        let sha = Hashes {
            sha256: true,
            crc64nvme: false,
        };
        assert_eq!(
            hashes(
                &[("x-amz-sdk-checksum-algorithm", "CRC64NVME")],
                &["x-amz-checksum-crc64nvme"]
            ),
            crc
        );
        assert_eq!(hashes(&[], &["x-amz-checksum-crc64nvme"]), crc);
        assert_eq!(hashes(&[("x-amz-checksum-crc64nvme", "AAAA")], &[]), crc);
        assert_eq!(hashes(&[("x-amz-checksum-sha256", "AAAA")], &[]), sha);
        assert_eq!(
            hashes(&[("x-amz-sdk-checksum-algorithm", "sha256")], &[]),
            sha
        );
        assert_eq!(
            hashes(&[("x-amz-sdk-checksum-algorithm", "CRC32")], &[]),
            Hashes::default()
        );
        assert_eq!(hashes(&[], &[]), Hashes::default());
    }
}
