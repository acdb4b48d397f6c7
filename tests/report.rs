//! `forensnap report` end to end against the local AWS world: a collected case reported as
//! PDF/A-3b, CSV and JSON, online (stored in the case under Object Lock, recorded in the chain)
//! and offline (a downloaded case folder); the PDF read back with the tools a reader has
//! (pdftotext, pdfdetach, pdfinfo, qpdf); a tampered case's report says it failed.

use std::path::{Path, PathBuf};
use std::process::Command;

use forensnap_tests::*;

const EPOCH: &str = "1795000000";

/// A world with one instance of one volume, its `case` collected: the world, its config and
/// `collect --output json`.
fn collected_case(bucket: &str, case: &str) -> (Env, String, serde_json::Value) {
    let env = Env::new(&world_toml(
        bucket,
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"default\"\nbuild = { kind = \"pattern\", blocks = 12, offset_blocks = 3 }",
        ],
    ));
    let config = env.seeded.config.clone().expect("config");
    let collected = collect_json(&env, case);
    assert!(collected.ok, "{}", collected.stderr);
    let collected = collected.json();
    (env, config, collected)
}

/// `forensnap report ARGS` with `SOURCE_DATE_EPOCH` set.
fn report(args: &[&str]) -> Run {
    let out = Command::new(forensnap_bin())
        .arg("report")
        .args(args)
        .env("FORENSNAP_OPERATOR", "Test Responder")
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .expect("run forensnap report");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// `forensnap report --config CONFIG --case CASE --format FORMAT --out OUT`.
fn online_report(config: &str, case: &str, format: &str, out: &Path) -> Run {
    report(&[
        "--config",
        config,
        "--case",
        case,
        "--format",
        format,
        "--out",
        &out.display().to_string(),
    ])
}

/// `forensnap report --offline DIR --case CASE --format FORMAT --out OUT`.
fn offline_report(dir: &Path, case: &str, format: &str, out: &Path) -> Run {
    report(&[
        "--offline",
        &dir.display().to_string(),
        "--case",
        case,
        "--format",
        format,
        "--out",
        &out.display().to_string(),
    ])
}

/// Run a reader's tool; its stdout.
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} is needed (scripts/test installs poppler-utils and qpdf): {e}")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn text_of(pdf: &Path) -> String {
    tool("pdftotext", &[&pdf.display().to_string(), "-"])
}

/// The custody events of a downloaded case, with the SHA-256 of each stored file.
fn events_of(dir: &Path) -> Vec<(serde_json::Value, String)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("custody/events"))
        .expect("events folder")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).expect("event");
            (
                serde_json::from_slice(&bytes).expect("event json"),
                sha256_hex(&bytes),
            )
        })
        .collect()
}

/// The PDF's text holds every id and hash of the case: each event's SHA-256 up to the last one
/// the report covers, each item, its image hash and tag manifest hash, each snapshot.
fn assert_text_holds_the_case(text: &str, dir: &Path, collected: &serde_json::Value, upto: u64) {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let events = events_of(dir);
    assert!(
        events.iter().any(|(e, _)| e["seq"] == upto),
        "covers an event of the case"
    );
    for (event, sha256) in events
        .into_iter()
        .filter(|(e, _)| e["seq"].as_u64() <= Some(upto))
    {
        assert!(
            flat.contains(&sha256),
            "event {} ({}) sha256 {sha256} missing from the PDF text",
            event["seq"],
            event["action"]
        );
        assert!(flat.contains(event["action"].as_str().expect("action")));
    }
    for item in collected["evidence"].as_array().expect("evidence") {
        let id = item["id"].as_str().expect("id");
        assert!(flat.contains(id), "item {id} missing from the PDF text");
        if let Some(image) = item["image_sha256"].as_str() {
            assert!(flat.contains(image), "{id}'s image sha256 missing");
        }
        let tags = std::fs::read(dir.join(format!("evidence/{id}/tagmanifest-sha256.txt")))
            .expect("tag manifest");
        assert!(
            flat.contains(&sha256_hex(&tags)),
            "{id}'s tag manifest sha256 missing"
        );
    }
    for snapshot in collected["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .filter_map(|i| i["snapshot_id"].as_str())
    {
        assert!(flat.contains(snapshot), "snapshot {snapshot} missing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_reports_as_pdf_a_csv_and_json_that_agree_and_the_report_is_evidence() {
    let case = "IR-REPORT-1";
    let (env, config, collected) = collected_case("report-ok", case);

    // Online: verified, stored in the case under Object Lock, recorded.
    let out = env.path("online.pdf");
    let online = online_report(&config, case, "pdf", &out);
    assert!(online.ok, "{}", online.stderr);
    let pdf = std::fs::read(&out).expect("pdf written");
    assert!(
        online.stdout.starts_with(&sha256_hex(&pdf)),
        "prints the file's sha256: {}",
        online.stdout
    );
    assert!(
        online.stderr.contains("stored in the case"),
        "{}",
        online.stderr
    );

    let dir = env.path("case");
    download_case(&env, &format!("cases/{case}/"), &dir).await;
    let events = events_of(&dir);
    let (last, _) = events.last().expect("events");
    assert_eq!(last["action"], "report.generated", "{last}");
    let file = &last["details"]["files"][0];
    assert_eq!(file["sha256"].as_str(), Some(sha256_hex(&pdf).as_str()));
    assert_eq!(last["details"]["verification"], "pass");
    let key = file["key"].as_str().expect("key");
    assert!(
        key.starts_with(&format!("cases/{case}/reports/FR-")),
        "{key}"
    );
    let s3 = s3(&env.forensic().await);
    let bucket = &env.seeded.forensic.evidence_bucket;
    assert_eq!(
        get_bytes(&s3, bucket, key).await,
        pdf,
        "the stored report is the written one"
    );
    assert_locked(&s3, bucket, key).await;
    let stored_pdf = dir.join(
        key.strip_prefix(&format!("cases/{case}/"))
            .expect("in case"),
    );
    assert!(stored_pdf.exists());
    // The report is covered by a signed checkpoint, and the case still verifies with it.
    let verify = forensnap(&[
        "verify", "--config", &config, "--case", case, "--output", "json",
    ]);
    assert!(verify.ok, "{}{}", verify.stdout, verify.stderr);
    let rows = verify.json()["rows"].clone();
    assert!(
        rows.as_array()
            .expect("rows")
            .iter()
            .any(|r| r["check"] == "report" && r["ok"] == true),
        "verify re-hashes the stored report: {rows}"
    );
    // A stored report changed afterwards is caught and named.
    let changed = env.path("changed");
    copy_dir(&dir, &changed);
    let copy = changed.join(stored_pdf.strip_prefix(&dir).expect("in case"));
    let mut bytes = std::fs::read(&copy).expect("stored pdf");
    let last_byte = bytes.len() - 2;
    bytes[last_byte] ^= 1;
    std::fs::write(&copy, bytes).expect("change");
    let caught = forensnap(&[
        "verify",
        "--offline",
        &changed.display().to_string(),
        "--case",
        case,
        "--output",
        "json",
    ]);
    assert!(!caught.ok);
    let failed: Vec<serde_json::Value> = caught.json()["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["ok"] == false)
        .cloned()
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["check"], "report");
    assert!(
        failed[0]["detail"]
            .as_str()
            .expect("detail")
            .contains("was changed")
    );

    // What a reader's tools see in it.
    let text = text_of(&out);
    assert!(text.contains("VERIFICATION PASSED"), "{text}");
    assert!(
        text.contains("Page 1 of") || text.contains("page 1 of"),
        "page X of Y"
    );
    // The online report covers the chain as verified; its own verification and report events
    // come after it.
    let covers = last["details"]["covers_seq"].as_u64().expect("covers_seq");
    assert_eq!(events[events.len() - 2].0["action"], "case.verified");
    assert_eq!(covers, events.len() as u64 - 2);
    assert_text_holds_the_case(&text, &dir, &collected, covers);
    tool("qpdf", &["--check", &out.display().to_string()]);
    let meta = tool("pdfinfo", &["-meta", &out.display().to_string()]);
    let compact: String = meta.split_whitespace().collect();
    assert!(
        compact.contains("<pdfaid:part>3</pdfaid:part>") || compact.contains("pdfaid:part=\"3\""),
        "PDF/A part 3: {meta}"
    );
    assert!(
        compact.contains("<pdfaid:conformance>B</pdfaid:conformance>")
            || compact.contains("pdfaid:conformance=\"B\""),
        "conformance B: {meta}"
    );

    // Offline on the downloaded case: deterministic, and the formats agree.
    let offline_dir = env.path("offline");
    std::fs::create_dir_all(&offline_dir).expect("dir");
    let one = offline_dir.join("one.pdf");
    let two = offline_dir.join("two.pdf");
    for path in [&one, &two] {
        let run = offline_report(&dir, case, "pdf", path);
        assert!(run.ok, "{}", run.stderr);
        assert!(run.stderr.contains("not stored in the case (offline)"));
    }
    let one_bytes = std::fs::read(&one).expect("one");
    assert_eq!(
        one_bytes,
        std::fs::read(&two).expect("two"),
        "the same case and SOURCE_DATE_EPOCH give the same bytes"
    );
    let csv_dir = offline_dir.join("csv");
    let json = offline_dir.join("report.json");
    for (format, out) in [("csv", &csv_dir), ("json", &json)] {
        let run = offline_report(&dir, case, format, out);
        assert!(run.ok, "{}", run.stderr);
    }
    let detached = offline_dir.join("detached");
    std::fs::create_dir_all(&detached).expect("dir");
    tool(
        "pdfdetach",
        &[
            "-saveall",
            "-o",
            &detached.display().to_string(),
            &one.display().to_string(),
        ],
    );
    let pairs = [
        ("evidence-items.csv", csv_dir.join("evidence-items.csv")),
        ("custody-events.csv", csv_dir.join("custody-events.csv")),
        ("custody-report.json", json.clone()),
        (
            "signing-key.pem",
            dir.join("custody/checkpoints/signing-key.pem"),
        ),
    ];
    let one_text = text_of(&one);
    assert_text_holds_the_case(&one_text, &dir, &collected, events.len() as u64);
    let one_flat: String = one_text.split_whitespace().collect::<Vec<_>>().join(" ");
    for (name, expected) in pairs {
        let attached = std::fs::read(detached.join(name)).expect(name);
        assert_eq!(
            attached,
            std::fs::read(&expected).expect("expected file"),
            "{name} extracts byte for byte as the {} file",
            expected.display()
        );
        assert!(
            one_flat.contains(&sha256_hex(&attached)),
            "{name}'s sha256 is printed in the body"
        );
    }
    assert!(detached.join("custody-events.jsonl").exists());
    assert!(detached.join("verification.json").exists());

    // CSV and JSON parse and agree with each other and with the PDF.
    let report_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("parses");
    assert_eq!(report_json["schema"], "forensnap.report/v1");
    assert_eq!(report_json["verification"]["result"], "pass");
    assert_eq!(report_json["verification"]["mode"], "offline");
    let items_csv = std::fs::read_to_string(csv_dir.join("evidence-items.csv")).expect("csv");
    let mut rows = items_csv.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = rows.next().expect("header").split(',').collect();
    let rows: Vec<Vec<&str>> = rows.map(|r| r.split(',').collect()).collect();
    let items = report_json["items"].as_array().expect("items");
    assert_eq!(rows.len(), items.len());
    assert_eq!(
        items.len(),
        collected["evidence"].as_array().expect("ev").len()
    );
    let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
    for (row, item) in rows.iter().zip(items) {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert_eq!(row[column("item_id")], item["id"]);
        assert_eq!(row[column("sha256_acquired")], item["sha256_acquired"]);
        assert_eq!(row[column("sha256_match")], "true");
        assert!(one_flat.contains(row[column("sha256_verified")]));
    }
    let events_csv = std::fs::read_to_string(csv_dir.join("custody-events.csv")).expect("csv");
    assert_eq!(
        events_csv.split("\r\n").filter(|l| !l.is_empty()).count() - 1,
        report_json["events"].as_array().expect("events").len()
    );
    assert_eq!(
        report_json["events"].as_array().expect("events").len(),
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_case_gets_a_report_that_says_it_failed_and_bad_requests_change_nothing() {
    let case = "IR-REPORT-2";
    let (env, config, _) = collected_case("report-bad", case);
    let dir = env.path("case");
    download_case(&env, &format!("cases/{case}/"), &dir).await;
    let events_before = events_of(&dir).len();

    // An existing --out is refused before anything is verified or recorded.
    let taken = env.path("taken.pdf");
    std::fs::write(&taken, b"someone else's file").expect("write");
    let refused = online_report(&config, case, "pdf", &taken);
    assert!(!refused.ok);
    assert!(refused.stderr.contains("exists"), "{}", refused.stderr);
    assert_eq!(std::fs::read(&taken).expect("kept"), b"someone else's file");
    let after = env.path("after");
    download_case(&env, &format!("cases/{case}/"), &after).await;
    assert_eq!(events_of(&after).len(), events_before, "nothing recorded");

    // A folder that is not a case is named.
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let run = report(&[
        "--offline",
        &empty.display().to_string(),
        "--case",
        case,
        "--format",
        "json",
    ]);
    assert!(!run.ok);
    assert!(run.stderr.contains("no custody/ folder"), "{}", run.stderr);

    // One byte of the instance record changed: the report is written and says it failed.
    let record = std::fs::read_dir(dir.join("evidence"))
        .expect("evidence")
        .map(|e| e.expect("entry").path())
        .find(|p| p.display().to_string().ends_with("-instance-record"))
        .expect("record item");
    let payload = std::fs::read_dir(record.join("data"))
        .expect("data")
        .map(|e| e.expect("entry").path())
        .next()
        .expect("payload file");
    let mut bytes = std::fs::read(&payload).expect("payload");
    bytes[0] ^= 1;
    std::fs::write(&payload, bytes).expect("tamper");
    let out = env.path("tampered.pdf");
    let run = offline_report(&dir, case, "pdf", &out);
    assert!(!run.ok, "a failed verification fails the command");
    assert!(run.stderr.contains("FAILED"), "{}", run.stderr);
    let first_page = tool(
        "pdftotext",
        &["-f", "1", "-l", "1", &out.display().to_string(), "-"],
    );
    assert!(first_page.contains("VERIFICATION FAILED"), "{first_page}");
    let item = record
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(
        first_page
            .split_whitespace()
            .collect::<String>()
            .contains(&item.replace(' ', "")),
        "the first page names what failed: {first_page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_that_cannot_be_stored_is_recorded_as_failed_and_a_rerun_stores_one() {
    use forensnap_tests::localworld::{FaultKind, FaultRule};
    let case = "IR-REPORT-3";
    let (env, config, _) = collected_case("report-store", case);

    // Bad input named before anything is verified or recorded.
    let out = env.path("epoch.pdf");
    let run = Command::new(forensnap_bin())
        .args([
            "report", "--config", &config, "--case", case, "--format", "pdf", "--out",
        ])
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .expect("run");
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("SOURCE_DATE_EPOCH=\"yesterday\""),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let a_file = env.path("a-file");
    std::fs::write(&a_file, b"x").expect("write");
    let run = online_report(&config, case, "csv", &a_file);
    assert!(!run.ok);
    assert!(run.stderr.contains("is not a folder"), "{}", run.stderr);
    let before = env.path("before");
    download_case(&env, &format!("cases/{case}/"), &before).await;
    let events_before = events_of(&before).len();

    // S3 refuses every write of a report: the command fails naming the file and the next step,
    // the failure is recorded, nothing is written locally.
    env.world
        .add_fault(
            &FaultRule::new(FaultKind::Error, "s3", "PutObject")
                .matching("/reports/")
                .status(500),
        )
        .expect("fault");
    let out = env.path("refused.pdf");
    let refused = online_report(&config, case, "pdf", &out);
    assert!(!refused.ok);
    assert!(
        refused.stderr.contains("storing report FR-") && refused.stderr.contains("Next:"),
        "{}",
        refused.stderr
    );
    assert!(
        !out.exists(),
        "nothing written when the case could not keep the report"
    );
    env.world.clear_faults().expect("clear faults");
    let after = env.path("after");
    download_case(&env, &format!("cases/{case}/"), &after).await;
    let events = events_of(&after);
    assert_eq!(
        events.len(),
        events_before + 2,
        "case.verified and a failed report.generated"
    );
    let (last, _) = events.last().expect("events");
    assert_eq!(last["action"], "report.generated");
    assert_eq!(last["outcome"], "failed");
    assert!(
        last["error"]
            .as_str()
            .expect("error")
            .contains("storing report")
    );

    // Run again: a new report, stored and recorded.
    let stored = online_report(&config, case, "pdf", &out);
    assert!(stored.ok, "{}", stored.stderr);
    assert!(
        stored.stderr.contains("stored in the case"),
        "{}",
        stored.stderr
    );
    let verify = forensnap(&["verify", "--config", &config, "--case", case]);
    assert!(verify.ok, "{}{}", verify.stdout, verify.stderr);
}
