//! `forensnap collect` (preservation + acquisition) and `forensnap export` end to end against
//! the local AWS world: the real binary, the real SDK, over HTTP. Every volume ends as a sealed
//! BagIt bag in the Object Lock bucket whose image SHA-256 equals the seeded image's, checked by
//! forensnap export and by the auditors' own tools (sha256sum, sh + dd, bagit.py).

use std::path::Path;
use std::process::Command;

use forensnap_tests::localworld::{FaultKind, FaultRule, world_python};
use forensnap_tests::*;

fn env(bucket: &str) -> Env {
    Env::new(&world_toml(
        bucket,
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"default\"\nbuild = { kind = \"pattern\", blocks = 23, offset_blocks = 5 }",
            "device = \"/dev/xvdf\"\nimage = \"last.img\"\nsize_gib = 1\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 1, offset_blocks = 2047 }",
        ],
    ))
}

fn collect(env: &Env, case: &str) -> Run {
    collect_json(env, case)
}

fn export(env: &Env, case: &str, id: &str, out: &Path) -> Run {
    let config = env.seeded.config.clone().expect("config");
    forensnap(&[
        "export",
        "--config",
        &config,
        "--case",
        case,
        "--evidence",
        id,
        "--out",
        &out.display().to_string(),
        "--output",
        "json",
    ])
}

fn items<'a>(out: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    out["evidence"]
        .as_array()
        .expect("evidence array")
        .iter()
        .filter(|i| i["kind"] == kind)
        .collect()
}

/// `sha256sum` of an image file, which must be exactly `size` bytes (streamed: images are GiBs).
fn image_sha256(path: &Path, size: u64) -> String {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).expect("image");
    assert_eq!(
        file.metadata().expect("meta").len(),
        size,
        "{}",
        path.display()
    );
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).expect("hash");
    hex::encode(hasher.finalize())
}

fn sh(dir: &Path, script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Run every command of the bag's VERIFY.md from the bag root, as an auditor would; each must
/// succeed. Returns (command, output) pairs.
fn run_verify_md(bag: &Path) -> Vec<(String, String)> {
    let guide = std::fs::read_to_string(bag.join("VERIFY.md")).expect("VERIFY.md");
    let python = world_python().expect("world python");
    let bagit = format!(
        "{} {}",
        python.display(),
        python
            .parent()
            .expect("venv bin")
            .join("bagit.py")
            .display()
    );
    let mut outputs = Vec::new();
    let mut in_block = false;
    for line in guide.lines() {
        if line.starts_with("```") {
            in_block = !in_block && line == "```sh";
            continue;
        }
        if !in_block
            || line.trim().is_empty()
            || line.starts_with("python3 -m pip")
            || line.starts_with("aws ")
        {
            continue;
        }
        let command = line.replace("bagit.py", &bagit);
        let (ok, text) = sh(bag, &command);
        assert!(ok, "VERIFY.md: `{line}` failed: {text}");
        outputs.push((line.to_string(), text));
    }
    assert!(
        outputs.len() >= 5,
        "VERIFY.md gives its commands: {outputs:?}"
    );
    outputs
}

/// `sha256sum` of the DER public key of the forensic signing key, as KMS returns it.
async fn kms_fingerprint(env: &Env) -> String {
    sha256_hex(&kms_public_key(env).await)
}

#[tokio::test]
async fn collect_stores_every_volume_as_a_sealed_bag_that_exports_and_verifies_with_standard_tools()
{
    let env = env("ev-evidence");
    let run = collect(&env, "IR-E-1");
    assert!(run.ok, "collect failed: {}", run.stderr);
    let out = run.json();
    let seeded = env.seeded.member().instances[0].volumes.clone();
    let volumes = items(&out, "volume");
    assert_eq!(volumes.len(), 2);
    assert_eq!(items(&out, "instance-record").len(), 1);
    assert_eq!(items(&out, "console-output").len(), 1);
    let dir = tempfile::tempdir().expect("dir");
    for volume in &seeded {
        let item = volumes
            .iter()
            .find(|i| i["volume_id"] == volume.volume_id.as_str())
            .expect("item per volume");
        assert_eq!(item["image_sha256"], volume.image_sha256.as_str());
        let preserved = out["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["volume_id"] == volume.volume_id.as_str())
            .expect("preserved");
        assert_eq!(
            item["snapshot_id"], preserved["snapshot_id"],
            "read from the forensic copy"
        );
        assert_eq!(item["bucket"], env.seeded.forensic.evidence_bucket.as_str());
        let id = item["id"].as_str().expect("id");

        // forensnap export: a sparse raw image equal to the seeded one.
        let raw = dir.path().join(format!("{id}.raw"));
        let exported = export(&env, "IR-E-1", id, &raw);
        assert!(exported.ok, "export failed: {}", exported.stderr);
        assert_eq!(
            exported.json()["image_sha256"],
            volume.image_sha256.as_str()
        );
        assert_eq!(
            image_sha256(&raw, volume.size_gib << 30),
            volume.image_sha256
        );

        // The bag, downloaded, checked with standard tools alone.
        let bag = dir.path().join(id);
        download_case(&env, item["prefix"].as_str().expect("prefix"), &bag).await;
        // VERIFY.md's own commands, run as written (bagit.py from the world's venv; the AWS CLI
        // line is checked through the SDK instead).
        let outputs = run_verify_md(&bag);
        let printed = |prefix: &str| {
            outputs
                .iter()
                .find(|(command, _)| command.starts_with(prefix))
                .map(|(_, out)| out.clone())
                .unwrap_or_else(|| panic!("VERIFY.md has no `{prefix}` command"))
        };
        assert!(printed("openssl dgst").contains("Verified OK"));
        assert!(printed("sh rebuild.sh - ").starts_with(&volume.image_sha256));
        assert!(printed("sh rebuild.sh disk.raw").contains("disk.raw: OK"));
        let fingerprint = kms_fingerprint(&env).await;
        assert!(
            printed("openssl pkey").starts_with(&fingerprint),
            "the bag's key is the KMS key"
        );
        let guide = std::fs::read_to_string(bag.join("VERIFY.md")).expect("VERIFY.md");
        assert!(
            guide.contains(&fingerprint) && guide.contains(&volume.image_sha256),
            "{guide}"
        );
    }

    // Every object of the bags is locked: the data object cannot be deleted.
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let key = format!(
        "{}data/blocks.bin",
        volumes[0]["prefix"].as_str().expect("p")
    );
    assert_locked(&s3, bucket, &key).await;
    assert_eq!(open_uploads(&env).await, 0, "no multipart upload left open");

    // The small items are bags too, with the stored bytes' hashes.
    for kind in ["instance-record", "console-output"] {
        let item = items(&out, kind)[0];
        let bag = dir.path().join(kind);
        download_case(&env, item["prefix"].as_str().expect("prefix"), &bag).await;
        let outputs = run_verify_md(&bag);
        assert!(
            outputs
                .iter()
                .any(|(c, out)| c.starts_with("openssl dgst") && out.contains("Verified OK")),
            "{kind}: {outputs:?}"
        );
    }

    // A second run finds everything sealed: same hashes, nothing acquired again.
    let again = collect(&env, "IR-E-1");
    assert!(again.ok, "second run: {}", again.stderr);
    let again = again.json();
    for item in items(&again, "volume") {
        let first = volumes
            .iter()
            .find(|v| v["id"] == item["id"])
            .expect("same item");
        assert_eq!(item["image_sha256"], first["image_sha256"]);
    }
    let events = custody_actions(&env, "IR-E-1").await;
    assert_eq!(
        events
            .iter()
            .filter(|a| *a == "acquisition.completed")
            .count(),
        2,
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|a| *a == "evidence.sealed").count(), 4);
    assert_eq!(
        events.last().map(String::as_str),
        Some("collection.completed")
    );
    assert_eq!(
        checkpoint_findings(&env, "IR-E-1").await,
        Vec::<String>::new(),
        "every event is covered by a checkpoint signed with the KMS key"
    );
}

/// What the signed checkpoints say is wrong with the case's custody chain, checked with the
/// public key KMS returns.
async fn checkpoint_findings(env: &Env, case: &str) -> Vec<String> {
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let mut events = Vec::new();
    let mut checkpoints = Vec::new();
    for (prefix, is_event) in [("events", true), ("checkpoints", false)] {
        let listed = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(format!("cases/{case}/custody/{prefix}/"))
            .send()
            .await
            .expect("list");
        for key in listed.contents().iter().filter_map(|o| o.key()) {
            if is_event {
                events.push((key.to_string(), get_bytes(&s3, bucket, key).await));
            } else if key.ends_with(".json") {
                let signature = get_bytes(&s3, bucket, &format!("{key}.sig")).await;
                checkpoints.push((
                    key.to_string(),
                    get_bytes(&s3, bucket, key).await,
                    Some(signature),
                ));
            }
        }
    }
    assert!(!checkpoints.is_empty(), "no checkpoint");
    let public = kms_public_key(env).await;
    let case = forensnap_core::CaseId::parse(case).expect("case");
    forensnap_core::seal::verify_checkpoints(&case, &events, &checkpoints, &public)
        .into_iter()
        .map(|f| f.to_string())
        .collect()
}

async fn custody_actions(env: &Env, case: &str) -> Vec<String> {
    case_events(env, case)
        .await
        .iter()
        .map(|e| e.action.as_str().to_string())
        .collect()
}

#[tokio::test]
async fn a_collection_killed_during_acquisition_resumes_with_identical_hashes() {
    let env = env("ev-evidence-kill");
    // 23 blocks of the root volume, 10 per part: the second data part upload fails, for good.
    env.world
        .add_fault(
            &FaultRule::new(FaultKind::Error, "s3", "UploadPart")
                .after(1)
                .count(1_000),
        )
        .expect("fault");
    let run = collect(&env, "IR-E-2");
    assert!(!run.ok, "the run fails while S3 refuses parts");
    assert!(
        run.stderr.contains("UploadPart") && run.stderr.contains("run the same command again"),
        "{}",
        run.stderr
    );
    let actions = custody_actions(&env, "IR-E-2").await;
    assert_eq!(
        actions.last().map(String::as_str),
        Some("collection.failed")
    );
    env.world.clear_faults().expect("clear");

    let run = collect(&env, "IR-E-2");
    assert!(run.ok, "resumed: {}", run.stderr);
    let out = run.json();
    for volume in &env.seeded.member().instances[0].volumes {
        let item = items(&out, "volume")
            .into_iter()
            .find(|i| i["volume_id"] == volume.volume_id.as_str())
            .expect("item");
        assert_eq!(item["image_sha256"], volume.image_sha256.as_str());
        let dir = tempfile::tempdir().expect("dir");
        let raw = dir.path().join("disk.raw");
        let exported = export(&env, "IR-E-2", item["id"].as_str().expect("id"), &raw);
        assert!(exported.ok, "{}", exported.stderr);
        assert_eq!(
            image_sha256(&raw, volume.size_gib << 30),
            volume.image_sha256
        );
    }
    assert_eq!(open_uploads(&env).await, 0, "no multipart upload left open");
}

#[tokio::test]
async fn export_refuses_an_unknown_item_and_an_existing_file_and_leaves_nothing() {
    let env = env("ev-evidence-export");
    let run = collect(&env, "IR-E-3");
    assert!(run.ok, "{}", run.stderr);
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("x.raw");
    let unknown = export(&env, "IR-E-3", "vol-0000nothere", &out);
    assert!(!unknown.ok);
    assert!(
        unknown.stderr.contains("vol-0000nothere") && unknown.stderr.contains("--output json"),
        "{}",
        unknown.stderr
    );
    assert!(!out.exists());
    std::fs::write(&out, b"keep me").expect("write");
    let id = items(&run.json(), "volume")[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let existing = export(&env, "IR-E-3", &id, &out);
    assert!(!existing.ok);
    assert!(
        existing.stderr.contains("already exists"),
        "{}",
        existing.stderr
    );
    assert_eq!(std::fs::read(&out).expect("kept"), b"keep me");
}

#[tokio::test]
async fn the_raw_layout_stores_the_whole_image_with_the_same_hash() {
    let env = Env::new(&world_toml(
        "ev-evidence-raw",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 9, offset_blocks = 100 }",
        ],
    ));
    let generated = env.seeded.config.clone().expect("config");
    let config = env.path("raw.forensnap.toml");
    std::fs::write(
        &config,
        std::fs::read_to_string(&generated).expect("config") + "\n[acquire]\nlayout = \"raw\"\n",
    )
    .expect("write config");
    let run = forensnap(&[
        "collect",
        "--config",
        &config.display().to_string(),
        "--case",
        "IR-E-4",
        "--account",
        "111111111111",
        "--instance",
        &env.seeded.member().instances[0].instance_id,
        "--output",
        "json",
    ]);
    assert!(run.ok, "collect failed: {}", run.stderr);
    let out = run.json();
    let volume = &env.seeded.member().instances[0].volumes[0];
    let item = items(&out, "volume")[0].clone();
    assert_eq!(item["image_sha256"], volume.image_sha256.as_str());

    // The stored object is the raw image itself; the bag checks with standard tools.
    let dir = tempfile::tempdir().expect("dir");
    let bag = dir.path().join("bag");
    download_case(&env, item["prefix"].as_str().expect("prefix"), &bag).await;
    assert_eq!(
        image_sha256(&bag.join("data/disk.raw"), volume.size_gib << 30),
        volume.image_sha256
    );
    let outputs = run_verify_md(&bag);
    assert!(
        outputs
            .iter()
            .any(|(c, out)| c.starts_with("sha256sum -c data/image.sha256") && out.contains("OK")),
        "{outputs:?}"
    );
    assert!(!bag.join("rebuild.sh").exists(), "nothing to rebuild");

    let raw = dir.path().join("export.raw");
    let exported = forensnap(&[
        "export",
        "--config",
        &config.display().to_string(),
        "--case",
        "IR-E-4",
        "--evidence",
        item["id"].as_str().expect("id"),
        "--out",
        &raw.display().to_string(),
    ]);
    assert!(exported.ok, "{}", exported.stderr);
    assert_eq!(
        image_sha256(&raw, volume.size_gib << 30),
        volume.image_sha256
    );
}

#[tokio::test]
async fn a_missing_or_unfit_signing_key_is_refused_before_anything_is_done() {
    let env = env("ev-evidence-key");
    let generated =
        std::fs::read_to_string(env.seeded.config.clone().expect("config")).expect("read");
    let signing = &env.seeded.forensic.signing_key_arn;
    let line = generated
        .lines()
        .find(|l| l.starts_with("signing_key_arn"))
        .expect("the generated config names the signing key")
        .to_string();
    for (name, text, expected) in [
        (
            "none.toml",
            generated.replace(&line, ""),
            "forensic.signing_key_arn is not set",
        ),
        (
            "symmetric.toml",
            generated.replace(signing.as_str(), &env.seeded.forensic.ebs_key_arn),
            "not ECC_NIST_P256 SIGN_VERIFY",
        ),
    ] {
        let config = env.path(name);
        std::fs::write(&config, text).expect("write");
        let run = forensnap(&[
            "collect",
            "--config",
            &config.display().to_string(),
            "--case",
            "IR-E-5",
            "--account",
            "111111111111",
            "--instance",
            &env.seeded.member().instances[0].instance_id,
        ]);
        assert!(!run.ok, "{name} accepted");
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(
            custody_actions(&env, "IR-E-5").await.is_empty(),
            "{name}: nothing recorded, nothing done"
        );
    }
}
