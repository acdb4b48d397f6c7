//! `forensnap verify` end to end against the local AWS world: a collected case passes online
//! and, downloaded, offline; every tampering (a flipped byte in a block, an edited event, a
//! deleted event, a swapped signature, an edited checkpoint) is caught and named, online and
//! offline; a shortened retention is refused by S3 and the retention check still holds.

use std::path::Path;

use forensnap_tests::*;

fn env(bucket: &str) -> Env {
    Env::new(&world_toml(
        bucket,
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 12, offset_blocks = 3 }",
        ],
    ))
}

fn config(env: &Env) -> String {
    env.seeded.config.clone().expect("config")
}

fn collect(env: &Env, case: &str) -> serde_json::Value {
    let run = collect_json(env, case);
    assert!(run.ok, "collect failed: {}", run.stderr);
    run.json()
}

fn verify_online(env: &Env, case: &str) -> Run {
    forensnap(&[
        "verify",
        "--config",
        &config(env),
        "--case",
        case,
        "--output",
        "json",
    ])
}

fn verify_offline(dir: &Path, case: &str) -> Run {
    forensnap(&[
        "verify",
        "--offline",
        &dir.display().to_string(),
        "--case",
        case,
        "--output",
        "json",
    ])
}

/// The failed rows of a verify run's JSON report, as (check, "subject: detail").
fn failures(run: &Run) -> Vec<(String, String)> {
    run.json()["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| {
            (
                r["check"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{}: {}",
                    r["subject"].as_str().unwrap_or_default(),
                    r["detail"].as_str().unwrap_or_default()
                ),
            )
        })
        .collect()
}

/// Whether a failed row of check `check` names `needle`.
fn named(failed: &[(String, String)], check: &str, needle: &str) -> bool {
    failed
        .iter()
        .any(|(c, text)| c == check && text.contains(needle))
}

/// Download everything under `cases/<case>/` into `dir` (`aws s3 sync` does the same).
async fn download(env: &Env, case: &str, dir: &Path) {
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let prefix = format!("cases/{case}/");
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        for key in page.contents().iter().filter_map(|o| o.key()) {
            let path = dir.join(key.strip_prefix(&prefix).expect("under the case"));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            std::fs::write(&path, get_bytes(&s3, bucket, key).await).expect("write");
        }
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
}

/// How a tampering must be named: a failed row of this check whose text contains this.
type Named = (&'static str, String);
/// A key's tampered bytes and its original bytes.
type Replaced = (Vec<u8>, Vec<u8>);

#[tokio::test]
async fn a_collected_case_verifies_online_and_offline_with_standard_tools_and_tampering_is_named() {
    let env = env("ev-verify");
    let out = collect(&env, "IR-V-1");
    let volume = out["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .find(|i| i["kind"] == "volume")
        .expect("volume item")
        .clone();
    let id = volume["id"].as_str().expect("id").to_string();

    let online = verify_online(&env, "IR-V-1");
    assert!(
        online.ok,
        "online verify failed: {}\n{}",
        online.stdout, online.stderr
    );
    let report = online.json();
    assert!(report["objects_locked"].as_u64().expect("locked") > 10);
    assert_eq!(report["items"], 3);

    let dir = tempfile::tempdir().expect("dir");
    let case_dir = dir.path().join("case");
    download(&env, "IR-V-1", &case_dir).await;
    let offline = verify_offline(&case_dir, "IR-V-1");
    assert!(
        offline.ok,
        "offline verify failed: {}\n{}",
        offline.stdout, offline.stderr
    );
    assert!(
        offline
            .stderr
            .contains("trusting the key stored with the case"),
        "{}",
        offline.stderr
    );

    // Offline tampering, each on a fresh copy of the downloaded case, each caught and named.
    let events_dir = case_dir.join("custody/events");
    let mut events: Vec<_> = std::fs::read_dir(&events_dir)
        .expect("events")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    events.sort();
    let middle = events[events.len() / 2].clone();
    let checkpoint = "custody/checkpoints/00000001.json";
    type Tamper = Box<dyn Fn(&Path)>;
    let item = format!("evidence/{id}");
    let seq = |file: &str| {
        file.trim_end_matches(".json")
            .trim_start_matches('0')
            .to_string()
    };
    let cases: Vec<(&str, Tamper, Vec<Named>)> = vec![
        (
            "a flipped byte in a stored block",
            Box::new({
                let item = item.clone();
                move |d: &Path| {
                    let path = d.join(&item).join("data/blocks.bin");
                    let mut bytes = std::fs::read(&path).expect("blocks");
                    bytes[2 * BLOCK + 100] ^= 1;
                    std::fs::write(&path, bytes).expect("write");
                }
            }),
            vec![
                ("payload", format!("{id} data/: ")),
                ("payload", "data/blocks.bin block 5".into()),
            ],
        ),
        (
            "an edited event",
            Box::new({
                let middle = middle.clone();
                move |d: &Path| {
                    let path = d.join("custody/events").join(&middle);
                    let text = std::fs::read_to_string(&path).expect("event");
                    std::fs::write(&path, text.replacen("Test Responder", "Someone Else", 1))
                        .expect("write");
                }
            }),
            vec![("custody chain", format!("event {}", seq(&middle)))],
        ),
        (
            "a deleted event",
            Box::new({
                let middle = middle.clone();
                move |d: &Path| {
                    std::fs::remove_file(d.join("custody/events").join(&middle)).expect("rm")
                }
            }),
            vec![("custody chain", format!("expected event {}", seq(&middle)))],
        ),
        (
            "a swapped signature",
            Box::new({
                let item = item.clone();
                let other = format!(
                    "evidence/{}",
                    out["evidence"][0]["id"].as_str().expect("id")
                );
                move |d: &Path| {
                    std::fs::copy(
                        d.join(&other).join("tagmanifest-sha256.txt.sig"),
                        d.join(&item).join("tagmanifest-sha256.txt.sig"),
                    )
                    .expect("swap");
                }
            }),
            vec![("signature", format!("{id} tagmanifest-sha256.txt"))],
        ),
        (
            "an edited checkpoint",
            Box::new(move |d: &Path| {
                let path = d.join(checkpoint);
                let text = std::fs::read_to_string(&path).expect("checkpoint");
                std::fs::write(&path, text.replacen("\"number\": 1", "\"number\": 1 ", 1))
                    .expect("write");
            }),
            vec![("checkpoints", "00000001.json".into())],
        ),
    ];
    for (n, (what, tamper, expected)) in cases.iter().enumerate() {
        let copy = dir.path().join(format!("tampered-{n}"));
        copy_dir(&case_dir, &copy);
        tamper(&copy);
        let run = verify_offline(&copy, "IR-V-1");
        assert!(!run.ok, "{what}: verify passed\n{}", run.stdout);
        let failed = failures(&run);
        for (check, needle) in expected {
            assert!(
                named(&failed, check, needle),
                "{what}: {check} {needle:?} not named in {failed:#?}"
            );
        }
    }

    // Online: S3 keeps every locked version, but whoever may s3:PutObject can make a new current
    // version, and s3:DeleteObject without a version id leaves a delete marker. verify reads what
    // S3 serves now and names each; putting the original bytes back makes the case whole again.
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let put = |key: String, bytes: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .checksum_sha256(b64_sha256(&bytes))
                .body(bytes.into())
                .send()
                .await
                .expect("a new version");
        }
    };
    let item_prefix = volume["prefix"].as_str().expect("prefix").to_string();
    let other_prefix = out["evidence"][0]["prefix"]
        .as_str()
        .expect("prefix")
        .to_string();
    let event_key = format!("cases/IR-V-1/custody/events/{middle}");
    let blocks_key = format!("{item_prefix}data/blocks.bin");
    let signature_key = format!("{item_prefix}tagmanifest-sha256.txt.sig");
    let original_blocks = get_bytes(&s3, bucket, &blocks_key).await;
    let original_event = get_bytes(&s3, bucket, &event_key).await;
    let original_signature = get_bytes(&s3, bucket, &signature_key).await;
    let mut flipped = original_blocks.clone();
    flipped[2 * BLOCK + 100] ^= 1;
    let edited = String::from_utf8(original_event.clone())
        .expect("utf8")
        .replacen("Test Responder", "Someone Else", 1)
        .into_bytes();
    let swapped = get_bytes(
        &s3,
        bucket,
        &format!("{other_prefix}tagmanifest-sha256.txt.sig"),
    )
    .await;
    let online_cases: Vec<(&str, String, Replaced, Named)> = vec![
        (
            "a flipped byte in a stored block",
            blocks_key,
            (flipped, original_blocks),
            ("payload", "data/blocks.bin block 5".into()),
        ),
        (
            "an edited event",
            event_key.clone(),
            (edited, original_event),
            ("custody chain", format!("event {}", seq(&middle))),
        ),
        (
            "a swapped signature",
            signature_key,
            (swapped, original_signature),
            ("signature", format!("{id} tagmanifest-sha256.txt")),
        ),
    ];
    for (what, key, (tampered, original), (check, needle)) in online_cases {
        put(key.clone(), tampered).await;
        let run = verify_online(&env, "IR-V-1");
        assert!(!run.ok, "online, {what}: verify passed");
        let failed = failures(&run);
        assert!(
            named(&failed, check, &needle),
            "online, {what}: {failed:#?}"
        );
        put(key, original).await;
    }
    let restored = verify_online(&env, "IR-V-1");
    assert!(restored.ok, "original bytes back: {}", restored.stdout);
    // The bucket policy denies DeleteObject to everyone: an administrator who changed it could
    // still hide the current name behind a delete marker (COMPLIANCE protects versions, not
    // names). Policies off stands for that change.
    env.world.set_policies(false).expect("policies off");
    s3.delete_object()
        .bucket(bucket)
        .key(&event_key)
        .send()
        .await
        .expect("a delete marker (COMPLIANCE protects versions, not the current name)");
    env.world.set_policies(true).expect("policies on");
    let deleted = verify_online(&env, "IR-V-1");
    assert!(!deleted.ok, "online, a deleted event: verify passed");
    let failed = failures(&deleted);
    assert!(
        named(
            &failed,
            "custody chain",
            &format!("expected event {}", seq(&middle))
        ),
        "online, a deleted event: {failed:#?}"
    );
    assert!(
        named(&failed, "retention", &format!("{middle} (version"))
            && named(&failed, "retention", "delete marker"),
        "online, the delete marker itself: {failed:#?}"
    );

    // A shortened retention is refused by S3 (COMPLIANCE), so the data object keeps its date.
    let data_key = format!(
        "{}data/blocks.bin",
        volume["prefix"].as_str().expect("prefix")
    );
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(&data_key)
        .send()
        .await
        .expect("head");
    let shorter = aws_smithy_types::DateTime::from_secs(
        head.object_lock_retain_until_date()
            .expect("retention")
            .secs()
            - 20 * 86_400,
    );
    let refused = s3
        .put_object_retention()
        .bucket(bucket)
        .key(&data_key)
        .retention(
            aws_sdk_s3::types::ObjectLockRetention::builder()
                .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Compliance)
                .retain_until_date(shorter)
                .build(),
        )
        .send()
        .await
        .expect_err("COMPLIANCE retention cannot be shortened");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&refused),
        Some("AccessDenied")
    );
    let after = failures(&verify_online(&env, "IR-V-1"));
    assert!(
        !after
            .iter()
            .any(|(check, text)| check == "retention" && !text.contains("delete marker")),
        "every stored version keeps its retention: {after:#?}"
    );
}

#[test]
fn offline_verification_refuses_a_folder_that_is_not_a_case_and_a_key_that_is_not_p256() {
    let dir = tempfile::tempdir().expect("dir");
    let run = verify_offline(dir.path(), "IR-V-2");
    assert!(!run.ok);
    assert!(
        run.stderr.contains("has no custody/ folder") && run.stderr.contains("aws s3 sync"),
        "{}",
        run.stderr
    );
    std::fs::create_dir_all(dir.path().join("custody/events")).expect("dirs");
    let key = dir.path().join("key.pem");
    std::fs::write(
        &key,
        "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
    )
    .expect("write");
    let run = forensnap(&[
        "verify",
        "--offline",
        &dir.path().display().to_string(),
        "--case",
        "IR-V-2",
        "--public-key",
        &key.display().to_string(),
    ]);
    assert!(!run.ok);
    assert!(run.stderr.contains("key.pem"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        2,
        "nothing written into the case folder"
    );
}
