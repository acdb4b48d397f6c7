//! The `forensnap-emulator serve` process as a script uses it: one JSON line on stdout naming the
//! endpoints and snapshots, answers the SDKs there, and exits cleanly once its stdin closes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn serve_prints_its_endpoints_answers_and_stops_when_stdin_closes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_forensnap-emulator"))
        .args([
            "serve",
            "--latency-ms",
            "5",
            "--jitter-ms",
            "0",
            "--snapshot",
            "snap-cli0001:1:10",
            "--snapshot",
            "snap-cli0002:2:50:64",
            "--s3",
            "--bucket",
            "cases",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the emulator binary");
    let stdout = child.stdout.take().expect("stdout");
    // One line; the read blocks, so it runs on a thread with the test bounded below.
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(60), line)
        .await
        .expect("a line within 60 s")
        .expect("thread")
        .expect("read");
    let printed: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
    assert_eq!(
        printed["snapshots"],
        serde_json::json!(["snap-cli0001", "snap-cli0002"])
    );
    assert_eq!(printed["buckets"], serde_json::json!(["cases"]));
    let ebs_url = printed["ebs_endpoint"].as_str().expect("EBS endpoint");
    let s3_url = printed["s3_endpoint"].as_str().expect("S3 endpoint");

    let page = common::ebs(ebs_url)
        .list_snapshot_blocks()
        .snapshot_id("snap-cli0002")
        .max_results(10_000)
        .send()
        .await
        .expect("listing");
    assert_eq!(page.volume_size(), Some(2));
    assert_eq!(page.blocks().len(), 2048);
    let versioning = common::s3(s3_url)
        .get_bucket_versioning()
        .bucket("cases")
        .send()
        .await
        .expect("the bucket");
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the emulator did not stop within 30 s of its stdin closing");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
