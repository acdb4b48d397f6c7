//! Memory capture end to end against the local AWS world, through the `forensnap` binary with the
//! templates' policies on: `collect --memory` captures the instance's RAM before its volumes are
//! snapshotted (forensnap's SSM document, its hash pinned, runs on the world's stand-in host with
//! the pinned stand-in AVML, and streams the image through presigned part URLs), the image lands
//! locked with the host's hash equal to forensnap's, `verify` and `export` cover it, the host is
//! given no credential and no case name; each fault (an unreachable agent, a hang, a truncated
//! upload, a capture larger than its parts) is a named failure while the disks are still
//! collected; a run killed while the host captures is finished by the next, with one command.

use std::os::unix::process::ExitStatusExt;

use forensnap_core::Action;
use forensnap_tests::*;

fn memory_world(prefix: &str) -> Env {
    let toml = world_toml(
        prefix,
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 2, offset_blocks = 0 }",
        ],
    );
    Env::new(&toml.replace("name = \"web-1\"\n", "name = \"web-1\"\nmemory_mib = 40\n"))
}

/// The seeded config, with `extra` lines appended to its last table (`[memory]`), and without
/// the case table (a SIGKILLed holder's lease would make the next run wait for it to lapse).
fn config(env: &Env, extra: &str) -> String {
    let generated = env.seeded.config.clone().expect("seed writes a config");
    let text: String = std::fs::read_to_string(&generated)
        .expect("config")
        .lines()
        .filter(|l| !l.starts_with("case_table"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("[memory]"),
        "a world with memory writes [memory]"
    );
    let path = env.path("memory.forensnap.toml");
    std::fs::write(&path, format!("{text}\n{extra}\n")).expect("write config");
    path.display().to_string()
}

fn instance(env: &Env) -> String {
    env.seeded.member().instances[0].instance_id.clone()
}

fn collect_args(config: &str, case: &str, instance: &str, memory: bool) -> Vec<String> {
    let mut args: Vec<String> = [
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
    ]
    .map(String::from)
    .to_vec();
    if memory {
        args.push("--memory".into());
    }
    args
}

fn run(args: &[String]) -> Run {
    forensnap(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn position(events: &[forensnap_core::Event], action: Action) -> usize {
    events
        .iter()
        .position(|e| e.kind() == Some(action))
        .unwrap_or_else(|| panic!("{action:?} is recorded"))
}

/// Keys in the forensic account's transfer bucket.
async fn transfer_keys(env: &Env) -> Vec<String> {
    let s3 = s3(&env.forensic_admin().await);
    let bucket = env
        .seeded
        .forensic
        .transfer_bucket
        .clone()
        .expect("a transfer bucket");
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn collect_memory_captures_first_and_the_image_is_locked_verified_and_exported() {
    let env = memory_world("mem-ok");
    let config = config(&env, "");
    let instance = instance(&env);
    let case = "IR-MEM-1";
    let collected = run(&collect_args(&config, case, &instance, true));
    assert!(collected.ok, "collect --memory: {}", collected.stderr);
    let json = collected.json();
    let items = json["evidence"].as_array().expect("evidence");
    let memory = items
        .iter()
        .find(|i| i["kind"] == "memory")
        .unwrap_or_else(|| panic!("a memory item: {json:#}"));
    assert_eq!(memory["id"], format!("memory-{instance}"));
    let image_sha256 = memory["image_sha256"].as_str().expect("image_sha256");
    assert_eq!(memory["host_sha256"].as_str(), Some(image_sha256));
    assert!(memory["memory"]["lime_ranges"].as_u64().expect("ranges") >= 2);
    assert!(items.iter().any(|i| i["kind"] == "volume"));

    // Memory first: after the instance is recorded, before any snapshot.
    let events = case_events(&env, case).await;
    assert!(
        position(&events, Action::InstanceRecorded)
            < position(&events, Action::MemoryCaptureRequested)
    );
    assert!(
        position(&events, Action::MemoryCaptured) < position(&events, Action::SnapshotsRequested)
    );

    // Locked, and the plan of presigned URLs is gone.
    let prefix = memory["prefix"].as_str().expect("prefix");
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    assert_locked(&s3, bucket, &format!("{prefix}data/memory.lime")).await;
    assert_eq!(transfer_keys(&env).await, Vec::<String>::new());
    // The command's record in the bag: what ran, and the trade-off of running it.
    let record: serde_json::Value = serde_json::from_slice(
        &get_bytes(&s3, bucket, &format!("{prefix}data/command.json")).await,
    )
    .expect("command.json");
    assert_eq!(record["command_id"], memory["memory"]["command_id"]);
    assert_eq!(record["host_report"]["sha256"].as_str(), Some(image_sha256));
    assert!(
        record["visibility"]
            .as_str()
            .is_some_and(|v| v.contains("root user")),
        "{record:#}"
    );
    assert!(
        !record.to_string().contains("X-Amz-"),
        "no presigned URL is kept"
    );

    // The host was given three parameters: two short-lived URLs and a hash. No secret, no
    // credential variable, no case name, no comment.
    let commands = env.world.ssm_commands().expect("commands");
    assert_eq!(commands.len(), 1);
    let command = &commands[0];
    assert_eq!(
        command
            .parameters
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["AvmlSha256", "AvmlUrl", "PlanUrl"]
    );
    let sent = format!(
        "{:?} {} {}",
        command.parameters, command.script, command.comment
    );
    assert!(
        !sent.contains(&env.seeded.forensic.secret_access_key),
        "a secret reached the host"
    );
    for leak in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "aws_secret",
        case,
    ] {
        assert!(!sent.contains(leak), "{leak} reached the host: {sent}");
    }
    assert!(command.comment.is_empty());
    assert!(
        !command.document_hash.is_empty(),
        "the document's hash is pinned"
    );

    // verify re-reads it all, memory included.
    let verified = forensnap(&[
        "verify", "--config", &config, "--case", case, "--output", "json",
    ]);
    assert!(
        verified.ok,
        "verify: {}\n{}",
        verified.stderr, verified.stdout
    );
    let rows = verified.json()["rows"].as_array().expect("rows").clone();
    let memory_rows: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["check"] == "memory").collect();
    assert_eq!(memory_rows.len(), 2, "{rows:#?}");
    assert!(
        memory_rows.iter().all(|r| r["ok"] == true),
        "{memory_rows:#?}"
    );

    // Exported: the bytes forensnap hashed, the planted strings in them.
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("memory.lime");
    let exported = forensnap(&[
        "export",
        "--config",
        &config,
        "--case",
        case,
        "--evidence",
        &format!("memory-{instance}"),
        "--out",
        out.to_str().expect("path"),
    ]);
    assert!(exported.ok, "export: {}", exported.stderr);
    let image = std::fs::read(&out).expect("exported image");
    assert_eq!(sha256_hex(&image), image_sha256);
    let needle = format!("FORENSNAP-PLANTED-{instance}-3");
    assert!(
        image.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "the planted string is in the exported image"
    );

    // Again: found sealed, no second command.
    let again = run(&collect_args(&config, case, &instance, true));
    assert!(again.ok, "again: {}", again.stderr);
    assert_eq!(env.world.ssm_commands().expect("commands").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_memory_fault_is_named_and_the_disks_are_collected_all_the_same() {
    let env = memory_world("mem-faults");
    // 8 MiB parts: a 40 MiB host's image goes up in several.
    let config = config(&env, "part_mib = 8");
    let instance = instance(&env);
    for (mode, case, named) in [
        (
            "unreachable",
            "IR-MEMF-1",
            "the SSM agent is ConnectionLost",
        ),
        ("truncate", "IR-MEMF-2", "S3 holds parts"),
        ("oversize", "IR-MEMF-3", "larger than the presigned parts"),
    ] {
        env.world.set_ssm_behaviour(&instance, mode).expect("fault");
        let failed = run(&collect_args(&config, case, &instance, true));
        assert!(!failed.ok, "{mode}: collect --memory should fail");
        for text in [named, instance.as_str(), "Next:"] {
            assert!(
                failed.stderr.contains(text),
                "{mode}: {text:?} in {}",
                failed.stderr
            );
        }
        // The disks were collected by that run: the next run (without memory) acquires nothing.
        let events = case_events(&env, case).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind() == Some(Action::AcquisitionCompleted))
                .count(),
            1,
            "{mode}: the volume was acquired"
        );
        let next = run(&collect_args(&config, case, &instance, false));
        assert!(next.ok, "{mode}: {}", next.stderr);
        let events = case_events(&env, case).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind() == Some(Action::AcquisitionStarted))
                .count(),
            1,
            "{mode}: nothing acquired twice"
        );
        let verified = forensnap(&["verify", "--config", &config, "--case", case]);
        assert!(verified.ok, "{mode}: verify: {}", verified.stdout);
    }
    assert_eq!(
        open_uploads(&env).await,
        0,
        "every capture's upload was ended"
    );
    assert_eq!(transfer_keys(&env).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_capture_times_out_named_and_its_upload_is_aborted() {
    let env = memory_world("mem-hang");
    let config = config(&env, "timeout_minutes = 1");
    let instance = instance(&env);
    env.world
        .set_ssm_behaviour(&instance, "hang")
        .expect("fault");
    let child = std::process::Command::new(forensnap_bin())
        .args(collect_args(&config, "IR-MEMH-1", &instance, true))
        .env("FORENSNAP_OPERATOR", "Test Responder")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Once the host runs the command, a minute and a half of world time passes.
    let mut running = false;
    for _ in 0..300 {
        let commands = env.world.ssm_commands().expect("commands");
        if commands.iter().any(|c| c.status == "InProgress") {
            running = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(running, "the command started");
    env.world.advance_clock(90).expect("clock");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("timed out") && stderr.contains("memory.timeout_minutes"),
        "{stderr}"
    );
    let events = case_events(&env, "IR-MEMH-1").await;
    assert!(
        events
            .iter()
            .any(|e| e.kind() == Some(Action::UploadAborted))
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind() == Some(Action::AcquisitionCompleted))
            .count(),
        1,
        "the volume was acquired"
    );
    assert_eq!(open_uploads(&env).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_while_the_host_captures_is_finished_by_the_next_with_one_command() {
    let env = memory_world("mem-kill");
    let config = config(&env, "");
    let instance = instance(&env);
    let case = "IR-MEMK-1";
    // Killed as it first asks about the command, once SSM has it.
    env.world
        .add_fault(
            &localworld::FaultRule::kill(
                localworld::KillWhen::After,
                "forensnap",
                "ssm",
                "GetCommandInvocation",
            )
            .count(1),
        )
        .expect("rule");
    let args = [
        "memory",
        "--config",
        &config,
        "--case",
        case,
        "--account",
        "111111111111",
        "--instance",
        &instance,
    ];
    let status = std::process::Command::new(forensnap_bin())
        .args(args)
        .env("FORENSNAP_OPERATOR", "Test Responder")
        .output()
        .expect("run")
        .status;
    assert_eq!(status.signal(), Some(9), "killed by the world");
    let resumed = forensnap(&[&args[..], &["--output", "json"]].concat());
    assert!(resumed.ok, "the next run: {}", resumed.stderr);
    let item = resumed.json();
    assert_eq!(item["host_sha256"], item["image_sha256"]);
    assert_eq!(
        env.world.ssm_commands().expect("commands").len(),
        1,
        "one command"
    );
    let events = case_events(&env, case).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind() == Some(Action::MemoryCommandSent))
            .count(),
        1
    );
    let verified = forensnap(&["verify", "--config", &config, "--case", case]);
    assert!(verified.ok, "verify: {}", verified.stdout);
    assert_eq!(transfer_keys(&env).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_without_a_transfer_bucket_is_refused_before_anything_is_recorded() {
    let env = memory_world("mem-cfg");
    let generated = env.seeded.config.clone().expect("config");
    let text = std::fs::read_to_string(&generated).expect("config");
    let path = env.path("no-transfer.forensnap.toml");
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("transfer_bucket"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, without).expect("write");
    let config = path.display().to_string();
    let refused = run(&collect_args(&config, "IR-MEMC-1", &instance(&env), true));
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("memory.transfer_bucket")
            && refused.stderr.contains("TransferBucketName"),
        "{}",
        refused.stderr
    );
    assert!(
        case_events(&env, "IR-MEMC-1").await.is_empty(),
        "nothing recorded"
    );
    assert!(env.world.ssm_commands().expect("commands").is_empty());

    // forensnap memory's own arguments, each refused naming what to give.
    let config = self::config(&env, "");
    let memory = |extra: &[&str]| {
        forensnap(
            &[
                &["memory", "--config", &config, "--case", "IR-MEMC-2"],
                extra,
            ]
            .concat(),
        )
    };
    for (args, named) in [
        (
            vec!["--account", "111111111111"],
            "--account and --instance go together",
        ),
        (
            vec!["--account", "111111111111", "--instance", "x-1"],
            "is not an EC2 instance id",
        ),
        (
            vec![],
            "has no instance record yet: give --account and --instance",
        ),
        (
            vec![
                "--account",
                "111111111111",
                "--instance",
                "i-0000000000000dead",
            ],
            "does not exist in account 111111111111",
        ),
    ] {
        let refused = memory(&args);
        assert!(!refused.ok, "{args:?}");
        assert!(
            refused.stderr.contains(named),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert!(
        case_events(&env, "IR-MEMC-2").await.is_empty(),
        "nothing recorded"
    );
    assert!(env.world.ssm_commands().expect("commands").is_empty());
}
