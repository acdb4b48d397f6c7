//! Faults during a whole collection (issue 12): one `forensnap collect` of two volumes through
//! every fault the local world injects at once -- throttling storms on EBS, EC2, KMS and STS,
//! 5xx and dropped connections on block reads and S3 writes, corrupted block bytes, slow S3
//! parts, the member session expiring mid-run -- run again until it finishes. Every run must
//! end in a correct case or in a clear error that names the next step and resumes; no
//! corrupted byte is ever stored (the images equal the seeded ones and `verify` re-reads and
//! re-hashes every object).

use std::process::Stdio;
use std::time::{Duration, Instant};

use forensnap_tests::localworld::{FaultKind, FaultRule};
use forensnap_tests::*;

/// The case's custody actions so far (listing only, no chain check: the run is writing it).
async fn actions(env: &Env, case: &str) -> Vec<String> {
    let s3 = s3(&env.forensic_admin().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let Ok(listed) = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("cases/{case}/custody/events/"))
        .send()
        .await
    else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    for object in listed.contents() {
        let bytes = get_bytes(&s3, bucket, object.key().expect("key")).await;
        if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            actions.push(event["action"].as_str().unwrap_or_default().to_string());
        }
    }
    actions
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collection_through_a_storm_of_faults_ends_correct_or_resumable() {
    let (env, config) = two_volume_world("ev-storm", "max_reads_per_volume = 4", true);
    let rules = [
        (
            "EBS throttles",
            FaultRule::new(FaultKind::Throttle, "ebs", "GetSnapshotBlock").probability(0.2, 1),
        ),
        (
            "EBS 503s",
            FaultRule::new(FaultKind::Error, "ebs", "GetSnapshotBlock")
                .status(503)
                .probability(0.05, 2),
        ),
        (
            "corrupted blocks",
            FaultRule::new(FaultKind::Corrupt, "ebs", "GetSnapshotBlock").probability(0.1, 3),
        ),
        (
            "dropped block reads",
            FaultRule::new(FaultKind::Drop, "ebs", "GetSnapshotBlock").probability(0.03, 4),
        ),
        (
            "slow parts",
            FaultRule::new(FaultKind::Latency, "s3", "UploadPart")
                .latency_ms(300)
                .probability(0.5, 5),
        ),
        (
            "dropped parts",
            FaultRule::new(FaultKind::Drop, "s3", "UploadPart").probability(0.1, 6),
        ),
        (
            "part 500s",
            FaultRule::new(FaultKind::Error, "s3", "UploadPart").probability(0.1, 7),
        ),
        (
            "PutObject 503s",
            FaultRule::new(FaultKind::Error, "s3", "PutObject")
                .status(503)
                .probability(0.05, 8),
        ),
        (
            "EC2 throttles",
            FaultRule::new(FaultKind::Throttle, "ec2", "DescribeSnapshots").probability(0.3, 9),
        ),
        (
            "CopySnapshot throttles",
            FaultRule::new(FaultKind::Throttle, "ec2", "CopySnapshot").count(2),
        ),
        (
            "CreateSnapshots 500s",
            FaultRule::new(FaultKind::Error, "ec2", "CreateSnapshots").count(1),
        ),
        (
            "KMS Sign throttles",
            FaultRule::new(FaultKind::Throttle, "kms", "Sign").probability(0.5, 10),
        ),
        (
            "AssumeRole throttles",
            FaultRule::new(FaultKind::Throttle, "sts", "AssumeRole").count(1),
        ),
    ];
    let mut ids = Vec::new();
    for (name, rule) in &rules {
        ids.push((*name, env.world.add_fault(rule).expect("fault")));
    }

    let instance = env.seeded.member().instances[0].instance_id.clone();
    let case = "IR-STORM-1";
    let out = env.path("storm.json");
    let (mut runs, mut expired, mut errors) = (0, false, Vec::<String>::new());
    let collected = loop {
        runs += 1;
        assert!(runs <= 6, "the collection never finished: {errors:#?}");
        let stdout = std::fs::File::create(&out).expect("stdout");
        let mut child = collect_command(&config, case, &instance)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start collect");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "run {runs} did not end in 300 s"
            );
            // Once, while the member account is in use: its session expires (the world's
            // clock jumps past the session's end).
            if !expired
                && actions(&env, case)
                    .await
                    .iter()
                    .any(|a| a == "snapshots.created")
            {
                env.world.advance_clock(3_700).expect("clock");
                expired = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        if status.success() {
            break serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(&out).expect("output"),
            )
            .expect("collect --output json");
        }
        let error = stderr
            .lines()
            .find(|l| l.starts_with("forensnap: error:"))
            .unwrap_or_else(|| panic!("run {runs} failed without a clear error: {stderr}"))
            .to_string();
        assert!(
            error.contains("Next:")
                || error.contains("run the same command again")
                || error.contains("run again"),
            "run {runs}'s error names the next step: {error}"
        );
        errors.push(error);
    };
    assert!(expired, "the member session expired during a run");

    // Correct, whole, and nothing left behind.
    let seeded: std::collections::BTreeMap<String, String> = env.seeded.member().instances[0]
        .volumes
        .iter()
        .map(|v| (v.volume_id.clone(), v.image_sha256.clone()))
        .collect();
    let evidence = collected["evidence"].as_array().expect("evidence");
    assert_eq!(evidence.len(), 4);
    for item in evidence.iter().filter(|i| i["kind"] == "volume") {
        let volume = item["volume_id"].as_str().expect("volume");
        assert_eq!(
            item["image_sha256"].as_str(),
            seeded.get(volume).map(String::as_str)
        );
    }
    let stats = env.world.faults().expect("fault stats");
    env.world.clear_faults().expect("clear");
    let verified = forensnap(&["verify", "--config", &config, "--case", case]);
    assert!(
        verified.ok,
        "verify re-reads every object: {}\n{}",
        verified.stdout, verified.stderr
    );
    assert_nothing_shared(&env.member_admin().await).await;
    assert_eq!(owned_snapshots(&env.member_admin().await).await.len(), 2);
    assert_eq!(owned_snapshots(&env.forensic_admin().await).await.len(), 2);
    assert_eq!(open_uploads(&env).await, 0);

    let fired: Vec<String> = ids
        .iter()
        .map(|(name, id)| {
            let n = stats
                .iter()
                .find(|s| s.id == *id)
                .map(|s| s.fired)
                .unwrap_or(0);
            format!("{n} {name}")
        })
        .collect();
    summary(
        "faults-collect",
        &format!(
            "faults during collection: {}, and the member session expired mid-run; {runs} runs ({} ended on a clear, resumable error: {}); \
             survived: images equal to the seeded ones, verify re-read every object, nothing shared, no upload open",
            fired.join(", "),
            errors.len(),
            errors
                .iter()
                .map(|e| e.chars().take(120).collect::<String>())
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    );
}
