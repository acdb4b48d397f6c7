//! Secrets: credentials and session tokens never appear in what forensnap writes. A full run
//! against the local world (`collect`, `verify`, `export`), with debug logging on as a responder
//! chasing a problem would set it, then every output is scanned: stdout and stderr of each
//! command, every object version in the evidence bucket (custody events, checkpoints, bags, the
//! data), and every exported file. Scanned for: the operator's and the administrator's access
//! keys and secret keys, session tokens (the world's STS issues them with AWS's old `FQoGZXIv`
//! prefix), assumed-role key ids (`ASIA` + 16), and any `x-amz-security-token`,
//! `aws_secret_access_key` or `Authorization: AWS4-HMAC-SHA256` text.

use std::process::Command;

use forensnap_tests::*;

const CASE: &str = "IR-SECRETS-1";

/// Exit status, stdout, and stdout with stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(forensnap_bin())
        .args(args)
        .env("FORENSNAP_OPERATOR", "Test Responder")
        .env("RUST_LOG", "debug")
        .output()
        .expect("run forensnap");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let both = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout, both)
}

/// Where `needle` occurs in `haystack`, with some context.
fn found(haystack: &[u8], needle: &[u8]) -> Option<String> {
    memchr::memmem::find(haystack, needle).map(|at| {
        let from = at.saturating_sub(80);
        let to = (at + needle.len() + 80).min(haystack.len());
        String::from_utf8_lossy(&haystack[from..to]).into_owned()
    })
}

/// Assumed-role access key ids: `ASIA` and 16 upper-case letters or digits.
fn session_key_id(haystack: &[u8]) -> Option<String> {
    memchr::memmem::find_iter(haystack, b"ASIA").find_map(|at| {
        let id = haystack.get(at..at + 20)?;
        id[4..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            .then(|| String::from_utf8_lossy(id).into_owned())
    })
}

#[tokio::test]
async fn no_credential_or_session_token_appears_in_any_output_of_a_full_run() {
    let env = Env::new(&world_toml(
        "ev-secrets",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nbuild = { kind = \"pattern\", blocks = 12, offset_blocks = 3 }",
        ],
    ));
    let config = env.seeded.config.clone().expect("seed writes a config");
    let instance = env.seeded.member().instances[0].instance_id.clone();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();

    let (ok, stdout, text) = run(&[
        "collect",
        "--config",
        &config,
        "--case",
        CASE,
        "--account",
        "111111111111",
        "--instance",
        &instance,
        "--purpose",
        "test",
        "--output",
        "json",
    ]);
    assert!(ok, "collect: {text}");
    let items: Vec<String> = serde_json::from_str::<serde_json::Value>(&stdout)
        .ok()
        .and_then(|v| {
            v["evidence"].as_array().map(|items| {
                items
                    .iter()
                    // `export` takes volume items (bags of disk images).
                    .filter(|i| i["kind"] == "volume")
                    .filter_map(|i| i["id"].as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default();
    assert!(!items.is_empty(), "collect names its volume: {stdout}");
    outputs.push(("collect output".into(), text.into_bytes()));
    let (ok, _, text) = run(&[
        "verify", "--config", &config, "--case", CASE, "--output", "json",
    ]);
    assert!(ok, "verify: {text}");
    outputs.push(("verify output".into(), text.into_bytes()));
    let out = tempfile::tempdir().expect("export dir");
    for item in &items {
        let dir = out.path().join(item);
        let (ok, _, text) = run(&[
            "export",
            "--config",
            &config,
            "--case",
            CASE,
            "--evidence",
            item,
            "--out",
            &dir.display().to_string(),
            "--output",
            "json",
        ]);
        assert!(ok, "export {item}: {text}");
        outputs.push((format!("export {item} output"), text.into_bytes()));
    }
    for file in relative_files(out.path()) {
        let bytes = std::fs::read(out.path().join(&file)).expect("exported file");
        outputs.push((format!("exported {file}"), bytes));
    }

    // Every version of every object the case wrote.
    let admin = env.forensic_admin().await;
    let s3 = s3(&admin);
    let bucket = &env.seeded.forensic.evidence_bucket;
    let versions = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("versions");
    let mut objects = 0;
    for v in versions.versions() {
        let (key, version) = (v.key().expect("key"), v.version_id().expect("version"));
        let body = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(version)
            .send()
            .await
            .expect("get")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        outputs.push((format!("s3://{bucket}/{key} ({version})"), body.to_vec()));
        objects += 1;
    }
    assert!(objects > 10, "the case wrote {objects} objects");

    let forensic = &env.seeded.forensic;
    let mut needles: Vec<(&str, Vec<u8>)> = vec![
        (
            "the operator's secret key",
            forensic.secret_access_key.clone().into_bytes(),
        ),
        (
            "the operator's access key id",
            forensic.access_key_id.clone().into_bytes(),
        ),
        (
            "the administrator's secret key",
            forensic.admin.admin_secret_access_key.clone().into_bytes(),
        ),
        ("a session token", b"FQoGZXIv".to_vec()),
        ("a security-token header", b"x-amz-security-token".to_vec()),
        ("a secret-key setting", b"aws_secret_access_key".to_vec()),
        (
            "a request signature",
            b"AWS4-HMAC-SHA256 Credential".to_vec(),
        ),
    ];
    needles.retain(|(_, n)| !n.is_empty());
    // The scan itself finds what it looks for.
    let planted = format!(
        "token=FQoGZXIvYXdzEBYaDplanted key=ASIAPLANTED000000001 secret={}",
        forensic.secret_access_key
    );
    assert!(
        needles
            .iter()
            .any(|(_, n)| found(planted.as_bytes(), n).is_some())
    );
    assert!(session_key_id(planted.as_bytes()).is_some());
    let mut leaks = Vec::new();
    for (name, bytes) in &outputs {
        for (what, needle) in &needles {
            if let Some(context) = found(bytes, needle) {
                leaks.push(format!("{what} in {name}: ...{context}..."));
            }
        }
        if let Some(id) = session_key_id(bytes) {
            leaks.push(format!("an assumed-role key id ({id}) in {name}"));
        }
    }
    summary(
        "secrets",
        &format!(
            "secrets: {} outputs scanned ({objects} stored object versions), {} leaks",
            outputs.len(),
            leaks.len()
        ),
    );
    assert!(
        leaks.is_empty(),
        "credentials leaked:\n{}",
        leaks.join("\n")
    );
}
