//! forensnap's configuration file (TOML), documented key by key in `config/forensnap.toml`.
//!
//! Parsing refuses unknown keys (a typo must not silently fall back to a default) and
//! [`Config::validate`] checks what serde cannot: account ids, ARNs, endpoint URLs, limits.
//! Keys are snake_case like the local world's files, so one vocabulary serves both.
//! [`stacks`] writes a config from the forensic-vpc stacks' outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// How a volume's data object holds the image (`blocks` or `raw`): the core's type, parsed here.
pub use forensnap_core::layout::Layout;

pub mod stacks;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of the responder recorded in every custody event (overridden by `--operator`).
    #[serde(default)]
    pub operator: Option<String>,
    /// The forensic account forensnap runs in.
    pub forensic: Forensic,
    /// How to reach AWS.
    #[serde(default)]
    pub aws: Aws,
    /// Member accounts forensnap may collect from.
    #[serde(default)]
    pub members: Vec<Member>,
    /// Collection behaviour.
    #[serde(default)]
    pub collect: Collect,
    /// Block acquisition through the EBS direct APIs.
    #[serde(default)]
    pub acquire: Acquire,
    /// The daemon: request queue, case table, leases, limits, operations endpoint.
    #[serde(default)]
    pub daemon: Daemon,
    /// Custody reports (`forensnap report`): the matter and who the principals are.
    #[serde(default)]
    pub report: Report,
    /// CloudTrail evidence of each case (`collect`, `forensnap trail`).
    #[serde(default)]
    pub cloudtrail: Cloudtrail,
    /// Memory capture through SSM with AVML (`collect --memory`, `forensnap memory`).
    #[serde(default)]
    pub memory: Memory,
}

/// Memory capture: the instance's RAM through SSM RunCommand with a pinned AVML build, streamed
/// into the case through presigned part URLs (no credentials on the host).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Whether `collect` captures memory without `--memory` (a root user watching the host can
    /// see an SSM command run: capture only when that trade-off is accepted).
    #[serde(default)]
    pub enabled: bool,
    /// The forensic account's transfer bucket (forensic-account.yaml's `TransferBucketName`):
    /// where the host's transfer plan (its presigned part URLs) waits until the capture ends.
    /// Never the evidence bucket: the plan's URLs carry the collector's key id and must not be
    /// kept.
    #[serde(default)]
    pub transfer_bucket: Option<String>,
    /// The SSM command's comment (what `ssm list-commands` shows in the member account).
    /// Default: none, so the command names no case.
    #[serde(default)]
    pub comment: Option<String>,
    /// The pinned AVML build's key in the evidence bucket.
    #[serde(default)]
    pub avml_key: Option<String>,
    /// Its SHA-256 (the host checks it before running it).
    #[serde(default)]
    pub avml_sha256: Option<String>,
    /// forensnap's SSM document in the member accounts (member-role.yaml deploys it).
    #[serde(default = "default_memory_document")]
    pub document: String,
    /// Its SHA-256 as SSM reports it; when set, SSM refuses to run any other content.
    #[serde(default)]
    pub document_sha256: Option<String>,
    /// Minutes the capture may run before SSM stops it.
    #[serde(default = "default_memory_timeout")]
    pub timeout_minutes: u32,
    /// MiB per uploaded part (5..=5120; the host buffers one part in RAM).
    #[serde(default = "default_memory_part")]
    pub part_mib: u32,
    /// Minutes the presigned part URLs stay valid.
    #[serde(default = "default_memory_urls")]
    pub url_minutes: u32,
}

fn default_memory_document() -> String {
    "ForensnapCaptureMemory".into()
}

fn default_memory_timeout() -> u32 {
    60
}

fn default_memory_part() -> u32 {
    64
}

fn default_memory_urls() -> u32 {
    60
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            enabled: false,
            transfer_bucket: None,
            comment: None,
            avml_key: None,
            avml_sha256: None,
            document: default_memory_document(),
            document_sha256: None,
            timeout_minutes: default_memory_timeout(),
            part_mib: default_memory_part(),
            url_minutes: default_memory_urls(),
        }
    }
}

/// CloudTrail evidence: the member account's record of the case, preserved like a disk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cloudtrail {
    /// Whether `collect` preserves CloudTrail evidence (`forensnap trail` runs it alone either
    /// way).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Hours before the case's first custody event the window starts (CloudTrail's event
    /// history keeps 90 days).
    #[serde(default = "default_lookback_hours")]
    pub lookback_hours: u32,
    /// LookupEvents requests per second (AWS: 2 per account and region, not adjustable).
    #[serde(default = "default_lookup_rps")]
    pub lookup_requests_per_second: f64,
    /// Principals whose events are always looked up: access key ids, IAM user or role ARNs.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Copy and validate the trail's log and digest files when a trail delivers to S3.
    #[serde(default = "default_true")]
    pub trail_logs: bool,
    /// The trail to copy (name or ARN); default: the region's trail with log file validation.
    #[serde(default)]
    pub trail: Option<String>,
    /// The trail's bucket, when it is not the one DescribeTrails names (a copy elsewhere).
    #[serde(default)]
    pub trail_bucket: Option<String>,
    /// The trail's key prefix in `trail_bucket`.
    #[serde(default)]
    pub trail_prefix: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_lookback_hours() -> u32 {
    168
}

fn default_lookup_rps() -> f64 {
    2.0
}

impl Default for Cloudtrail {
    fn default() -> Self {
        Cloudtrail {
            enabled: true,
            lookback_hours: default_lookback_hours(),
            lookup_requests_per_second: default_lookup_rps(),
            principals: Vec::new(),
            trail_logs: true,
            trail: None,
            trail_bucket: None,
            trail_prefix: None,
        }
    }
}

/// Custody reports (`forensnap report`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The matter the cases belong to, printed on the cover (e.g. "Acme v. Example, No. 26-cv-1").
    #[serde(default)]
    pub matter: Option<String>,
    /// The organisation that collected the evidence, printed on the cover and in the draft
    /// declaration.
    #[serde(default)]
    pub organisation: Option<String>,
    /// Who each principal or operator that acts is: name, role, contact.
    #[serde(default)]
    pub personnel: Vec<Person>,
}

/// A person behind an IAM principal or an operator name, for the report's personnel section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// What the custody events name: an operator name or an IAM principal ARN (an assumed-role
    /// ARN matches its role, `arn:aws:sts::ACCOUNT:assumed-role/ROLE/...` by
    /// `arn:aws:iam::ACCOUNT:role/ROLE`).
    pub principal: String,
    /// The person's full name.
    pub name: String,
    /// Their role in the investigation (e.g. "Incident responder").
    #[serde(default)]
    pub role: Option<String>,
    /// How to reach them.
    #[serde(default)]
    pub contact: Option<String>,
}

/// The daemon (`forensnap daemon`), and the case table every command shares with it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    /// The request queue's URL (forensic-account.yaml output `RequestQueueUrl`).
    #[serde(default)]
    pub queue_url: Option<String>,
    /// The dead-letter queue's URL (`RequestDeadLetterQueueUrl`).
    #[serde(default)]
    pub dead_letter_queue_url: Option<String>,
    /// The case table (`CaseTableName`). When set, `collect`, `export` and `verify` take the
    /// case's lease too, so a case is never worked twice at once.
    #[serde(default)]
    pub case_table: Option<String>,
    /// How long a lease lasts unless renewed, seconds; renewed every third of it.
    #[serde(default = "default_lease")]
    pub lease_seconds: u64,
    /// Long-polling wait of one ReceiveMessage, seconds (SQS allows 0..=20).
    #[serde(default = "default_wait")]
    pub wait_seconds: u64,
    /// Cases one daemon works at once.
    #[serde(default = "default_cases")]
    pub max_cases: u32,
    /// Cases of one member account one daemon works at once.
    #[serde(default = "default_cases_per_account")]
    pub max_cases_per_account: u32,
    /// On SIGTERM or SIGINT: seconds to bring cases to a resumable point and release them.
    #[serde(default = "default_shutdown")]
    pub shutdown_seconds: u64,
    /// Split each case: the daemon that takes it preserves it, and queues one request per
    /// volume for any daemon to acquire (a large instance spreads over every daemon).
    #[serde(default = "default_split")]
    pub split_volumes: bool,
    /// Where the health endpoint (`/healthz`) and Prometheus metrics (`/metrics`) listen, e.g.
    /// `127.0.0.1:9464`. Default: no listener.
    #[serde(default)]
    pub listen: Option<String>,
    /// Prefix of case ids made for EventBridge requests (`<prefix>-GD-...`, `<prefix>-SH-...`).
    #[serde(default = "default_case_prefix")]
    pub case_prefix: String,
    /// GuardDuty findings that start a collection.
    #[serde(default)]
    pub guardduty: GuardDuty,
}

/// Which GuardDuty findings start a collection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardDuty {
    /// Finding-type patterns (`*` matches anything), e.g. `"Backdoor:EC2/*"`.
    #[serde(default = "default_finding_types")]
    pub finding_types: Vec<String>,
    /// Lowest severity collected (GuardDuty: 7.0 and above is High).
    #[serde(default = "default_min_severity")]
    pub min_severity: f64,
}

fn default_lease() -> u64 {
    120
}
fn default_wait() -> u64 {
    20
}
fn default_cases() -> u32 {
    2
}
fn default_cases_per_account() -> u32 {
    2
}
fn default_shutdown() -> u64 {
    60
}
fn default_split() -> bool {
    true
}
fn default_case_prefix() -> String {
    "IR".to_string()
}
fn default_finding_types() -> Vec<String> {
    [
        "Backdoor:EC2/*",
        "CryptoCurrency:EC2/*",
        "Trojan:EC2/*",
        "UnauthorizedAccess:EC2/*",
        "Impact:EC2/*",
        "Execution:Runtime/*",
        "PrivilegeEscalation:Runtime/*",
        "DefenseEvasion:Runtime/*",
        "Backdoor:Runtime/*",
        "CryptoCurrency:Runtime/*",
    ]
    .map(str::to_string)
    .to_vec()
}
fn default_min_severity() -> f64 {
    7.0
}

impl Default for GuardDuty {
    fn default() -> Self {
        GuardDuty {
            finding_types: default_finding_types(),
            min_severity: default_min_severity(),
        }
    }
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            queue_url: None,
            dead_letter_queue_url: None,
            case_table: None,
            lease_seconds: default_lease(),
            wait_seconds: default_wait(),
            max_cases: default_cases(),
            max_cases_per_account: default_cases_per_account(),
            shutdown_seconds: default_shutdown(),
            split_volumes: default_split(),
            listen: None,
            case_prefix: default_case_prefix(),
            guardduty: GuardDuty::default(),
        }
    }
}

/// Block acquisition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acquire {
    /// Storage layout of volume images.
    #[serde(default)]
    pub layout: Layout,
    /// Volumes read at the same time.
    #[serde(default = "default_concurrent_volumes")]
    pub concurrent_volumes: u32,
    /// Block reads in flight per snapshot at most (grows to it when calm, halves on throttling).
    #[serde(default = "default_max_reads")]
    pub max_reads_per_volume: u32,
    /// GetSnapshotBlock requests per second per snapshot (AWS: 1,000, not adjustable).
    #[serde(default = "default_rps")]
    pub requests_per_second_per_snapshot: u32,
    /// GetSnapshotBlock requests per second for the forensic account (AWS default 1,000;
    /// raise it only with the quota).
    #[serde(default = "default_rps")]
    pub requests_per_second_per_account: u32,
    /// Blocks read ahead of assembly per volume, in flight or waiting for their turn (memory:
    /// this many x 512 KiB per volume).
    #[serde(default = "default_window")]
    pub window_blocks: u32,
    /// Parts of a volume's data object uploading at once (memory: one more part than this,
    /// each held whole so that a failed upload is sent again from its bytes).
    #[serde(default = "default_uploads")]
    pub uploads_per_volume: u32,
    /// Size of those parts, MiB (larger where S3's 10,000-part limit needs it).
    #[serde(default = "default_part_mib")]
    pub part_mib: u32,
}

fn default_concurrent_volumes() -> u32 {
    4
}
fn default_max_reads() -> u32 {
    // 1,000 requests/s at 100 ms takes 100 reads in flight (Little's law), plus headroom for
    // jitter; the limiter finds the level below this.
    128
}
fn default_rps() -> u32 {
    1_000
}
fn default_window() -> u32 {
    160
}
fn default_uploads() -> u32 {
    4
}
fn default_part_mib() -> u32 {
    16
}

impl Default for Acquire {
    fn default() -> Self {
        Acquire {
            layout: Layout::default(),
            concurrent_volumes: default_concurrent_volumes(),
            max_reads_per_volume: default_max_reads(),
            requests_per_second_per_snapshot: default_rps(),
            requests_per_second_per_account: default_rps(),
            window_blocks: default_window(),
            uploads_per_volume: default_uploads(),
            part_mib: default_part_mib(),
        }
    }
}

/// The forensic account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forensic {
    /// Account id (12 digits).
    pub account: String,
    /// Region of the evidence bucket, the keys and the forensic snapshot copies.
    pub region: String,
    /// S3 Object Lock bucket (COMPLIANCE default retention) for evidence and custody events.
    pub evidence_bucket: String,
    /// Key prefix inside the bucket ("" for none).
    #[serde(default)]
    pub evidence_prefix: String,
    /// Symmetric KMS key every evidence snapshot is re-encrypted with.
    pub ebs_key_arn: String,
    /// Asymmetric ECC_NIST_P256 key that signs custody checkpoints and manifests.
    #[serde(default)]
    pub signing_key_arn: Option<String>,
    /// COMPLIANCE retention given to every evidence object, in days from its upload.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Put a legal hold on every evidence object too.
    #[serde(default)]
    pub legal_hold: bool,
}

fn default_retention_days() -> u32 {
    365
}

/// How to reach AWS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    /// Static credentials of the forensic operator. For local worlds only: on AWS leave this
    /// out and let the default chain (instance profile, SSO, environment) supply credentials.
    #[serde(default)]
    pub credentials: Option<StaticCredentials>,
    /// One endpoint for every service (the local world, a proxy).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Per-service endpoints (VPC interface endpoints); win over `endpoint_url`.
    #[serde(default)]
    pub endpoints: Endpoints,
    /// Seconds before an SDK call gives up (each attempt).
    #[serde(default = "default_timeout")]
    pub attempt_timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    60
}

/// Static credentials (local worlds only).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .finish()
    }
}

/// Per-service endpoint URLs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    /// EC2.
    pub ec2: Option<String>,
    /// EBS direct APIs.
    pub ebs: Option<String>,
    /// S3.
    pub s3: Option<String>,
    /// KMS.
    pub kms: Option<String>,
    /// STS.
    pub sts: Option<String>,
    /// SQS (the daemon's request queue).
    pub sqs: Option<String>,
    /// DynamoDB (the case table).
    pub dynamodb: Option<String>,
}

/// A member account and how to enter it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Account id.
    pub account: String,
    /// Collector role: a name (in this account) or a full ARN.
    #[serde(default = "default_role")]
    pub role: String,
    /// The ExternalId the role's trust policy demands.
    pub external_id: String,
    /// A name for reports.
    #[serde(default)]
    pub name: Option<String>,
}

fn default_role() -> String {
    "ForensnapCollector".to_string()
}

impl Member {
    /// The role ARN to assume.
    pub fn role_arn(&self) -> String {
        if self.role.starts_with("arn:") {
            self.role.clone()
        } else {
            format!("arn:aws:iam::{}:role/{}", self.account, self.role)
        }
    }
}

/// When to copy a member snapshot re-encrypted before sharing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Reencrypt {
    /// Only unencrypted snapshots and snapshots on the AWS managed `aws/ebs` key.
    #[default]
    WhenNeeded,
    /// Every snapshot, so the forensic account never needs the member's keys.
    Always,
}

/// Collection behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collect {
    /// Tags put on snapshots in the member account; `{case}` is replaced by the case id. An
    /// attacker with read access can see them: use `{}` to tag nothing. (Intermediate copies
    /// always carry `forensnap:intermediate = "true"`, which the member role's policy requires
    /// before it lets forensnap delete them.)
    #[serde(default = "default_member_tags")]
    pub member_tags: BTreeMap<String, String>,
    /// Description of member-account snapshots; `{case}` is replaced.
    #[serde(default = "default_description")]
    pub snapshot_description: String,
    /// When to re-encrypt in the member account before sharing.
    #[serde(default)]
    pub reencrypt: Reencrypt,
    /// Snapshot copies in flight at once (AWS allows 20 per destination region).
    #[serde(default = "default_copies")]
    pub max_concurrent_copies: u32,
    /// First wait between snapshot state polls, seconds (doubles up to `poll_max_seconds`).
    #[serde(default = "default_poll_initial")]
    pub poll_initial_seconds: f64,
    /// Longest wait between polls, seconds.
    #[serde(default = "default_poll_max")]
    pub poll_max_seconds: f64,
    /// Give up waiting for one snapshot after this many minutes (the run can be resumed).
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout_minutes: u64,
    /// Lifetime of each member-account session; the SDK refreshes it before it ends.
    #[serde(default = "default_session")]
    pub session_seconds: u32,
}

fn default_member_tags() -> BTreeMap<String, String> {
    BTreeMap::from([("forensnap:case".to_string(), "{case}".to_string())])
}
fn default_description() -> String {
    "forensnap evidence snapshot, case {case}".to_string()
}
fn default_copies() -> u32 {
    5
}
fn default_poll_initial() -> f64 {
    2.0
}
fn default_poll_max() -> f64 {
    30.0
}
fn default_wait_timeout() -> u64 {
    720
}
fn default_session() -> u32 {
    3600
}

impl Default for Collect {
    fn default() -> Self {
        Collect {
            member_tags: default_member_tags(),
            snapshot_description: default_description(),
            reencrypt: Reencrypt::default(),
            max_concurrent_copies: default_copies(),
            poll_initial_seconds: default_poll_initial(),
            poll_max_seconds: default_poll_max(),
            wait_timeout_minutes: default_wait_timeout(),
            session_seconds: default_session(),
        }
    }
}

/// A configuration that cannot be used, naming the file, the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("config {path}: cannot read it: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("config {path}: {message}See config/forensnap.toml for every key.")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// A member account the command names is not configured.
    #[error(
        "config {path}: account {account} is not one of the [[members]] ({known}); add a [[members]] table with its account, role and external_id"
    )]
    UnknownMember {
        /// The file.
        path: PathBuf,
        /// The account asked for.
        account: String,
        /// The configured accounts.
        known: String,
    },
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Check values serde cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        check_account(&self.forensic.account).map_err(|m| invalid("forensic.account", m))?;
        if self.forensic.region.is_empty() {
            return Err(invalid(
                "forensic.region",
                "must name a region such as us-east-1".into(),
            ));
        }
        if self.forensic.evidence_bucket.len() < 3 {
            return Err(invalid(
                "forensic.evidence_bucket",
                "must name the Object Lock bucket".into(),
            ));
        }
        let kms_prefix = format!(
            "arn:aws:kms:{}:{}:",
            self.forensic.region, self.forensic.account
        );
        let keys = [
            ("forensic.ebs_key_arn", Some(&self.forensic.ebs_key_arn)),
            (
                "forensic.signing_key_arn",
                self.forensic.signing_key_arn.as_ref(),
            ),
        ];
        for (name, arn) in keys {
            if let Some(arn) = arn {
                let rest = arn.strip_prefix(&kms_prefix).unwrap_or_default();
                if !(rest.starts_with("key/") || rest.starts_with("alias/")) {
                    return Err(invalid(
                        name,
                        format!(
                            "must be a key or alias ARN of the forensic account in its region ({kms_prefix}key/... or {kms_prefix}alias/...), not {arn:?}"
                        ),
                    ));
                }
            }
        }
        for (key, value) in [
            ("report.matter", &self.report.matter),
            ("report.organisation", &self.report.organisation),
        ] {
            if let Some(value) = value {
                check_label(value).map_err(|m| invalid(key, m))?;
            }
        }
        for (i, person) in self.report.personnel.iter().enumerate() {
            let key = |field: &str| format!("report.personnel[{i}].{field}");
            for (field, value) in [
                ("principal", Some(&person.principal)),
                ("name", Some(&person.name)),
                ("role", person.role.as_ref()),
                ("contact", person.contact.as_ref()),
            ] {
                if let Some(value) = value {
                    check_label(value).map_err(|m| invalid(&key(field), m))?;
                }
            }
        }
        if self.forensic.retention_days == 0 {
            return Err(invalid(
                "forensic.retention_days",
                "must be at least 1 day".into(),
            ));
        }
        for (name, url) in [
            ("aws.endpoint_url", &self.aws.endpoint_url),
            ("aws.endpoints.ec2", &self.aws.endpoints.ec2),
            ("aws.endpoints.ebs", &self.aws.endpoints.ebs),
            ("aws.endpoints.s3", &self.aws.endpoints.s3),
            ("aws.endpoints.kms", &self.aws.endpoints.kms),
            ("aws.endpoints.sts", &self.aws.endpoints.sts),
            ("aws.endpoints.sqs", &self.aws.endpoints.sqs),
            ("aws.endpoints.dynamodb", &self.aws.endpoints.dynamodb),
            ("daemon.queue_url", &self.daemon.queue_url),
            (
                "daemon.dead_letter_queue_url",
                &self.daemon.dead_letter_queue_url,
            ),
        ] {
            if let Some(url) = url {
                check_endpoint(url).map_err(|m| invalid(name, m))?;
            }
        }
        if let Some(operator) = &self.operator {
            check_label(operator).map_err(|m| invalid("operator", m))?;
        }
        for (i, member) in self.members.iter().enumerate() {
            let key = format!("members[{i}]");
            check_account(&member.account).map_err(|m| invalid(&format!("{key}.account"), m))?;
            if member.external_id.is_empty() {
                return Err(invalid(
                    &format!("{key}.external_id"),
                    "must not be empty".into(),
                ));
            }
            if member.role.starts_with("arn:") {
                let in_account = member
                    .role
                    .split(':')
                    .nth(4)
                    .is_some_and(|a| a == member.account);
                let is_role = member
                    .role
                    .split(':')
                    .nth(5)
                    .is_some_and(|r| r.starts_with("role/"));
                if !(in_account && is_role) {
                    return Err(invalid(
                        &format!("{key}.role"),
                        format!(
                            "{:?} is not a role of account {}: forensnap assumes the member's own collector role only (arn:aws:iam::{}:role/NAME, or just NAME)",
                            member.role, member.account, member.account
                        ),
                    ));
                }
            }
            if member.account == self.forensic.account {
                return Err(invalid(
                    &format!("{key}.account"),
                    "is the forensic account itself".into(),
                ));
            }
        }
        let t = &self.cloudtrail;
        if !(1..=90 * 24).contains(&t.lookback_hours) {
            return Err(invalid(
                "cloudtrail.lookback_hours",
                "must be 1..=2160 (CloudTrail's event history keeps 90 days)".into(),
            ));
        }
        if !(t.lookup_requests_per_second > 0.0 && t.lookup_requests_per_second <= 2.0) {
            return Err(invalid(
                "cloudtrail.lookup_requests_per_second",
                "must be > 0 and <= 2 (AWS: 2 LookupEvents requests per second per account and region)".into(),
            ));
        }
        for (i, principal) in t.principals.iter().enumerate() {
            check_principal(principal)
                .map_err(|m| invalid(&format!("cloudtrail.principals[{i}]"), m))?;
        }
        let m = &self.memory;
        if let Some(sha) = &m.avml_sha256
            && !(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(invalid(
                "memory.avml_sha256",
                "must be the 64 hex digits of the AVML binary's SHA-256".into(),
            ));
        }
        if m.avml_key.is_some() != m.avml_sha256.is_some() {
            return Err(invalid(
                "memory.avml_key",
                "memory.avml_key and memory.avml_sha256 go together: the host runs only the AVML build whose SHA-256 is pinned".into(),
            ));
        }
        if m.enabled && (m.transfer_bucket.is_none() || m.avml_key.is_none()) {
            return Err(invalid(
                "memory.enabled",
                "capture on every collection needs memory.transfer_bucket (forensic-account.yaml output TransferBucketName) and memory.avml_key with memory.avml_sha256 (the pinned AVML build)".into(),
            ));
        }
        if m.transfer_bucket.as_deref() == Some(self.forensic.evidence_bucket.as_str()) {
            return Err(invalid(
                "memory.transfer_bucket",
                "must not be the evidence bucket: the transfer plan holds presigned URLs that must not be kept under Object Lock (forensic-account.yaml's TransferBucketName)".into(),
            ));
        }
        if let Some(comment) = &m.comment
            && comment.chars().count() > 100
        {
            return Err(invalid(
                "memory.comment",
                "must be at most 100 characters (SSM's limit for a command's comment)".into(),
            ));
        }
        for (key, value, range) in [
            ("memory.timeout_minutes", m.timeout_minutes, 1..=2880),
            ("memory.part_mib", m.part_mib, 5..=5120),
            ("memory.url_minutes", m.url_minutes, 1..=720),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!("must be {}..={}", range.start(), range.end()),
                ));
            }
        }
        let c = &self.collect;
        if !(1..=20).contains(&c.max_concurrent_copies) {
            return Err(invalid(
                "collect.max_concurrent_copies",
                "must be 1..=20 (AWS allows 20 concurrent copies per region)".into(),
            ));
        }
        if !(c.poll_initial_seconds > 0.0 && c.poll_max_seconds >= c.poll_initial_seconds) {
            return Err(invalid(
                "collect.poll_initial_seconds",
                "must be > 0 and <= collect.poll_max_seconds".into(),
            ));
        }
        if !(900..=43_200).contains(&c.session_seconds) {
            return Err(invalid(
                "collect.session_seconds",
                "must be 900..=43200 (STS limits)".into(),
            ));
        }
        let a = &self.acquire;
        for (key, value, range) in [
            ("acquire.concurrent_volumes", a.concurrent_volumes, 1..=64),
            (
                "acquire.max_reads_per_volume",
                a.max_reads_per_volume,
                1..=1_000,
            ),
            ("acquire.window_blocks", a.window_blocks, 1..=4_096),
            ("acquire.uploads_per_volume", a.uploads_per_volume, 1..=32),
            ("acquire.part_mib", a.part_mib, 5..=512),
            (
                "acquire.requests_per_second_per_snapshot",
                a.requests_per_second_per_snapshot,
                1..=1_000,
            ),
            (
                "acquire.requests_per_second_per_account",
                a.requests_per_second_per_account,
                1..=100_000,
            ),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!(
                        "must be {}..={} (AWS allows 1,000 GetSnapshotBlock requests/s per snapshot)",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        let d = &self.daemon;
        for (key, value, range) in [
            ("daemon.lease_seconds", d.lease_seconds, 15..=3_600),
            ("daemon.wait_seconds", d.wait_seconds, 0..=20),
            ("daemon.max_cases", u64::from(d.max_cases), 1..=64),
            (
                "daemon.max_cases_per_account",
                u64::from(d.max_cases_per_account),
                1..=64,
            ),
            ("daemon.shutdown_seconds", d.shutdown_seconds, 1..=3_600),
        ] {
            if !range.contains(&value) {
                return Err(invalid(
                    key,
                    format!("must be {}..={}", range.start(), range.end()),
                ));
            }
        }
        if d.case_prefix.is_empty()
            || d.case_prefix.len() > 12
            || !d.case_prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "daemon.case_prefix",
                format!(
                    "must be 1 to 12 letters or digits (case ids are made from it), not {:?}",
                    d.case_prefix
                ),
            ));
        }
        if !(0.0..=10.0).contains(&d.guardduty.min_severity) {
            return Err(invalid(
                "daemon.guardduty.min_severity",
                "must be 0.0..=10.0 (GuardDuty's scale)".into(),
            ));
        }
        if let Some(table) = &d.case_table
            && !(3..=255).contains(&table.len())
        {
            return Err(invalid(
                "daemon.case_table",
                "must name the DynamoDB table (3 to 255 characters)".into(),
            ));
        }
        Ok(())
    }

    /// The member account `account`, or an error naming the configured ones.
    pub fn member(&self, path: &Path, account: &str) -> Result<&Member, ConfigError> {
        self.members
            .iter()
            .find(|m| m.account == account)
            .ok_or_else(|| ConfigError::UnknownMember {
                path: path.to_path_buf(),
                account: account.to_string(),
                known: self
                    .members
                    .iter()
                    .map(|m| m.account.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// An endpoint URL forensnap may send signed requests and evidence to: HTTPS anywhere, plain
/// HTTP only to this machine (a local world, a proxy on loopback).
fn check_endpoint(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "{text:?} is plain HTTP to another machine: requests, credentials' signatures and evidence would cross the network unencrypted; use https:// (plain http is for loopback only)"
                ))
            }
        }
        other => Err(format!("must be an http(s) URL, not {other}:// ({text:?})")),
    }
}

/// A name or label recorded in custody events and reports: printable, one line, 256
/// characters at most.
pub fn check_label(text: &str) -> Result<(), String> {
    check_text(text, 256)
}

/// Text recorded in custody events and reports (a name, a purpose): not empty, one line, no
/// control character, `max` characters at most.
pub fn check_text(text: &str, max: usize) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(format!("is {chars} characters long; {max} at most"));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "holds the control character {c:?}: it is recorded in custody events and reports, one line each"
        ));
    }
    Ok(())
}

/// A principal to look up in CloudTrail: an access key id (`AKIA...`, `ASIA...`), or an IAM
/// user or role ARN.
pub fn check_principal(text: &str) -> Result<(), String> {
    let key = (text.starts_with("AKIA") || text.starts_with("ASIA"))
        && (16..=128).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_alphanumeric());
    let arn = text.starts_with("arn:aws")
        && text.split(':').count() == 6
        && text
            .split(':')
            .nth(5)
            .is_some_and(|r| r.starts_with("user/") || r.starts_with("role/"));
    if key || arn {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is neither an access key id (AKIA.../ASIA...) nor an IAM user or role ARN (arn:aws:iam::ACCOUNT:user/NAME, arn:aws:iam::ACCOUNT:role/NAME)"
        ))
    }
}

fn check_account(account: &str) -> Result<(), String> {
    if account.len() == 12 && account.chars().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!("must be a 12-digit account id, not {account:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[forensic]
account = "123456789012"
region = "us-east-1"
evidence_bucket = "forensnap-evidence"
ebs_key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234"
[[members]]
account = "111111111111"
external_id = "x"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            message: e.to_string(),
        })?;
        config.validate(Path::new("t.toml"))?;
        Ok(config)
    }

    #[test]
    fn defaults_fill_in() {
        let config = parse(MINIMAL).expect("minimal config");
        assert_eq!(
            config.members[0].role_arn(),
            "arn:aws:iam::111111111111:role/ForensnapCollector"
        );
        assert_eq!(config.collect.max_concurrent_copies, 5);
        assert_eq!(config.forensic.retention_days, 365);
        assert_eq!(
            config
                .collect
                .member_tags
                .get("forensnap:case")
                .map(String::as_str),
            Some("{case}")
        );
    }

    #[test]
    fn acquisition_settings_default_and_out_of_range_ones_are_named() {
        let config = parse(MINIMAL).expect("minimal config");
        assert_eq!(config.acquire.layout, Layout::Blocks);
        assert_eq!(
            (
                config.acquire.concurrent_volumes,
                config.acquire.requests_per_second_per_snapshot
            ),
            (4, 1_000)
        );
        let raw = parse(&format!("{MINIMAL}[acquire]\nlayout = \"raw\"\n")).expect("raw");
        assert_eq!(raw.acquire.layout, Layout::Raw);
        for (key, value) in [
            ("concurrent_volumes", "0"),
            ("requests_per_second_per_snapshot", "1001"),
            ("window_blocks", "0"),
            ("uploads_per_volume", "0"),
            ("part_mib", "4"),
        ] {
            let err =
                parse(&format!("{MINIMAL}[acquire]\n{key} = {value}\n")).expect_err("out of range");
            assert!(err.to_string().contains(&format!("acquire.{key}")), "{err}");
        }
        let err = parse(&format!("{MINIMAL}[acquire]\nlayout = \"sparse\"\n"))
            .expect_err("unknown layout");
        assert!(err.to_string().contains("sparse"), "{err}");
    }

    #[test]
    fn daemon_settings_default_and_bad_ones_are_named() {
        let config = parse(MINIMAL).expect("minimal config");
        let d = &config.daemon;
        assert_eq!(
            (d.lease_seconds, d.max_cases, d.split_volumes),
            (120, 2, true)
        );
        assert_eq!(d.queue_url, None);
        assert!(
            d.guardduty
                .finding_types
                .iter()
                .any(|t| t == "Backdoor:EC2/*")
        );
        for (line, key) in [
            ("lease_seconds = 5", "daemon.lease_seconds"),
            ("wait_seconds = 21", "daemon.wait_seconds"),
            ("max_cases = 0", "daemon.max_cases"),
            ("shutdown_seconds = 0", "daemon.shutdown_seconds"),
            ("case_prefix = \"I-R\"", "daemon.case_prefix"),
            ("queue_url = \"sqs.example\"", "daemon.queue_url"),
            ("case_table = \"t\"", "daemon.case_table"),
        ] {
            let err = parse(&format!("{MINIMAL}[daemon]\n{line}\n")).expect_err(line);
            assert!(err.to_string().contains(key), "{line}: {err}");
        }
        let err = parse(&format!(
            "{MINIMAL}[daemon.guardduty]\nmin_severity = 11.0\n"
        ))
        .expect_err("severity");
        assert!(
            err.to_string().contains("daemon.guardduty.min_severity"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}[daemon]\nqueue = \"x\"\n")).expect_err("typo");
        assert!(err.to_string().contains("queue"), "{err}");
    }

    #[test]
    fn memory_settings_default_off_and_bad_ones_are_named() {
        let config = parse(MINIMAL).expect("minimal config");
        assert!(!config.memory.enabled);
        assert_eq!(config.memory.comment, None);
        let avml = format!(
            "avml_key = \"tools/avml\"\navml_sha256 = \"{}\"",
            "ab".repeat(32)
        );
        let bucket = parse(MINIMAL).expect("minimal").forensic.evidence_bucket;
        for (lines, key) in [
            ("enabled = true".to_string(), "memory.enabled"),
            (format!("enabled = true\n{avml}"), "memory.enabled"),
            (
                format!("transfer_bucket = \"{bucket}\""),
                "memory.transfer_bucket",
            ),
            ("avml_key = \"x\"".into(), "memory.avml_key"),
            (
                "avml_sha256 = \"xyz\"\navml_key = \"x\"".into(),
                "memory.avml_sha256",
            ),
            (
                format!("comment = \"{}\"", "c".repeat(101)),
                "memory.comment",
            ),
            ("part_mib = 4".into(), "memory.part_mib"),
        ] {
            let err = parse(&format!("{MINIMAL}[memory]\n{lines}\n")).expect_err(&lines);
            assert!(err.to_string().contains(key), "{lines}: {err}");
        }
        let on = parse(&format!(
            "{MINIMAL}[memory]\nenabled = true\ntransfer_bucket = \"t\"\n{avml}\n"
        ))
        .expect("a complete [memory]");
        assert!(on.memory.enabled);
    }

    #[test]
    fn report_personnel_is_read_and_bad_entries_are_named() {
        let config = parse(&format!(
            "{MINIMAL}[report]\nmatter = \"Acme v. Example\"\n[[report.personnel]]\nprincipal = \"alice\"\nname = \"Alice Example\"\nrole = \"Responder\"\n"
        ))
        .expect("report section");
        assert_eq!(config.report.matter.as_deref(), Some("Acme v. Example"));
        assert_eq!(config.report.personnel[0].name, "Alice Example");
        assert_eq!(config.report.personnel[0].contact, None);
        for (text, key) in [
            (
                format!(
                    "{MINIMAL}[[report.personnel]]\nprincipal = \"bob\"\nname = \"=cmd|' /C calc'!A0\\u0007\"\n"
                ),
                "report.personnel[0].name",
            ),
            (
                format!("{MINIMAL}[[report.personnel]]\nprincipal = \"\"\nname = \"Bob\"\n"),
                "report.personnel[0].principal",
            ),
            (
                format!("{MINIMAL}[report]\nmatter = \"{}\"\n", "m".repeat(300)),
                "report.matter",
            ),
        ] {
            let err = parse(&text).expect_err(key).to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = parse(&format!("{MINIMAL}[[report.personnel]]\nname = \"Bob\"\n"))
            .expect_err("principal missing")
            .to_string();
        assert!(err.contains("principal"), "{err}");
    }

    #[test]
    fn hostile_values_are_refused_naming_the_key() {
        for (text, key, words) in [
            (
                format!("{MINIMAL}[aws]\nendpoint_url = \"http://10.0.0.5:4566\"\n"),
                "aws.endpoint_url",
                "plain HTTP to another machine",
            ),
            (
                format!("{MINIMAL}[aws.endpoints]\ns3 = \"ftp://127.0.0.1\"\n"),
                "aws.endpoints.s3",
                "http(s)",
            ),
            (
                MINIMAL.replace("external_id = \"x\"", "external_id = \"x\"\nrole = \"arn:aws:iam::222222222222:role/ForensnapCollector\""),
                "members[0].role",
                "not a role of account 111111111111",
            ),
            (
                MINIMAL.replace("external_id = \"x\"", "external_id = \"x\"\nrole = \"arn:aws:iam::111111111111:user/admin\""),
                "members[0].role",
                "not a role",
            ),
            (
                format!("operator = \"Eve\\u001b[2J\"\n{MINIMAL}"),
                "operator",
                "control character",
            ),
            (format!("operator = \"{}\"\n{MINIMAL}", "a".repeat(300)), "operator", "256"),
        ] {
            let err = parse(&text).expect_err(key);
            let err = err.to_string();
            assert!(err.contains(key) && err.contains(words), "{key}: {err}");
        }
        for ok in [
            "http://127.0.0.1:5599",
            "http://localhost:4566",
            "http://[::1]:9000",
            "https://s3.eu-west-1.amazonaws.com",
        ] {
            parse(&format!("{MINIMAL}[aws]\nendpoint_url = \"{ok}\"\n")).expect(ok);
        }
    }

    #[test]
    fn every_file_in_config_parses() {
        // The directory cargo runs the test in, not the one it was compiled in: a shared target
        // directory hands one clone's test binary to another.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let dir = manifest.join("../../config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".toml") && !name.ends_with("-world.toml") {
                Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "config/forensnap.toml and config/local.toml at least"
        );
    }

    #[test]
    fn mistakes_name_the_key() {
        let err = parse(&MINIMAL.replace("evidence_bucket", "evidence_bukket")).expect_err("typo");
        assert!(err.to_string().contains("evidence_bukket"), "{err}");
        let err = parse(&MINIMAL.replace("111111111111", "1111")).expect_err("account");
        assert!(err.to_string().contains("members[0].account"), "{err}");
        parse(&MINIMAL.replace("key/1234", "alias/forensnap-ebs")).expect("alias ARNs are fine");
        let err = parse(&MINIMAL.replace("arn:aws:kms:us-east-1:123456789012:key/1234", "alias/x"))
            .expect_err("key");
        assert!(err.to_string().contains("forensic.ebs_key_arn"), "{err}");
        let err =
            parse(&MINIMAL.replace("us-east-1:123456789012:key", "us-east-1:111111111111:key"))
                .expect_err("other account");
        assert!(err.to_string().contains("forensic.ebs_key_arn"), "{err}");
        let err = parse(&format!("{MINIMAL}[collect]\nmax_concurrent_copies = 21\n"))
            .expect_err("copies");
        assert!(err.to_string().contains("20"), "{err}");
        let config = parse(MINIMAL).expect("ok");
        let err = config
            .member(Path::new("t.toml"), "222222222222")
            .expect_err("unknown");
        assert!(err.to_string().contains("111111111111"), "{err}");
    }
}
