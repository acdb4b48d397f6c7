//! forensnap under the forensic-vpc templates' own policies: the local world deploys
//! `forensic-account.yaml` and `member-role.yaml` and authorises every request as AWS would
//! (identity, bucket, key and trust policies, with their conditions). A whole collection needs
//! nothing the templates refuse, and what they must refuse is refused.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode, ServerSideEncryption};
use forensnap_tests::*;

/// The demo's instance (an aws/ebs root volume, an unencrypted data volume) and a volume on the
/// member's own customer managed key, under the templates' policies.
fn world() -> Env {
    Env::new(&format!(
        "region = \"us-east-1\"\npolicies = true\n[forensic]\naccount = \"123456789012\"\n\
         name_prefix = \"ev-policies\"\nretention_days = 30\n\
         [[members]]\naccount = \"111111111111\"\nrole = \"ForensnapCollector\"\n\
         external_id = \"{EXTERNAL_ID}\"\n[[members.instances]]\nname = \"web-1\"\n\
         [[members.instances.volumes]]\ndevice = \"/dev/xvda\"\nimage = \"root.img\"\nsize_gib = 1\n\
         encryption = \"default\"\nbuild = {{ kind = \"pattern\", blocks = 3 }}\n\
         [[members.instances.volumes]]\ndevice = \"/dev/xvdf\"\nimage = \"data.img\"\nsize_gib = 1\n\
         encryption = \"none\"\nbuild = {{ kind = \"pattern\", blocks = 2, offset_mib = 4 }}\n\
         [[members.instances.volumes]]\ndevice = \"/dev/xvdg\"\nimage = \"cmk.img\"\nsize_gib = 1\n\
         encryption = \"cmk\"\nbuild = {{ kind = \"pattern\", blocks = 2, offset_mib = 8 }}\n"
    ))
}

const EXTERNAL_ID: &str = "ext-2026-forensnap-policies";

/// Credentials that are nobody's user or role in the forensic account: the world treats them as
/// the account's root user, the strongest principal that is not the collector role.
fn forensic_root() -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new("AKIAFORENSICROOT0001", "root", None, None, "test")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_collection_needs_nothing_the_templates_refuse() {
    let env = world();
    env.world.clear_authorizations().expect("clear");
    let run = collect_json(&env, "IR-POLICIES-1");
    assert!(
        run.ok,
        "collect failed under the templates' policies: {}",
        run.stderr
    );
    let json = run.json();
    assert_eq!(json["evidence"].as_array().expect("items").len(), 5);

    let decisions = env.world.authorizations().expect("decisions");
    let refused: Vec<String> = decisions
        .iter()
        .filter(|d| !d.allowed)
        .map(|d| {
            format!(
                "{} {} on {}: {}",
                d.principal, d.action, d.resource, d.reason
            )
        })
        .collect();
    assert!(refused.is_empty(), "refused: {refused:#?}");
    let unmodelled: Vec<&str> = decisions
        .iter()
        .filter(|d| !d.modelled)
        .map(|d| d.operation.as_str())
        .collect();
    assert!(
        unmodelled.is_empty(),
        "requests the world's table does not know: {unmodelled:?}"
    );
    // The collection acted as the collector role (forensic account) and the member role only.
    let actions = |who: &str| {
        decisions
            .iter()
            .filter(|d| d.principal.contains(who))
            .map(|d| d.action.as_str())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let collector = actions(":assumed-role/forensnap-collector/");
    let member = actions(":assumed-role/ForensnapCollector/");
    for needed in [
        "s3:PutObject",
        "ebs:GetSnapshotBlock",
        "kms:Sign",
        "ec2:CopySnapshot",
        "sts:AssumeRole",
    ] {
        assert!(
            collector.contains(needed),
            "collector never checked for {needed}: {collector:?}"
        );
    }
    for needed in [
        "ec2:CreateSnapshots",
        "ec2:ModifySnapshotAttribute",
        "ec2:DeleteSnapshot",
    ] {
        assert!(
            member.contains(needed),
            "member role never checked for {needed}: {member:?}"
        );
    }
    assert!(
        !collector.contains("s3:PutObjectRetention"),
        "forensnap sent per-object lock headers"
    );
}

fn denied<T, E: std::fmt::Debug>(result: Result<T, E>, what: &str, statement: &str) {
    match result {
        Ok(_) => panic!("{what} was allowed"),
        Err(e) => {
            let text = format!("{e:?}");
            assert!(
                text.contains("AccessDenied") && text.contains(statement),
                "{what}: expected AccessDenied by {statement}, got {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_templates_must_refuse_is_refused() {
    let env = world();
    let bucket = env.seeded.forensic.evidence_bucket.clone();
    let collector = s3(&env.forensic().await);

    // The collector writes evidence (the bucket default encrypts and locks it)...
    let put = collector
        .put_object()
        .bucket(&bucket)
        .key("cases/IR-DENY/probe.txt")
        .body(ByteStream::from_static(b"probe"))
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .send()
        .await
        .expect("the collector writes evidence");
    let version = put.version_id().expect("versioned").to_string();

    // ...but cannot delete it, shorten its retention or choose another encryption or key.
    denied(
        collector
            .delete_object()
            .bucket(&bucket)
            .key("cases/IR-DENY/probe.txt")
            .version_id(&version)
            .send()
            .await,
        "deleting an evidence version",
        "DenyEvidenceDeletionAndRetentionChanges",
    );
    denied(
        collector
            .put_object_retention()
            .bucket(&bucket)
            .key("cases/IR-DENY/probe.txt")
            .version_id(&version)
            .retention(
                ObjectLockRetention::builder()
                    .mode(ObjectLockRetentionMode::Governance)
                    .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(2_000_000_000))
                    .build(),
            )
            .send()
            .await,
        "changing an evidence version's retention",
        "DenyEvidenceDeletionAndRetentionChanges",
    );
    denied(
        collector
            .put_object()
            .bucket(&bucket)
            .key("cases/IR-DENY/aes.txt")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "SSE-S3 instead of SSE-KMS",
        "DenyEncryptionOtherThanSseKms",
    );
    denied(
        collector
            .put_object()
            .bucket(&bucket)
            .key("cases/IR-DENY/otherkey.txt")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(&env.seeded.forensic.ebs_key_arn)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "another KMS key",
        "DenyOtherKmsKeys",
    );

    // Nobody else writes evidence or signs, not even the account's root user.
    let root = sdk_config(&env.world, &env.seeded.region, forensic_root()).await;
    denied(
        s3(&root)
            .put_object()
            .bucket(&bucket)
            .key("cases/IR-DENY/root.txt")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        "a write by the account root",
        "DenyWritesExceptCollectorRole",
    );
    denied(
        aws_sdk_kms::Client::new(&root)
            .sign()
            .key_id(&env.seeded.forensic.signing_key_arn)
            .message(aws_sdk_kms::primitives::Blob::new(vec![0u8; 32]))
            .message_type(aws_sdk_kms::types::MessageType::Digest)
            .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await,
        "kms:Sign by the account root",
        "DenySignExceptCollectorRole",
    );

    // The member role admits the collector role only, with the ExternalId and a SourceIdentity.
    let role = env.seeded.member().role_arn.clone();
    let assume =
        |config: aws_config::SdkConfig, external_id: Option<&str>, source: Option<&str>| {
            let sts = aws_sdk_sts::Client::new(&config);
            let role = role.clone();
            let external_id = external_id.map(str::to_string);
            let source = source.map(str::to_string);
            async move {
                sts.assume_role()
                    .role_arn(role)
                    .role_session_name("forensnap-IR-DENY")
                    .set_external_id(external_id)
                    .set_source_identity(source)
                    .send()
                    .await
            }
        };
    let forensic = env.forensic().await;
    assume(forensic.clone(), Some(EXTERNAL_ID), Some("IR-DENY"))
        .await
        .expect("the collector role assumes the member role");
    denied(
        assume(forensic.clone(), None, Some("IR-DENY")).await,
        "AssumeRole without the ExternalId",
        "no statement allows sts:AssumeRole",
    );
    denied(
        assume(
            forensic.clone(),
            Some("ext-2026-a-wrong-one"),
            Some("IR-DENY"),
        )
        .await,
        "AssumeRole with a wrong ExternalId",
        "no statement allows sts:AssumeRole",
    );
    denied(
        assume(forensic, Some(EXTERNAL_ID), None).await,
        "AssumeRole without a SourceIdentity",
        "no statement allows sts:AssumeRole",
    );
    denied(
        assume(root, Some(EXTERNAL_ID), Some("IR-DENY")).await,
        "AssumeRole by another principal of the forensic account",
        "no statement allows sts:AssumeRole",
    );
    // From another account: the member account's own administrator, with every parameter right.
    denied(
        assume(env.member_admin().await, Some(EXTERNAL_ID), Some("IR-DENY")).await,
        "AssumeRole from another account (the member's administrator)",
        "no statement allows sts:AssumeRole",
    );

    // A copy onto a key the member role may not use: EC2 accepts the request and checks the key
    // afterwards, so the copy ends in state error, naming the refused KMS action. (The key's
    // policy delegates to the account: only the role's own policies refuse it.)
    let other_key = aws_sdk_kms::Client::new(&env.member_admin().await)
        .create_key()
        .description("a member-account key forensnap's role is not granted")
        .send()
        .await
        .expect("the administrator creates a key");
    let other_key = other_key
        .key_metadata()
        .map(|k| k.arn().unwrap_or_default().to_string())
        .expect("key arn");
    let member_admin = aws_sdk_ec2::Client::new(&env.member_admin().await);
    let source = member_snapshot(&env, &member_admin, 0).await;
    wait_snapshot(&member_admin, &source).await;
    let member_ec2 = aws_sdk_ec2::Client::new(&env.member().await);
    let copy = member_ec2
        .copy_snapshot()
        .source_snapshot_id(&source)
        .source_region(&env.seeded.region)
        .encrypted(true)
        .kms_key_id(&other_key)
        .send()
        .await
        .expect("EC2 accepts the copy request");
    let copied = wait_snapshot(&member_ec2, copy.snapshot_id().expect("id")).await;
    assert_eq!(
        copied.state(),
        Some(&aws_sdk_ec2::types::SnapshotState::Error),
        "a copy onto a key the collector role may not use: {:?}",
        copied.state_message()
    );
    let message = copied.state_message().unwrap_or_default();
    assert!(
        message.contains("kms:") && message.contains(&other_key),
        "the state message names the refused KMS action and key: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_written_from_the_stacks_outputs_collects() {
    let env = world();
    let stacks = env
        .seeded
        .stacks
        .clone()
        .expect("the world wrote its stacks");
    let out = env.path("from-stack.toml");
    let member = &env.seeded.member().account;
    let run = forensnap(&[
        "config",
        "from-stack",
        "--forensic",
        &stacks.forensic,
        "--member",
        &stacks.members[0],
        "--external-id",
        &format!("{member}={EXTERNAL_ID}"),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(run.ok, "from-stack failed: {}", run.stderr);
    let written = std::fs::read_to_string(&out).expect("written");
    assert!(
        written.contains(&format!(
            "evidence_bucket = \"{}\"",
            env.seeded.forensic.evidence_bucket
        )),
        "{written}"
    );
    // Refused the second time: a config is never overwritten.
    let again = forensnap(&[
        "config",
        "from-stack",
        "--forensic",
        &stacks.forensic,
        "--out",
        &out.display().to_string(),
    ]);
    assert!(
        !again.ok && again.stderr.contains("never overwritten"),
        "{}",
        again.stderr
    );
    // The member's ExternalId is not in the stack (NoEcho): without it, nothing is written.
    let missing = forensnap(&[
        "config",
        "from-stack",
        "--forensic",
        &stacks.forensic,
        "--member",
        &stacks.members[0],
    ]);
    assert!(
        !missing.ok
            && missing
                .stderr
                .contains(&format!("no --external-id {member}=ID given")),
        "{}",
        missing.stderr
    );

    // With the local world's endpoint and operator key (on AWS the instance profile supplies
    // credentials), the written config collects.
    let generated =
        std::fs::read_to_string(env.seeded.config.clone().expect("config")).expect("read");
    let aws: String = generated
        .split("\n[")
        .find(|section| section.starts_with("aws]"))
        .map(|section| format!("\n[{section}"))
        .expect("the seed's [aws] section");
    let config = env.path("collect.toml");
    std::fs::write(&config, format!("{written}{aws}\n")).expect("write");
    let run = forensnap(&[
        "collect",
        "--config",
        &config.display().to_string(),
        "--case",
        "IR-FROM-STACK",
        "--account",
        member,
        "--instance",
        &env.seeded.member().instances[0].instance_id,
        "--output",
        "json",
    ]);
    assert!(run.ok, "collect with the written config: {}", run.stderr);
    // Three volumes, the record, the console output, and (on by default, under the member
    // role's policies) the account's CloudTrail events; this world has no trail to copy.
    let kinds: Vec<String> = run.json()["evidence"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["kind"].as_str().expect("kind").to_string())
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "cloudtrail-events").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_collected_outside_us_east_1_verifies_with_nothing_refused() {
    let toml = world_toml(
        "ev-eu",
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nsize_gib = 1\nencryption = \"default\"\n\
           build = { kind = \"pattern\", blocks = 3 }",
        ],
    )
    .replace("region = \"us-east-1\"", "region = \"eu-west-1\"");
    let env = Env::new(&toml);
    assert_eq!(env.seeded.region, "eu-west-1");
    assert_eq!(
        env.seeded.forensic.evidence_bucket,
        "ev-eu-evidence-123456789012-eu-west-1"
    );
    env.world.clear_authorizations().expect("clear");
    let config = env.seeded.config.clone().expect("config");
    let instance = env.seeded.member().instances[0].instance_id.clone();
    let run = forensnap(&[
        "collect",
        "--config",
        &config,
        "--case",
        "IR-EU-1",
        "--account",
        "111111111111",
        "--instance",
        &instance,
        "--region",
        "eu-west-1",
        "--output",
        "json",
    ]);
    assert!(run.ok, "collect in eu-west-1: {}", run.stderr);
    let verified = forensnap(&["verify", "--config", &config, "--case", "IR-EU-1"]);
    assert!(verified.ok, "verify in eu-west-1: {}", verified.stdout);
    let decisions = env.world.authorizations().expect("decisions");
    assert!(
        decisions.iter().all(|d| d.allowed),
        "a refusal in eu-west-1"
    );
    assert!(
        decisions
            .iter()
            .filter(|d| d.resource.starts_with("arn:aws:kms:")
                || d.resource.starts_with("arn:aws:ec2:"))
            .all(|d| d.resource.contains(":eu-west-1:")),
        "every regional resource is in eu-west-1"
    );
}
