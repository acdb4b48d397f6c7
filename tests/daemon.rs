//! `forensnap daemon`, `submit` and `status` end to end against the local AWS world: the real
//! binary as a child process, SQS and DynamoDB through the real SDK, the world evaluating the
//! templates' policies (the collector role's grants on the queue and the table included).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use forensnap_tests::localworld::{FaultKind, FaultRule};
use forensnap_tests::*;

/// A `forensnap daemon` child, killed when dropped.
struct DaemonProcess {
    child: Child,
}

impl DaemonProcess {
    fn start(config: &str, listen: &str) -> Self {
        let child = Command::new(forensnap_bin())
            .args(["daemon", "--config", config, "--listen", listen])
            .env("FORENSNAP_OPERATOR", "Test Daemon")
            .env("FORENSNAP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the daemon");
        DaemonProcess { child }
    }

    /// SIGTERM, then wait up to `within` for it to exit; returns whether it exited successfully.
    fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the daemon).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The seeded config with short daemon timings.
fn daemon_config(env: &Env) -> String {
    let config = env.seeded.config.clone().expect("seed writes a config");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(
        text.contains("[daemon]"),
        "the seed names the queue and table:\n{text}"
    );
    let text = text.replace(
        "[daemon]\n",
        "[daemon]\nlease_seconds = 15\nwait_seconds = 1\nshutdown_seconds = 20\nmax_cases = 2\n",
    );
    let path = env.path("daemon.forensnap.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// `forensnap status --output json` of every case, or of one.
fn status(config: &str, case: Option<&str>) -> serde_json::Value {
    let mut args = vec!["status", "--config", config, "--output", "json"];
    if let Some(case) = case {
        args.extend(["--case", case]);
    }
    let run = forensnap(&args);
    assert!(run.ok, "status failed: {}", run.stderr);
    run.json()
}

/// Wait (at most `limit`) until `done` holds of the status of every case.
fn wait_for(
    config: &str,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let now = status(config, None);
        if done(&now) {
            return now;
        }
        assert!(start.elapsed() < limit, "gave up waiting; status: {now:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn state_of<'a>(status: &'a serde_json::Value, case: &str) -> Option<&'a str> {
    status
        .as_array()?
        .iter()
        .find(|c| c["case"] == case)
        .and_then(|c| c["state"].as_str())
}

fn sqs(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the ops endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_of_every_shape_are_collected_once_merged_refused_or_dead_lettered() {
    let env = Env::new(&world_toml(
        "fsd",
        &[
            "device = \"/dev/xvda\"\nimage = \"root\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 6, offset_blocks = 0 }",
        ],
    ));
    let config = daemon_config(&env);
    let instance = env.seeded.member().instances[0].instance_id.clone();
    let forensic = env.forensic().await;
    let admin = env.forensic_admin().await;
    let queue_url = env
        .seeded
        .forensic
        .request_queue_url
        .clone()
        .expect("queue");
    let dlq_url = env
        .seeded
        .forensic
        .dead_letter_queue_url
        .clone()
        .expect("dlq");
    let table = env.seeded.forensic.case_table.clone().expect("table");

    // A responder's collect of a case another holder works is refused before any change.
    let dynamodb = aws_sdk_dynamodb::Client::new(&admin);
    dynamodb
        .put_item()
        .table_name(&table)
        .item("case_id", AttributeValue::S("IR-HELD".into()))
        .item("item", AttributeValue::S("#case".into()))
        .item("state", AttributeValue::S("running".into()))
        .item("owner", AttributeValue::S("daemon:elsewhere:1".into()))
        .item("expires", AttributeValue::N("99999999999999".into()))
        .item("token", AttributeValue::N("7".into()))
        .send()
        .await
        .expect("a lease held elsewhere");
    let refused = forensnap(&[
        "collect",
        "--config",
        &config,
        "--case",
        "IR-HELD",
        "--account",
        "111111111111",
        "--instance",
        &instance,
    ]);
    assert!(!refused.ok);
    assert!(
        refused
            .stderr
            .contains("being worked by daemon:elsewhere:1"),
        "{}",
        refused.stderr
    );
    // The same while only a volume of a split case is worked elsewhere (the case lease free).
    dynamodb
        .put_item()
        .table_name(&table)
        .item("case_id", AttributeValue::S("IR-HELD2".into()))
        .item("item", AttributeValue::S("vol-0123456789abcdef0".into()))
        .item("step", AttributeValue::S("acquiring".into()))
        .item("owner", AttributeValue::S("daemon:elsewhere:2".into()))
        .item("expires", AttributeValue::N("99999999999999".into()))
        .item("token", AttributeValue::N("3".into()))
        .send()
        .await
        .expect("a volume lease held elsewhere");
    let refused = forensnap(&[
        "collect",
        "--config",
        &config,
        "--case",
        "IR-HELD2",
        "--account",
        "111111111111",
        "--instance",
        &instance,
    ]);
    assert!(
        !refused.ok
            && refused
                .stderr
                .contains("volume vol-0123456789abcdef0 of case IR-HELD2 is being worked by daemon:elsewhere:2"),
        "{}",
        refused.stderr
    );
    let ec2 = aws_sdk_ec2::Client::new(&env.member_admin().await);
    let snapshots = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .expect("snapshots");
    assert!(
        snapshots.snapshots().is_empty(),
        "the refused collect changed nothing"
    );

    // A config without the queue: the daemon refuses to start, naming the keys and where their
    // values come from; status of a case nobody requested says so.
    let plain = std::fs::read_to_string(env.seeded.config.clone().expect("config"))
        .expect("config")
        .lines()
        .filter(|l| !l.starts_with("queue_url") && !l.starts_with("dead_letter_queue_url"))
        .collect::<Vec<_>>()
        .join("\n");
    let plain_path = env.path("no-queue.forensnap.toml");
    std::fs::write(&plain_path, plain).expect("write config");
    let no_queue = forensnap(&["daemon", "--config", &plain_path.display().to_string()]);
    assert!(
        !no_queue.ok
            && no_queue
                .stderr
                .contains("[daemon] queue_url and dead_letter_queue_url are not set")
            && no_queue.stderr.contains("RequestQueueUrl"),
        "{}",
        no_queue.stderr
    );
    let unknown = forensnap(&["status", "--config", &config, "--case", "IR-NOBODY"]);
    assert!(
        !unknown.ok
            && unknown
                .stderr
                .contains("case IR-NOBODY is not in the case table"),
        "{}",
        unknown.stderr
    );

    // Two requests for one instance before any daemon runs: one case collects, the other merges.
    for case in ["IR-D-1", "IR-D-2"] {
        let sent = forensnap(&[
            "submit",
            "--config",
            &config,
            "--case",
            case,
            "--account",
            "111111111111",
            "--instance",
            &instance,
            "--reason",
            "daemon test",
        ]);
        assert!(sent.ok, "submit: {}", sent.stderr);
    }
    // A request for an account outside the config is refused by submit itself...
    let foreign = forensnap(&[
        "submit",
        "--config",
        &config,
        "--case",
        "IR-D-3",
        "--account",
        "222222222222",
        "--instance",
        &instance,
    ]);
    assert!(
        !foreign.ok && foreign.stderr.contains("222222222222"),
        "{}",
        foreign.stderr
    );
    // ... and a malformed message sent to the queue goes to the dead-letter queue.
    sqs(&forensic)
        .send_message()
        .queue_url(&queue_url)
        .message_body("{\"schema\": \"forensnap.collect-request/1\", \"case\": \"../etc\"}")
        .send()
        .await
        .expect("send malformed");

    let listen = format!("127.0.0.1:{}", free_port());
    let mut daemon = DaemonProcess::start(&config, &listen);
    let done = wait_for(&config, Duration::from_secs(240), |s| {
        matches!(state_of(s, "IR-D-1"), Some("completed"))
            || matches!(state_of(s, "IR-D-2"), Some("completed"))
    });
    let (winner, loser) = if state_of(&done, "IR-D-1") == Some("completed") {
        ("IR-D-1", "IR-D-2")
    } else {
        ("IR-D-2", "IR-D-1")
    };
    assert_eq!(
        state_of(&done, loser),
        None,
        "the second request merged, no case of its own"
    );
    let one = status(&config, Some(winner));
    assert_eq!(one["case"]["requests"], 2, "{one:#}");
    assert!(
        one["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty()
                && items.iter().all(|i| i["step"] == "sealed"
                    && i["item"].as_str().is_some_and(|id| id.starts_with("vol-")))),
        "every volume's row says sealed: {one:#}"
    );

    // A GuardDuty finding about the instance (the EventBridge envelope the intake rule
    // delivers): a new case, since the first one completed.
    let finding = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/core/tests/fixtures/intake/guardduty-backdoor-instance.json"),
    )
    .expect("fixture")
    .replace("111122223333", "111111111111")
    .replace("i-0c10c2c7863d1a356", &instance);
    sqs(&forensic)
        .send_message()
        .queue_url(&queue_url)
        .message_body(finding)
        .send()
        .await
        .expect("send finding");
    let done = wait_for(&config, Duration::from_secs(240), |s| {
        s.as_array().is_some_and(|cases| {
            cases.iter().any(|c| {
                c["case"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("IR-GD-"))
                    && c["state"] == "completed"
            })
        })
    });
    let gd_case = done
        .as_array()
        .and_then(|cases| {
            cases.iter().find(|c| {
                c["case"]
                    .as_str()
                    .is_some_and(|id| id.starts_with("IR-GD-"))
            })
        })
        .and_then(|c| c["case"].as_str())
        .expect("guardduty case")
        .to_string();

    // Health and metrics while running.
    let health = http_get(&listen, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(&listen, "/metrics");
    assert!(
        metrics.contains("forensnap_cases_completed_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("forensnap_requests_merged_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("forensnap_requests_refused_total{code=\"malformed\"} 1"),
        "{metrics}"
    );
    for name in [
        "forensnap_block_reads_throttled_total",
        "forensnap_block_reads_retried_total",
        "forensnap_items{step=\"acquiring\"}",
        "forensnap_queue_messages{state=\"waiting\"}",
        "forensnap_blocks_acquired_total",
        "forensnap_queue_age_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }

    // SIGTERM: exits in time.
    assert!(
        daemon.terminate(Duration::from_secs(30)),
        "the daemon exits cleanly on SIGTERM"
    );

    // The malformed message is in the dead-letter queue with its reason.
    let dead = sqs(&admin)
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive dead letters");
    let reasons: Vec<String> = dead
        .messages()
        .iter()
        .filter_map(|m| {
            m.message_attributes()?
                .get("forensnap-reason-code")?
                .string_value()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(reasons, vec!["malformed".to_string()]);

    // Every case verifies; the merged request is in the winner's chain.
    for case in [winner, gd_case.as_str()] {
        let verified = forensnap(&["verify", "--config", &config, "--case", case]);
        assert!(
            verified.ok,
            "verify {case}: {}\n{}",
            verified.stdout, verified.stderr
        );
    }
    let s3 = s3(&forensic);
    let listed = s3
        .list_objects_v2()
        .bucket(&env.seeded.forensic.evidence_bucket)
        .prefix(format!("cases/{winner}/custody/events/"))
        .send()
        .await
        .expect("list");
    let mut received = Vec::new();
    for object in listed.contents() {
        let body = get_bytes(
            &s3,
            &env.seeded.forensic.evidence_bucket,
            object.key().expect("key"),
        )
        .await;
        let event: serde_json::Value = serde_json::from_slice(&body).expect("event");
        if event["action"] == "request.received" {
            received.push(event["details"]["merged"].as_bool().unwrap_or_default());
        }
    }
    // The request that started it and the merged one, in whichever order the two writers
    // appended them: one chain either way.
    received.sort();
    assert_eq!(received, vec![false, true]);
}

/// A world of `instances` instances of member 111111111111, one small volume each.
fn fleet_toml(name_prefix: &str, instances: usize, blocks: u32) -> String {
    fleet_volumes_toml(name_prefix, &vec![1; instances], blocks)
}

/// A world of one instance per entry of `volumes`, with that many volumes.
fn fleet_volumes_toml(name_prefix: &str, volumes: &[usize], blocks: u32) -> String {
    let mut text = format!(
        "region = \"us-east-1\"\n[forensic]\naccount = \"123456789012\"\nname_prefix = \"{name_prefix}\"\n\
         retention_days = 30\n[[members]]\naccount = \"111111111111\"\nrole = \"ForensnapCollector\"\n\
         external_id = \"{EXTERNAL_ID}\"\n"
    );
    for (i, count) in volumes.iter().enumerate() {
        text.push_str(&format!("[[members.instances]]\nname = \"web-{i}\"\n"));
        for v in 0..*count {
            text.push_str(&format!(
                "[[members.instances.volumes]]\ndevice = \"/dev/xvd{}\"\nimage = \"img-{i}-{v}\"\n\
                 encryption = \"none\"\nbuild = {{ kind = \"pattern\", blocks = {blocks}, offset_blocks = {} }}\n",
                (b'a' + v as u8) as char,
                i * 7 + v * 3
            ));
        }
    }
    text
}

/// The seeded config, slowed so that a case is still acquiring seconds after it starts (each
/// snapshot read at `rps` blocks per second).
fn slow_config(env: &Env, name: &str, rps: u32) -> String {
    let path = daemon_config(env);
    let text = std::fs::read_to_string(&path).expect("config");
    let text = format!(
        "{text}\n[acquire]\nrequests_per_second_per_snapshot = {rps}\nmax_reads_per_volume = 2\n"
    );
    let out = env.path(name);
    std::fs::write(&out, text).expect("write config");
    out.display().to_string()
}

fn submit_case(config: &str, case: &str, instance: &str) {
    let sent = forensnap(&[
        "submit",
        "--config",
        config,
        "--case",
        case,
        "--account",
        "111111111111",
        "--instance",
        instance,
        "--reason",
        "daemon test",
    ]);
    assert!(sent.ok, "submit {case}: {}", sent.stderr);
}

/// Wait until some case's lease belongs to process `pid` while one of its items is part-way
/// acquired; returns the case.
fn acquiring_under(config: &str, pid: u32, limit: Duration) -> (String, String) {
    let start = Instant::now();
    let mine = |owner: &serde_json::Value| {
        owner
            .as_str()
            .is_some_and(|o| o.ends_with(&format!(":{pid}")))
    };
    loop {
        for case in status(config, None).as_array().cloned().unwrap_or_default() {
            let id = case["case"].as_str().unwrap_or_default().to_string();
            let one = status(config, Some(&id));
            // A whole case under its lease, or one volume of a split case under the volume's.
            let acquiring = one["items"].as_array().and_then(|items| {
                items.iter().find(|i| {
                    i["step"] == "acquiring"
                        && i["done_bytes"].as_u64().unwrap_or(0) > 0
                        && (mine(&i["owner"]) || mine(&case["owner"]))
                })
            });
            if let Some(item) = acquiring {
                return (id, item["item"].as_str().unwrap_or_default().to_string());
            }
        }
        assert!(
            start.elapsed() < limit,
            "no case of {pid} reached its acquisition"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_share_a_queue_and_a_killed_one_loses_no_case_and_doubles_none() {
    // Three cases, the first with three volumes (split over both daemons), five volumes in all.
    let env = Env::new(&fleet_volumes_toml("fsk", &[3, 1, 1], 60));
    let config = slow_config(&env, "slow.forensnap.toml", 6);
    let instances: Vec<String> = env
        .seeded
        .member()
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    let cases = ["IR-K-1", "IR-K-2", "IR-K-3"];
    for (case, instance) in cases.iter().zip(&instances) {
        submit_case(&config, case, instance);
    }
    let mut a = DaemonProcess::start(&config, &format!("127.0.0.1:{}", free_port()));
    let _b = DaemonProcess::start(&config, &format!("127.0.0.1:{}", free_port()));
    // Kill A (SIGKILL: no cleanup at all) while one of its cases is mid-acquisition.
    let a_pid = a.child.id();
    let (killed_case, killed_item) = acquiring_under(&config, a_pid, Duration::from_secs(120));
    a.child.kill().expect("SIGKILL");
    let _ = a.child.wait();
    // B finishes everything: A's volume once its lease lapses and its message reappears.
    let done = wait_for(&config, Duration::from_secs(240), |s| {
        cases.iter().all(|c| state_of(s, c) == Some("completed"))
    });
    let again = status(&config, Some(&killed_case));
    let row = again["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["item"] == killed_item.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["step"], "sealed", "{again:#}");
    assert!(
        row["token"].as_u64().unwrap_or(0) >= 2
            && !row["owner"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!(":{a_pid}")),
        "the killed daemon's volume {killed_item} was taken over: {again:#}\n{done:#}"
    );
    // Exactly once: one member snapshot and one forensic copy per volume, no share left,
    // no intermediate copy left.
    let member = owned_snapshots(&env.member_admin().await).await;
    assert_eq!(
        member.len(),
        5,
        "one member snapshot per volume: {member:?}"
    );
    let forensic = owned_snapshots(&env.forensic_admin().await).await;
    assert_eq!(
        forensic.len(),
        5,
        "one forensic copy per volume: {forensic:?}"
    );
    assert_nothing_shared(&env.member_admin().await).await;
    // One chain per case, and each verifies.
    for case in cases {
        let verified = forensnap(&["verify", "--config", &config, "--case", case]);
        assert!(
            verified.ok,
            "verify {case}: {}\n{}",
            verified.stdout, verified.stderr
        );
    }
    summary(
        "daemon-kill",
        &format!(
            "daemons killed: 1 SIGKILL of a daemon acquiring volume {killed_item} of {killed_case} beside another daemon; survived: 3/3 cases completed once (5 member snapshots, 5 copies for 5 volumes, no share left), each verified"
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_a_case_at_a_resumable_point_in_time_and_another_daemon_finishes_it() {
    let env = Env::new(&fleet_toml("fst", 1, 48));
    let config = slow_config(&env, "slow.forensnap.toml", 4);
    let instance = env.seeded.member().instances[0].instance_id.clone();
    submit_case(&config, "IR-T-1", &instance);
    let mut first = DaemonProcess::start(&config, &format!("127.0.0.1:{}", free_port()));
    let (case, item) = acquiring_under(&config, first.child.id(), Duration::from_secs(120));
    assert_eq!(case, "IR-T-1");
    let asked = Instant::now();
    assert!(
        first.terminate(Duration::from_secs(25)),
        "exits cleanly within shutdown_seconds"
    );
    let stopped_in = asked.elapsed();
    assert!(stopped_in < Duration::from_secs(25));
    // The volume (split cases are worked volume by volume) is pending again, its lease
    // released; the case holds no lease either.
    let stopped = status(&config, Some("IR-T-1"));
    assert!(
        stopped["case"].get("owner").is_none(),
        "case lease released: {stopped:#}"
    );
    let row = stopped["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["item"] == item.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["step"], "pending", "{stopped:#}");
    assert!(
        row.get("expires_ms").is_none(),
        "volume lease released: {stopped:#}"
    );
    // The request is visible again at once: a second daemon resumes the case without waiting
    // for any lease or visibility timeout.
    let _second = DaemonProcess::start(&config, &format!("127.0.0.1:{}", free_port()));
    wait_for(&config, Duration::from_secs(120), |s| {
        state_of(s, "IR-T-1") == Some("completed")
    });
    let verified = forensnap(&["verify", "--config", &config, "--case", "IR-T-1"]);
    assert!(
        verified.ok,
        "verify: {}\n{}",
        verified.stdout, verified.stderr
    );
    assert_eq!(owned_snapshots(&env.member_admin().await).await.len(), 1);
    summary(
        "daemon-term",
        &format!(
            "daemons stopped: 1 SIGTERM mid-acquisition, exit 0 in {:.1} s (limit 20 s), volume left pending with its lease released, finished by a second daemon, verified",
            stopped_in.as_secs_f64()
        ),
    );
}

/// An event as the security tooling account's forwarding rule puts it on the intake bus.
async fn put_event(env: &Env, fixture: &str, instance: &str) {
    let security = env
        .seeded
        .security
        .as_ref()
        .expect("the world names a security account");
    let config = sdk_config(&env.world, &env.seeded.region, security.admin.credentials()).await;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/core/tests/fixtures/intake")
            .join(fixture),
    )
    .expect("fixture")
    .replace("111122223333", "111111111111")
    .replace("i-0c10c2c7863d1a356", instance);
    let event: serde_json::Value = serde_json::from_str(&text).expect("json");
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .event_bus_name(env.seeded.forensic.intake_bus.clone().expect("intake bus"))
        .source(event["source"].as_str().expect("source"))
        .detail_type(event["detail-type"].as_str().expect("detail-type"))
        .detail(event["detail"].to_string())
        .build();
    let out = aws_sdk_eventbridge::Client::new(&config)
        .put_events()
        .entries(entry)
        .send()
        .await
        .expect("PutEvents");
    assert_eq!(out.failed_entry_count(), 0, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn guardduty_and_security_hub_events_through_the_intake_bus_are_collected_through_faults() {
    let mut toml = fleet_toml("fse", 2, 8);
    toml = toml.replacen(
        "[[members]]",
        "[security]\naccount = \"555555555555\"\n[[members]]",
        1,
    );
    let env = Env::new(&toml);
    let config = daemon_config(&env);
    let instances: Vec<String> = env
        .seeded
        .member()
        .instances
        .iter()
        .map(|i| i.instance_id.clone())
        .collect();
    // The queue and the table misbehave as AWS's may: throttled receives and updates, and
    // every request delivered twice.
    for rule in [
        FaultRule::new(FaultKind::Throttle, "sqs", "ReceiveMessage").probability(0.3, 21),
        FaultRule::new(FaultKind::Throttle, "dynamodb", "UpdateItem").probability(0.2, 22),
        FaultRule::new(FaultKind::Duplicate, "sqs", "ReceiveMessage").count(2),
    ] {
        env.world.add_fault(&rule).expect("fault");
    }
    put_event(&env, "guardduty-backdoor-instance.json", &instances[0]).await;
    put_event(&env, "securityhub-action-one-instance.json", &instances[1]).await;
    let _daemon = DaemonProcess::start(&config, &format!("127.0.0.1:{}", free_port()));
    let done = wait_for(&config, Duration::from_secs(180), |s| {
        let completed = |prefix: &str| {
            s.as_array().is_some_and(|cases| {
                cases.iter().any(|c| {
                    c["case"].as_str().is_some_and(|id| id.starts_with(prefix))
                        && c["state"] == "completed"
                })
            })
        };
        completed("IR-GD-") && completed("IR-SH-")
    });
    let cases: Vec<String> = done
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c["case"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        cases.len(),
        2,
        "one case per event, duplicates merged: {done:#}"
    );
    for case in &cases {
        let verified = forensnap(&["verify", "--config", &config, "--case", case]);
        assert!(
            verified.ok,
            "verify {case}: {}\n{}",
            verified.stdout, verified.stderr
        );
    }
    // Exactly once despite the duplicates: one member snapshot per volume.
    assert_eq!(owned_snapshots(&env.member_admin().await).await.len(), 2);
    let fired: u64 = env
        .world
        .faults()
        .expect("faults")
        .iter()
        .map(|f| f.fired)
        .sum();
    assert!(fired > 0, "the faults fired");
    let stats = env.world.faults().expect("faults");
    let of = |service: &str, kind: FaultKind| -> u64 {
        stats
            .iter()
            .filter(|f| f.service == service && f.kind == kind)
            .map(|f| f.fired)
            .sum()
    };
    summary(
        "faults-daemon",
        &format!(
            "faults under the daemon: {} throttled ReceiveMessage, {} throttled UpdateItem, {} duplicated deliveries; \
             survived: a GuardDuty finding and a Security Hub action through the intake bus, one case each, verified, one snapshot per volume",
            of("sqs", FaultKind::Throttle),
            of("dynamodb", FaultKind::Throttle),
            of("sqs", FaultKind::Duplicate)
        ),
    );
}
