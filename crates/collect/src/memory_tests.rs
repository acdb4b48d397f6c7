//! Memory capture on in-memory doubles: a scripted SSM whose "host" reads the plan from the
//! transfer store and stores the parts of a LiME image through the evidence store's part URLs,
//! and the memory stores. Time is paused: waiting out a hung command is virtual.

use std::sync::Mutex;

use forensnap_core::CaseId;
use forensnap_core::memory::LIME_MAGIC;
use forensnap_ports::{Called, CloudError, DocumentInfo, ManagedInstance};
use forensnap_store::{EvidenceRead, MemoryStore};

use super::*;

const INSTANCE: &str = "i-0123456789abcdef0";

/// What the scripted host does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Host {
    /// Captures, uploads every part, reports the truth.
    Normal,
    /// The agent is ConnectionLost.
    Unreachable,
    /// The command never ends.
    Hang,
    /// Only the first part reaches S3; the host reports the whole image.
    Truncate,
    /// The host refuses the AVML build (exit 3).
    WrongAvml,
    /// Every part arrives, one byte of the last altered on the way; the host reports the truth.
    Altered,
    /// No SSM agent has ever registered the instance.
    NotManaged,
    /// SendCommand is refused.
    Refused,
    /// The command succeeds without forensnap's report line (another document's output).
    Silent,
}

pub(crate) struct ScriptedSsm {
    host: Mutex<Host>,
    evidence: MemoryStore,
    transfer: MemoryStore,
    image: Vec<u8>,
    sent: Mutex<Vec<BTreeMap<String, String>>>,
    comments: Mutex<Vec<String>>,
    invocations: Mutex<BTreeMap<String, Invocation>>,
}

/// A LiME image of two ranges with a planted string.
fn lime_image() -> Vec<u8> {
    let mut out = Vec::new();
    for (start, end) in [(0u64, 0x2_ffff_u64), (0x10_0000, 0x10_ffff)] {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(&LIME_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[8..16].copy_from_slice(&start.to_le_bytes());
        h[16..24].copy_from_slice(&end.to_le_bytes());
        out.extend_from_slice(&h);
        let mut data = vec![0x5Au8; (end - start + 1) as usize];
        data[100..118].copy_from_slice(b"FORENSNAP-PLANTED!");
        out.extend_from_slice(&data);
    }
    out
}

impl ScriptedSsm {
    pub(crate) fn new(host: Host, evidence: &MemoryStore, transfer: &MemoryStore) -> ScriptedSsm {
        ScriptedSsm {
            host: Mutex::new(host),
            evidence: evidence.clone(),
            transfer: transfer.clone(),
            image: lime_image(),
            sent: Mutex::new(Vec::new()),
            comments: Mutex::new(Vec::new()),
            invocations: Mutex::new(BTreeMap::new()),
        }
    }

    fn host(&self) -> Host {
        *self.host.lock().expect("lock")
    }

    fn sent(&self) -> Vec<BTreeMap<String, String>> {
        self.sent.lock().expect("lock").clone()
    }

    /// The host's run of the document: plan, parts, report.
    async fn run(&self, parameters: &BTreeMap<String, String>) -> Invocation {
        let done = |status: &str, code: i64, stdout: String, stderr: &str| Invocation {
            status: status.into(),
            response_code: Some(code),
            stdout,
            stderr: stderr.into(),
            started: Some("2026-12-02T06:00:00Z".into()),
            ended: Some("2026-12-02T06:01:00Z".into()),
        };
        match self.host() {
            Host::Hang => {
                return Invocation {
                    status: "InProgress".into(),
                    response_code: Some(-1),
                    stdout: String::new(),
                    stderr: String::new(),
                    started: None,
                    ended: None,
                };
            }
            Host::Silent => return done("Success", 0, "hello\n".into(), ""),
            Host::WrongAvml => {
                return done(
                    "Failed",
                    3,
                    String::new(),
                    "forensnap-memory: AVML's SHA-256 is not the pinned one",
                );
            }
            _ => {}
        }
        let plan_key = parameters["PlanUrl"]
            .strip_prefix("memory:get:")
            .expect("a transfer URL");
        let plan: TransferPlan = serde_json::from_slice(
            &self
                .transfer
                .get(plan_key)
                .await
                .expect("read")
                .expect("the plan is there"),
        )
        .expect("plan");
        let chunks: Vec<&[u8]> = self.image.chunks(plan.part_bytes as usize).collect();
        assert!(
            chunks.len() <= plan.parts.len(),
            "the plan has room for the image"
        );
        for (i, chunk) in chunks.iter().enumerate() {
            if self.host() == Host::Truncate && i > 0 {
                continue;
            }
            let mut bytes = chunk.to_vec();
            if self.host() == Host::Altered && i + 1 == chunks.len() {
                bytes[0] ^= 0xff;
            }
            self.evidence
                .put_part_url(&plan.parts[i].url, bytes)
                .await
                .expect("part stored");
        }
        let sha = hex::encode(Sha256::digest(&self.image));
        let avml = parameters["AvmlSha256"].clone();
        done(
            "Success",
            0,
            format!(
                "forensnap-memory sha256={sha} bytes={} parts={} avml_sha256={avml}\n",
                self.image.len(),
                chunks.len()
            ),
            "avml: done\n",
        )
    }
}

impl Ssm for ScriptedSsm {
    async fn instance_information(&self, _: &str) -> Result<Option<ManagedInstance>, CloudError> {
        if self.host() == Host::NotManaged {
            return Ok(None);
        }
        let ping = if self.host() == Host::Unreachable {
            "ConnectionLost"
        } else {
            "Online"
        };
        Ok(Some(ManagedInstance {
            ping_status: ping.into(),
            platform_type: Some("Linux".into()),
            agent_version: Some("3.3".into()),
        }))
    }

    async fn memory_mib(&self, instance_type: &str) -> Result<u64, CloudError> {
        assert_eq!(instance_type, "t3.micro");
        Ok(1)
    }

    async fn document(&self, _: &str) -> Result<DocumentInfo, CloudError> {
        Ok(DocumentInfo {
            version: Some("1".into()),
            hash: Some("d0c".repeat(21) + "d"),
        })
    }

    async fn send_command(
        &self,
        _: &str,
        hash: Option<&str>,
        _: &str,
        parameters: &BTreeMap<String, String>,
        _: u32,
        comment: &str,
    ) -> Result<Called<String>, CloudError> {
        assert!(hash.is_some(), "the document's hash is pinned");
        if self.host() == Host::Refused {
            return Err(CloudError::new(
                forensnap_store::ErrorKind::Denied,
                "SendCommand",
                "AccessDeniedException: not authorized to perform ssm:SendCommand",
            ));
        }
        let id = {
            let mut sent = self.sent.lock().expect("lock");
            sent.push(parameters.clone());
            self.comments
                .lock()
                .expect("lock")
                .push(comment.to_string());
            format!("cmd-{}", sent.len())
        };
        let invocation = self.run(parameters).await;
        self.invocations
            .lock()
            .expect("lock")
            .insert(id.clone(), invocation);
        Ok(Called::new(id, Some("req-ssm".into())))
    }

    async fn invocation(&self, command_id: &str, _: &str) -> Result<Invocation, CloudError> {
        Ok(self.invocations.lock().expect("lock")[command_id].clone())
    }
}

fn plan() -> MemoryPlan {
    plan_for(INSTANCE)
}

pub(crate) fn plan_for(instance: &str) -> MemoryPlan {
    MemoryPlan {
        forensic_account: "123456789012".into(),
        account: "111111111111".into(),
        region: "us-east-1".into(),
        instance_id: instance.into(),
        document: "ForensnapCaptureMemory".into(),
        document_sha256: None,
        avml_key: "tools/avml".into(),
        avml_sha256: "ab".repeat(32),
        timeout_seconds: 600,
        part_bytes: 64 << 10,
        url_lifetime: Duration::from_secs(3600),
        poll: Duration::from_secs(2),
        comment: None,
        tool: "forensnap test".into(),
    }
}

fn target() -> MemoryTarget {
    MemoryTarget {
        instance_type: Some("t3.micro".into()),
        platform: None,
    }
}

async fn custody(bucket: &MemoryStore) -> Custody<MemoryStore> {
    let (_, _, actor) = forensnap_preserve::fake::accounts(&Default::default());
    let case = CaseId::parse("MEM-1").expect("case");
    Custody::open(bucket.clone(), "", &case, actor, None)
        .await
        .expect("custody")
}

fn signer() -> forensnap_core::seal::MemorySigner {
    forensnap_core::seal::MemorySigner::from_seed(9, "arn:aws:kms:us-east-1:123456789012:key/test")
}

/// A bucket, a transfer bucket, the case's custody in the bucket and a host answering as `host`.
struct Fixture {
    evidence: MemoryStore,
    transfer: MemoryStore,
    custody: Custody<MemoryStore>,
    ssm: ScriptedSsm,
}

impl Fixture {
    async fn new(host: Host) -> Fixture {
        let (evidence, transfer) = (MemoryStore::new(), MemoryStore::new());
        Fixture {
            custody: custody(&evidence).await,
            ssm: ScriptedSsm::new(host, &evidence, &transfer),
            evidence,
            transfer,
        }
    }
}

/// One capture of [`plan`] with `target`.
async fn capture(
    ssm: &ScriptedSsm,
    evidence: &MemoryStore,
    transfer: &MemoryStore,
    custody: &Custody<MemoryStore>,
    target: &MemoryTarget,
) -> Result<MemoryItem, MemoryError> {
    capture_memory(&plan(), target, ssm, evidence, transfer, custody, &signer()).await
}

/// No upload left open in the evidence bucket, no plan left in the transfer bucket.
async fn nothing_left(evidence: &MemoryStore, transfer: &MemoryStore, case: impl std::fmt::Debug) {
    let open = evidence.pending_uploads("").await.expect("uploads");
    assert!(open.is_empty(), "{case:?}: uploads left open: {open:?}");
    let plans = transfer.list("").await.expect("list");
    assert!(plans.is_empty(), "{case:?}: plans left behind: {plans:?}");
}

async fn actions(custody: &Custody<MemoryStore>) -> Vec<(String, Outcome)> {
    custody
        .events()
        .await
        .iter()
        .map(|e| (e.action.as_str().to_string(), e.outcome))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_capture_is_stored_hashed_twice_sealed_and_its_plan_deleted() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Normal).await;
    let item = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect("captured");
    let image = lime_image();
    assert_eq!(item.id, format!("memory-{INSTANCE}"));
    assert_eq!(
        item.summary.host_sha256,
        hex::encode(Sha256::digest(&image))
    );
    assert_eq!(item.summary.image_sha256, item.summary.host_sha256);
    assert_eq!(item.summary.bytes, image.len() as u64);
    assert_eq!(item.summary.lime_ranges, 2);
    let paths: Vec<&str> = item.bag.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "data/command.json",
            "data/memory.lime",
            "data/stderr.txt",
            "data/stdout.txt"
        ]
    );
    let key = format!("cases/MEM-1/evidence/memory-{INSTANCE}/data/memory.lime");
    assert_eq!(evidence.get(&key).await.expect("get"), Some(image));
    // The plan is gone from the transfer bucket, and was never in the evidence bucket.
    assert!(transfer.list("").await.expect("list").is_empty());
    assert!(
        evidence
            .list("")
            .await
            .expect("list")
            .iter()
            .all(|k| !k.contains("memory/"))
    );
    let names: Vec<String> = actions(&custody)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        names,
        [
            "memory.capture-requested",
            "memory.command-sent",
            "memory.captured",
            "evidence.sealed"
        ]
    );
    // The command names no case and carries URLs and a hash, nothing else.
    let sent = ssm.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].keys().map(String::as_str).collect::<Vec<_>>(),
        ["AvmlSha256", "AvmlUrl", "PlanUrl"]
    );
    assert!(!format!("{sent:?}").contains("MEM-1"), "{sent:?}");
    assert_eq!(ssm.comments.lock().expect("lock").as_slice(), [""]);

    // Again: found sealed, nothing sent.
    let again = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect("found");
    assert_eq!(again.summary, item.summary);
    assert_eq!(ssm.sent().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_agent_is_named_recorded_and_nothing_is_sent() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Unreachable).await;
    let err = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect_err("unreachable");
    assert_eq!(err.step, "reach the SSM agent");
    assert!(
        err.to_string().contains(INSTANCE) && err.to_string().contains("ConnectionLost"),
        "{err}"
    );
    assert!(ssm.sent().is_empty());
    assert_eq!(
        actions(&custody).await,
        [("memory.captured".to_string(), Outcome::Failed)]
    );
    nothing_left(&evidence, &transfer, "unreachable").await;
}

#[tokio::test(start_paused = true)]
async fn windows_is_refused_before_anything_is_sent() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Normal).await;
    let windows = MemoryTarget {
        platform: Some("windows".into()),
        ..target()
    };
    let err = capture(&ssm, &evidence, &transfer, &custody, &windows)
        .await
        .expect_err("windows");
    assert!(err.to_string().contains("WinPmem"), "{err}");
    assert!(ssm.sent().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_truncated_upload_is_a_named_mismatch_and_the_next_capture_is_a_new_item() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Truncate).await;
    let err = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect_err("truncated");
    assert_eq!(err.step, "complete the image");
    assert!(err.to_string().contains("S3 holds parts [1]"), "{err}");
    nothing_left(&evidence, &transfer, "truncated").await;

    *ssm.host.lock().expect("lock") = Host::Normal;
    let item = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect("captured");
    assert_eq!(item.id, format!("memory-{INSTANCE}-2"));
    assert_eq!(ssm.sent().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_hung_command_is_waited_out_and_its_upload_aborted() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Hang).await;
    let started = tokio::time::Instant::now();
    let err = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect_err("hung");
    assert_eq!(err.step, "follow the capture command");
    assert!(started.elapsed() >= Duration::from_secs(600) + WAIT_SLACK);
    nothing_left(&evidence, &transfer, "hung").await;
    let recorded = actions(&custody).await;
    assert!(
        recorded.contains(&("upload.aborted".to_string(), Outcome::Ok)),
        "{recorded:?}"
    );
    assert_eq!(
        recorded.last(),
        Some(&("memory.captured".to_string(), Outcome::Failed))
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_avml_build_is_named_with_its_exit_code() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::WrongAvml).await;
    let err = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("not the pinned one"), "{err}");
    assert!(err.next.contains("memory.avml_sha256"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_run_killed_after_the_command_was_sent_is_finished_without_a_second_command() {
    let (evidence, transfer) = (MemoryStore::new(), MemoryStore::new());
    let custody_a = custody(&evidence).await;
    let ssm = ScriptedSsm::new(Host::Normal, &evidence, &transfer);
    // The first run dies as it stores the host's output (after memory.command-sent).
    let (dying, died) = evidence.dying_when(|key, _| key.ends_with("data/stdout.txt"));
    let custody_dying = custody(&dying).await;
    let (p, t, g) = (plan(), target(), signer());
    tokio::select! {
        _ = capture_memory(&p, &t, &ssm, &dying, &transfer, &custody_dying, &g) => {
            panic!("the run should have died")
        }
        _ = died.notified() => {}
    }
    let _ = custody_a;
    let custody_b = custody(&evidence).await;
    let item = capture_memory(
        &plan(),
        &target(),
        &ssm,
        &evidence,
        &transfer,
        &custody_b,
        &signer(),
    )
    .await
    .expect("finished");
    assert_eq!(ssm.sent().len(), 1, "one command");
    assert_eq!(
        item.summary.image_sha256,
        hex::encode(Sha256::digest(lime_image()))
    );
    let names: Vec<String> = actions(&custody_b)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        names.iter().filter(|a| *a == "memory.captured").count(),
        1,
        "{names:?}"
    );
}

#[test]
fn attempts_are_numbered_from_the_second() {
    assert_eq!(item_id("i-1", 1), "memory-i-1");
    assert_eq!(item_id("i-1", 3), "memory-i-1-3");
}

#[tokio::test(start_paused = true)]
async fn an_image_altered_on_the_way_is_sealed_as_found_named_and_not_taken_for_the_evidence() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Altered).await;
    let err = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect_err("altered");
    assert_eq!(err.step, "compare the host's hash with S3's");
    let prefix = format!("cases/MEM-1/evidence/memory-{INSTANCE}/");
    let bag = item::sealed(&evidence, &prefix)
        .await
        .expect("read")
        .expect("sealed as found");
    assert!(bag.files.iter().any(|(p, _)| p == IMAGE_PATH));
    let recorded = actions(&custody).await;
    assert!(
        recorded.contains(&("memory.captured".to_string(), Outcome::Failed)),
        "{recorded:?}"
    );
    assert!(
        recorded.contains(&("evidence.sealed".to_string(), Outcome::Ok)),
        "{recorded:?}"
    );

    // The next capture is a new item; the altered one is not returned as the memory evidence.
    *ssm.host.lock().expect("lock") = Host::Normal;
    let item = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect("captured");
    assert_eq!(item.id, format!("memory-{INSTANCE}-2"));
    assert_eq!(item.summary.host_sha256, item.summary.image_sha256);
}

#[tokio::test(start_paused = true)]
async fn a_failed_command_leaves_no_half_written_item() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Truncate).await;
    capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect_err("truncated");
    let under_item: Vec<String> = evidence
        .list(&format!("cases/MEM-1/evidence/memory-{INSTANCE}/"))
        .await
        .expect("list");
    assert_eq!(
        under_item,
        Vec::<String>::new(),
        "nothing of the failed capture"
    );
}

#[tokio::test(start_paused = true)]
async fn every_refusal_before_the_capture_names_its_step_and_leaves_nothing_open() {
    let document_hash = "d0c".repeat(21) + "d";
    let pinned_elsewhere = MemoryPlan {
        document_sha256: Some("0".repeat(64)),
        ..plan()
    };
    for (host, plan, step, named) in [
        (
            Host::NotManaged,
            plan(),
            "reach the SSM agent",
            "not a managed instance",
        ),
        (
            Host::Normal,
            pinned_elsewhere,
            "check the document",
            document_hash.as_str(),
        ),
        (
            Host::Refused,
            plan(),
            "send the capture command",
            "ssm:SendCommand",
        ),
        (
            Host::Silent,
            plan(),
            "read the host's report",
            "no `forensnap-memory sha256=...` line",
        ),
    ] {
        let Fixture {
            evidence,
            transfer,
            custody,
            ssm,
        } = Fixture::new(host).await;
        let err = capture_memory(
            &plan,
            &target(),
            &ssm,
            &evidence,
            &transfer,
            &custody,
            &signer(),
        )
        .await
        .expect_err("refused");
        assert_eq!(err.step, step, "{host:?}: {err}");
        assert!(err.to_string().contains(named), "{host:?}: {err}");
        assert!(
            err.to_string().contains(INSTANCE) && !err.next.is_empty(),
            "{host:?}: {err}"
        );
        nothing_left(&evidence, &transfer, host).await;
        let recorded = actions(&custody).await;
        assert_eq!(
            recorded.last(),
            Some(&("memory.captured".to_string(), Outcome::Failed)),
            "{host:?}: {recorded:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_altered_image_found_by_a_run_that_stopped_before_sealing_it_is_sealed_by_the_next() {
    let Fixture {
        evidence,
        transfer,
        custody,
        ssm,
    } = Fixture::new(Host::Altered).await;
    // The first run dies as it seals the bag (after the failed memory.captured).
    let (dying, died) = evidence.dying_when(|key, _| key.ends_with("bag-info.txt"));
    let custody_dying = super::tests::custody(&dying).await;
    let (p, t, g) = (plan(), target(), signer());
    tokio::select! {
        _ = capture_memory(&p, &t, &ssm, &dying, &transfer, &custody_dying, &g) => {
            panic!("the run should have died")
        }
        _ = died.notified() => {}
    }
    drop(custody);
    let custody = super::tests::custody(&evidence).await;
    let prefix = format!("cases/MEM-1/evidence/memory-{INSTANCE}/");
    assert!(
        item::sealed(&evidence, &prefix)
            .await
            .expect("read")
            .is_none()
    );
    *ssm.host.lock().expect("lock") = Host::Normal;
    let item = capture(&ssm, &evidence, &transfer, &custody, &target())
        .await
        .expect("captured");
    assert_eq!(item.id, format!("memory-{INSTANCE}-2"));
    assert!(
        item::sealed(&evidence, &prefix)
            .await
            .expect("read")
            .is_some(),
        "the altered image is sealed as found"
    );
}
