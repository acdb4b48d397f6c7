//! S3 Object Lock in the local world: multipart objects keep their lock (explicit or bucket
//! default), COMPLIANCE retention cannot be shortened or removed, wrong checksums are rejected
//! and leave nothing behind, versioning stays on, and the SDK parses every answer.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use forensnap_tests::*;

const PART: usize = 5 * 1024 * 1024;

/// A hand-made world (no policies): these tests probe the world's S3 itself (explicit lock
/// headers, retention changes), which the templates' bucket policy would refuse before S3 saw
/// them.
fn env() -> Env {
    let toml = world_toml(
        "forensnap-evidence",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nbuild = { kind = \"pattern\", blocks = 1 }",
        ],
    )
    .replace(
        "name_prefix = \"forensnap-evidence\"",
        "evidence_bucket = \"forensnap-evidence\"",
    );
    Env::new(&format!("policies = false\n{toml}"))
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Upload `parts` through multipart with per-part SHA-256 and complete it; returns the version id.
async fn multipart(
    s3: &aws_sdk_s3::Client,
    key: &str,
    parts: &[Vec<u8>],
    lock: Option<(DateTime, bool)>,
) -> Result<String, String> {
    let mut create = s3
        .create_multipart_upload()
        .bucket("forensnap-evidence")
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Sha256);
    if let Some((until, hold)) = lock {
        create = create
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(until);
        if hold {
            create = create.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
        }
    }
    let upload = create.send().await.map_err(|e| format!("{e:?}"))?;
    let upload_id = upload.upload_id().expect("upload id").to_string();
    let mut done = Vec::new();
    for (n, data) in parts.iter().enumerate() {
        let number = n as i32 + 1;
        let part = s3
            .upload_part()
            .bucket("forensnap-evidence")
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .checksum_sha256(b64_sha256(data))
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .map_err(|e| format!("UploadPart {number}: {}", e.code().unwrap_or_default()))?;
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap_or_default())
                .checksum_sha256(b64_sha256(data))
                .build(),
        );
    }
    let listed = s3
        .list_parts()
        .bucket("forensnap-evidence")
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await
        .map_err(|e| format!("ListParts: {e:?}"))?;
    assert_eq!(
        listed.parts().len(),
        parts.len(),
        "ListParts parses and lists every part"
    );
    for (listed, data) in listed.parts().iter().zip(parts) {
        assert_eq!(
            listed.checksum_sha256(),
            Some(b64_sha256(data).as_str()),
            "ListParts gives each part's SHA-256"
        );
    }
    let completed = s3
        .complete_multipart_upload()
        .bucket("forensnap-evidence")
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("Complete: {e:?}"))?;
    Ok(completed.version_id().expect("version id").to_string())
}

fn now_plus_days(days: i64) -> DateTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    DateTime::from_secs(now + days * 86_400)
}

#[tokio::test]
async fn a_multipart_object_keeps_the_bucket_default_compliance_retention() {
    let env = env();
    let s3 = s3(&env.forensic().await);
    let parts = vec![bytes(PART, 1), bytes(1000, 2)];
    let version = multipart(&s3, "case-1/disk.raw", &parts, None)
        .await
        .expect("multipart");

    let retention = s3
        .get_object_retention()
        .bucket("forensnap-evidence")
        .key("case-1/disk.raw")
        .version_id(&version)
        .send()
        .await
        .expect("GetObjectRetention");
    let retention = retention.retention().expect("retention");
    assert_eq!(retention.mode(), Some(&ObjectLockRetentionMode::Compliance));
    let until = retention.retain_until_date().expect("until").secs();
    let expected = now_plus_days(30).secs();
    assert!(
        (until - expected).abs() < 300,
        "30 days from now: {until} vs {expected}"
    );

    let err = s3
        .delete_object()
        .bucket("forensnap-evidence")
        .key("case-1/disk.raw")
        .version_id(&version)
        .send()
        .await
        .expect_err("a locked version cannot be deleted");
    assert_eq!(err.code(), Some("AccessDenied"));
    let err = s3
        .delete_object()
        .bucket("forensnap-evidence")
        .key("case-1/disk.raw")
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect_err("nor with governance bypass");
    assert_eq!(err.code(), Some("AccessDenied"));

    let head = s3
        .head_object()
        .bucket("forensnap-evidence")
        .key("case-1/disk.raw")
        .version_id(&version)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(head.content_length(), Some((PART + 1000) as i64));
    let open = s3
        .list_multipart_uploads()
        .bucket("forensnap-evidence")
        .send()
        .await
        .expect("uploads");
    assert!(open.uploads().is_empty(), "no multipart upload left open");
}

#[tokio::test]
async fn explicit_lock_and_legal_hold_on_a_multipart_object_hold() {
    let env = env();
    let s3 = s3(&env.forensic().await);
    let until = now_plus_days(90);
    let version = multipart(
        &s3,
        "case-2/disk.raw",
        &[bytes(PART, 3), bytes(10, 4)],
        Some((until, true)),
    )
    .await
    .expect("multipart");
    let retention = s3
        .get_object_retention()
        .bucket("forensnap-evidence")
        .key("case-2/disk.raw")
        .version_id(&version)
        .send()
        .await
        .expect("retention");
    assert_eq!(
        retention
            .retention()
            .and_then(|r| r.retain_until_date())
            .map(|d| d.secs()),
        Some(until.secs())
    );
    let hold = s3
        .get_object_legal_hold()
        .bucket("forensnap-evidence")
        .key("case-2/disk.raw")
        .version_id(&version)
        .send()
        .await
        .expect("legal hold");
    assert_eq!(
        hold.legal_hold().and_then(|h| h.status()),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    let _ = ObjectLockLegalHold::builder();
}

#[tokio::test]
async fn compliance_retention_cannot_be_shortened_downgraded_or_removed() {
    let env = env();
    let s3 = s3(&env.forensic().await);
    let body = bytes(2048, 5);
    let put = s3
        .put_object()
        .bucket("forensnap-evidence")
        .key("case-3/event-0001.json")
        .checksum_sha256(b64_sha256(&body))
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put");
    let version = put.version_id().expect("version").to_string();
    let set = |mode: ObjectLockRetentionMode, days: i64| {
        s3.put_object_retention()
            .bucket("forensnap-evidence")
            .key("case-3/event-0001.json")
            .version_id(&version)
            .retention(
                ObjectLockRetention::builder()
                    .mode(mode)
                    .retain_until_date(now_plus_days(days))
                    .build(),
            )
            .send()
    };
    let err = set(ObjectLockRetentionMode::Compliance, 1)
        .await
        .expect_err("shorten");
    assert_eq!(err.code(), Some("AccessDenied"));
    let err = set(ObjectLockRetentionMode::Governance, 60)
        .await
        .expect_err("downgrade");
    assert_eq!(err.code(), Some("AccessDenied"));
    let err = s3
        .put_object_retention()
        .bucket("forensnap-evidence")
        .key("case-3/event-0001.json")
        .version_id(&version)
        .retention(ObjectLockRetention::builder().build())
        .bypass_governance_retention(true)
        .send()
        .await
        .expect_err("remove");
    assert_eq!(err.code(), Some("AccessDenied"));
    set(ObjectLockRetentionMode::Compliance, 60)
        .await
        .expect("extending is allowed");
    let after = s3
        .get_object_retention()
        .bucket("forensnap-evidence")
        .key("case-3/event-0001.json")
        .version_id(&version)
        .send()
        .await
        .expect("retention");
    let until = after
        .retention()
        .and_then(|r| r.retain_until_date())
        .expect("until")
        .secs();
    assert!((until - now_plus_days(60).secs()).abs() < 300);
}

#[tokio::test]
async fn wrong_checksums_are_rejected_and_store_nothing() {
    let env = env();
    let s3 = s3_no_retry(&env.forensic().await);
    let body = bytes(4096, 6);
    let wrong = b64_sha256(b"something else");
    let err = s3
        .put_object()
        .bucket("forensnap-evidence")
        .key("case-4/bad.bin")
        .checksum_sha256(&wrong)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect_err("wrong SHA-256");
    assert_eq!(err.code(), Some("BadDigest"));
    let listed = s3
        .list_objects_v2()
        .bucket("forensnap-evidence")
        .prefix("case-4/")
        .send()
        .await
        .expect("list");
    assert!(listed.contents().is_empty(), "nothing stored");

    let upload = s3
        .create_multipart_upload()
        .bucket("forensnap-evidence")
        .key("case-4/disk.raw")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("create");
    let upload_id = upload.upload_id().expect("id");
    let err = s3
        .upload_part()
        .bucket("forensnap-evidence")
        .key("case-4/disk.raw")
        .upload_id(upload_id)
        .part_number(1)
        .checksum_sha256(&wrong)
        .body(ByteStream::from(bytes(PART, 7)))
        .send()
        .await
        .expect_err("wrong part SHA-256");
    assert_eq!(err.code(), Some("BadDigest"));
    let parts = s3
        .list_parts()
        .bucket("forensnap-evidence")
        .key("case-4/disk.raw")
        .upload_id(upload_id)
        .send()
        .await
        .expect("list parts");
    assert!(parts.parts().is_empty(), "the bad part was not stored");

    // A right part, then a completion that claims another checksum for it.
    let data = bytes(PART, 8);
    let part = s3
        .upload_part()
        .bucket("forensnap-evidence")
        .key("case-4/disk.raw")
        .upload_id(upload_id)
        .part_number(1)
        .checksum_sha256(b64_sha256(&data))
        .body(ByteStream::from(data))
        .send()
        .await
        .expect("good part");
    let err = s3
        .complete_multipart_upload()
        .bucket("forensnap-evidence")
        .key("case-4/disk.raw")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap_or_default())
                        .checksum_sha256(&wrong)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("wrong checksum on completion");
    assert_eq!(err.code(), Some("InvalidPart"));
    s3.abort_multipart_upload()
        .bucket("forensnap-evidence")
        .key("case-4/disk.raw")
        .upload_id(upload_id)
        .send()
        .await
        .expect("abort");
}

#[tokio::test]
async fn uploads_into_a_locked_bucket_need_an_integrity_header() {
    let env = env();
    let config = env.forensic().await;
    // The SDK's default CRC32 trailer (aws-chunked) is verified and accepted.
    s3(&config)
        .put_object()
        .bucket("forensnap-evidence")
        .key("case-5/with-crc.bin")
        .body(ByteStream::from(bytes(10_000, 9)))
        .send()
        .await
        .expect("default SDK checksum");
    // With checksums only when required, nothing proves integrity: refused.
    let bare = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build(),
    );
    let err = bare
        .put_object()
        .bucket("forensnap-evidence")
        .key("case-5/bare.bin")
        .body(ByteStream::from(bytes(100, 1)))
        .send()
        .await
        .expect_err("no checksum");
    assert_eq!(err.code(), Some("InvalidRequest"));
}

#[tokio::test]
async fn versioning_cannot_be_suspended_on_an_object_lock_bucket() {
    let env = env();
    let s3 = s3(&env.forensic().await);
    let status = s3
        .get_bucket_versioning()
        .bucket("forensnap-evidence")
        .send()
        .await
        .expect("versioning");
    assert_eq!(
        status.status(),
        Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled)
    );
    let err = s3
        .put_bucket_versioning()
        .bucket("forensnap-evidence")
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect_err("suspend");
    assert_eq!(err.code(), Some("InvalidBucketState"));
    let lock = s3
        .get_object_lock_configuration()
        .bucket("forensnap-evidence")
        .send()
        .await
        .expect("lock config");
    let rule = lock
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .expect("rule");
    assert_eq!(rule.mode(), Some(&ObjectLockRetentionMode::Compliance));
    assert_eq!(rule.days(), Some(30));
}
