//! Crashes (issue 12): the real `forensnap collect` process killed with SIGKILL, again and
//! again, then left to finish. The case must end as an uninterrupted run of the same instance
//! (collected first, as its own case) ended: every image hash equal to the seeded image's, the
//! same custody facts (every item recorded, copied, shared, unshared, deleted, acquired and
//! sealed exactly as often; only the per-run events such as `collection.started` repeat), one
//! member snapshot and one forensic copy per volume, no share and no intermediate copy left, no
//! open multipart upload, and `forensnap verify` passing.
//!
//! Two ways to choose where a kill lands:
//! - **at named requests**: the local world kills the process as it sends the request of every
//!   custody event, every multipart part, every other object of the case (bag files, custody
//!   checkpoints, the signature that seals each bag) and every EC2 call that changes something,
//!   either before the world applies it or after (applied, the answer never received); the
//!   seed picks which;
//! - **at random moments**: a timer in the test, anywhere, in the middle of a part or a wait.
//!
//! `FORENSNAP_CRASH_SEED` (default fixed, printed first so a failure can be replayed) drives
//! both; `FORENSNAP_CRASH_KILLS` is the number of timed kills (default 25).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use forensnap_core::CaseId;
use forensnap_tests::localworld::{FaultRule, KillWhen};
use forensnap_tests::*;

/// What each run records once (every run starts, checks the bucket, assumes the role, starts
/// its acquisitions, ends preservation and, when it finishes, the collection), and the intents
/// written before a call whose answer may be lost (a run killed between the intent and the call
/// writes it again): these repeat with the runs, every other event is a fact recorded once.
const PER_RUN: &[&str] = &[
    "collection.started",
    "bucket.checked",
    "role.assumed",
    "acquisition.started",
    "preservation.completed",
    "collection.completed",
    "snapshots.requested",
    "snapshot.copy-requested",
];

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

/// A world with one instance of two volumes, and a config for many short runs.
struct Crash {
    env: Env,
    config: String,
    instance: String,
}

impl Crash {
    fn new(prefix: &str) -> Crash {
        // Read at 8 blocks/s: a kill can land in preservation, between parts, between a part
        // and its checkpoint, in a seal.
        let (env, config) = two_volume_world(
            prefix,
            "requests_per_second_per_snapshot = 8\nmax_reads_per_volume = 4",
            false,
        );
        let instance = env.seeded.member().instances[0].instance_id.clone();
        Crash {
            config,
            instance,
            env,
        }
    }

    fn spawn(&self, case: &str, out: &Path) -> Child {
        let stdout = std::fs::File::create(out).expect("stdout file");
        collect_command(&self.config, case, &self.instance)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start collect")
    }

    /// `collect --output json` of a run that ended by itself (panics if it failed).
    fn finished(
        child: &mut Child,
        status: std::process::ExitStatus,
        out: &Path,
        what: &str,
    ) -> serde_json::Value {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            use std::io::Read;
            let _ = pipe.read_to_string(&mut stderr);
        }
        assert!(status.success(), "{what} failed on its own: {stderr}");
        serde_json::from_str(&std::fs::read_to_string(out).expect("output"))
            .expect("collect --output json")
    }

    /// A whole run, uninterrupted.
    fn collect_whole(&self, case: &str) -> serde_json::Value {
        let out = self.env.path(&format!("{case}.json"));
        let mut child = self.spawn(case, &out);
        let status = wait_bounded(&mut child, Duration::from_secs(180))
            .unwrap_or_else(|| panic!("the uninterrupted run of {case} did not finish in 180 s"));
        Crash::finished(
            &mut child,
            status,
            &out,
            &format!("the uninterrupted run of {case}"),
        )
    }
}

/// The child's exit status, or `None` if it still runs after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if started.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The case's custody events, verified as a chain.
async fn events(env: &Env, case: &str) -> Vec<forensnap_core::Event> {
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let mut stored = Vec::new();
    for key in keys(env, &format!("cases/{case}/custody/events/")).await {
        stored.push((key.clone(), get_bytes(&s3, bucket, &key).await));
    }
    let case = CaseId::parse(case).expect("case");
    forensnap_core::custody::verify_chain(&case, &stored)
        .expect("the custody chain verifies after every kill")
        .0
}

/// Every object key under `prefix` in the evidence bucket.
async fn keys(env: &Env, prefix: &str) -> Vec<String> {
    let s3 = s3(&env.forensic().await);
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&env.seeded.forensic.evidence_bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return keys;
        }
    }
}

/// How often each fact happened: (action, item, volume, stage) of every successful event but
/// the per-run ones.
fn facts(events: &[forensnap_core::Event]) -> BTreeMap<String, usize> {
    let mut facts = BTreeMap::new();
    for e in events {
        if e.outcome != forensnap_core::Outcome::Ok || PER_RUN.contains(&e.action.as_str()) {
            continue;
        }
        let field = |name: &str| {
            e.details
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or("-")
                .to_string()
        };
        let fact = format!(
            "{} item={} volume={} stage={}",
            e.action,
            field("item"),
            field("volume_id"),
            field("stage")
        );
        *facts.entry(fact).or_insert(0) += 1;
    }
    facts
}

/// The killed case ended as the uninterrupted one did.
async fn assert_as_uninterrupted(
    crash: &Crash,
    case: &str,
    collected: &serde_json::Value,
    baseline: &BTreeMap<String, usize>,
    seed: u64,
) {
    let env = &crash.env;
    // The images are the seeded ones.
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

    // Exactly the facts of an uninterrupted run: none missing, none doubled.
    let got = facts(&events(env, case).await);
    let differ: Vec<String> = baseline
        .keys()
        .chain(got.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|f| baseline.get(*f) != got.get(*f))
        .map(|f| {
            format!(
                "{f}: uninterrupted {} killed {}",
                baseline.get(f).unwrap_or(&0),
                got.get(f).unwrap_or(&0)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "the chain's facts differ from an uninterrupted run's (seed {seed}):\n{}",
        differ.join("\n")
    );

    // One member snapshot and one forensic copy per volume of each of the two cases; nothing
    // shared; no upload open.
    let originals = owned_snapshots(&env.member_admin().await).await;
    assert_eq!(
        originals.len(),
        4,
        "no duplicate, no intermediate left (seed {seed})"
    );
    assert_nothing_shared(&env.member_admin().await).await;
    let forensic = owned_snapshots(&env.forensic_admin().await).await;
    assert_eq!(forensic.len(), 4, "one copy per volume (seed {seed})");
    assert_eq!(
        open_uploads(env).await,
        0,
        "no multipart upload left open (seed {seed})"
    );

    let verified = forensnap(&["verify", "--config", &crash.config, "--case", case]);
    assert!(
        verified.ok,
        "verify (seed {seed}): {}\n{}",
        verified.stdout, verified.stderr
    );
}

/// A Python regular expression matching `text` literally.
fn literal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// One place a kill is aimed at.
struct Target {
    /// What it is, for the summary: "custody event", "part", "seal", "bag file", ...
    class: &'static str,
    label: String,
    service: &'static str,
    operation: &'static str,
    matching: Option<String>,
    when: KillWhen,
}

/// Every write of the uninterrupted case `from`, aimed at the same write of case `to`.
async fn targets(crash: &Crash, from: &str, to: &str, rng: &mut u64) -> Vec<Target> {
    let env = &crash.env;
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let mut when = || {
        if next(rng).is_multiple_of(2) {
            KillWhen::Before
        } else {
            KillWhen::After
        }
    };
    let mut targets = Vec::new();
    for key in keys(env, &format!("cases/{from}/")).await {
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(&key)
            .part_number(1)
            .send()
            .await
            .expect("head");
        let key = key.replacen(&format!("cases/{from}/"), &format!("cases/{to}/"), 1);
        let path = format!("^{{}} (/[^/]+)?/{}(\\?|$)", literal(&key));
        let s3_target =
            |class, operation: &'static str, matching: String, label: String, when| Target {
                class,
                label,
                service: "s3",
                operation,
                matching: Some(matching),
                when,
            };
        match head.parts_count() {
            Some(parts) if parts > 1 || head.e_tag().is_some_and(|t| t.contains('-')) => {
                let whole = path.replacen("{}", "CreateMultipartUpload", 1);
                targets.push(s3_target(
                    "multipart",
                    "CreateMultipartUpload",
                    whole,
                    format!("start {key}"),
                    when(),
                ));
                for part in 1..=parts {
                    let matching = format!(
                        "^UploadPart (/[^/]+)?/{}\\?(.*&)?partNumber={part}(&|$)",
                        literal(&key)
                    );
                    targets.push(s3_target(
                        "part",
                        "UploadPart",
                        matching,
                        format!("part {part} of {key}"),
                        when(),
                    ));
                }
                let done = path.replacen("{}", "CompleteMultipartUpload", 1);
                targets.push(s3_target(
                    "multipart",
                    "CompleteMultipartUpload",
                    done,
                    format!("complete {key}"),
                    when(),
                ));
            }
            _ => {
                let class = if key.contains("/custody/events/") {
                    "custody event"
                } else if key.contains("/custody/") {
                    "custody checkpoint"
                } else if key.ends_with(&forensnap_core::keys::signature_of("")) {
                    "seal"
                } else {
                    "bag file"
                };
                let put = path.replacen("{}", "PutObject", 1);
                targets.push(s3_target(class, "PutObject", put, key.clone(), when()));
            }
        }
    }
    // EC2 calls that change something, by operation: their ids differ from case to case.
    for (operation, times) in [
        ("CreateSnapshots", 1),
        ("CopySnapshot", 4),
        ("ModifySnapshotAttribute", 4),
        ("DeleteSnapshot", 2),
    ] {
        for nth in 0..times {
            targets.push(Target {
                class: "ec2 call",
                label: format!("{operation} #{}", nth + 1),
                service: "ec2",
                operation,
                matching: None,
                when: when(),
            });
        }
    }
    targets
}

#[tokio::test(flavor = "multi_thread")]
async fn the_world_kills_the_client_only_where_a_rule_says() {
    let crash = Crash::new("ev-kill");
    let world = &crash.env.world;
    let out = crash.env.path("kill.json");
    // A rule for another process name never fires.
    let other = world
        .add_fault(&FaultRule::kill(
            KillWhen::Before,
            "not-forensnap",
            "ec2",
            "CreateSnapshots",
        ))
        .expect("rule");
    // Killed before CreateSnapshots is applied: no snapshot exists.
    let before = world
        .add_fault(
            &FaultRule::kill(KillWhen::Before, "forensnap", "ec2", "CreateSnapshots").count(1),
        )
        .expect("rule");
    let mut child = crash.spawn("IR-KILL-1", &out);
    let status = wait_bounded(&mut child, Duration::from_secs(120)).expect("ended");
    assert_eq!(status.signal(), Some(9), "killed by the world");
    assert!(
        owned_snapshots(&crash.env.member_admin().await)
            .await
            .is_empty()
    );
    // Killed after it is applied: the snapshots exist, and the run never learnt it.
    world
        .add_fault(
            &FaultRule::kill(KillWhen::After, "forensnap", "ec2", "CreateSnapshots")
                .matching(&format!(
                    "InstanceSpecification\\.InstanceId={}",
                    crash.instance
                ))
                .count(1),
        )
        .expect("rule");
    let mut child = crash.spawn("IR-KILL-1", &out);
    let status = wait_bounded(&mut child, Duration::from_secs(120)).expect("ended");
    assert_eq!(status.signal(), Some(9), "killed by the world");
    assert_eq!(
        owned_snapshots(&crash.env.member_admin().await).await.len(),
        2
    );
    let created = events(&crash.env, "IR-KILL-1")
        .await
        .iter()
        .filter(|e| e.action == "snapshots.created")
        .count();
    assert_eq!(created, 0, "the answer never reached the run");
    let stats = world.faults().expect("faults");
    let fired = |id| stats.iter().find(|s| s.id == id).expect("rule").fired;
    assert_eq!(fired(other), 0, "a rule kills only the process it names");
    assert_eq!(fired(before), 1);
    assert!(stats.iter().all(|s| s.fired <= 1));
    // A rule matching nothing lets the run finish.
    world.clear_faults().expect("clear");
    world
        .add_fault(
            &FaultRule::kill(KillWhen::Before, "forensnap", "s3", "PutObject")
                .matching("^PutObject /nothing-here/"),
        )
        .expect("rule");
    let mut child = crash.spawn("IR-KILL-1", &out);
    let status = wait_bounded(&mut child, Duration::from_secs(180)).expect("ended");
    let done = Crash::finished(&mut child, status, &out, "the run after the kills");
    assert_eq!(done["evidence"].as_array().map(Vec::len), Some(4));
    let created = events(&crash.env, "IR-KILL-1")
        .await
        .iter()
        .filter(|e| e.action == "snapshots.created")
        .count();
    assert_eq!(
        created, 1,
        "the snapshots made by the killed run are adopted, not made again"
    );
    assert_eq!(
        owned_snapshots(&crash.env.member_admin().await).await.len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn collect_killed_at_every_write_ends_as_an_uninterrupted_run_would() {
    let seed = env_number("FORENSNAP_CRASH_SEED", 20_261_201);
    eprintln!("crash-point test seed {seed}");
    let crash = Crash::new("ev-points");
    let world = &crash.env.world;
    let (whole, case) = ("IR-POINTS-0", "IR-POINTS-1");
    crash.collect_whole(whole);
    let baseline = facts(&events(&crash.env, whole).await);

    let mut rng = seed.max(1);
    let mut left = targets(&crash, whole, case, &mut rng).await;
    let total = left.len();
    let out = crash.env.path("points.json");
    let mut hit: Vec<Target> = Vec::new();
    let mut runs = 0usize;
    let collected = loop {
        runs += 1;
        assert!(
            runs <= total + 5,
            "the collection never finished (seed {seed})"
        );
        // Arm every target not hit yet (an EC2 operation's next call only).
        world.clear_faults().expect("clear");
        let mut armed: BTreeMap<u64, usize> = BTreeMap::new();
        let mut ec2_armed = BTreeSet::new();
        for (i, t) in left.iter().enumerate() {
            if t.matching.is_none() && !ec2_armed.insert(t.operation) {
                continue;
            }
            let mut rule = FaultRule::kill(t.when, "forensnap", t.service, t.operation).count(1);
            if let Some(m) = &t.matching {
                rule = rule.matching(m);
            }
            armed.insert(world.add_fault(&rule).expect("arm"), i);
        }
        let mut child = crash.spawn(case, &out);
        let status = wait_bounded(&mut child, Duration::from_secs(180))
            .unwrap_or_else(|| panic!("run {runs} did not end in 180 s (seed {seed})"));
        let fired: BTreeSet<usize> = world
            .faults()
            .expect("faults")
            .iter()
            .filter(|s| s.fired > 0)
            .filter_map(|s| armed.get(&s.id).copied())
            .collect();
        if status.signal() != Some(9) {
            assert!(
                fired.is_empty(),
                "run {runs} ended although a rule fired (seed {seed})"
            );
            break Crash::finished(
                &mut child,
                status,
                &out,
                &format!("run {runs} (seed {seed})"),
            );
        }
        assert!(
            !fired.is_empty(),
            "run {runs} was killed by no rule (seed {seed})"
        );
        let (now, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut left)
            .into_iter()
            .enumerate()
            .partition(|(i, _)| fired.contains(i));
        hit.extend(now.into_iter().map(|(_, t)| t));
        left = rest.into_iter().map(|(_, t)| t).collect();
    };
    world.clear_faults().expect("clear");
    assert_as_uninterrupted(&crash, case, &collected, &baseline, seed).await;

    // Every custody event, every part and the seal of every bag had a kill.
    let missed: Vec<String> = left
        .iter()
        .filter(|t| matches!(t.class, "custody event" | "part" | "seal"))
        .map(|t| format!("{} {}", t.class, t.label))
        .collect();
    assert!(
        missed.is_empty(),
        "no kill landed at (seed {seed}):\n{}",
        missed.join("\n")
    );
    let mut classes: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for t in &hit {
        let entry = classes.entry(t.class).or_default();
        entry.0 += 1;
        match t.when {
            KillWhen::Before => entry.1 += 1,
            KillWhen::After => entry.2 += 1,
        }
    }
    let spread: Vec<String> = classes
        .iter()
        .map(|(class, (n, before, after))| format!("{class} {n} ({before} before, {after} after)"))
        .collect();
    let skipped = if left.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = left.iter().map(|t| t.label.as_str()).collect();
        format!("; not reached: {}", names.join(", "))
    };
    summary(
        "crash-points",
        &format!(
            "crash points: {} SIGKILLs of forensnap collect by the world, landing at {} of the {total} writes an \
             uninterrupted run makes (a kill cuts every write in flight), in {runs} runs (seed {seed}): {}; the case \
             ended as the uninterrupted one (same facts, images, snapshots), verify passed{skipped}",
            runs - 1,
            hit.len(),
            spread.join(", ")
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn collect_killed_at_seeded_moments_ends_as_an_uninterrupted_run_would() {
    let seed = env_number("FORENSNAP_CRASH_SEED", 20_261_201);
    let kills_wanted = env_number("FORENSNAP_CRASH_KILLS", 25) as usize;
    // Printed first, so that a failing assertion below can be replayed.
    eprintln!("crash test seed {seed}, {kills_wanted} kills");
    let crash = Crash::new("ev-crash");
    let (whole, case) = ("IR-CRASH-0", "IR-CRASH-1");
    crash.collect_whole(whole);
    let baseline = facts(&events(&crash.env, whole).await);
    let out = crash.env.path("collect.json");

    let mut rng = seed.max(1);
    let (mut kills, mut runs) = (0usize, 0usize);
    let mut landed: BTreeMap<String, usize> = BTreeMap::new();
    let collected = loop {
        runs += 1;
        assert!(
            runs <= kills_wanted * 4 + 8,
            "the collection never finished (seed {seed})"
        );
        let mut child = crash.spawn(case, &out);
        let kill_at =
            (kills < kills_wanted).then(|| Duration::from_millis(150 + next(&mut rng) % 1_000));
        let limit = kill_at.unwrap_or(Duration::from_secs(180));
        match wait_bounded(&mut child, limit) {
            Some(status) => {
                let what = format!("run {runs} (seed {seed}, after {kills} kills)");
                let json = Crash::finished(&mut child, status, &out, &what);
                if kills >= kills_wanted {
                    break json;
                }
                // It finished before its kill: the remaining kills land on runs that find the
                // case complete.
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
                let last = events(&crash.env, case)
                    .await
                    .last()
                    .map(|e| e.action.clone())
                    .unwrap_or_else(|| "(before the first event)".into());
                *landed.entry(last).or_default() += 1;
            }
        }
    };
    assert_as_uninterrupted(&crash, case, &collected, &baseline, seed).await;

    let spread: Vec<String> = landed.iter().map(|(a, n)| format!("{a} x{n}")).collect();
    summary(
        "crashes",
        &format!(
            "crashes: {kills} SIGKILLs of forensnap collect at seeded moments in {runs} runs (seed {seed}); \
             the case ended as an uninterrupted one (same facts, images, snapshots), verify passed; \
             kills landed after: {}",
            spread.join(", ")
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_case_s_leftovers_are_listed_ended_and_recorded() {
    let crash = Crash::new("ev-left");
    let world = &crash.env.world;
    let case = "IR-LEFT-1";
    let out = crash.env.path("left.json");
    let leftovers = |end: bool| {
        let mut args = vec![
            "leftovers",
            "--config",
            &crash.config,
            "--case",
            case,
            "--output",
            "json",
        ];
        if end {
            args.push("--end");
        }
        let run = forensnap(&args);
        assert!(run.ok, "leftovers (end {end}): {}", run.stderr);
        run.json()
    };
    let kinds = |listed: &serde_json::Value| -> Vec<String> {
        let mut kinds: Vec<String> = listed["members"]
            .as_array()
            .expect("members")
            .iter()
            .flat_map(|m| m["leftovers"].as_array().cloned().unwrap_or_default())
            .map(|l| {
                format!(
                    "{}{}",
                    l["kind"].as_str().unwrap_or("?"),
                    if l["recorded"] == false {
                        " (unrecorded)"
                    } else {
                        ""
                    }
                )
            })
            .collect();
        kinds.extend(
            listed["uploads"]
                .as_array()
                .expect("uploads")
                .iter()
                .map(|_| "upload".to_string()),
        );
        kinds.sort();
        kinds
    };
    let killed_at = |rule: FaultRule| {
        world.clear_faults().expect("clear");
        world.add_fault(&rule.count(1)).expect("arm");
        let mut child = crash.spawn(case, &out);
        let status = wait_bounded(&mut child, Duration::from_secs(120)).expect("ended");
        assert_eq!(status.signal(), Some(9), "killed by the world");
        world.clear_faults().expect("clear");
    };
    let member_snapshots =
        || async { owned_snapshots(&crash.env.member_admin().await).await.len() };

    // 1. A CopySnapshot whose answer was lost: an intermediate copy no event names.
    killed_at(FaultRule::kill(
        KillWhen::After,
        "forensnap",
        "ec2",
        "CopySnapshot",
    ));
    let listed = leftovers(false);
    assert!(
        kinds(&listed).contains(&"intermediate-copy (unrecorded)".to_string()),
        "{listed}"
    );
    let ended = leftovers(true);
    assert_eq!(kinds(&ended), kinds(&listed), "what was listed is ended");
    assert_eq!(
        member_snapshots().await,
        2,
        "only the volumes' snapshots remain"
    );

    // 2. Killed right after sharing: a share and the intermediate copy it shares.
    killed_at(
        FaultRule::kill(
            KillWhen::After,
            "forensnap",
            "ec2",
            "ModifySnapshotAttribute",
        )
        .matching("CreateVolumePermission\\.Add"),
    );
    let listed = leftovers(false);
    let found = kinds(&listed);
    assert!(
        found.contains(&"share (unrecorded)".to_string()),
        "the share whose answer was lost: {listed}"
    );
    assert!(found.contains(&"intermediate-copy".to_string()), "{listed}");
    leftovers(true);
    assert_nothing_shared(&crash.env.member_admin().await).await;
    assert_eq!(member_snapshots().await, 2, "intermediate copies deleted");

    // 3. Killed after a volume's second part: an open upload holding two parts or more.
    killed_at(
        FaultRule::kill(KillWhen::After, "forensnap", "s3", "UploadPart")
            .matching("[?&]partNumber=2(&|$)"),
    );
    let listed = leftovers(false);
    let uploads = listed["uploads"].as_array().expect("uploads");
    assert!(
        uploads.iter().any(|u| u["parts"].as_u64() >= Some(2)),
        "{listed}"
    );
    leftovers(true);
    assert_eq!(open_uploads(&crash.env).await, 0, "every upload aborted");
    assert!(kinds(&leftovers(false)).is_empty(), "nothing left");

    // 4. The case collected again to the end: the aborted items are read again, whole.
    let collected = crash.collect_whole(case);
    let seeded: BTreeMap<String, String> = crash.env.seeded.member().instances[0]
        .volumes
        .iter()
        .map(|v| (v.volume_id.clone(), v.image_sha256.clone()))
        .collect();
    for item in collected["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter(|i| i["kind"] == "volume")
    {
        let volume = item["volume_id"].as_str().expect("volume");
        assert_eq!(
            item["image_sha256"].as_str(),
            seeded.get(volume).map(String::as_str)
        );
    }
    assert_eq!(member_snapshots().await, 2);
    assert_nothing_shared(&crash.env.member_admin().await).await;
    assert_eq!(open_uploads(&crash.env).await, 0);
    let events = events(&crash.env, case).await;
    let count = |action: &str| events.iter().filter(|e| e.action == action).count();
    assert!(count("upload.aborted") >= 1);
    assert!(count("snapshot.unshared") >= 1);
    assert!(
        count("snapshot.deleted") >= 3,
        "ended copies and the final run's own"
    );
    let verified = forensnap(&["verify", "--config", &crash.config, "--case", case]);
    assert!(
        verified.ok,
        "verify: {}\n{}",
        verified.stdout, verified.stderr
    );
}
