//! The EBS direct APIs of the local world: 512 KiB blocks, paging by MaxResults, NextToken and
//! StartingBlockIndex, tokens that expire, 404/400/403 errors the SDK does not retry.

use aws_sdk_ebs::error::ProvideErrorMetadata;
use forensnap_tests::*;

fn world() -> String {
    world_toml(
        "ev-ebs",
        &[
            "device = \"/dev/xvda\"\nimage = \"many.img\"\nbuild = { kind = \"pattern\", blocks = 250, offset_blocks = 3 }",
            "device = \"/dev/xvdf\"\nimage = \"last.img\"\nsize_gib = 1\nbuild = { kind = \"pattern\", blocks = 1, offset_blocks = 2047 }",
        ],
    )
}

#[tokio::test]
async fn a_volume_larger_than_one_page_reads_back_whole_through_paging() {
    let env = Env::new(&world());
    let volume = env.seeded.member().instances[0].volumes[0].clone();
    let snapshot = forensic_copy(&env, 0).await;
    let ebs = aws_sdk_ebs::Client::new(&env.forensic().await);
    let back = read_snapshot(&ebs, &snapshot, 100).await;
    assert_eq!(back.pages, 3, "250 blocks at 100 a page");
    assert_eq!(back.indexes, (3..253).collect::<Vec<_>>());
    assert_eq!(back.sha256, volume.image_sha256);

    // StartingBlockIndex skips ahead; the first listed block is the first data block at or after it.
    let page = ebs
        .list_snapshot_blocks()
        .snapshot_id(&snapshot)
        .starting_block_index(200)
        .max_results(100)
        .send()
        .await
        .expect("list from 200");
    let first: Vec<_> = page
        .blocks()
        .iter()
        .filter_map(|b| b.block_index())
        .collect();
    assert_eq!(first, (200..253).collect::<Vec<_>>());
    assert!(page.next_token().is_none());
    assert!(page.expiry_time().is_some());
}

#[tokio::test]
async fn a_volume_with_data_only_in_its_last_block() {
    let env = Env::new(&world());
    let volume = env.seeded.member().instances[0].volumes[1].clone();
    let snapshot = forensic_copy(&env, 1).await;
    let ebs = aws_sdk_ebs::Client::new(&env.forensic().await);
    let back = read_snapshot(&ebs, &snapshot, 10_000).await;
    assert_eq!(back.indexes, vec![2047]);
    assert_eq!(back.pages, 1);
    assert_eq!(back.sha256, volume.image_sha256);
    assert_eq!(back.sha256, sha256_file(&volume.image, 1 << 30));
}

#[tokio::test]
async fn errors_are_404_and_400_and_403_not_500() {
    let env = Env::new(&world());
    let snapshot = forensic_copy(&env, 0).await;
    let ebs = ebs_no_retry(&env.forensic().await);

    let err = ebs
        .list_snapshot_blocks()
        .snapshot_id("snap-0000000000000000f")
        .send()
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));

    let err = ebs
        .list_snapshot_blocks()
        .snapshot_id(&snapshot)
        .max_results(50)
        .send()
        .await
        .expect_err("MaxResults");
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));

    let page = ebs
        .list_snapshot_blocks()
        .snapshot_id(&snapshot)
        .max_results(100)
        .send()
        .await
        .expect("list");
    let token = page.blocks()[0].block_token().expect("token").to_string();
    let err = ebs
        .get_snapshot_block()
        .snapshot_id(&snapshot)
        .block_index(4)
        .block_token(&token)
        .send()
        .await
        .expect_err("token of another block");
    assert_eq!(err.code(), Some("ValidationException"));
    let err = ebs
        .get_snapshot_block()
        .snapshot_id(&snapshot)
        .block_index(5_000_000)
        .block_token(&token)
        .send()
        .await
        .expect_err("outside the volume");
    assert_eq!(err.code(), Some("ValidationException"));

    // Merely shared with the forensic account: readable only after a copy.
    let member = aws_sdk_ec2::Client::new(&env.member().await);
    // (Made by the member's administrator: forensnap's member role snapshots with
    // CreateSnapshots and is granted nothing else.)
    let shared = aws_sdk_ec2::Client::new(&env.member_admin().await)
        .create_snapshot()
        .volume_id(&env.seeded.member().instances[0].volumes[1].volume_id)
        .send()
        .await
        .expect("snapshot");
    set_share(
        &member,
        shared.snapshot_id().expect("id"),
        &env.seeded.forensic.account,
        true,
    )
    .await
    .expect("share");
    let err = ebs
        .list_snapshot_blocks()
        .snapshot_id(shared.snapshot_id().expect("id"))
        .send()
        .await
        .expect_err("shared, not owned");
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
}

#[tokio::test]
async fn a_next_token_lives_sixty_minutes() {
    let env = Env::new(&world());
    let snapshot = forensic_copy(&env, 0).await;
    let ebs = ebs_no_retry(&env.forensic().await);
    let page = ebs
        .list_snapshot_blocks()
        .snapshot_id(&snapshot)
        .max_results(100)
        .send()
        .await
        .expect("list");
    let token = page.next_token().expect("more pages").to_string();
    ebs.list_snapshot_blocks()
        .snapshot_id(&snapshot)
        .max_results(100)
        .next_token(&token)
        .send()
        .await
        .expect("fresh token");
    env.world.advance_clock(3601).expect("clock");
    let err = ebs
        .list_snapshot_blocks()
        .snapshot_id(&snapshot)
        .max_results(100)
        .next_token(&token)
        .send()
        .await
        .expect_err("expired token");
    assert_eq!(err.code(), Some("ValidationException"));
    // Resuming from a saved block index still works.
    let resumed = ebs
        .list_snapshot_blocks()
        .snapshot_id(&snapshot)
        .max_results(100)
        .starting_block_index(103)
        .send()
        .await
        .expect("resume by index");
    assert_eq!(resumed.blocks()[0].block_index(), Some(103));
}
