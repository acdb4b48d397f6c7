//! Shared helpers for the end-to-end tests: a seeded world per test, SDK clients for the
//! forensic and member accounts, and snapshot plumbing (wait, copy, read back every byte).
//!
//! Every helper goes through the real SDK clients over HTTP to the local world.

#![allow(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use aws_config::SdkConfig;
use base64::Engine;
pub use forensnap_localworld::{Seeded, World, forensic_credentials, sdk_config};
use sha2::{Digest, Sha256};

pub use forensnap_localworld as localworld;

/// EBS direct API block size.
pub const BLOCK: usize = 524_288;

/// A running world seeded from a TOML text, with the folder holding its images.
pub struct Env {
    pub world: World,
    pub seeded: Seeded,
    pub dir: tempfile::TempDir,
}

impl Env {
    /// Start a world and seed it from `toml` (paths in it are relative to a fresh temp dir).
    pub fn new(toml: &str) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("world.toml");
        std::fs::write(&file, toml).expect("write world file");
        let world = World::start().expect("start the local world");
        let seeded = world.seed(&file).expect("seed the world");
        Env { world, seeded, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// SDK config acting as the forensic operator.
    pub async fn forensic(&self) -> SdkConfig {
        sdk_config(
            &self.world,
            &self.seeded.region,
            forensic_credentials(&self.seeded),
        )
        .await
    }

    /// SDK config acting as the forensic account's administrator (set-up and inspection that
    /// forensnap's least-privilege collector role may not do).
    pub async fn forensic_admin(&self) -> SdkConfig {
        let credentials = self.seeded.forensic.admin.credentials();
        sdk_config(&self.world, &self.seeded.region, credentials).await
    }

    /// SDK config acting as the first member account's administrator.
    pub async fn member_admin(&self) -> SdkConfig {
        let credentials = self.seeded.member().admin.credentials();
        sdk_config(&self.world, &self.seeded.region, credentials).await
    }

    /// SDK config acting in the first member account through its collector role.
    pub async fn member(&self) -> SdkConfig {
        let member = self.seeded.member();
        self.assume(&member.role_arn, &member.external_id).await
    }

    /// SDK config acting through `role_arn` as forensnap does: assumed by the collector role with
    /// the ExternalId, a session named for the case and the case id as SourceIdentity (the member
    /// role's trust policy requires both).
    pub async fn assume(&self, role_arn: &str, external_id: &str) -> SdkConfig {
        let sts = aws_sdk_sts::Client::new(&self.forensic().await);
        let case = forensnap_core::CaseId::parse("CASE-1").expect("case id");
        let provider = forensnap_aws::CaseRoleProvider::new(
            sts,
            role_arn,
            external_id,
            &case,
            Duration::from_secs(3600),
        );
        sdk_config(&self.world, &self.seeded.region, provider).await
    }
}

/// Output of one `forensnap` run.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// The `forensnap` binary built beside the test executables.
pub fn forensnap_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("forensnap");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p forensnap` (scripts/test does)",
        bin.display()
    );
    bin
}

/// Run `forensnap ARGS` and capture its output.
pub fn forensnap(args: &[&str]) -> Run {
    let out = std::process::Command::new(forensnap_bin())
        .args(args)
        .env("FORENSNAP_OPERATOR", "Test Responder")
        .output()
        .expect("run forensnap");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// `forensnap collect --output json` of `instance` (member account 111111111111) into `case`,
/// as a command to spawn (the caller sets its stdout and stderr).
pub fn collect_command(config: &str, case: &str, instance: &str) -> std::process::Command {
    let mut command = std::process::Command::new(forensnap_bin());
    command
        .args([
            "collect",
            "--config",
            config,
            "--case",
            case,
            "--account",
            "111111111111",
            "--instance",
            instance,
            "--output",
            "json",
            "--purpose",
            "resilience test",
        ])
        .env("FORENSNAP_OPERATOR", "Resilience Test");
    command
}

/// The crash and fault suites' world: one instance with a volume on the default `aws/ebs` key
/// (40 data blocks: re-encrypted in the member account, shared, copied, unshared, its
/// intermediate copy deleted: every preservation step) and an unencrypted one (24 blocks);
/// snapshots and copies take a second. Returned with a config that acquires in 5 MiB parts (a
/// run lasts seconds and has several parts per volume) plus the `acquire` settings, and without
/// the case table unless `leases` (a SIGKILLed holder's lease would make the next run wait for
/// it to lapse; the daemon tests cover leases).
pub fn two_volume_world(prefix: &str, acquire: &str, leases: bool) -> (Env, String) {
    let env = Env::new(&world_toml(
        prefix,
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"default\"\nbuild = { kind = \"pattern\", blocks = 40, offset_blocks = 0 }",
            "device = \"/dev/xvdf\"\nimage = \"data.img\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 24, offset_blocks = 5 }",
        ],
    ));
    env.world
        .set_settings(crate::localworld::Settings {
            snapshot_seconds: 1.0,
            copy_seconds: 1.0,
        })
        .expect("settings");
    let generated = env.seeded.config.clone().expect("seed writes a config");
    let text = std::fs::read_to_string(&generated).expect("config");
    let text: String = text
        .lines()
        .filter(|l| leases || !l.starts_with("case_table"))
        .collect::<Vec<_>>()
        .join("\n");
    let config = env.path("resilience.forensnap.toml");
    std::fs::write(
        &config,
        format!("{text}\n[acquire]\npart_mib = 5\n{acquire}\n"),
    )
    .expect("write config");
    let config = config.display().to_string();
    (env, config)
}

/// `forensnap collect --output json` of the seeded world's first instance with its generated
/// config.
pub fn collect_json(env: &Env, case: &str) -> Run {
    let config = env.seeded.config.clone().expect("seed writes a config");
    forensnap(&[
        "collect",
        "--config",
        &config,
        "--case",
        case,
        "--account",
        "111111111111",
        "--instance",
        &env.seeded.member().instances[0].instance_id,
        "--output",
        "json",
    ])
}

/// Download every object under `prefix` into `dir` (the bag as an auditor receives it).
pub async fn download_case(env: &Env, prefix: &str, dir: &std::path::Path) {
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list");
    for object in listed.contents() {
        let key = object.key().expect("key");
        let path = dir.join(key.strip_prefix(prefix).expect("under prefix"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(&path, get_bytes(&s3, bucket, key).await).expect("write");
    }
}

/// The DER public key of the forensic signing key, as KMS returns it.
pub async fn kms_public_key(env: &Env) -> Vec<u8> {
    let kms = aws_sdk_kms::Client::new(&env.forensic().await);
    kms.get_public_key()
        .key_id(&env.seeded.forensic.signing_key_arn)
        .send()
        .await
        .expect("public key")
        .public_key()
        .expect("der")
        .as_ref()
        .to_vec()
}

/// The ExternalId of the test worlds' member role (member-role.yaml wants 16 characters or more).
pub const EXTERNAL_ID: &str = "ext-2026-forensnap";

/// The evidence bucket forensic-account.yaml makes for `name_prefix` in the test worlds' forensic
/// account and region.
pub fn bucket_of(name_prefix: &str) -> String {
    format!("{name_prefix}-evidence-123456789012-us-east-1")
}

/// A one-member world with one instance whose volumes are given as TOML tables; `bucket` is the
/// forensic template's NamePrefix (the bucket is [`bucket_of`] it), and the world evaluates the
/// templates' policies.
pub fn world_toml(bucket: &str, volumes: &[&str]) -> String {
    let mut text = format!(
        "region = \"us-east-1\"\n[forensic]\naccount = \"123456789012\"\nname_prefix = \"{bucket}\"\n\
         retention_days = 30\n[[members]]\naccount = \"111111111111\"\nrole = \"ForensnapCollector\"\n\
         external_id = \"{EXTERNAL_ID}\"\n[[members.instances]]\nname = \"web-1\"\n"
    );
    for volume in volumes {
        text.push_str("[[members.instances.volumes]]\n");
        text.push_str(volume);
        text.push('\n');
    }
    text
}

pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// An S3 client whose SDK makes no retries (to observe injected faults directly).
pub fn s3_no_retry(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

pub fn ebs_no_retry(config: &SdkConfig) -> aws_sdk_ebs::Client {
    aws_sdk_ebs::Client::from_conf(
        aws_sdk_ebs::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// The bytes of `key` in `bucket`.
pub async fn get_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetObject {key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The current version of `key` is under COMPLIANCE retention and deleting that version is
/// refused; returns its version id.
pub async fn assert_locked(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE"),
        "{key}"
    );
    let version = head.version_id().expect("version").to_string();
    let err = s3
        .delete_object()
        .bucket(bucket)
        .key(key)
        .version_id(&version)
        .send()
        .await
        .expect_err("locked");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&err),
        Some("AccessDenied"),
        "{key}"
    );
    version
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn b64_sha256(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

pub fn sha256_file(path: &str, size_bytes: u64) -> String {
    let mut data = std::fs::read(path).expect("read image");
    data.resize(size_bytes as usize, 0);
    sha256_hex(&data)
}

/// Add (`share = true`) or remove `account`'s createVolumePermission on a snapshot.
pub async fn set_share(
    ec2: &aws_sdk_ec2::Client,
    snapshot_id: &str,
    account: &str,
    share: bool,
) -> Result<
    (),
    aws_sdk_ec2::error::SdkError<
        aws_sdk_ec2::operation::modify_snapshot_attribute::ModifySnapshotAttributeError,
    >,
> {
    let op = if share {
        aws_sdk_ec2::types::OperationType::Add
    } else {
        aws_sdk_ec2::types::OperationType::Remove
    };
    ec2.modify_snapshot_attribute()
        .snapshot_id(snapshot_id)
        .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
        .operation_type(op)
        .user_ids(account)
        .send()
        .await
        .map(|_| ())
}

/// A member-account snapshot (CreateSnapshot) of seeded volume `volume` of the first instance,
/// made with `member` (the member's administrator: forensnap's role uses CreateSnapshots).
pub async fn member_snapshot(env: &Env, member: &aws_sdk_ec2::Client, volume: usize) -> String {
    let volume = &env.seeded.member().instances[0].volumes[volume];
    let snap = member
        .create_snapshot()
        .volume_id(&volume.volume_id)
        .send()
        .await
        .expect("snapshot");
    snap.snapshot_id().expect("id").to_string()
}

/// A completed forensic-account copy of seeded volume `volume` of the first instance, made the
/// way forensnap does it: member snapshot, shared, copied under the forensic key.
pub async fn forensic_copy(env: &Env, volume: usize) -> String {
    let member = aws_sdk_ec2::Client::new(&env.member().await);
    let forensic = aws_sdk_ec2::Client::new(&env.forensic().await);
    let admin = aws_sdk_ec2::Client::new(&env.member_admin().await);
    let snapshot = member_snapshot(env, &admin, volume).await;
    let id = snapshot.as_str();
    set_share(&member, id, &env.seeded.forensic.account, true)
        .await
        .expect("share");
    let copy = forensic
        .copy_snapshot()
        .source_snapshot_id(id)
        .source_region("us-east-1")
        .encrypted(true)
        .kms_key_id(&env.seeded.forensic.ebs_key_arn)
        .send()
        .await
        .expect("copy");
    wait_snapshot(&forensic, copy.snapshot_id().expect("id"))
        .await
        .snapshot_id()
        .expect("id")
        .to_string()
}

/// Poll DescribeSnapshots until the snapshot leaves `pending`; returns its final state.
pub async fn wait_snapshot(
    ec2: &aws_sdk_ec2::Client,
    snapshot_id: &str,
) -> aws_sdk_ec2::types::Snapshot {
    for _ in 0..600 {
        let found = ec2
            .describe_snapshots()
            .snapshot_ids(snapshot_id)
            .send()
            .await
            .expect("describe snapshot");
        let snapshot = found.snapshots()[0].clone();
        if snapshot.state() != Some(&aws_sdk_ec2::types::SnapshotState::Pending) {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("snapshot {snapshot_id} still pending after 30 s");
}

/// What reading a snapshot back produced.
pub struct ReadBack {
    /// SHA-256 over the whole logical volume, zero runs included (= `sha256sum` of the disk).
    pub sha256: String,
    /// The listed blocks, in the order listed.
    pub indexes: Vec<usize>,
    /// How many ListSnapshotBlocks pages it took.
    pub pages: usize,
    /// Volume size in bytes.
    pub size: u64,
}

fn hash_zeros(hasher: &mut Sha256, mut bytes: u64) {
    let zeros = vec![0u8; BLOCK];
    while bytes > 0 {
        let step = bytes.min(BLOCK as u64) as usize;
        hasher.update(&zeros[..step]);
        bytes -= step as u64;
    }
}

/// Read a whole snapshot through paged ListSnapshotBlocks + GetSnapshotBlock, checking every
/// block's checksum and length, hashing the logical volume in order.
pub async fn read_snapshot(
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    max_results: i32,
) -> ReadBack {
    let mut hasher = Sha256::new();
    let mut next_offset = 0u64;
    let mut token: Option<String> = None;
    let mut back = ReadBack {
        sha256: String::new(),
        indexes: Vec::new(),
        pages: 0,
        size: 0,
    };
    loop {
        let page = ebs
            .list_snapshot_blocks()
            .snapshot_id(snapshot_id)
            .max_results(max_results)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("ListSnapshotBlocks");
        back.pages += 1;
        assert_eq!(page.block_size(), Some(BLOCK as i32), "EBS block size");
        back.size = page.volume_size().expect("VolumeSize") as u64 * (1 << 30);
        for block in page.blocks() {
            let index = block.block_index().expect("BlockIndex") as usize;
            let got = ebs
                .get_snapshot_block()
                .snapshot_id(snapshot_id)
                .block_index(index as i32)
                .block_token(block.block_token().expect("BlockToken"))
                .send()
                .await
                .expect("GetSnapshotBlock");
            assert_eq!(got.data_length(), Some(BLOCK as i32));
            assert_eq!(got.checksum_algorithm().map(|a| a.as_str()), Some("SHA256"));
            let checksum = got.checksum().expect("x-amz-Checksum").to_string();
            let data = got
                .block_data
                .collect()
                .await
                .expect("block body")
                .into_bytes();
            assert_eq!(data.len(), BLOCK);
            assert_eq!(b64_sha256(&data), checksum, "block {index} checksum");
            let offset = (index * BLOCK) as u64;
            assert!(
                offset >= next_offset,
                "blocks listed out of order at {index}"
            );
            hash_zeros(&mut hasher, offset - next_offset);
            hasher.update(&data);
            next_offset = offset + BLOCK as u64;
            back.indexes.push(index);
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            hash_zeros(&mut hasher, back.size - next_offset);
            back.sha256 = hex::encode(hasher.finalize());
            return back;
        }
        assert!(back.pages < 10_000, "paging does not end");
    }
}

/// Every file under `dir` (symbolic links as files, not followed), as `/`-separated paths
/// relative to it, sorted.
pub fn relative_files(dir: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                folders.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir");
                out.insert(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    out
}

/// Copy the folder `from` to `to` with `cp -a` (a case folder to tamper with).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// Report what a fault, crash or abuse family injected and survived: printed, and kept in
/// `$FORENSNAP_SUMMARY_DIR/<family>.txt` when set, for `scripts/test` to print after the run
/// (the test runner hides a passing test's output).
pub fn summary(family: &str, line: &str) {
    println!("{line}");
    if let Ok(dir) = std::env::var("FORENSNAP_SUMMARY_DIR") {
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(format!("{family}.txt")),
            format!("{line}\n"),
        );
    }
}

/// Multipart uploads open in the seeded evidence bucket.
pub async fn open_uploads(env: &Env) -> usize {
    s3(&env.forensic().await)
        .list_multipart_uploads()
        .bucket(&env.seeded.forensic.evidence_bucket)
        .send()
        .await
        .expect("uploads")
        .uploads()
        .len()
}

/// Snapshots the account of `config` owns.
pub async fn owned_snapshots(config: &SdkConfig) -> Vec<aws_sdk_ec2::types::Snapshot> {
    aws_sdk_ec2::Client::new(config)
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .expect("snapshots")
        .snapshots()
        .to_vec()
}

/// Whatever the account of `config` owns is shared with no one.
pub async fn assert_nothing_shared(config: &SdkConfig) {
    let ec2 = aws_sdk_ec2::Client::new(config);
    for snapshot in owned_snapshots(config).await {
        let id = snapshot.snapshot_id().expect("id");
        let attr = ec2
            .describe_snapshot_attribute()
            .snapshot_id(id)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .expect("attribute");
        assert!(
            attr.create_volume_permissions().is_empty(),
            "{id} is still shared: {attr:?}"
        );
    }
}

/// The custody events of `case`, read from the evidence bucket, the chain verified.
pub async fn case_events(env: &Env, case: &str) -> Vec<forensnap_core::Event> {
    let s3 = s3(&env.forensic().await);
    let id = forensnap_core::CaseId::parse(case).expect("case");
    let bucket = &env.seeded.forensic.evidence_bucket;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("cases/{case}/custody/events/"))
        .send()
        .await
        .expect("list");
    let mut stored = Vec::new();
    for object in listed.contents() {
        let key = object.key().expect("key").to_string();
        let bytes = get_bytes(&s3, bucket, &key).await;
        stored.push((key, bytes));
    }
    forensnap_core::custody::verify_chain(&id, &stored)
        .expect("the custody chain verifies")
        .0
}
