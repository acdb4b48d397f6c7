//! EC2 snapshots across accounts in the local world: an image seeded into a volume comes back
//! byte for byte through CreateSnapshots -> share -> CopySnapshot in the forensic account ->
//! paged ListSnapshotBlocks + GetSnapshotBlock; the rules AWS enforces on the way hold.

use aws_sdk_ec2::types::{InstanceSpecification, SnapshotState};
use forensnap_tests::*;

const THREE_VOLUMES: [&str; 3] = [
    "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"default\"\nbuild = { kind = \"pattern\", blocks = 6 }",
    "device = \"/dev/xvdf\"\nimage = \"data.img\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 3, offset_mib = 5 }",
    "device = \"/dev/xvdg\"\nimage = \"logs.img\"\nencryption = \"cmk\"\nbuild = { kind = \"pattern\", blocks = 2, offset_mib = 1 }",
];

fn code<E: aws_sdk_ec2::error::ProvideErrorMetadata>(err: &E) -> String {
    err.code().unwrap_or_default().to_string()
}

#[tokio::test]
async fn seeded_images_come_back_byte_for_byte_in_the_forensic_account() {
    let env = Env::new(&world_toml("ev-roundtrip", &THREE_VOLUMES));
    let forensic_key = env.seeded.forensic.ebs_key_arn.clone();
    let forensic_account = env.seeded.forensic.account.clone();
    let member_ec2 = aws_sdk_ec2::Client::new(&env.member().await);
    let forensic_cfg = env.forensic().await;
    let forensic_ec2 = aws_sdk_ec2::Client::new(&forensic_cfg);
    let forensic_ebs = aws_sdk_ebs::Client::new(&forensic_cfg);
    let instance = &env.seeded.member().instances[0];

    let made = member_ec2
        .create_snapshots()
        .instance_specification(
            InstanceSpecification::builder()
                .instance_id(&instance.instance_id)
                .build(),
        )
        .send()
        .await
        .expect("CreateSnapshots");
    assert_eq!(
        made.snapshots().len(),
        3,
        "one snapshot per attached volume"
    );

    for info in made.snapshots() {
        let volume_id = info.volume_id().expect("volume id");
        let volume = instance
            .volumes
            .iter()
            .find(|v| v.volume_id == volume_id)
            .expect("seeded volume");
        let original = wait_snapshot(&member_ec2, info.snapshot_id().expect("id")).await;
        assert_eq!(original.state(), Some(&SnapshotState::Completed));
        assert_eq!(
            original.encrypted(),
            Some(volume.encryption != "none"),
            "{}",
            volume.device
        );

        // Only a snapshot on a key the forensic account may use is shared as it is.
        let shareable = if volume.encryption == "cmk" {
            original.snapshot_id().expect("id").to_string()
        } else {
            let copy = member_ec2
                .copy_snapshot()
                .source_snapshot_id(original.snapshot_id().expect("id"))
                .source_region("us-east-1")
                .encrypted(true)
                .kms_key_id(&forensic_key)
                .send()
                .await
                .expect("member-side re-encrypting copy");
            let copy = wait_snapshot(&member_ec2, copy.snapshot_id().expect("id")).await;
            assert_eq!(copy.state(), Some(&SnapshotState::Completed));
            assert_eq!(copy.kms_key_id(), Some(forensic_key.as_str()));
            copy.snapshot_id().expect("id").to_string()
        };
        set_share(&member_ec2, &shareable, &forensic_account, true)
            .await
            .expect("share with the forensic account");

        let visible = forensic_ec2
            .describe_snapshots()
            .restorable_by_user_ids("self")
            .send()
            .await
            .expect("grantee DescribeSnapshots");
        assert!(
            visible
                .snapshots()
                .iter()
                .any(|s| s.snapshot_id() == Some(shareable.as_str()))
        );

        let evidence = forensic_ec2
            .copy_snapshot()
            .source_snapshot_id(&shareable)
            .source_region("us-east-1")
            .encrypted(true)
            .kms_key_id(&forensic_key)
            .send()
            .await
            .expect("forensic-account copy of the shared snapshot");
        let evidence = wait_snapshot(&forensic_ec2, evidence.snapshot_id().expect("id")).await;
        assert_eq!(evidence.state(), Some(&SnapshotState::Completed));
        assert_eq!(evidence.owner_id(), Some(forensic_account.as_str()));
        assert_eq!(evidence.kms_key_id(), Some(forensic_key.as_str()));

        let back = read_snapshot(&forensic_ebs, evidence.snapshot_id().expect("id"), 100).await;
        assert_eq!(back.size, volume.size_gib << 30);
        assert_eq!(back.indexes.len() as u64, volume.data_blocks);
        assert_eq!(
            back.sha256, volume.image_sha256,
            "{} read back",
            volume.device
        );
        assert_eq!(
            back.sha256,
            sha256_file(&volume.image, volume.size_gib << 30)
        );
    }
}

#[tokio::test]
async fn a_snapshot_on_the_default_aws_ebs_key_refuses_to_be_shared() {
    let env = Env::new(&world_toml("ev-default-key", &THREE_VOLUMES[..1]));
    let member_ec2 = aws_sdk_ec2::Client::new(&env.member().await);
    let snapshot_id = member_snapshot(
        &env,
        &aws_sdk_ec2::Client::new(&env.member_admin().await),
        0,
    )
    .await;
    let err = set_share(
        &member_ec2,
        snapshot_id.as_str(),
        &env.seeded.forensic.account,
        true,
    )
    .await
    .expect_err("aws/ebs snapshots cannot be shared");
    assert_eq!(code(&err), "OperationNotPermitted", "{err:?}");
}

#[tokio::test]
async fn unshared_snapshots_stay_invisible_and_cannot_be_copied() {
    let env = Env::new(&world_toml("ev-unshared", &THREE_VOLUMES[1..2]));
    let member_ec2 = aws_sdk_ec2::Client::new(&env.member().await);
    let forensic_ec2 = aws_sdk_ec2::Client::new(&env.forensic().await);
    let snapshot_id = member_snapshot(
        &env,
        &aws_sdk_ec2::Client::new(&env.member_admin().await),
        0,
    )
    .await;
    let id = snapshot_id.as_str();
    let err = forensic_ec2
        .describe_snapshots()
        .snapshot_ids(id)
        .send()
        .await
        .expect_err("not shared");
    assert_eq!(code(&err), "InvalidSnapshot.NotFound");
    let err = forensic_ec2
        .copy_snapshot()
        .source_snapshot_id(id)
        .source_region("us-east-1")
        .send()
        .await
        .expect_err("cannot copy an unshared snapshot");
    assert_eq!(code(&err), "InvalidSnapshot.NotFound");

    // Shared, then unshared again: invisible once more.
    let share = |add| set_share(&member_ec2, id, &env.seeded.forensic.account, add);
    share(true).await.expect("share");
    forensic_ec2
        .describe_snapshots()
        .snapshot_ids(id)
        .send()
        .await
        .expect("visible once shared");
    share(false).await.expect("unshare");
    let err = forensic_ec2
        .describe_snapshots()
        .snapshot_ids(id)
        .send()
        .await
        .expect_err("unshared");
    assert_eq!(code(&err), "InvalidSnapshot.NotFound");
}

#[tokio::test]
async fn a_copy_to_a_key_that_does_not_exist_or_is_not_shared_ends_in_error() {
    let mut toml = world_toml("ev-badkey", &THREE_VOLUMES[2..3]);
    toml = toml.replace(
        "external_id = \"ext-2026-forensnap\"",
        "external_id = \"ext-2026-forensnap\"\ncmk_usable_by_forensic = false",
    );
    let env = Env::new(&toml);
    let member_ec2 = aws_sdk_ec2::Client::new(&env.member().await);
    let forensic_ec2 = aws_sdk_ec2::Client::new(&env.forensic().await);
    let snapshot_id = member_snapshot(
        &env,
        &aws_sdk_ec2::Client::new(&env.member_admin().await),
        0,
    )
    .await;
    let id = snapshot_id.as_str().to_string();

    // A key id that names no key: the copy is accepted and then fails, as in AWS.
    let missing = "arn:aws:kms:us-east-1:111111111111:key/00000000-0000-0000-0000-000000000000";
    let copy = member_ec2
        .copy_snapshot()
        .source_snapshot_id(&id)
        .source_region("us-east-1")
        .encrypted(true)
        .kms_key_id(missing)
        .send()
        .await
        .expect("accepted");
    let copy = wait_snapshot(&member_ec2, copy.snapshot_id().expect("id")).await;
    assert_eq!(copy.state(), Some(&SnapshotState::Error));
    assert!(
        copy.state_message()
            .unwrap_or_default()
            .contains("not accessible"),
        "{copy:?}"
    );

    // A malformed key reference is refused at once.
    let err = member_ec2
        .copy_snapshot()
        .source_snapshot_id(&id)
        .source_region("us-east-1")
        .encrypted(true)
        .kms_key_id("not a key")
        .send()
        .await
        .expect_err("malformed key");
    assert_eq!(code(&err), "InvalidParameterValue");

    // The member CMK's policy does not admit the forensic account: its copy fails.
    set_share(&member_ec2, &id, &env.seeded.forensic.account, true)
        .await
        .expect("share a CMK snapshot");
    let copy = forensic_ec2
        .copy_snapshot()
        .source_snapshot_id(&id)
        .source_region("us-east-1")
        .encrypted(true)
        .kms_key_id(&env.seeded.forensic.ebs_key_arn)
        .send()
        .await
        .expect("accepted");
    let copy = wait_snapshot(&forensic_ec2, copy.snapshot_id().expect("id")).await;
    assert_eq!(copy.state(), Some(&SnapshotState::Error));
    assert!(
        copy.state_message()
            .unwrap_or_default()
            .contains("does not let account 123456789012"),
        "{copy:?}"
    );
}

#[tokio::test]
async fn snapshots_stay_pending_with_progress_and_copies_are_limited_to_twenty() {
    let env = Env::new(&world_toml("ev-pending", &THREE_VOLUMES[1..2]));
    let member_ec2 = aws_sdk_ec2::Client::new(&env.member().await);
    // Timings stay well inside the member session's hour, which the world clock also ages.
    env.world
        .set_settings(localworld::Settings {
            snapshot_seconds: 600.0,
            copy_seconds: 600.0,
        })
        .expect("settings");
    let id = member_snapshot(
        &env,
        &aws_sdk_ec2::Client::new(&env.member_admin().await),
        0,
    )
    .await;
    let described = member_ec2
        .describe_snapshots()
        .snapshot_ids(&id)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        described.snapshots()[0].state(),
        Some(&SnapshotState::Pending)
    );
    assert_eq!(described.snapshots()[0].progress(), Some("0%"));

    // A pending snapshot cannot be copied, nor read.
    let err = member_ec2
        .copy_snapshot()
        .source_snapshot_id(&id)
        .source_region("us-east-1")
        .send()
        .await
        .expect_err("pending");
    assert_eq!(code(&err), "IncorrectState");
    // (As the member's administrator: forensnap's member role never reads blocks.)
    let err = ebs_no_retry(&env.member_admin().await)
        .list_snapshot_blocks()
        .snapshot_id(&id)
        .send()
        .await
        .expect_err("pending");
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ValidationException")
    );

    env.world.advance_clock(300).expect("clock");
    let described = member_ec2
        .describe_snapshots()
        .snapshot_ids(&id)
        .send()
        .await
        .expect("describe");
    assert_eq!(described.snapshots()[0].progress(), Some("50%"));
    env.world.advance_clock(300).expect("clock");
    let done = wait_snapshot(&member_ec2, &id).await;
    assert_eq!(done.state(), Some(&SnapshotState::Completed));
    assert_eq!(done.progress(), Some("100%"));

    // Twenty copies may be in flight; the twenty-first is refused until one completes.
    for n in 0..20 {
        member_ec2
            .copy_snapshot()
            .source_snapshot_id(&id)
            .source_region("us-east-1")
            .send()
            .await
            .unwrap_or_else(|e| panic!("copy {n}: {e:?}"));
    }
    let err = member_ec2
        .copy_snapshot()
        .source_snapshot_id(&id)
        .source_region("us-east-1")
        .send()
        .await
        .expect_err("21st copy");
    assert_eq!(code(&err), "ResourceLimitExceeded");
    env.world.advance_clock(600).expect("clock");
    member_ec2
        .copy_snapshot()
        .source_snapshot_id(&id)
        .source_region("us-east-1")
        .send()
        .await
        .expect("copies completed");
}
