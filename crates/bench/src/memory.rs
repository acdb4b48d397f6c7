//! `forensnap-bench memory`: one memory capture of a large host, end to end on this machine,
//! through forensnap's real orchestration (`forensnap_collect::capture_memory`) and S3 adapter
//! against the emulator's S3 stand-in: the upload handed off through presigned part URLs, the
//! plan put in a transfer bucket, forensnap's SSM document script (from member-role.yaml) run by a
//! local stand-in agent with the world's stand-in AVML writing an image of `--gib` GiB, the
//! upload completed, S3's copy hashed in ranges and compared with the host's hash, the bag sealed.
//!
//! What it shows: the image never passes through forensnap, whose peak RSS stays a few tens of
//! MiB whatever the image's size (it presigns, completes and hashes in 8 MiB ranges). The host
//! (one part buffered in its scratch space at a time) and the emulator (which holds the image)
//! are other processes, not measured here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use forensnap_aws::S3Store;
use forensnap_collect::{MemoryPlan, MemoryTarget, capture_memory};
use forensnap_core::{Actor, CaseId};
use forensnap_ports::{Called, CloudError, DocumentInfo, Invocation, ManagedInstance, Ssm};
use forensnap_preserve::Custody;
use forensnap_store::{ErrorKind, EvidenceWrite};
use sha2::{Digest, Sha256};

/// What the bench is told.
pub struct Spec {
    /// The emulator's S3 endpoint.
    pub s3_endpoint: String,
    /// Its evidence bucket (Object Lock).
    pub bucket: String,
    /// A second bucket of it, for the transfer plan.
    pub transfer_bucket: String,
    /// The document's script, as member-role.yaml holds it (placeholders not yet substituted).
    pub script: PathBuf,
    /// The AVML build the host runs (the world's stand-in, `avml.py`).
    pub avml: PathBuf,
    /// The host's RAM, GiB.
    pub gib: u64,
    /// Part size, MiB.
    pub part_mib: u64,
}

/// A host on this machine with forensnap's document as its only command: the stand-in agent
/// runs the script with SSM's placeholder substitution, as the local world's agent does.
struct LocalHost {
    script: String,
    memory_mib: u64,
    scratch: PathBuf,
    runs: Mutex<BTreeMap<String, Run>>,
}

struct Run {
    child: std::process::Child,
    out: PathBuf,
    err: PathBuf,
    started: String,
    done: Option<Invocation>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Ssm for LocalHost {
    async fn instance_information(&self, _: &str) -> Result<Option<ManagedInstance>, CloudError> {
        Ok(Some(ManagedInstance {
            ping_status: "Online".into(),
            platform_type: Some("Linux".into()),
            agent_version: Some("bench".into()),
        }))
    }

    async fn memory_mib(&self, _: &str) -> Result<u64, CloudError> {
        Ok(self.memory_mib)
    }

    async fn document(&self, _: &str) -> Result<DocumentInfo, CloudError> {
        Ok(DocumentInfo {
            version: Some("1".into()),
            hash: Some(hex::encode(Sha256::digest(self.script.as_bytes()))),
        })
    }

    async fn send_command(
        &self,
        _: &str,
        _: Option<&str>,
        instance_id: &str,
        parameters: &BTreeMap<String, String>,
        _: u32,
        _: &str,
    ) -> Result<Called<String>, CloudError> {
        let mut script = self.script.clone();
        for (name, value) in parameters {
            script = script.replace(&format!("{{{{ {name} }}}}"), value);
        }
        let id = format!(
            "bench-{}",
            self.runs.lock().map(|r| r.len()).unwrap_or(0) + 1
        );
        let dir = self.scratch.join(&id);
        let failed =
            |e: std::io::Error| CloudError::new(ErrorKind::Other, "SendCommand", e.to_string());
        std::fs::create_dir_all(&dir).map_err(failed)?;
        let (out, err) = (dir.join("stdout"), dir.join("stderr"));
        std::fs::write(dir.join("_script.sh"), &script).map_err(failed)?;
        let child = std::process::Command::new("bash")
            .arg(dir.join("_script.sh"))
            .current_dir(&dir)
            .env("AWS_SSM_INSTANCE_ID", instance_id)
            .env("FORENSNAP_SCRATCH_ROOT", &dir)
            .env("FORENSNAP_WORLD_MEMORY_MIB", self.memory_mib.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).map_err(failed)?)
            .stderr(std::fs::File::create(&err).map_err(failed)?)
            .spawn()
            .map_err(failed)?;
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(
                id.clone(),
                Run {
                    child,
                    out,
                    err,
                    started: now(),
                    done: None,
                },
            );
        }
        Ok(Called::new(id, None))
    }

    async fn invocation(&self, command_id: &str, _: &str) -> Result<Invocation, CloudError> {
        let mut runs = self
            .runs
            .lock()
            .map_err(|_| CloudError::new(ErrorKind::Other, "GetCommandInvocation", "poisoned"))?;
        let Some(run) = runs.get_mut(command_id) else {
            return Err(CloudError::new(
                ErrorKind::NotFound,
                "GetCommandInvocation",
                "InvocationDoesNotExist",
            ));
        };
        if let Some(done) = &run.done {
            return Ok(done.clone());
        }
        let status = run.child.try_wait().map_err(|e| {
            CloudError::new(ErrorKind::Other, "GetCommandInvocation", e.to_string())
        })?;
        let Some(status) = status else {
            return Ok(Invocation {
                status: "InProgress".into(),
                response_code: Some(-1),
                stdout: String::new(),
                stderr: String::new(),
                started: Some(run.started.clone()),
                ended: None,
            });
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let done = Invocation {
            status: if status.success() {
                "Success"
            } else {
                "Failed"
            }
            .into(),
            response_code: status.code().map(i64::from),
            stdout: read(&run.out),
            stderr: read(&run.err),
            started: Some(run.started.clone()),
            ended: Some(now()),
        };
        run.done = Some(done.clone());
        Ok(done)
    }
}

/// One capture of `spec.gib` GiB, measured; one JSON object.
pub async fn run(spec: Spec, sdk: &aws_config::SdkConfig) -> anyhow::Result<serde_json::Value> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .endpoint_url(&spec.s3_endpoint)
            .force_path_style(true)
            .build(),
    );
    let store = S3Store::new(s3.clone(), &spec.bucket, false);
    let transfer = S3Store::new(s3, &spec.transfer_bucket, false);
    let avml =
        std::fs::read(&spec.avml).with_context(|| format!("reading {}", spec.avml.display()))?;
    let avml_sha256 = hex::encode(Sha256::digest(&avml));
    let avml_key = format!("tools/avml/bench-{}/avml", &avml_sha256[..12]);
    match store
        .put_new(&avml_key, avml, "application/octet-stream")
        .await
    {
        Ok(_) => {}
        Err(e) if e.kind == ErrorKind::Exists => {}
        Err(e) => return Err(e).context("storing the AVML build"),
    }
    let script = std::fs::read_to_string(&spec.script)
        .with_context(|| format!("reading {}", spec.script.display()))?;
    let scratch = tempfile::tempdir().context("scratch")?;
    let host = LocalHost {
        script,
        memory_mib: spec.gib * 1024,
        scratch: scratch.path().to_path_buf(),
        runs: Mutex::new(BTreeMap::new()),
    };
    let case = CaseId::parse(&format!("BENCH-MEM-{}", std::process::id())).context("case")?;
    let actor = Actor {
        arn: "arn:aws:sts::123456789012:assumed-role/bench/bench".into(),
        operator: "bench".into(),
    };
    let custody = Custody::open(store.clone(), "", &case, actor, None).await?;
    let signer = forensnap_core::seal::MemorySigner::from_seed(
        7,
        "arn:aws:kms:us-east-1:123456789012:key/bench",
    );
    let plan = MemoryPlan {
        forensic_account: "123456789012".into(),
        account: "111111111111".into(),
        region: "us-east-1".into(),
        instance_id: "i-0bench0000000000".into(),
        document: "ForensnapCaptureMemory".into(),
        document_sha256: None,
        avml_key,
        avml_sha256,
        timeout_seconds: 3 * 3600,
        part_bytes: spec.part_mib << 20,
        url_lifetime: Duration::from_secs(3 * 3600),
        poll: Duration::from_millis(500),
        comment: None,
        tool: format!("forensnap-bench {}", env!("CARGO_PKG_VERSION")),
    };
    let target = MemoryTarget {
        instance_type: Some("bench.large".into()),
        platform: None,
    };
    let (cpu_before, _) = crate::usage();
    let started = Instant::now();
    let item = capture_memory(&plan, &target, &host, &store, &transfer, &custody, &signer)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_after, peak_rss_kib) = crate::usage();
    let s = &item.summary;
    let mib = s.bytes as f64 / crate::MIB;
    Ok(serde_json::json!({
        "mode": "memory",
        "stored": "into the emulator's S3 stand-in by the host through presigned part URLs; forensnap completed the upload and hashed S3's copy in 8 MiB ranges",
        "image_mib": crate::round(mib, 1),
        "parts": s.parts,
        "part_mib": spec.part_mib,
        "lime_ranges": s.lime_ranges,
        "host_sha256": s.host_sha256,
        "image_sha256": s.image_sha256,
        "hashes_agree": s.host_sha256 == s.image_sha256,
        "seconds": crate::round(seconds, 2),
        "mib_per_second": crate::round(mib / seconds, 1),
        "forensnap_cpu_seconds": crate::round(cpu_after - cpu_before, 2),
        "forensnap_peak_rss_kib": peak_rss_kib,
    }))
}
