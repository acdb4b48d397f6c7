//! The S3 stand-in through the real aws-sdk-s3 client, making the calls forensnap's S3 adapter
//! makes: a multipart upload with SHA-256 checksums (streamed parts carry them as aws-chunked
//! trailers, in-memory ones as headers) completes with the composite checksum, reads back, and a
//! part whose checksum does not match is refused with BadDigest; the same with CRC-64/NVME and
//! the full-object checksum (the client's checked on completion); plus conditional puts,
//! listings, Object Lock, count mode and the idle cut, some over raw HTTP.

mod common;

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectLockLegalHoldStatus,
};
use base64::Engine as _;
use bytes::Bytes;
use crc_fast::CrcAlgorithm;
use forensnap_emulator::{BucketSpec, EbsConfig, Emulator, EmulatorConfig, S3Config, Storage};
use http_body::{Frame, SizeHint};
use sha2::{Digest, Sha256};

const BUCKET: &str = "evidence";

async fn launch(storage: Storage, idle: Option<Duration>) -> Emulator {
    Emulator::launch(EmulatorConfig {
        ebs: EbsConfig::default(),
        s3: Some(S3Config {
            buckets: vec![BucketSpec::evidence(BUCKET, 1), BucketSpec::plain("plain")],
            storage,
            idle_timeout: idle,
            min_part_size: 64 * 1024,
            ..S3Config::default()
        }),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A streamed body of known length: the SDK cannot see its bytes, so it sends them aws-chunked
/// with the checksum as a trailer (as forensnap's part bodies are sent).
struct Streamed {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl Streamed {
    fn new(data: &[u8]) -> Streamed {
        Streamed {
            chunks: data.chunks(10_000).map(Bytes::copy_from_slice).collect(),
            remaining: data.len() as u64,
        }
    }
}

impl http_body::Body for Streamed {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.pop_front();
        if let Some(chunk) = &next {
            self.remaining -= chunk.len() as u64;
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn part_data(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ n).collect()
}

#[tokio::test]
async fn a_three_part_upload_completes_with_the_composite_checksum_and_reads_back() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let key = "case-1/vol-1/data/blocks.bin";
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .send()
        .await
        .expect("create");
    let upload_id = created.upload_id().expect("upload id").to_string();

    let parts = [
        part_data(1, 200_000),
        part_data(2, 200_000),
        part_data(3, 70_000),
    ];
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let request = s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .content_length(data.len() as i64);
        let out = if number < 3 {
            // Streamed: SHA-256 as an aws-chunked trailer, as forensnap sends parts.
            request
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(ByteStream::from_body_1_x(Streamed::new(data)))
                .send()
                .await
        } else {
            // In memory, checksum given: SHA-256 in a header.
            request
                .checksum_sha256(b64(&Sha256::digest(data)))
                .body(ByteStream::from(data.clone()))
                .send()
                .await
        }
        .expect("part");
        assert_eq!(
            out.checksum_sha256(),
            Some(b64(&Sha256::digest(data)).as_str()),
            "part {number}"
        );
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().expect("etag"))
                .checksum_sha256(out.checksum_sha256().expect("sum"))
                .build(),
        );
    }

    // What a resumed acquisition finds: the open upload and its parts.
    let open = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix(key)
        .send()
        .await
        .expect("uploads");
    assert_eq!(open.uploads().len(), 1);
    assert_eq!(open.uploads()[0].upload_id(), Some(upload_id.as_str()));
    let listed = s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .expect("parts");
    assert_eq!(listed.parts().len(), 3);
    assert_eq!(listed.parts()[2].size(), Some(70_000));
    assert_eq!(
        listed.parts()[0].checksum_sha256(),
        completed[0].checksum_sha256()
    );

    let done = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let digests: Vec<u8> = parts
        .iter()
        .flat_map(|p| Sha256::digest(p).to_vec())
        .collect();
    let composite = format!("{}-3", b64(&Sha256::digest(&digests)));
    assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
    assert!(done.version_id().is_some());

    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(head.content_length(), Some(470_000));
    assert_eq!(head.version_id(), done.version_id());
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    assert_eq!(
        head.object_lock_legal_hold_status().map(|s| s.as_str()),
        Some("ON")
    );
    assert!(head.object_lock_retain_until_date().is_some());

    let whole = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(whole.as_ref(), parts.concat().as_slice());
    let range = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .range("bytes=199990-200009")
        .send()
        .await
        .expect("range")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(range.as_ref(), &parts.concat()[199_990..200_010]);

    let stats = emulator.stats().s3;
    assert_eq!(stats.parts, 3);
    assert_eq!(stats.completed_uploads, 1);
    assert_eq!(stats.bytes_in, 470_000);
}

/// A SHA-256 multipart upload of `key` in the test bucket; its id.
async fn create_upload(s3: &aws_sdk_s3::Client, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create")
        .upload_id()
        .expect("id")
        .to_string()
}

#[tokio::test]
async fn a_part_whose_checksum_does_not_match_is_refused_with_bad_digest() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let upload_id = create_upload(&s3, "k").await;
    let err = s3
        .upload_part()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_sha256(b64(&Sha256::digest(b"other bytes")))
        .body(ByteStream::from_static(b"these bytes"))
        .send()
        .await
        .expect_err("a wrong checksum");
    assert_eq!(err.code(), Some("BadDigest"), "{err:?}");

    // The same through an aws-chunked trailer, written by hand (the SDK always computes its
    // trailer from the bytes it sends).
    let addr = emulator.s3_addr.expect("s3");
    let data = b"hello, evidence";
    let wrong = b64(&Sha256::digest(b"something else"));
    let body = format!(
        "{:x}\r\n{}\r\n0\r\nx-amz-checksum-sha256:{wrong}\r\n\r\n",
        data.len(),
        String::from_utf8_lossy(data)
    );
    let request = format!(
        "PUT /{BUCKET}/k?partNumber=2&uploadId={upload_id} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Encoding: aws-chunked\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
         x-amz-decoded-content-length: {}\r\nx-amz-trailer: x-amz-checksum-sha256\r\nContent-Length: {}\r\n\r\n{body}",
        data.len(),
        body.len()
    );
    let (status, answer) = common::raw(addr, request.as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("<Code>BadDigest</Code>"), "{answer}");

    // A right trailer is accepted and echoed.
    let right = b64(&Sha256::digest(data));
    let request = request.replace(&wrong, &right);
    let (status, answer) = common::raw(addr, request.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.to_ascii_lowercase().contains(&format!(
        "x-amz-checksum-sha256: {}",
        right.to_ascii_lowercase()
    )));

    assert_eq!(emulator.stats().s3.bad_digest, 2);
    assert_eq!(emulator.stats().s3.parts, 1);
}

#[tokio::test]
async fn single_puts_never_overwrite_and_the_bucket_answers_an_auditor() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let put = |bytes: &'static [u8], if_none_match: bool| {
        s3.put_object()
            .bucket(BUCKET)
            .key("case-1/manifest.json")
            .content_type("application/json")
            .checksum_sha256(b64(&Sha256::digest(bytes)))
            .set_if_none_match(if_none_match.then(|| "*".to_string()))
            .body(ByteStream::from_static(bytes))
            .send()
    };
    let first = put(b"{\"v\":1}", true).await.expect("first put");
    let refused = put(b"{\"v\":2}", true).await.expect_err("an existing key");
    assert_eq!(refused.code(), Some("PreconditionFailed"));
    let second = put(b"{\"v\":2}", false).await.expect("a new version");
    assert_ne!(first.version_id(), second.version_id());

    let got = s3
        .get_object()
        .bucket(BUCKET)
        .key("case-1/manifest.json")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body
            .collect()
            .await
            .expect("body")
            .into_bytes()
            .as_ref(),
        b"{\"v\":2}"
    );
    let missing = s3
        .get_object()
        .bucket(BUCKET)
        .key("case-1/none")
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(missing.code(), Some("NoSuchKey"));
    let head_missing = s3
        .head_object()
        .bucket(BUCKET)
        .key("case-1/none")
        .send()
        .await
        .expect_err("no such key");
    assert_eq!(
        head_missing.raw_response().map(|r| r.status().as_u16()),
        Some(404)
    );

    let keys = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("case-1/")
        .send()
        .await
        .expect("list");
    assert_eq!(keys.contents().len(), 1);
    let versions = s3
        .list_object_versions()
        .bucket(BUCKET)
        .prefix("case-1/")
        .send()
        .await
        .expect("versions");
    assert_eq!(versions.versions().len(), 2);
    assert_eq!(versions.versions()[0].is_latest(), Some(true));
    assert_eq!(versions.versions()[0].version_id(), second.version_id());

    // Object Lock: the retained version cannot be deleted.
    let denied = s3
        .delete_object()
        .bucket(BUCKET)
        .key("case-1/manifest.json")
        .version_id(first.version_id().expect("version"))
        .send()
        .await
        .expect_err("a locked version");
    assert_eq!(denied.code(), Some("AccessDenied"));
    let lock = s3
        .get_object_lock_configuration()
        .bucket(BUCKET)
        .send()
        .await
        .expect("lock configuration");
    let config = lock.object_lock_configuration().expect("configuration");
    assert_eq!(
        config.object_lock_enabled().map(|e| e.as_str()),
        Some("Enabled")
    );
    let versioning = s3
        .get_bucket_versioning()
        .bucket(BUCKET)
        .send()
        .await
        .expect("versioning");
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let plain = s3
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await
        .expect_err("no lock on a plain bucket");
    assert_eq!(plain.code(), Some("ObjectLockConfigurationNotFoundError"));
}

#[tokio::test]
async fn count_mode_keeps_lengths_and_checksums_but_no_bytes() {
    let emulator = launch(Storage::Count, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let upload_id = create_upload(&s3, "big").await;
    let data = part_data(9, 100_000);
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key("big")
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .content_length(data.len() as i64)
        .body(ByteStream::from_body_1_x(Streamed::new(&data)))
        .send()
        .await
        .expect("part");
    let done = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("big")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().expect("etag"))
                        .checksum_sha256(part.checksum_sha256().expect("sum"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let composite = format!("{}-1", b64(&Sha256::digest(Sha256::digest(&data))));
    assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(100_000));
    let err = s3
        .get_object()
        .bucket(BUCKET)
        .key("big")
        .send()
        .await
        .expect_err("no bytes kept");
    assert_eq!(err.code(), Some("NotImplemented"));
}

#[tokio::test]
async fn an_idle_request_body_is_cut_with_request_timeout() {
    let emulator = launch(Storage::Keep, Some(Duration::from_millis(300))).await;
    let addr = emulator.s3_addr.expect("s3");
    let started = std::time::Instant::now();
    let (status, answer) = common::raw(
        addr,
        format!(
            "PUT /{BUCKET}/stalled HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\nonly ten b"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("<Code>RequestTimeout</Code>"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(emulator.stats().s3.request_timeouts, 1);
}

/// Base64 of the CRC-64/NVME of `data`, as S3 writes it.
fn crc64(data: &[u8]) -> String {
    b64(&crc_fast::checksum(CrcAlgorithm::Crc64Nvme, data).to_be_bytes())
}

/// CompleteMultipartUpload of a CRC-64/NVME upload, with the whole object's CRC `full`.
async fn complete_crc(
    s3: &aws_sdk_s3::Client,
    key: &str,
    upload_id: &str,
    full: &str,
    parts: Vec<CompletedPart>,
) -> Result<
    aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput,
    aws_sdk_s3::error::SdkError<
        aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadError,
    >,
> {
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .checksum_crc64_nvme(full)
        .checksum_type(ChecksumType::FullObject)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
}

/// A CRC64NVME (full-object) multipart upload of `key` in the test bucket; its id.
async fn create_crc_upload(s3: &aws_sdk_s3::Client, key: &str) -> String {
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .expect("create");
    assert_eq!(
        created.checksum_algorithm(),
        Some(&ChecksumAlgorithm::Crc64Nvme)
    );
    assert_eq!(created.checksum_type(), Some(&ChecksumType::FullObject));
    created.upload_id().expect("id").to_string()
}

/// Upload part `number` streamed, its CRC-64/NVME as an aws-chunked trailer (as forensnap
/// sends parts); the part as CompleteMultipartUpload lists it.
async fn upload_crc_part(
    s3: &aws_sdk_s3::Client,
    key: &str,
    upload_id: &str,
    number: i32,
    data: &[u8],
) -> CompletedPart {
    let out = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(data.len() as i64)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .body(ByteStream::from_body_1_x(Streamed::new(data)))
        .send()
        .await
        .expect("part");
    assert_eq!(out.checksum_crc64_nvme(), Some(crc64(data).as_str()));
    assert_eq!(out.checksum_sha256(), None, "part {number}");
    CompletedPart::builder()
        .part_number(number)
        .e_tag(out.e_tag().expect("etag"))
        .checksum_crc64_nvme(out.checksum_crc64_nvme().expect("sum"))
        .build()
}

/// A hand-written UploadPart of `data` as aws-chunked with the trailer `name: value`.
fn raw_trailer_part(
    addr: std::net::SocketAddr,
    key: &str,
    upload_id: &str,
    number: u32,
    data: &[u8],
    name: &str,
    value: &str,
) -> String {
    let body = format!(
        "{:x}\r\n{}\r\n0\r\n{name}:{value}\r\n\r\n",
        data.len(),
        String::from_utf8_lossy(data)
    );
    format!(
        "PUT /{BUCKET}/{key}?partNumber={number}&uploadId={upload_id} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Encoding: aws-chunked\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
         x-amz-sdk-checksum-algorithm: CRC64NVME\r\n\
         x-amz-decoded-content-length: {}\r\nx-amz-trailer: {name}\r\nContent-Length: {}\r\n\r\n{body}",
        data.len(),
        body.len()
    )
}

#[tokio::test]
async fn a_crc64nvme_upload_completes_with_the_full_object_checksum_and_reads_back() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let key = "case-2/vol-1/data/blocks.bin";
    let upload_id = create_crc_upload(&s3, key).await;
    let parts = [
        part_data(4, 200_000),
        part_data(5, 200_000),
        part_data(6, 70_001),
    ];
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate().take(2) {
        completed.push(upload_crc_part(&s3, key, &upload_id, i as i32 + 1, data).await);
    }
    // In memory, checksum given: CRC-64/NVME in a header.
    let last = s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .part_number(3)
        .checksum_crc64_nvme(crc64(&parts[2]))
        .body(ByteStream::from(parts[2].clone()))
        .send()
        .await
        .expect("part 3");
    assert_eq!(last.checksum_crc64_nvme(), Some(crc64(&parts[2]).as_str()));
    completed.push(
        CompletedPart::builder()
            .part_number(3)
            .e_tag(last.e_tag().expect("etag"))
            .checksum_crc64_nvme(last.checksum_crc64_nvme().expect("sum"))
            .build(),
    );
    let etags: Vec<_> = completed.iter().map(|p| p.e_tag()).collect();
    assert!(etags.iter().all(|e| e.is_some_and(|e| e.starts_with('"'))));
    assert_ne!(etags[0], etags[1]);

    // What a resumed acquisition finds: the open upload, its algorithm and its parts' CRCs.
    let open = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix(key)
        .send()
        .await
        .expect("uploads");
    assert_eq!(open.uploads().len(), 1);
    assert_eq!(
        open.uploads()[0].checksum_algorithm(),
        Some(&ChecksumAlgorithm::Crc64Nvme)
    );
    assert_eq!(
        open.uploads()[0].checksum_type(),
        Some(&ChecksumType::FullObject)
    );
    let listed = s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .expect("parts");
    assert_eq!(
        listed.checksum_algorithm(),
        Some(&ChecksumAlgorithm::Crc64Nvme)
    );
    assert_eq!(listed.checksum_type(), Some(&ChecksumType::FullObject));
    let listed_crcs: Vec<_> = listed
        .parts()
        .iter()
        .map(|p| p.checksum_crc64_nvme())
        .collect();
    let expected_crcs: Vec<_> = parts.iter().map(|p| crc64(p)).collect();
    assert_eq!(
        listed_crcs,
        expected_crcs
            .iter()
            .map(|c| Some(c.as_str()))
            .collect::<Vec<_>>()
    );
    assert!(listed.parts().iter().all(|p| p.checksum_sha256().is_none()));

    // The client's full-object CRC, computed over the whole object here (S3 combines parts).
    let full = crc64(&parts.concat());
    let done = complete_crc(&s3, key, &upload_id, &full, completed)
        .await
        .expect("complete");
    assert_eq!(done.checksum_crc64_nvme(), Some(full.as_str()));
    assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(done.checksum_sha256(), None);

    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc64_nvme(), Some(full.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(head.content_length(), Some(470_001));
    assert_eq!(head.parts_count(), Some(3));

    // In checksum mode the SDK checks the whole body against the full-object CRC it is sent.
    let whole = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get");
    assert_eq!(whole.checksum_crc64_nvme(), Some(full.as_str()));
    let whole = whole.body.collect().await.expect("body").into_bytes();
    assert_eq!(whole.as_ref(), parts.concat().as_slice());
    let range = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .range("bytes=199990-200009")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("range");
    assert_eq!(range.checksum_crc64_nvme(), None);
    assert_eq!(range.checksum_type(), None);

    let stats = emulator.stats().s3;
    assert_eq!(stats.parts, 3);
    assert_eq!(stats.completed_uploads, 1);
    assert_eq!(stats.bad_digest, 0);
}

#[tokio::test]
async fn a_crc64nvme_upload_takes_only_full_object_and_parts_carrying_their_crc() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let composite = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::Composite)
        .send()
        .await
        .expect_err("CRC64NVME is full-object only");
    assert_eq!(composite.code(), Some("InvalidRequest"), "{composite:?}");
    // Without a type, CRC64NVME is full-object.
    let untyped = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .send()
        .await
        .expect("create");
    assert_eq!(untyped.checksum_type(), Some(&ChecksumType::FullObject));
    let upload_id = untyped.upload_id().expect("id");
    let refused = s3
        .upload_part()
        .bucket(BUCKET)
        .key("k")
        .upload_id(upload_id)
        .part_number(1)
        .checksum_sha256(b64(&Sha256::digest(b"these bytes")))
        .body(ByteStream::from_static(b"these bytes"))
        .send()
        .await
        .expect_err("a part without its CRC64NVME");
    assert_eq!(refused.code(), Some("InvalidRequest"), "{refused:?}");
    assert!(
        refused.message().is_some_and(|m| m.contains("crc64nvme")),
        "{refused:?}"
    );
    assert_eq!(emulator.stats().s3.parts, 0);
}

#[tokio::test]
async fn a_part_whose_crc64nvme_does_not_match_is_refused_with_bad_digest() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let upload_id = create_crc_upload(&s3, "k").await;
    let err = s3
        .upload_part()
        .bucket(BUCKET)
        .key("k")
        .upload_id(&upload_id)
        .part_number(1)
        .checksum_crc64_nvme(crc64(b"other bytes"))
        .body(ByteStream::from_static(b"these bytes"))
        .send()
        .await
        .expect_err("a wrong checksum");
    assert_eq!(err.code(), Some("BadDigest"), "{err:?}");
    assert!(
        err.message()
            .is_some_and(|m| m.starts_with("The CRC64NVME you specified did not match")),
        "{err:?}"
    );

    // The same through an aws-chunked trailer, written by hand.
    let addr = emulator.s3_addr.expect("s3");
    let data = b"hello, evidence";
    let trailer = "x-amz-checksum-crc64nvme";
    let wrong = raw_trailer_part(addr, "k", &upload_id, 2, data, trailer, &crc64(b"else"));
    let (status, answer) = common::raw(addr, wrong.as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("<Code>BadDigest</Code>"), "{answer}");

    // A right trailer is accepted and echoed.
    let right = raw_trailer_part(addr, "k", &upload_id, 2, data, trailer, &crc64(data));
    let (status, answer) = common::raw(addr, right.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.to_ascii_lowercase().contains(&format!(
        "x-amz-checksum-crc64nvme: {}",
        crc64(data).to_ascii_lowercase()
    )));
    assert!(
        !answer
            .to_ascii_lowercase()
            .contains("x-amz-checksum-sha256"),
        "{answer}"
    );

    // A checksum trailer the request did not announce was not computed: refused, not trusted.
    let unannounced = right.replace("x-amz-trailer: x-amz-checksum-crc64nvme\r\n", "");
    let unannounced = unannounced.replace(
        "x-amz-sdk-checksum-algorithm: CRC64NVME\r\n",
        "x-amz-sdk-checksum-algorithm: CRC32\r\n",
    );
    let (status, answer) = common::raw(addr, unannounced.as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("<Code>InvalidRequest</Code>"), "{answer}");
    assert!(answer.contains("was not announced"), "{answer}");

    assert_eq!(emulator.stats().s3.bad_digest, 2);
    assert_eq!(emulator.stats().s3.parts, 1);
}

#[tokio::test]
async fn completing_a_crc64nvme_upload_checks_the_full_object_checksum() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let key = "checked";
    let upload_id = create_crc_upload(&s3, key).await;
    let parts = [part_data(7, 100_000), part_data(8, 1)];
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        completed.push(upload_crc_part(&s3, key, &upload_id, i as i32 + 1, data).await);
    }
    let complete = |full: String, listed: Vec<CompletedPart>| {
        let (s3, upload_id) = (&s3, &upload_id);
        async move { complete_crc(s3, key, upload_id, &full, listed).await }
    };
    let full = crc64(&parts.concat());

    // A full-object CRC that is not the object's: BadDigest, counted, the upload still open.
    let wrong = complete(crc64(&parts[0]), completed.clone())
        .await
        .expect_err("a wrong full-object checksum");
    assert_eq!(wrong.code(), Some("BadDigest"), "{wrong:?}");
    assert_eq!(emulator.stats().s3.bad_digest, 1);

    // A part's CRC that is not the stored part's: InvalidPart.
    let mut mislisted = completed.clone();
    mislisted[1] = CompletedPart::builder()
        .part_number(2)
        .e_tag(completed[1].e_tag().expect("etag"))
        .checksum_crc64_nvme(crc64(b"not part 2"))
        .build();
    let invalid = complete(full.clone(), mislisted)
        .await
        .expect_err("a wrong part checksum");
    assert_eq!(invalid.code(), Some("InvalidPart"), "{invalid:?}");

    // Parts listed without their CRCs, the right full-object CRC: completed.
    let bare = completed
        .iter()
        .map(|p| {
            CompletedPart::builder()
                .set_part_number(p.part_number())
                .set_e_tag(p.e_tag().map(str::to_string))
                .build()
        })
        .collect();
    let done = complete(full.clone(), bare).await.expect("complete");
    assert_eq!(done.checksum_crc64_nvme(), Some(full.as_str()));
    assert_eq!(emulator.stats().s3.completed_uploads, 1);
    assert_eq!(emulator.stats().s3.bad_digest, 1);
}

#[tokio::test]
async fn count_mode_combines_part_crcs_into_the_full_object_checksum() {
    let emulator = launch(Storage::Count, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let upload_id = create_crc_upload(&s3, "big").await;
    let parts = [
        part_data(9, 100_000),
        part_data(10, 65_536),
        part_data(11, 3),
    ];
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        completed.push(upload_crc_part(&s3, "big", &upload_id, i as i32 + 1, data).await);
    }
    let full = crc64(&parts.concat());
    let done = complete_crc(&s3, "big", &upload_id, &full, completed)
        .await
        .expect("complete");
    assert_eq!(done.checksum_crc64_nvme(), Some(full.as_str()));
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("big")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(165_539));
    assert_eq!(head.checksum_crc64_nvme(), Some(full.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
}

#[tokio::test]
async fn a_put_object_with_a_crc64nvme_keeps_it_as_a_full_object_checksum() {
    let emulator = launch(Storage::Keep, None).await;
    let s3 = common::s3(&emulator.s3_url().expect("s3"));
    let bytes: &'static [u8] = b"{\"manifest\":1}";
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("case-3/manifest.json")
        .checksum_crc64_nvme(crc64(bytes))
        .body(ByteStream::from_static(bytes))
        .send()
        .await
        .expect("put");
    assert_eq!(put.checksum_crc64_nvme(), Some(crc64(bytes).as_str()));
    let wrong = s3
        .put_object()
        .bucket(BUCKET)
        .key("case-3/other.json")
        .checksum_crc64_nvme(crc64(b"other"))
        .body(ByteStream::from_static(bytes))
        .send()
        .await
        .expect_err("a wrong checksum");
    assert_eq!(wrong.code(), Some("BadDigest"));
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key("case-3/manifest.json")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc64_nvme(), Some(crc64(bytes).as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(emulator.stats().s3.bad_digest, 1);
}
