//! Memory capture's lower half end to end against the local AWS world (issue 15, in progress):
//! the evidence store hands an upload off through presigned part URLs, forensnap's SSM document
//! (from `member-role.yaml`, its hash pinned on SendCommand) runs on the world's stand-in host
//! with the pinned stand-in AVML, and what arrives in S3 is what the host hashed: a LiME image
//! holding the planted strings. Everything goes through the SDK adapters (`SdkSsm`, `S3Store`)
//! over HTTP, as the member role and the collector role, with the templates' policies on.

use std::collections::BTreeMap;
use std::time::Duration;

use forensnap_core::memory::{TransferPlan, host_report, lime_ranges, parts_for};
use forensnap_ports::Ssm;
use forensnap_store::{EvidenceRead, EvidenceWrite, Handoff};
use forensnap_tests::*;

const DOCUMENT: &str = "ForensnapCaptureMemory";
const PART: u64 = 16 << 20;

fn memory_world(prefix: &str) -> Env {
    let toml = world_toml(
        prefix,
        &[
            "device = \"/dev/xvda\"\nimage = \"root.img\"\nencryption = \"none\"\nbuild = { kind = \"pattern\", blocks = 2, offset_blocks = 0 }",
        ],
    );
    Env::new(&toml.replace("name = \"web-1\"\n", "name = \"web-1\"\nmemory_mib = 40\n"))
}

/// The store and SSM adapters forensnap builds: the collector's evidence store and the member
/// account's SSM through the case session.
async fn adapters(env: &Env) -> (forensnap_aws::S3Store, forensnap_aws::SdkSsm) {
    let store = forensnap_aws::S3Store::new(
        s3(&env.forensic().await),
        &env.seeded.forensic.evidence_bucket,
        false,
    );
    let member = env.member().await;
    let ec2 = aws_sdk_ec2::Client::new(&member);
    (store, forensnap_aws::SdkSsm::new(&member, ec2))
}

struct Capture {
    key: String,
    upload_id: String,
    parameters: BTreeMap<String, String>,
}

/// What forensnap prepares for a capture: the handed-off upload, the plan of part URLs stored
/// beside it, and the presigned reads of the plan and the pinned AVML.
async fn prepare(env: &Env, store: &forensnap_aws::S3Store, case: &str, parts: u32) -> Capture {
    let instance = &env.seeded.member().instances[0].instance_id;
    let prefix = format!("cases/{case}/evidence/{instance}-memory");
    let key = format!("{prefix}/data/memory.lime");
    let upload_id = store.open_handoff(&key).await.expect("upload");
    let expires = Duration::from_secs(900);
    let mut urls = Vec::new();
    for n in 1..=parts {
        urls.push(
            store
                .presign_part(&key, &upload_id, n, expires)
                .await
                .expect("presign"),
        );
    }
    let plan = TransferPlan::new(PART, urls);
    let plan_key = format!("{prefix}/transfer/plan.json");
    store
        .put_new(
            &plan_key,
            serde_json::to_vec(&plan).expect("json"),
            "application/json",
        )
        .await
        .expect("plan");
    let forensic = &env.seeded.forensic;
    let avml_key = forensic
        .avml_key
        .clone()
        .expect("the seed pins an AVML build");
    let parameters = BTreeMap::from([
        (
            "AvmlUrl".to_string(),
            store
                .presign_get(&avml_key, expires)
                .await
                .expect("avml url"),
        ),
        (
            "AvmlSha256".to_string(),
            forensic.avml_sha256.clone().expect("its sha256"),
        ),
        (
            "PlanUrl".to_string(),
            store
                .presign_get(&plan_key, expires)
                .await
                .expect("plan url"),
        ),
    ]);
    Capture {
        key,
        upload_id,
        parameters,
    }
}

async fn run(
    ssm: &forensnap_aws::SdkSsm,
    instance: &str,
    parameters: &BTreeMap<String, String>,
) -> forensnap_ports::Invocation {
    let document = ssm.document(DOCUMENT).await.expect("describe the document");
    let command = ssm
        .send_command(
            DOCUMENT,
            document.hash.as_deref(),
            instance,
            parameters,
            600,
            "IR-MEM/memory",
        )
        .await
        .expect("send");
    for _ in 0..600 {
        let invocation = ssm
            .invocation(&command.value, instance)
            .await
            .expect("invocation");
        if invocation.is_done() {
            return invocation;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the command did not end in 60 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_streams_memory_through_presigned_parts_and_s3_holds_what_it_hashed() {
    let env = memory_world("mem-ok");
    let instance = env.seeded.member().instances[0].instance_id.clone();
    let (store, ssm) = adapters(&env).await;
    let managed = ssm
        .instance_information(&instance)
        .await
        .expect("info")
        .expect("managed");
    assert_eq!(
        (
            managed.ping_status.as_str(),
            managed.platform_type.as_deref()
        ),
        ("Online", Some("Linux"))
    );
    let mib = ssm.memory_mib("t3.micro").await.expect("instance type");
    assert_eq!(mib, 1024);
    let parts = parts_for(40, PART);
    let capture = prepare(&env, &store, "IR-MEM-1", parts).await;
    let invocation = run(&ssm, &instance, &capture.parameters).await;
    assert_eq!(invocation.status, "Success", "{}", invocation.stderr);
    let report = host_report(&invocation.stdout).expect("the host's report line");
    assert_eq!(
        report.avml_sha256,
        env.seeded.forensic.avml_sha256.clone().expect("pinned")
    );
    // The host was given no credentials: its command names only presigned URLs and a hash.
    let sent = env.world.ssm_commands().expect("commands");
    let text = format!("{sent:?}");
    assert!(
        !text.contains(&env.seeded.forensic.secret_access_key),
        "a secret reached the host"
    );
    assert!(
        !text.contains("AWS_SECRET_ACCESS_KEY") && !text.contains("aws_secret"),
        "{text}"
    );

    // Completed from what S3 holds, then hashed by forensnap itself.
    let stored = store
        .handoff_parts(&capture.key, &capture.upload_id)
        .await
        .expect("parts");
    assert_eq!(stored.len() as u32, report.parts);
    store
        .complete_handoff(&capture.key, &capture.upload_id, &stored)
        .await
        .expect("complete");
    let image = store
        .get(&capture.key)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(image.len() as u64, report.bytes);
    assert_eq!(
        sha256_hex(&image),
        report.sha256,
        "the host's hash and S3's bytes agree"
    );
    let ranges = lime_ranges(image.len() as u64, |offset| {
        image
            .get(offset as usize..offset as usize + 32)
            .map(|s| s.try_into().expect("32"))
    })
    .expect("a LiME image");
    assert!(ranges.len() >= 2, "{ranges:?}");
    let needle = format!("FORENSNAP-PLANTED-{instance}-3");
    assert!(
        image.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "planted string missing"
    );
    assert_locked(
        &s3(&env.forensic().await),
        &env.seeded.forensic.evidence_bucket,
        &capture.key,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_avml_an_unreachable_agent_and_a_truncated_upload_are_each_told_apart() {
    let env = memory_world("mem-faults");
    let instance = env.seeded.member().instances[0].instance_id.clone();
    let (store, ssm) = adapters(&env).await;
    let parts = parts_for(40, PART);

    // An AVML build whose hash is not the pinned one is refused on the host (exit 3).
    let mut capture = prepare(&env, &store, "IR-MEM-2", parts).await;
    capture
        .parameters
        .insert("AvmlSha256".into(), "0".repeat(64));
    let refused = run(&ssm, &instance, &capture.parameters).await;
    assert_eq!(
        (refused.status.as_str(), refused.response_code),
        ("Failed", Some(3)),
        "{}",
        refused.stderr
    );
    assert!(host_report(&refused.stdout).is_none());

    // A truncated upload: the host's hash is of the whole image, S3 holds less.
    env.world
        .set_ssm_behaviour(&instance, "truncate")
        .expect("fault");
    let capture = prepare(&env, &store, "IR-MEM-3", parts).await;
    let invocation = run(&ssm, &instance, &capture.parameters).await;
    let report = host_report(&invocation.stdout).expect("the host reports");
    let stored = store
        .handoff_parts(&capture.key, &capture.upload_id)
        .await
        .expect("parts");
    store
        .complete_handoff(&capture.key, &capture.upload_id, &stored)
        .await
        .expect("complete");
    let image = store
        .get(&capture.key)
        .await
        .expect("read")
        .expect("stored");
    assert_ne!(
        sha256_hex(&image),
        report.sha256,
        "the two hashes tell the truncation"
    );

    // An agent that is not reachable shows as such before any command is sent.
    env.world
        .set_ssm_behaviour(&instance, "unreachable")
        .expect("fault");
    let managed = ssm.instance_information(&instance).await.expect("info");
    assert_ne!(managed.map(|m| m.ping_status).as_deref(), Some("Online"));
}
