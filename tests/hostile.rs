//! Hostile and malformed input (issue 12): command-line values and config files that try path
//! traversal, terminal escapes, very long values, plain HTTP to another machine, a member role
//! in another account, unknown keys. Each is refused with a message naming the thing, before
//! any AWS call: the config points at a closed loopback port, so an attempted call would fail
//! with a connection error instead of the expected refusal.

use forensnap_tests::{forensnap, summary};

const CONFIG: &str = r#"operator = "responder"
[forensic]
account = "123456789012"
region = "us-east-1"
evidence_bucket = "forensnap-evidence-123456789012-us-east-1"
ebs_key_arn = "arn:aws:kms:us-east-1:123456789012:alias/forensnap-ebs"
signing_key_arn = "arn:aws:kms:us-east-1:123456789012:alias/forensnap-signing"
[aws]
endpoint_url = "http://127.0.0.1:9"
credentials = { access_key_id = "AKIAHOSTILETEST00001", secret_access_key = "not-a-secret" }
[[members]]
account = "111111111111"
external_id = "ext"
"#;

#[test]
fn hostile_values_are_refused_before_any_aws_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, CONFIG).expect("write");
    let good = good.display().to_string();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let remote_http = write(
        "remote-http.toml",
        CONFIG.replace("http://127.0.0.1:9", "http://203.0.113.7:4566"),
    );
    let foreign_role = write(
        "foreign-role.toml",
        CONFIG.replace(
            "external_id = \"ext\"",
            "external_id = \"ext\"\nrole = \"arn:aws:iam::999999999999:role/Attacker\"",
        ),
    );
    let unknown_key = write(
        "unknown-key.toml",
        CONFIG.replace("[aws]", "[aws]\nendpoint = \"https://evil.example\""),
    );
    let escape_operator = write(
        "escape-operator.toml",
        CONFIG.replace(
            "operator = \"responder\"",
            "operator = \"Eve\\u001b]0;pwned\\u0007\"",
        ),
    );
    let not_toml = write("not-toml.toml", "[forensic\naccount = ".to_string());
    let long = "A".repeat(5000);
    let instance = "i-0123456789abcdef0";
    let collect = |config: &str, case: &str, extra: &[&str]| {
        let mut args = vec![
            "collect",
            "--config",
            config,
            "--case",
            case,
            "--account",
            "111111111111",
            "--instance",
            instance,
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "case id with path traversal",
            collect(&good, "../../etc/passwd", &[]),
            "case id",
        ),
        (
            "case id with a slash",
            collect(&good, "IR-1/../../x", &[]),
            "case id",
        ),
        (
            "case id of 5000 characters",
            collect(&good, &long, &[]),
            "longer than 48",
        ),
        (
            "case id with a CSV formula",
            collect(&good, "=HYPERLINK(\"x\")", &[]),
            "case id",
        ),
        (
            "operator with a terminal escape",
            collect(&good, "IR-1", &["--operator", "Eve\u{1b}[2J"]),
            "control character",
        ),
        (
            "operator of 5000 characters",
            collect(&good, "IR-1", &["--operator", &long]),
            "256 at most",
        ),
        (
            "purpose with a newline (forged log line)",
            collect(
                &good,
                "IR-1",
                &["--purpose", "ok\nseq 9 collection.completed"],
            ),
            "control character",
        ),
        (
            "instance id that is a path",
            collect(&good, "IR-1", &[])
                .into_iter()
                .map(|a| {
                    if a == instance {
                        "../i-1".to_string()
                    } else {
                        a
                    }
                })
                .collect(),
            "not an EC2 instance id",
        ),
        (
            "plain HTTP to another machine",
            collect(&remote_http, "IR-1", &[]),
            "plain HTTP to another machine",
        ),
        (
            "member role in another account",
            collect(&foreign_role, "IR-1", &[]),
            "not a role of account 111111111111",
        ),
        (
            "unknown config key",
            collect(&unknown_key, "IR-1", &[]),
            "unknown field",
        ),
        (
            "config operator with escapes",
            collect(&escape_operator, "IR-1", &[]),
            "control character",
        ),
        ("not TOML", collect(&not_toml, "IR-1", &[]), "not-toml.toml"),
        (
            "member account not configured",
            collect(&good, "IR-1", &[])
                .into_iter()
                .map(|a| {
                    if a == "111111111111" {
                        "222222222222".to_string()
                    } else {
                        a
                    }
                })
                .collect(),
            "not one of the [[members]]",
        ),
    ];
    let mut refused = 0;
    for (what, args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = forensnap(&args);
        assert!(!run.ok, "{what}: accepted");
        assert!(
            run.stderr.contains(expected),
            "{what}: expected {expected:?} in:\n{}",
            run.stderr
        );
        for attempted in [
            "dispatch failure",
            "Connection refused",
            "connection refused",
            "io error",
        ] {
            assert!(
                !run.stderr.contains(attempted),
                "{what}: an AWS call was attempted before the refusal:\n{}",
                run.stderr
            );
        }
        refused += 1;
    }
    summary(
        "hostile",
        &format!(
            "hostile input: {} values and config files tried (traversal, escapes, long values, formulas, remote plain HTTP, foreign role, unknown keys, bad TOML), {refused} refused by name before any AWS call",
            cases.len()
        ),
    );
}

/// Evidence buckets that would not hold evidence as forensnap promises: default retention in
/// GOVERNANCE mode (a privileged user may shorten or remove it), a COMPLIANCE default shorter
/// than configured, no Object Lock at all. Each is refused with a message naming the bucket and
/// what is wrong, before anything changes in the member account or the bucket.
#[tokio::test(flavor = "multi_thread")]
async fn weak_evidence_buckets_are_refused_before_anything_changes() {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    use forensnap_tests::*;
    let env = Env::new(&world_toml(
        "ev-weak",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nbuild = { kind = \"pattern\", blocks = 4 }",
        ],
    ));
    let s3 = s3(&env.forensic_admin().await);
    let bucket = env.seeded.forensic.evidence_bucket.clone();
    let config = env.seeded.config.clone().expect("config");
    let lock = |mode: ObjectLockRetentionMode, days: i32| {
        ObjectLockConfiguration::builder()
            .object_lock_enabled(ObjectLockEnabled::Enabled)
            .rule(
                ObjectLockRule::builder()
                    .default_retention(DefaultRetention::builder().mode(mode).days(days).build())
                    .build(),
            )
            .build()
    };
    // A plain bucket, and a config that names it.
    let plain = "ev-weak-plain-123456789012-us-east-1";
    s3.create_bucket()
        .bucket(plain)
        .send()
        .await
        .expect("plain bucket");
    // The collector may use it (so that what is refused is the bucket, not the rights).
    let operator = &env.seeded.forensic.operator_arn;
    let role = match operator.split_once(":assumed-role/") {
        Some((prefix, rest)) => format!(
            "{}:role/{}",
            prefix.replace(":sts:", ":iam:"),
            rest.split('/').next().unwrap_or_default()
        ),
        None => operator.clone(),
    };
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": role},
            "Action": ["s3:ListBucket", "s3:GetObject", "s3:PutObject",
                       "s3:GetBucketObjectLockConfiguration", "s3:GetBucketVersioning"],
            "Resource": [format!("arn:aws:s3:::{plain}"), format!("arn:aws:s3:::{plain}/*")],
        }],
    });
    s3.put_bucket_policy()
        .bucket(plain)
        .policy(policy.to_string())
        .send()
        .await
        .expect("plain bucket policy");
    let text = std::fs::read_to_string(&config).expect("config");
    let plain_config = env.path("plain.toml");
    std::fs::write(&plain_config, text.replace(&bucket, plain)).expect("write");
    let plain_config = plain_config.display().to_string();

    let cases: Vec<(&str, Option<ObjectLockConfiguration>, &str, &str)> = vec![
        (
            "GOVERNANCE default retention",
            Some(lock(ObjectLockRetentionMode::Governance, 30)),
            &config,
            "GOVERNANCE instead of COMPLIANCE",
        ),
        (
            "COMPLIANCE for 1 day, 30 configured",
            Some(lock(ObjectLockRetentionMode::Compliance, 1)),
            &config,
            "1 days, shorter than the configured retention_days = 30",
        ),
        (
            "no Object Lock",
            None,
            &plain_config,
            "Object Lock is not enabled",
        ),
    ];
    let instance = env.seeded.member().instances[0].instance_id.clone();
    let mut refused = 0;
    for (i, (what, configuration, config, expected)) in cases.iter().enumerate() {
        if let Some(configuration) = configuration {
            // The bucket's owner changes it (the collector cannot).
            env.world.set_policies(false).expect("policies off");
            s3.put_object_lock_configuration()
                .bucket(&bucket)
                .object_lock_configuration(configuration.clone())
                .send()
                .await
                .expect("weaken the bucket");
            env.world.set_policies(true).expect("policies on");
        }
        let case = format!("IR-WEAK-{i}");
        let run = forensnap(&[
            "collect",
            "--config",
            config,
            "--case",
            &case,
            "--account",
            "111111111111",
            "--instance",
            &instance,
        ]);
        assert!(!run.ok, "{what}: collect must refuse");
        assert!(
            run.stderr.contains(expected),
            "{what}: the refusal names it ({expected}): {}",
            run.stderr
        );
        assert!(
            owned_snapshots(&env.member_admin().await).await.is_empty(),
            "{what}: nothing snapshotted"
        );
        for b in [bucket.as_str(), plain] {
            let listed = s3
                .list_objects_v2()
                .bucket(b)
                .prefix(format!("cases/{case}/"))
                .send()
                .await
                .expect("list");
            assert!(
                listed.contents().is_empty(),
                "{what}: nothing written to {b}"
            );
        }
        refused += 1;
    }
    summary(
        "hostile-buckets",
        &format!(
            "hostile buckets: {refused} weak evidence buckets (GOVERNANCE default, a retention shorter than configured, no Object Lock) refused by name before any change"
        ),
    );
}
