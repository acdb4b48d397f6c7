//! CloudTrail evidence end to end against the local AWS world (issue 14): a seeded attack with
//! web-1's stolen instance-role credentials (a new user and access key, a trust-policy edit,
//! StopLogging) preserved from LookupEvents and from the trail's files, flagged in the timeline;
//! each kind of tampering with the trail's files caught and named; throttled LookupEvents pages
//! retried within the quota with every page stored; a run SIGKILLed mid-lookup resumed; and
//! `forensnap verify` re-checking the new items from their bags alone.

use std::collections::BTreeSet;

use forensnap_tests::*;

const ACCOUNT: &str = "111111111111";

/// A world whose web-1 runs with the instance profile `web-1-role`, a trail with log file
/// validation delivering to `trail-logs-111111111111`, and the attack seeded; `extra` is
/// appended (more seeded events).
fn attacked_world(prefix: &str, extra: &str) -> Env {
    let toml = format!(
        r#"region = "us-east-1"
[forensic]
account = "123456789012"
name_prefix = "{prefix}"
retention_days = 30

[[members]]
account = "{ACCOUNT}"
role = "ForensnapCollector"
external_id = "{EXTERNAL_ID}"

[[members.instances]]
name = "web-1"
instance_profile = "web-1-role"

[[members.instances.volumes]]
device = "/dev/xvda"
image = "root.img"
encryption = "none"
build = {{ kind = "pattern", blocks = 6, offset_blocks = 1 }}

[members.trail]
name = "org-trail"
bucket = "trail-logs-{ACCOUNT}"
history_hours = 4

[[members.trail_events]]
minutes_ago = 125
event_source = "sts.amazonaws.com"
event_name = "GetCallerIdentity"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
user_agent = "aws-cli/2.15.0 Python/3.11"

[[members.trail_events]]
minutes_ago = 115
event_source = "iam.amazonaws.com"
event_name = "CreateUser"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
user_agent = "aws-cli/2.15.0 Python/3.11"
request_parameters = {{ userName = "backup-svc" }}
resources = [{{ type = "AWS::IAM::User", name = "backup-svc" }}]

[[members.trail_events]]
minutes_ago = 113
event_source = "iam.amazonaws.com"
event_name = "CreateAccessKey"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
user_agent = "aws-cli/2.15.0 Python/3.11"
request_parameters = {{ userName = "backup-svc" }}
resources = [{{ type = "AWS::IAM::User", name = "backup-svc" }}]

[[members.trail_events]]
minutes_ago = 105
event_source = "iam.amazonaws.com"
event_name = "UpdateAssumeRolePolicy"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
user_agent = "aws-cli/2.15.0 Python/3.11"
request_parameters = {{ roleName = "web-1-role", policyDocument = "{{\"Statement\":[{{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"arn:aws:iam::999999999999:root\"}},\"Action\":\"sts:AssumeRole\"}}]}}" }}
resources = [{{ type = "AWS::IAM::Role", name = "web-1-role" }}]

[[members.trail_events]]
minutes_ago = 95
event_source = "cloudtrail.amazonaws.com"
event_name = "StopLogging"
principal = "instance-role:web-1"
access_key_id = "ASIAEXAMPLEATTACKER1"
source_ip = "203.0.113.50"
user_agent = "aws-cli/2.15.0 Python/3.11"
request_parameters = {{ name = "org-trail" }}
resources = [{{ type = "AWS::CloudTrail::Trail", name = "org-trail" }}]
{extra}"#
    );
    Env::new(&toml)
}

/// `forensnap trail` of `case` with `config`, about the attacker's stolen key, as JSON.
fn principal_trail<'a>(config: &'a str, case: &'a str) -> [&'a str; 11] {
    [
        "trail",
        "--config",
        config,
        "--case",
        case,
        "--account",
        ACCOUNT,
        "--principal",
        "ASIAEXAMPLEATTACKER1",
        "--output",
        "json",
    ]
}

/// `count` more seeded events of `event_source`:`event_name` made with the attacker's stolen key
/// (`ASIAEXAMPLEATTACKER1`) from web-1's role session, one a minute from `minutes_ago` back.
fn stolen_key_events(count: u32, minutes_ago: u32, event_source: &str, event_name: &str) -> String {
    (0..count)
        .map(|i| {
            format!(
                "\n[[members.trail_events]]\nminutes_ago = {}\nevent_source = \"{event_source}\"\nevent_name = \"{event_name}\"\nprincipal = \"instance-role:web-1\"\naccess_key_id = \"ASIAEXAMPLEATTACKER1\"\nsource_ip = \"203.0.113.50\"\nuser_agent = \"aws-cli/2.15.0\"\n",
                minutes_ago + i
            )
        })
        .collect()
}

/// The generated config with `[cloudtrail]` switched on (`settings` added to the table).
fn trail_config(env: &Env, settings: &str) -> String {
    let generated = env.seeded.config.clone().expect("seed writes a config");
    let text = std::fs::read_to_string(&generated).expect("config");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("case_table"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = match text.find("[cloudtrail]") {
        // The seed turns CloudTrail off in worlds without it; this one has it.
        Some(at) => text[..at].to_string(),
        None => text,
    };
    let config = env.path("cloudtrail.forensnap.toml");
    std::fs::write(
        &config,
        format!("{text}\n[cloudtrail]\nenabled = true\n{settings}\n"),
    )
    .expect("write config");
    config.display().to_string()
}

fn instance(env: &Env) -> String {
    env.seeded.member().instances[0].instance_id.clone()
}

fn collect(config: &str, case: &str, instance: &str) -> Run {
    forensnap(&[
        "collect",
        "--config",
        config,
        "--case",
        case,
        "--account",
        ACCOUNT,
        "--instance",
        instance,
        "--output",
        "json",
    ])
}

fn item<'a>(collected: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    collected["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .find(|i| i["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} item in {collected:#}"))
}

/// A payload file of an item, read from the evidence bucket.
async fn payload(env: &Env, item: &serde_json::Value, path: &str) -> Vec<u8> {
    let s3 = s3(&env.forensic().await);
    let key = format!("{}{path}", item["prefix"].as_str().expect("prefix"));
    get_bytes(&s3, &env.seeded.forensic.evidence_bucket, &key).await
}

fn timeline_rows(jsonl: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn verify(config: &str, case: &str) -> Run {
    forensnap(&["verify", "--config", config, "--case", case])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeded_attack_is_preserved_from_both_sources_and_flagged_in_the_timeline() {
    let env = attacked_world("ct-attack", "");
    let config = trail_config(&env, "");
    env.world.deliver_trails().expect("deliver");
    let instance = instance(&env);
    let run = collect(&config, "CT-ATTACK", &instance);
    assert!(run.ok, "collect: {}", run.stderr);
    let collected = run.json();

    let events = item(&collected, "cloudtrail-events");
    assert_eq!(events["id"], format!("cloudtrail-events-{instance}"));
    assert!(
        events["cloudtrail"]["flagged"].as_u64().expect("flagged") >= 3,
        "{events:#}"
    );
    let rows = timeline_rows(&payload(&env, events, "data/timeline.jsonl").await);
    let flagged = |name: &str| {
        rows.iter()
            .find(|r| r["event_name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the timeline: {rows:#?}"))
            .clone()
    };
    for (name, flag) in [
        ("CreateAccessKey", "persistence"),
        ("CreateUser", "persistence"),
        ("UpdateAssumeRolePolicy", "persistence"),
        ("StopLogging", "defence-evasion"),
    ] {
        let row = flagged(name);
        assert_eq!(row["flag"], flag, "{row:#}");
        assert_eq!(row["source_ip"], "203.0.113.50", "{row:#}");
        assert!(
            row["principal"]
                .as_str()
                .expect("principal")
                .ends_with(&format!("/{instance}")),
            "the attacker acted as web-1's role session: {row:#}"
        );
    }
    // The timeline is ordered, and the CSV says the same.
    let times: Vec<&str> = rows
        .iter()
        .map(|r| r["time"].as_str().expect("time"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    let csv = String::from_utf8(payload(&env, events, "data/timeline.csv").await).expect("utf-8");
    assert!(csv.lines().count() == rows.len() + 1, "{csv}");
    assert!(csv.contains("StopLogging"));

    // Every page is stored with the exact request that produced it.
    let files: BTreeSet<String> = events["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f[0].as_str().expect("path").to_string())
        .collect();
    let slug_dir = files
        .iter()
        .find(|f| {
            f.starts_with("data/lookup/")
                && f.contains("username-")
                && f.ends_with("0001.request.json")
        })
        .unwrap_or_else(|| panic!("no Username page of the instance session: {files:#?}"));
    let request: serde_json::Value =
        serde_json::from_slice(&payload(&env, events, slug_dir).await).expect("request JSON");
    assert_eq!(request["LookupAttributes"][0]["AttributeKey"], "Username");
    assert_eq!(
        request["LookupAttributes"][0]["AttributeValue"],
        instance.as_str()
    );

    // The trail's files: copied and valid; delivery stopped by the attacker's StopLogging.
    let logs = item(&collected, "cloudtrail-logs");
    assert_eq!(logs["cloudtrail"]["validation"], "valid", "{logs:#}");
    // The attacker's StopLogging: the trail is found stopped, and when.
    assert_eq!(logs["cloudtrail"]["logging"], false, "{logs:#}");
    assert!(logs["cloudtrail"]["stopped_at"].is_string(), "{logs:#}");
    let validation: serde_json::Value =
        serde_json::from_slice(&payload(&env, logs, "data/validation.json").await).expect("JSON");
    assert!(
        validation["digest_files"].as_u64().expect("digests") >= 2,
        "{validation:#}"
    );
    assert!(
        validation["log_files"].as_u64().expect("logs") >= 2,
        "{validation:#}"
    );
    assert_eq!(validation["digests_valid"], validation["digest_files"]);
    // The trail's own records of the attack joined the timeline.
    let create_user = flagged("CreateUser");
    let sources: Vec<&str> = create_user["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s.as_str().expect("source"))
        .collect();
    assert!(
        sources.contains(&"trail-log") && sources.contains(&"lookup"),
        "{create_user:#}"
    );

    let verified = verify(&config, "CT-ATTACK");
    assert!(
        verified.ok,
        "verify: {}\n{}",
        verified.stdout, verified.stderr
    );
    assert!(
        verified.stdout.contains("cloudtrail"),
        "{}",
        verified.stdout
    );

    // The custody report lists the flagged actions, as the verification re-read them.
    let out = env.path("report.json");
    let report = forensnap(&[
        "report",
        "--config",
        &config,
        "--case",
        "CT-ATTACK",
        "--format",
        "json",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(report.ok, "report: {}", report.stderr);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("report file")).expect("JSON");
    let activity = &report["cloudtrail"][0];
    assert_eq!(activity["item"], format!("cloudtrail-events-{instance}"));
    let actions: Vec<&str> = activity["flagged"]
        .as_array()
        .expect("flagged")
        .iter()
        .map(|f| f["action"].as_str().expect("action"))
        .collect();
    for action in [
        "iam:CreateAccessKey",
        "iam:UpdateAssumeRolePolicy",
        "cloudtrail:StopLogging",
    ] {
        assert!(actions.contains(&action), "{action} not in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_tampering_with_the_trail_is_caught_and_named() {
    let env = attacked_world("ct-tamper", "");
    let config = trail_config(&env, "");
    env.world.deliver_trails().expect("deliver");
    let instance = instance(&env);
    let run = collect(&config, "CT-TAMPER-0", &instance);
    assert!(run.ok, "collect: {}", run.stderr);
    assert_eq!(
        item(&run.json(), "cloudtrail-logs")["cloudtrail"]["validation"],
        "valid"
    );
    for (n, (kind, code)) in [
        ("log-modified", "log-hash-mismatch"),
        ("log-deleted", "log-missing"),
        ("digest-modified", "digest-signature-invalid"),
        ("signature-replaced", "digest-signature-invalid"),
        ("digest-deleted", "digest-missing"),
    ]
    .into_iter()
    .enumerate()
    {
        let key = env
            .world
            .tamper_trail(ACCOUNT, "us-east-1", kind, None)
            .expect("tamper");
        let case = format!("CT-TAMPER-{}", n + 1);
        let run = forensnap(&principal_trail(&config, &case));
        assert!(run.ok, "{kind}: trail: {}", run.stderr);
        let items = run.json();
        let logs = items
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["kind"] == "cloudtrail-logs")
            .expect("a logs item");
        assert_eq!(
            logs["cloudtrail"]["validation"], "INVALID",
            "{kind}: {logs:#}"
        );
        let validation: serde_json::Value =
            serde_json::from_slice(&payload(&env, logs, "data/validation.json").await)
                .expect("JSON");
        let named = validation["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| {
                f["code"] == code
                    && f["failure"] == true
                    && f["text"]
                        .as_str()
                        .is_some_and(|t| t.contains(key.as_str()) || f["key"] == key.as_str())
            });
        assert!(
            named,
            "{kind} of {key}: no failing {code} naming it in {validation:#}"
        );
        // The copies are kept as evidence of the tampering, and they verify as recorded.
        let verified = verify(&config, &case);
        assert!(
            verified.ok,
            "{kind}: verify: {}\n{}",
            verified.stdout, verified.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_pages_are_retried_within_the_quota_and_every_page_is_stored() {
    // 130 more events with the stolen key: its AccessKeyId query has three pages of 50.
    let env = attacked_world(
        "ct-throttle",
        &stolen_key_events(130, 30, "ec2.amazonaws.com", "DescribeInstances"),
    );
    let config = trail_config(&env, "trail_logs = false");
    env.world
        .add_fault(
            &localworld::FaultRule::new(
                localworld::FaultKind::Throttle,
                "cloudtrail",
                "LookupEvents",
            )
            .every(2)
            .count(2),
        )
        .expect("fault");
    let case = "CT-THROTTLE";
    let run = forensnap(&principal_trail(&config, case));
    assert!(run.ok, "trail: {}", run.stderr);
    let fired: u64 = env
        .world
        .faults()
        .expect("faults")
        .iter()
        .map(|f| f.fired)
        .sum();
    assert_eq!(fired, 2, "the throttling fired");
    let items = run.json();
    let events = &items[0];
    assert_eq!(events["kind"], "cloudtrail-events");
    let queries: serde_json::Value =
        serde_json::from_slice(&payload(&env, events, "data/queries.json").await).expect("JSON");
    // Each throttled page was asked again (the world's own 2-a-second quota may add some).
    assert!(
        queries["throttled"].as_u64().expect("throttled") >= 2,
        "{queries:#}"
    );
    let by_key = queries["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .find(|q| q["key"] == "AccessKeyId")
        .expect("the principal's query");
    assert_eq!(by_key["events"], 135, "{by_key:#}");
    assert_eq!(by_key["pages"], 3, "{by_key:#}");
    let rows = timeline_rows(&payload(&env, events, "data/timeline.jsonl").await);
    assert_eq!(
        rows.len(),
        135,
        "the timeline holds exactly the key's events, once each"
    );
    let verified = verify(&config, case);
    assert!(
        verified.ok,
        "verify: {}\n{}",
        verified.stdout, verified.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_between_pages_resumes_with_the_same_window_and_no_page_twice() {
    use std::os::unix::process::ExitStatusExt;

    let env = attacked_world(
        "ct-kill",
        &stolen_key_events(70, 20, "s3.amazonaws.com", "ListBuckets"),
    );
    let config = trail_config(&env, "trail_logs = false");
    let case = "CT-KILL";
    let args = principal_trail(&config, case);
    // Killed once the second page is answered, before it learns the answer.
    env.world
        .add_fault(
            &localworld::FaultRule::kill(
                localworld::KillWhen::After,
                "forensnap",
                "cloudtrail",
                "LookupEvents",
            )
            .after(1)
            .count(1),
        )
        .expect("rule");
    let status = std::process::Command::new(forensnap_bin())
        .args(args)
        .env("FORENSNAP_OPERATOR", "Test Responder")
        .output()
        .expect("run")
        .status;
    assert_eq!(status.signal(), Some(9), "killed by the world");
    let run = forensnap(&args);
    assert!(run.ok, "the second run: {}", run.stderr);
    let events = &run.json()[0];
    let pages: Vec<String> = events["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f[0].as_str().expect("path").to_string())
        .filter(|p| p.starts_with("data/lookup/") && p.ends_with(".response.json"))
        .collect();
    assert_eq!(
        pages.len(),
        2,
        "75 events in two pages, each stored once: {pages:?}"
    );
    let rows = timeline_rows(&payload(&env, events, "data/timeline.jsonl").await);
    assert_eq!(rows.len(), 75);
    let verified = verify(&config, case);
    assert!(
        verified.ok,
        "verify: {}\n{}",
        verified.stdout, verified.stderr
    );
}

/// Custody events of a case as stored (none when the case was never opened).
async fn event_count(env: &Env, case: &str) -> usize {
    let s3 = s3(&env.forensic().await);
    let listed = s3
        .list_objects_v2()
        .bucket(&env.seeded.forensic.evidence_bucket)
        .prefix(format!("cases/{case}/custody/events/"))
        .send()
        .await
        .expect("list");
    listed.contents().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_naming_the_input_and_the_next_step_before_anything_is_recorded() {
    let env = attacked_world("ct-bad", "");
    let config = trail_config(&env, "trail = \"no-such-trail\"");
    let trail = |case: &str, extra: &[&str]| {
        let mut args = vec!["trail", "--config", &config, "--case", case];
        args.extend_from_slice(extra);
        forensnap(&args)
    };
    for (case, extra, says) in [
        (
            "CT-BAD-1",
            &["--account", ACCOUNT, "--principal", "bob"][..],
            "neither an access key id",
        ),
        (
            "CT-BAD-2",
            &[
                "--account",
                ACCOUNT,
                "--principal",
                "ASIAEXAMPLEATTACKER1",
                "--since",
                "2026-12-01T10:00:00Z",
                "--until",
                "2026-12-01T09:00:00Z",
            ][..],
            "--since must be before --until",
        ),
        (
            "CT-BAD-3",
            &[
                "--account",
                ACCOUNT,
                "--principal",
                "ASIAEXAMPLEATTACKER1",
                "--since",
                "yesterday",
            ][..],
            "is not an RFC 3339 time",
        ),
        (
            "CT-BAD-4",
            &[][..],
            "has no instance record yet: give --account",
        ),
        (
            "CT-BAD-5",
            &[
                "--account",
                "999999999999",
                "--principal",
                "ASIAEXAMPLEATTACKER1",
            ][..],
            "999999999999",
        ),
    ] {
        let run = trail(case, extra);
        assert!(!run.ok, "{case} was accepted: {}", run.stdout);
        assert!(run.stderr.contains(says), "{case}: {}", run.stderr);
        assert_eq!(
            event_count(&env, case).await,
            0,
            "{case}: nothing is recorded"
        );
    }
    // A trail the config names that DescribeTrails does not show: named, and the LookupEvents
    // pages stored so far are kept for the next run (the logs come after the pages).
    let run = trail(
        "CT-BAD-6",
        &["--account", ACCOUNT, "--principal", "ASIAEXAMPLEATTACKER1"],
    );
    assert!(!run.ok, "an unknown trail was accepted");
    assert!(
        run.stderr.contains("\"no-such-trail\"") && run.stderr.contains("check the name"),
        "{}",
        run.stderr
    );
    let fixed = trail_config(&env, "");
    let again = forensnap(&principal_trail(&fixed, "CT-BAD-6"));
    assert!(again.ok, "the rerun with the trail fixed: {}", again.stderr);
    assert_eq!(again.json().as_array().expect("items").len(), 2);
}
