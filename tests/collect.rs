//! `forensnap collect` (preservation) end to end against the local AWS world: the real binary,
//! the real SDK, over HTTP. Each test seeds its own world.

use aws_sdk_ec2::types::SnapshotState;
use forensnap_tests::localworld::{FaultKind, FaultRule, Settings};
use forensnap_tests::*;

fn volume(device: &str, image: &str, encryption: &str, blocks: u32, offset: u32) -> String {
    format!(
        "device = \"{device}\"\nimage = \"{image}\"\nencryption = \"{encryption}\"\nbuild = {{ kind = \"pattern\", blocks = {blocks}, offset_blocks = {offset} }}"
    )
}

fn world(bucket: &str, volumes: &[String]) -> Env {
    let refs: Vec<&str> = volumes.iter().map(String::as_str).collect();
    Env::new(&world_toml(bucket, &refs))
}

struct Case<'a> {
    env: &'a Env,
    config: String,
    case: &'a str,
}

impl<'a> Case<'a> {
    fn new(env: &'a Env, case: &'a str) -> Self {
        Case {
            env,
            config: env.seeded.config.clone().expect("seed writes a config"),
            case,
        }
    }

    /// A config with `from` replaced by `to`, written beside the generated one.
    fn with_config(mut self, from: &str, to: &str) -> Self {
        let text = std::fs::read_to_string(&self.config).expect("config");
        assert!(text.contains(from), "{from} not in config");
        let path = self.env.path("edited.forensnap.toml");
        std::fs::write(&path, text.replace(from, to)).expect("write config");
        self.config = path.display().to_string();
        self
    }

    fn collect(&self) -> Run {
        let instance = &self.env.seeded.member().instances[0].instance_id;
        forensnap(&[
            "collect",
            "--config",
            &self.config,
            "--case",
            self.case,
            "--account",
            "111111111111",
            "--instance",
            instance,
            "--output",
            "json",
            "--purpose",
            "test",
        ])
    }

    async fn events(&self) -> Vec<forensnap_core::Event> {
        case_events(self.env, self.case).await
    }
}

fn actions(events: &[forensnap_core::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{}{}",
                e.action,
                if e.outcome == forensnap_core::Outcome::Failed {
                    "!"
                } else {
                    ""
                }
            )
        })
        .collect()
}

async fn member_snapshots(env: &Env) -> Vec<aws_sdk_ec2::types::Snapshot> {
    owned_snapshots(&env.member().await).await
}

/// Whatever the member account owns is shared with no one.
async fn nothing_shared(env: &Env) {
    assert_nothing_shared(&env.member().await).await;
}

#[tokio::test]
async fn preserves_an_unencrypted_and_a_default_key_volume_byte_for_byte() {
    let env = world(
        "ev-collect",
        &[
            volume("/dev/xvda", "root.img", "default", 5, 0),
            volume("/dev/xvdf", "data.img", "none", 3, 100),
        ],
    );
    let case = Case::new(&env, "IR-2026-0001");
    let run = case.collect();
    assert!(run.ok, "collect failed: {}", run.stderr);
    let out = run.json();
    let forensic_cfg = env.forensic().await;
    let forensic_ec2 = aws_sdk_ec2::Client::new(&forensic_cfg);
    let ebs = aws_sdk_ebs::Client::new(&forensic_cfg);
    let member_ec2 = aws_sdk_ec2::Client::new(&env.member().await);
    let key = env.seeded.forensic.ebs_key_arn.clone();

    let volumes = out["volumes"].as_array().expect("volumes");
    assert_eq!(volumes.len(), 2);
    for seeded in &env.seeded.member().instances[0].volumes {
        let v = volumes
            .iter()
            .find(|v| v["volume_id"] == seeded.volume_id.as_str())
            .expect("volume preserved");
        let snapshot_id = v["snapshot_id"].as_str().expect("snapshot");
        let described = forensic_ec2
            .describe_snapshots()
            .snapshot_ids(snapshot_id)
            .send()
            .await
            .expect("describe");
        let snap = &described.snapshots()[0];
        assert_eq!(snap.owner_id(), Some(env.seeded.forensic.account.as_str()));
        assert_eq!(
            snap.kms_key_id(),
            Some(key.as_str()),
            "under the forensic key"
        );
        assert_eq!(snap.state(), Some(&SnapshotState::Completed));
        let back = read_snapshot(&ebs, snapshot_id, 100).await;
        assert_eq!(
            back.sha256, seeded.image_sha256,
            "{} holds exactly the seeded bytes",
            seeded.device
        );

        // The intermediate copy is gone, the member original is kept and tagged with the case.
        let intermediate = v["intermediate_snapshot_id"]
            .as_str()
            .expect("re-encrypted in the member account");
        let err = member_ec2
            .describe_snapshots()
            .snapshot_ids(intermediate)
            .send()
            .await
            .expect_err("deleted");
        assert_eq!(
            aws_sdk_ec2::error::ProvideErrorMetadata::code(&err),
            Some("InvalidSnapshot.NotFound")
        );
        let original = member_ec2
            .describe_snapshots()
            .snapshot_ids(v["member_snapshot_id"].as_str().expect("id"))
            .send()
            .await
            .expect("kept");
        let tags = original.snapshots()[0].tags();
        assert!(
            tags.iter()
                .any(|t| t.key() == Some("forensnap:case") && t.value() == Some("IR-2026-0001")),
            "{tags:?}"
        );
    }
    nothing_shared(&env).await;

    // The instance was neither stopped nor altered: still running, every volume attached.
    let instance_id = &env.seeded.member().instances[0].instance_id;
    let described = member_ec2
        .describe_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .expect("instance");
    let instance = &described.reservations()[0].instances()[0];
    assert_eq!(
        instance.state().and_then(|s| s.name()),
        Some(&aws_sdk_ec2::types::InstanceStateName::Running)
    );
    assert_eq!(instance.block_device_mappings().len(), 2);
    assert!(
        instance
            .block_device_mappings()
            .iter()
            .all(|b| b.ebs().and_then(|e| e.status())
                == Some(&aws_sdk_ec2::types::AttachmentStatus::Attached))
    );

    let events = case.events().await;
    let names = actions(&events);
    assert_eq!(
        names.first().map(String::as_str),
        Some("collection.started")
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("collection.completed")
    );
    for needed in [
        "bucket.checked",
        "role.assumed",
        "instance.recorded",
        "console.recorded",
        "snapshots.created",
        "snapshot.shared",
        "snapshot.unshared",
        "snapshot.deleted",
    ] {
        assert!(
            names.iter().any(|n| n == needed),
            "{needed} missing from {names:?}"
        );
    }
    assert_eq!(names.iter().filter(|n| *n == "snapshot.shared").count(), 2);
    assert_eq!(
        names.iter().filter(|n| *n == "snapshot.unshared").count(),
        2
    );
    assert_eq!(names.iter().filter(|n| *n == "snapshot.deleted").count(), 2);
    let assumed = events
        .iter()
        .find(|e| e.action == "role.assumed")
        .expect("role event");
    assert_eq!(
        assumed.after,
        vec![
            "arn:aws:sts::111111111111:assumed-role/ForensnapCollector/forensnap-IR-2026-0001"
                .to_string()
        ]
    );
    assert_eq!(assumed.details["source_identity"], "IR-2026-0001");
    for event in &events {
        assert_eq!(event.actor.operator, "Test Responder");
        assert_eq!(event.actor.arn, env.seeded.forensic.operator_arn);
        assert_eq!(event.purpose.as_deref(), Some("test"));
    }
    assert!(
        events
            .iter()
            .filter(|e| e.action == "snapshots.created")
            .all(|e| !e.request_ids.is_empty()),
        "request ids recorded"
    );

    // The instance record and console output are stored under Object Lock with their hashes.
    let s3 = s3(&forensic_cfg);
    let record = &out["instance_record"];
    let object = s3
        .get_object()
        .bucket(record["bucket"].as_str().expect("bucket"))
        .key(record["key"].as_str().expect("key"))
        .send()
        .await
        .expect("record stored");
    assert_eq!(
        object.object_lock_mode().map(|m| m.as_str()),
        Some("COMPLIANCE")
    );
    let bytes = object.body.collect().await.expect("body").into_bytes();
    assert_eq!(sha256_hex(&bytes), record["sha256"].as_str().expect("sha"));
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("record is JSON");
    assert_eq!(
        json["instance_id"],
        env.seeded.member().instances[0].instance_id.as_str()
    );
    assert_eq!(json["tags"]["Name"], "web-1");
}

#[tokio::test]
async fn a_cmk_volume_is_shared_as_it_is_and_a_second_run_snapshots_nothing_twice() {
    let env = world(
        "ev-collect-cmk",
        &[volume("/dev/xvda", "root.img", "cmk", 4, 7)],
    );
    // Quiet mode: nothing in the member account names forensnap or the case.
    let case = Case::new(&env, "IR-2026-0002").with_config(
        "[collect]",
        "[collect]\nmember_tags = {}\nsnapshot_description = \"daily backup\"",
    );
    let first = case.collect();
    assert!(first.ok, "{}", first.stderr);
    let out = first.json();
    let v = &out["volumes"][0];
    assert!(
        v["intermediate_snapshot_id"].is_null(),
        "a CMK snapshot the forensic account may use needs no member copy"
    );
    let ebs = aws_sdk_ebs::Client::new(&env.forensic().await);
    let back = read_snapshot(&ebs, v["snapshot_id"].as_str().expect("id"), 100).await;
    assert_eq!(
        back.sha256,
        env.seeded.member().instances[0].volumes[0].image_sha256
    );
    let originals = member_snapshots(&env).await;
    let original = originals
        .iter()
        .find(|s| s.snapshot_id() == v["member_snapshot_id"].as_str())
        .expect("original kept");
    assert!(original.tags().is_empty(), "no tags: {:?}", original.tags());
    assert_eq!(original.description(), Some("daily backup"));
    let before = originals.len();
    let events_before = case.events().await.len();

    let second = case.collect();
    assert!(second.ok, "{}", second.stderr);
    let again = second.json();
    assert_eq!(
        again["volumes"][0]["snapshot_id"], v["snapshot_id"],
        "the same evidence snapshot"
    );
    assert_eq!(
        member_snapshots(&env).await.len(),
        before,
        "no second snapshot"
    );
    let events = case.events().await;
    assert!(
        events.len() > events_before,
        "the second run is recorded too"
    );
    let names = actions(&events[events_before..]);
    assert!(
        !names
            .iter()
            .any(|n| n == "snapshots.created" || n == "snapshot.copied"),
        "{names:?}"
    );
    assert_eq!(events[events_before].details["resumed"], true);
    nothing_shared(&env).await;
}

#[tokio::test]
async fn a_wrong_external_id_fails_clearly_and_touches_nothing() {
    let env = world(
        "ev-collect-extid",
        &[volume("/dev/xvda", "root.img", "none", 1, 0)],
    );
    let case = Case::new(&env, "IR-2026-0003").with_config(
        "external_id = \"ext-2026-forensnap\"",
        "external_id = \"wrong\"",
    );
    let run = case.collect();
    assert!(!run.ok);
    for needle in [
        "assume the collector role",
        "111111111111",
        "arn:aws:iam::111111111111:role/ForensnapCollector",
        "AccessDenied",
        "ExternalId",
    ] {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks {needle:?}: {}",
            run.stderr
        );
    }
    assert!(
        member_snapshots(&env).await.is_empty(),
        "nothing was snapshotted"
    );
    let names = actions(&case.events().await);
    assert_eq!(
        names,
        [
            "collection.started",
            "bucket.checked",
            "role.assumed!",
            "collection.failed!"
        ]
    );
}

#[tokio::test]
async fn an_unknown_instance_fails_clearly() {
    let env = world(
        "ev-collect-noinst",
        &[volume("/dev/xvda", "root.img", "none", 1, 0)],
    );
    let config = env.seeded.config.clone().expect("config");
    let run = forensnap(&[
        "collect",
        "--config",
        &config,
        "--case",
        "IR-9",
        "--account",
        "111111111111",
        "--instance",
        "i-0123456789abcdef0",
    ]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "i-0123456789abcdef0 does not exist in account 111111111111 region us-east-1"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Next:"), "{}", run.stderr);
    assert!(member_snapshots(&env).await.is_empty());

    let run = forensnap(&[
        "collect",
        "--config",
        &config,
        "--case",
        "IR-9",
        "--account",
        "222222222222",
        "--instance",
        "i-0123456789abcdef0",
    ]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("account 222222222222 is not one of the [[members]] (111111111111)"),
        "{}",
        run.stderr
    );
    let run = forensnap(&[
        "collect",
        "--config",
        &config,
        "--case",
        "bad/case",
        "--account",
        "111111111111",
        "--instance",
        "i-0123456789abcdef0",
    ]);
    assert!(
        run.stderr.contains("case id \"bad/case\" is not usable"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_bucket_without_compliance_lock_is_refused_before_the_member_account_is_touched() {
    // A hand-made world (no policies): under the templates the collector role may not even read
    // another bucket's configuration, so the refusal would be AccessDenied; this test checks that
    // forensnap itself recognises a bucket without Object Lock.
    let volumes = [volume("/dev/xvda", "root.img", "none", 1, 0)];
    let refs: Vec<&str> = volumes.iter().map(String::as_str).collect();
    let env = Env::new(&format!(
        "policies = false\n{}",
        world_toml("ev-collect-bucket", &refs)
    ));
    s3(&env.forensic().await)
        .create_bucket()
        .bucket("plain-bucket")
        .send()
        .await
        .expect("plain bucket");
    let case = Case::new(&env, "IR-2026-0005").with_config(
        &format!("evidence_bucket = \"{}\"", bucket_of("ev-collect-bucket")),
        "evidence_bucket = \"plain-bucket\"",
    );
    let run = case.collect();
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("evidence bucket plain-bucket is not usable: Object Lock is not enabled"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Nothing was done in any member account"),
        "{}",
        run.stderr
    );
    assert!(member_snapshots(&env).await.is_empty());
    let listed = s3(&env.forensic().await)
        .list_objects_v2()
        .bucket("plain-bucket")
        .send()
        .await
        .expect("list");
    assert!(
        listed.contents().is_empty(),
        "no custody written into an unlocked bucket"
    );
}

#[tokio::test]
async fn a_key_the_forensic_account_cannot_use_fails_unshared_and_always_reencrypt_then_resumes() {
    let mut toml = world_toml(
        "ev-collect-key",
        &[&volume("/dev/xvda", "root.img", "cmk", 2, 3)],
    );
    toml = toml.replace(
        "external_id = \"ext-2026-forensnap\"",
        "external_id = \"ext-2026-forensnap\"\ncmk_usable_by_forensic = false",
    );
    let env = Env::new(&toml);
    let case = Case::new(&env, "IR-2026-0006");
    let run = case.collect();
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stderr.contains("not accessible"), "{}", run.stderr);
    assert!(
        run.stderr.contains("collect.reencrypt = \\\"always\\\"")
            || run.stderr.contains("collect.reencrypt = \"always\""),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("failed in account 123456789012"),
        "names the forensic account: {}",
        run.stderr
    );
    nothing_shared(&env).await;
    let names = actions(&case.events().await);
    assert!(
        names.contains(&"snapshot.completed!".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"snapshot.unshared".to_string()),
        "{names:?}"
    );
    assert_eq!(names.last().map(String::as_str), Some("collection.failed!"));
    let snapshots_after_failure = member_snapshots(&env).await.len();

    // The fix the error names: re-encrypt in the member account. The run resumes the case.
    let fixed = Case::new(&env, "IR-2026-0006")
        .with_config("[collect]", "[collect]\nreencrypt = \"always\"");
    let run = fixed.collect();
    assert!(run.ok, "{}", run.stderr);
    let out = run.json();
    let ebs = aws_sdk_ebs::Client::new(&env.forensic().await);
    let back = read_snapshot(
        &ebs,
        out["volumes"][0]["snapshot_id"].as_str().expect("id"),
        100,
    )
    .await;
    assert_eq!(
        back.sha256,
        env.seeded.member().instances[0].volumes[0].image_sha256
    );
    // The original is reused; only the intermediate copy came and went.
    assert_eq!(member_snapshots(&env).await.len(), snapshots_after_failure);
    nothing_shared(&env).await;
}

#[tokio::test]
async fn a_failing_copy_leaves_nothing_shared_and_a_rerun_finishes() {
    let env = world(
        "ev-collect-copyfail",
        &[volume("/dev/xvda", "root.img", "none", 2, 0)],
    );
    env.world
        .add_fault(
            &FaultRule::new(FaultKind::Error, "ec2", "CopySnapshot")
                .after(1)
                .count(20),
        )
        .expect("fault: the forensic copy fails");
    let case = Case::new(&env, "IR-2026-0007");
    let run = case.collect();
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("copy the snapshot failed in account 123456789012"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("CopySnapshot: InternalError"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("run the same command again"),
        "{}",
        run.stderr
    );
    nothing_shared(&env).await;
    env.world.clear_faults().expect("clear");
    let run = case.collect();
    assert!(run.ok, "{}", run.stderr);
    let names = actions(&case.events().await);
    assert_eq!(
        names.iter().filter(|n| *n == "snapshots.created").count(),
        1
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("collection.completed")
    );
    nothing_shared(&env).await;
}

#[tokio::test]
async fn a_run_that_times_out_waiting_resumes_without_new_snapshots() {
    let env = world(
        "ev-collect-slow",
        &[volume("/dev/xvda", "root.img", "none", 2, 0)],
    );
    env.world
        .set_settings(Settings {
            snapshot_seconds: 0.0,
            copy_seconds: 600.0,
        })
        .expect("slow copies");
    let case = Case::new(&env, "IR-2026-0008")
        .with_config("[collect]", "[collect]\nwait_timeout_minutes = 0");
    let run = case.collect();
    assert!(!run.ok);
    assert!(run.stderr.contains("still pending"), "{}", run.stderr);
    assert!(
        run.stderr.contains("run the same command again later"),
        "{}",
        run.stderr
    );
    env.world.advance_clock(700).expect("copies complete");
    env.world
        .set_settings(Settings {
            snapshot_seconds: 0.0,
            copy_seconds: 0.0,
        })
        .expect("fast again");
    let run = Case::new(&env, "IR-2026-0008").collect();
    assert!(run.ok, "{}", run.stderr);
    let names = actions(&case.events().await);
    assert_eq!(
        names.iter().filter(|n| *n == "snapshots.created").count(),
        1,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "snapshot.copied").count(),
        2,
        "the pending copy was awaited, not redone: {names:?}"
    );
    nothing_shared(&env).await;
}
