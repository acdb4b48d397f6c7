//! The world's control API (`/_forensnap/...`): fault injection, the world clock, timings,
//! CloudTrail delivery and tampering, the behaviour of instances' SSM agents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{World, WorldError};

/// What an injected fault does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The service's own throttling error (EBS `RequestThrottledException`, S3 `SlowDown`, ...).
    Throttle,
    /// A 5xx with the service's internal-error code.
    Error,
    /// The connection is closed with no response.
    Drop,
    /// The request is delayed by `latency_ms`, then served.
    Latency,
    /// GetSnapshotBlock: one byte flipped, `x-amz-Checksum` still of the true bytes. S3
    /// UploadPart: the part is stored, the checksum echoed is another value.
    Corrupt,
    /// SQS ReceiveMessage only: the messages received are made visible again at once, so the
    /// next receive delivers them a second time with new receipt handles (at-least-once).
    Duplicate,
    /// The client process that sent the request is killed with SIGKILL, before the request is
    /// applied or after it is applied and before its answer is sent ([`KillWhen`]). Only a
    /// live process of the rule's name is killed; a match without one does not fire.
    Kill,
}

/// When a [`FaultKind::Kill`] rule kills its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillWhen {
    /// On arrival: the request is never applied.
    Before,
    /// Once the world has applied the request, before the answer is sent.
    After,
}

/// One fault rule. Build with [`FaultRule::new`] and the chainable setters.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRule {
    kind: FaultKind,
    service: String,
    operation: String,
    probability: f64,
    every: u32,
    after: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
    status: u16,
    latency_ms: u64,
    seed: u64,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    matching: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    when: Option<KillWhen>,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<String>,
}

impl FaultRule {
    /// A rule that fires on every `service` `operation` call (`"*"` matches any).
    pub fn new(kind: FaultKind, service: &str, operation: &str) -> Self {
        FaultRule {
            kind,
            service: service.into(),
            operation: operation.into(),
            probability: 1.0,
            every: 1,
            after: 0,
            count: None,
            status: 500,
            latency_ms: 0,
            seed: 0,
            matching: None,
            when: None,
            process: None,
        }
    }
    /// A rule that kills the process named `process` (its `/proc/PID/comm`) when it sends a
    /// matching `service` `operation` request, `when` before or after the world applies it.
    pub fn kill(when: KillWhen, process: &str, service: &str, operation: &str) -> Self {
        let mut rule = FaultRule::new(FaultKind::Kill, service, operation);
        rule.when = Some(when);
        rule.process = Some(process.into());
        rule
    }
    /// Only requests whose subject matches this regular expression (Python `re.search`): the
    /// subject is `"<Operation> <path>?<query>"`, plus `&<form body>` for form-encoded requests
    /// (EC2, STS), e.g. `^UploadPart /bucket/key\?.*partNumber=3(&|$)`.
    pub fn matching(mut self, regex: &str) -> Self {
        self.matching = Some(regex.into());
        self
    }
    /// Fire on this share of matching requests (seeded, so a run repeats).
    pub fn probability(mut self, p: f64, seed: u64) -> Self {
        self.probability = p;
        self.seed = seed;
        self
    }
    /// Fire on every `n`th matching request.
    pub fn every(mut self, n: u32) -> Self {
        self.every = n;
        self
    }
    /// Let the first `n` matching requests through.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }
    /// Fire at most `n` times.
    pub fn count(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }
    /// The 5xx status of an [`FaultKind::Error`] rule.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
    /// The delay of a [`FaultKind::Latency`] rule.
    pub fn latency_ms(mut self, ms: u64) -> Self {
        self.latency_ms = ms;
        self
    }
}

/// A rule as the world reports it, with its counters.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultStats {
    /// Rule id.
    pub id: u64,
    /// Fault kind.
    pub kind: FaultKind,
    /// Service the rule matches.
    pub service: String,
    /// Operation the rule matches.
    pub operation: String,
    /// Requests that matched service and operation.
    pub matched: u64,
    /// Requests the fault was applied to.
    pub fired: u64,
    /// The regular expression the request subject must match, if any.
    #[serde(rename = "match")]
    pub matching: Option<String>,
    /// The subjects of the requests it was applied to (the first thousand).
    #[serde(default)]
    pub fired_on: Vec<String>,
}

/// Snapshot timings of the world.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Default)]
pub struct Settings {
    /// Seconds a new snapshot stays `pending`.
    pub snapshot_seconds: f64,
    /// Seconds a snapshot copy stays `pending`.
    pub copy_seconds: f64,
}

#[derive(Deserialize)]
struct Rules {
    rules: Vec<FaultStats>,
}

/// One authorisation decision of a world that evaluates policies (world file `policies = true`).
#[derive(Debug, Clone, Deserialize)]
pub struct Decision {
    /// The caller (an assumed-role session, a user or an account root).
    pub principal: String,
    /// The IAM action checked.
    pub action: String,
    /// The resource ARN it was checked on.
    pub resource: String,
    /// The request (`s3:PutObject`, `kms:Sign`, ...).
    pub operation: String,
    /// Whether the policies allowed it.
    pub allowed: bool,
    /// Why (the deciding statement, or what was missing).
    pub reason: String,
    /// Whether the world's table of IAM actions knows the request (otherwise it was checked by
    /// its derived name against the caller's identity policies only).
    pub modelled: bool,
}

#[derive(Deserialize)]
struct Decisions {
    decisions: Vec<Decision>,
}

/// What one CloudTrail delivery wrote.
#[derive(Deserialize)]
struct Delivered {
    log_files: u64,
    digest_files: u64,
}

#[derive(Deserialize)]
struct Tampered {
    key: String,
}

/// One SSM command the world's stand-in agent ran on one instance, as the instance received it.
#[derive(Debug, Clone, Deserialize)]
pub struct SsmCommand {
    /// The command id SendCommand answered.
    pub command_id: String,
    /// The instance it ran on.
    pub instance_id: String,
    /// The document (`ForensnapCaptureMemory`).
    pub document_name: String,
    /// The document's SHA-256 (hex), as SSM's DescribeDocument names it.
    pub document_hash: String,
    /// The command's `Comment`.
    pub comment: String,
    /// The parameters as sent.
    pub parameters: BTreeMap<String, Vec<String>>,
    /// The script the instance ran: the document's commands with the parameters in place.
    pub script: String,
    /// The names of the environment variables the script ran with.
    pub environment: Vec<String>,
    /// The instance's SSM behaviour when the command was sent (`normal`, `hang`, ...).
    pub mode: String,
    /// `Pending`, `InProgress`, `Success`, `Failed`, `TimedOut` or `Cancelled`.
    pub status: String,
    /// The script's exit status (-1 while it runs, or when it timed out).
    pub response_code: i64,
    /// Its whole standard output.
    pub stdout: String,
    /// Its whole standard error.
    pub stderr: String,
}

#[derive(Deserialize)]
struct SsmCommands {
    commands: Vec<SsmCommand>,
}

impl World {
    fn control<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        name: &str,
        body: Option<String>,
    ) -> Result<T, WorldError> {
        let url = format!("{}/_forensnap/{name}", self.endpoint());
        let err = |message: String| WorldError::Control {
            call: format!("{method} {name}"),
            message,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, Some(body)) => agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body),
            (_, None) => agent.post(&url).send_empty(),
        };
        let mut response = response.map_err(|e| err(e.to_string()))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| err(e.to_string()))?;
        if !status.is_success() {
            return Err(err(format!("{status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| err(format!("{e}: {text}")))
    }

    /// Switch a fault on; returns its id.
    pub fn add_fault(&self, rule: &FaultRule) -> Result<u64, WorldError> {
        let body = serde_json::to_string(rule).map_err(|e| WorldError::Control {
            call: "faults".into(),
            message: e.to_string(),
        })?;
        let stats: FaultStats = self.control("POST", "faults", Some(body))?;
        Ok(stats.id)
    }

    /// The active fault rules and how often each fired.
    pub fn faults(&self) -> Result<Vec<FaultStats>, WorldError> {
        Ok(self.control::<Rules>("GET", "faults", None)?.rules)
    }

    /// Switch every fault off.
    pub fn clear_faults(&self) -> Result<(), WorldError> {
        self.control::<Rules>("DELETE", "faults", None).map(|_| ())
    }

    /// Move the world clock forward (expires credentials, tokens, pending states).
    pub fn advance_clock(&self, seconds: u64) -> Result<(), WorldError> {
        let body = format!("{{\"advance_seconds\": {seconds}}}");
        self.control::<serde_json::Value>("POST", "clock", Some(body))
            .map(|_| ())
    }

    /// Set how long snapshots and copies stay `pending`.
    pub fn set_settings(&self, settings: Settings) -> Result<(), WorldError> {
        let body = serde_json::to_string(&settings).map_err(|e| WorldError::Control {
            call: "settings".into(),
            message: e.to_string(),
        })?;
        self.control::<Settings>("POST", "settings", Some(body))
            .map(|_| ())
    }

    /// Switch the evaluation of policies on or off (a world deployed from the templates starts
    /// with it on). Off stands for an administrator who changed the policies: tests use it to
    /// make what the templates forbid (a delete marker) and check that forensnap notices.
    pub fn set_policies(&self, on: bool) -> Result<(), WorldError> {
        let body = format!("{{\"policies\": {on}}}");
        self.control::<serde_json::Value>("POST", "settings", Some(body))
            .map(|_| ())
    }

    /// Every authorisation decision since the world was seeded (or the list was cleared).
    pub fn authorizations(&self) -> Result<Vec<Decision>, WorldError> {
        Ok(self
            .control::<Decisions>("GET", "authorizations", None)?
            .decisions)
    }

    /// Forget the authorisation decisions made so far.
    pub fn clear_authorizations(&self) -> Result<(), WorldError> {
        self.control::<Decisions>("DELETE", "authorizations", None)
            .map(|_| ())
    }

    /// Every trail that has logged delivers what CloudTrail would have delivered by the world
    /// clock's now: a log file for each 5-minute period of its events not yet delivered, and
    /// the signed digest file of every hour passed since its last digest (an empty one for an
    /// hour without log files). A trail stopped by a (seeded) StopLogging delivers nothing of
    /// its later events, and its digests end with the hour it stopped in. Returns the numbers
    /// of log files and digest files written.
    pub fn deliver_trails(&self) -> Result<(u64, u64), WorldError> {
        let delivered: Delivered =
            self.control("POST", "cloudtrail/deliver", Some("{}".to_string()))?;
        Ok((delivered.log_files, delivered.digest_files))
    }

    /// Tamper with one file a trail of `account` delivered for `region`, as an intruder who can
    /// write to the bucket would: `kind` is `log-modified` (a log file's content changed and
    /// re-gzipped under its key), `log-deleted`, `digest-modified` (a digest's JSON changed,
    /// its signature metadata kept), `digest-deleted` (the next digest then names a missing
    /// one) or `signature-replaced` (a digest carries another digest's signature). `index`
    /// counts that kind's files from the oldest; `None` picks a middle one that a digest covers
    /// (log kinds) or that has a successor digest (digest kinds). Returns the changed key.
    pub fn tamper_trail(
        &self,
        account: &str,
        region: &str,
        kind: &str,
        index: Option<u64>,
    ) -> Result<String, WorldError> {
        let body = serde_json::json!({
            "account": account,
            "region": region,
            "kind": kind,
            "index": index,
        });
        let tampered: Tampered =
            self.control("POST", "cloudtrail/tamper", Some(body.to_string()))?;
        Ok(tampered.key)
    }

    /// How the world's SSM agent on `instance_id` (an instance with `memory_mib` or `ssm` in the
    /// world file) treats the commands sent to it from now on. `mode` is `normal`;
    /// `unreachable` (DescribeInstanceInformation says `ConnectionLost`, SendCommand answers
    /// `InvalidInstanceId`); `hang` (the capture never finishes: the invocation ends `TimedOut`
    /// once the world clock passes its start plus `TimeoutSeconds`, and nothing more is
    /// uploaded); `truncate` (the host uploads every part and prints the SHA-256 of the whole
    /// image, but S3 keeps only the first part: the host's hash and the object disagree);
    /// `oversize` (the image is larger than the plan's presigned parts cover: the command
    /// fails with exit status 5, "capture larger than the presigned parts").
    pub fn set_ssm_behaviour(&self, instance_id: &str, mode: &str) -> Result<(), WorldError> {
        let body = serde_json::json!({ "instance_id": instance_id, "mode": mode });
        self.control::<serde_json::Value>("POST", "ssm/behaviour", Some(body.to_string()))
            .map(|_| ())
    }

    /// Every SSM command the world's stand-in agent ran (oldest first), as the instance
    /// received it: for tests that check what reached the host (no credentials in the script).
    pub fn ssm_commands(&self) -> Result<Vec<SsmCommand>, WorldError> {
        Ok(self
            .control::<SsmCommands>("GET", "ssm/commands", None)?
            .commands)
    }

    /// Empty the world: every account, resource, fault and clock offset.
    pub fn reset(&self) -> Result<(), WorldError> {
        self.control::<serde_json::Value>("POST", "reset", None)
            .map(|_| ())
    }
}
