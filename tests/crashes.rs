//! Crashes (issue 12): the real `forensnap collect` process killed with SIGKILL at seeded random
//! moments, again and again, then left to finish. The case must end as an uninterrupted run
//! would: every image hash equal to the seeded image's, every item acquired and sealed once (no
//! custody event of an item missing or doubled), one member snapshot and one forensic copy per
//! volume, no share and no intermediate copy left, no open multipart upload, and `forensnap
//! verify` passing.
//!
//! `FORENSNAP_CRASH_SEED` picks the moments (default fixed, printed on every run so a failure
//! can be replayed); `FORENSNAP_CRASH_KILLS` how many (default 25).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use forensnap_core::CaseId;
use forensnap_tests::localworld::Settings;
use forensnap_tests::*;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: enough to spread kill moments, reproducible from the seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The case's custody events, verified as a chain.
async fn events(env: &Env, case: &str) -> Vec<forensnap_core::Event> {
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("cases/{case}/custody/events/"))
        .send()
        .await
        .expect("list events");
    let mut stored = Vec::new();
    for object in listed.contents() {
        let key = object.key().expect("key").to_string();
        stored.push((key.clone(), get_bytes(&s3, bucket, &key).await));
    }
    let case = CaseId::parse(case).expect("case");
    forensnap_core::custody::verify_chain(&case, &stored)
        .expect("the custody chain verifies after every kill")
        .0
}

#[tokio::test(flavor = "multi_thread")]
async fn collect_killed_at_seeded_moments_ends_as_an_uninterrupted_run_would() {
    let seed = env_number("FORENSNAP_CRASH_SEED", 20_261_201);
    let kills_wanted = env_number("FORENSNAP_CRASH_KILLS", 25) as usize;
    // Printed first, so that a failing assertion below can be replayed.
    eprintln!("crash test seed {seed}, {kills_wanted} kills");
    let env = Env::new(&world_toml(
        "ev-crash",
        &[
            // On the default aws/ebs key: re-encrypted in the member account, shared, copied,
            // unshared, the intermediate copy deleted: every preservation step can be cut.
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"default\"\nbuild = { kind = \"pattern\", blocks = 40, offset_blocks = 0 }",
            "device = \"/dev/xvdf\"\nimage = \"data.img\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 24, offset_blocks = 5 }",
        ],
    ));
    env.world
        .set_settings(Settings {
            snapshot_seconds: 1.0,
            copy_seconds: 1.0,
        })
        .expect("settings");
    // Several 5 MiB parts per volume, read at 8 blocks/s: a run lasts seconds, and a kill can
    // land in preservation, between parts, between a part and its checkpoint, in a seal.
    // Without the case table: a SIGKILLed holder's lease would make the next run wait for it
    // to lapse (the daemon tests cover leases).
    let generated = env.seeded.config.clone().expect("config");
    let text = std::fs::read_to_string(&generated).expect("config");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("case_table"))
        .collect::<Vec<_>>()
        .join("\n");
    let config = env.path("crash.forensnap.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[acquire]\npart_mib = 5\nrequests_per_second_per_snapshot = 8\nmax_reads_per_volume = 4\n"
        ),
    )
    .expect("write config");
    let config = config.display().to_string();
    let instance = env.seeded.member().instances[0].instance_id.clone();
    let case = "IR-CRASH-1";
    let out = env.path("collect.json");

    let mut rng = seed.max(1);
    let (mut kills, mut runs, mut completed) = (0usize, 0usize, None::<serde_json::Value>);
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    while kills < kills_wanted || completed.is_none() {
        runs += 1;
        assert!(
            runs <= kills_wanted * 4 + 8,
            "the collection never finished (seed {seed})"
        );
        let stdout = std::fs::File::create(&out).expect("stdout file");
        let mut child = Command::new(forensnap_bin())
            .args([
                "collect",
                "--config",
                &config,
                "--case",
                case,
                "--account",
                "111111111111",
                "--instance",
                &instance,
                "--output",
                "json",
                "--purpose",
                "crash test",
            ])
            .env("FORENSNAP_OPERATOR", "Crash Test")
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start collect");
        let kill_at =
            (kills < kills_wanted).then(|| Duration::from_millis(150 + next(&mut rng) % 1_000));
        let started = Instant::now();
        let limit = kill_at.unwrap_or(Duration::from_secs(180));
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() >= limit {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        match status {
            Some(status) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                assert!(
                    status.success(),
                    "run {runs} (seed {seed}, after {kills} kills) failed on its own: {stderr}"
                );
                let json: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&out).expect("output"))
                        .expect("collect --output json");
                completed = Some(json);
            }
            None => {
                assert!(
                    kill_at.is_some(),
                    "run {runs} did not finish in 180 s (seed {seed})"
                );
                child.kill().expect("SIGKILL");
                let _ = child.wait();
                kills += 1;
                // Where it landed: the last custody write before the kill.
                let last = events(&env, case)
                    .await
                    .last()
                    .map(|e| e.action.clone())
                    .unwrap_or_else(|| "(before the first event)".into());
                *landed.entry(last).or_default() += 1;
            }
        }
    }

    // The images are the seeded ones.
    let collected = completed.expect("completed");
    let seeded: BTreeMap<String, String> = env.seeded.member().instances[0]
        .volumes
        .iter()
        .map(|v| (v.volume_id.clone(), v.image_sha256.clone()))
        .collect();
    let evidence = collected["evidence"].as_array().expect("evidence");
    for item in evidence.iter().filter(|i| i["kind"] == "volume") {
        let volume = item["volume_id"].as_str().expect("volume id");
        assert_eq!(
            item["image_sha256"].as_str(),
            seeded.get(volume).map(String::as_str),
            "{volume} (seed {seed})"
        );
    }
    assert_eq!(
        evidence.len(),
        4,
        "two volumes, the instance record, the console output"
    );

    // Every item acquired and sealed once: no event missing, none doubled.
    let events = events(&env, case).await;
    let count = |action: &str, item: &str| {
        events
            .iter()
            .filter(|e| {
                e.action == action
                    && e.outcome == forensnap_core::Outcome::Ok
                    && e.details.get("item").and_then(|v| v.as_str()) == Some(item)
            })
            .count()
    };
    for item in evidence {
        let id = item["id"].as_str().expect("id");
        assert_eq!(
            count("evidence.sealed", id),
            1,
            "{id} sealed once (seed {seed})"
        );
        if item["kind"] == "volume" {
            assert_eq!(
                count("acquisition.completed", id),
                1,
                "{id} acquired once (seed {seed})"
            );
        }
    }
    let snapshots_created = events
        .iter()
        .filter(|e| e.action == "snapshots.created")
        .count();
    assert_eq!(
        snapshots_created, 1,
        "CreateSnapshots answered once (seed {seed})"
    );

    // One member snapshot and one forensic copy per volume; nothing shared; no upload open.
    let originals = owned_snapshots(&env.member_admin().await).await;
    assert_eq!(
        originals.len(),
        2,
        "no duplicate, no intermediate left (seed {seed})"
    );
    assert_nothing_shared(&env.member_admin().await).await;
    let forensic = owned_snapshots(&env.forensic_admin().await).await;
    assert_eq!(forensic.len(), 2, "one copy per volume (seed {seed})");
    assert_eq!(
        open_uploads(&env).await,
        0,
        "no multipart upload left open (seed {seed})"
    );

    let verified = forensnap(&["verify", "--config", &config, "--case", case]);
    assert!(
        verified.ok,
        "verify (seed {seed}): {}\n{}",
        verified.stdout, verified.stderr
    );

    let spread: Vec<String> = landed.iter().map(|(a, n)| format!("{a} x{n}")).collect();
    summary(
        "crashes",
        &format!(
            "crashes: {kills} SIGKILLs of forensnap collect in {runs} runs (seed {seed}); survived: {kills}; \
             items 4/4 sealed once, images equal to the seeded ones, verify passed; kills landed after: {}",
            spread.join(", ")
        ),
    );
}
