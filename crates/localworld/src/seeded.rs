//! Seeding a world file and the ids it created (the JSON `scripts/emulator seed` prints).

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::{World, WorldError};

/// Every id a seed created.
#[derive(Debug, Clone, Deserialize)]
pub struct Seeded {
    /// Region of every resource.
    pub region: String,
    /// The forensic account.
    pub forensic: Forensic,
    /// The member accounts.
    pub members: Vec<Member>,
    /// The security tooling account (GuardDuty / Security Hub administrator) that may put
    /// events on the intake bus, when the world file names one (`[security] account`).
    #[serde(default)]
    pub security: Option<Security>,
    /// A forensnap config written for this world, once forensnap has one.
    #[serde(default)]
    pub config: Option<String>,
    /// The deployed stacks as `aws cloudformation describe-stacks` prints them (worlds deployed
    /// from the templates only).
    #[serde(default)]
    pub stacks: Option<Stacks>,
}

/// The security tooling account.
#[derive(Debug, Clone, Deserialize)]
pub struct Security {
    /// Account id.
    pub account: String,
    /// Its administrator.
    #[serde(flatten)]
    pub admin: Admin,
}

/// Files holding `describe-stacks` JSON of the deployed stacks.
#[derive(Debug, Clone, Deserialize)]
pub struct Stacks {
    /// The forensic-account stack.
    pub forensic: String,
    /// One member-role stack per member account, in the world file's order.
    pub members: Vec<String>,
}

/// The forensic account's resources and operator credentials.
#[derive(Debug, Clone, Deserialize)]
pub struct Forensic {
    /// Account id.
    pub account: String,
    /// Object Lock (COMPLIANCE) evidence bucket.
    pub evidence_bucket: String,
    /// Default retention of the bucket, in days.
    pub retention_days: u32,
    /// Symmetric key for snapshot re-encryption.
    pub ebs_key_arn: String,
    /// ECC_NIST_P256 signing key.
    pub signing_key_arn: String,
    /// Who the operator's key acts as: the collector role's instance-profile session in a world
    /// deployed from the templates, the operator user in a hand-made one.
    pub operator_arn: String,
    /// Operator access key id.
    pub access_key_id: String,
    /// Operator secret key.
    pub secret_access_key: String,
    /// The transfer bucket (memory capture's transfer plans).
    #[serde(default)]
    pub transfer_bucket: Option<String>,
    /// The world's pinned stand-in AVML build in the evidence bucket.
    #[serde(default)]
    pub avml_key: Option<String>,
    /// Its SHA-256.
    #[serde(default)]
    pub avml_sha256: Option<String>,
    /// The daemon's request queue.
    #[serde(default)]
    pub request_queue_url: Option<String>,
    /// Its dead-letter queue.
    #[serde(default)]
    pub dead_letter_queue_url: Option<String>,
    /// The case table.
    #[serde(default)]
    pub case_table: Option<String>,
    /// The intake event bus's ARN.
    #[serde(default)]
    pub intake_bus: Option<String>,
    /// The account's administrator (see [`Admin`]).
    #[serde(flatten)]
    pub admin: Admin,
}

/// An administrator of an account: an IAM user allowed everything by its own policy, still
/// bound by resource policies and explicit denies. Tests set up and inspect with it what
/// forensnap's least-privilege roles may not touch.
#[derive(Debug, Clone, Deserialize)]
pub struct Admin {
    /// Access key id.
    pub admin_access_key_id: String,
    /// Secret key.
    pub admin_secret_access_key: String,
}

impl Admin {
    /// The administrator's static credentials.
    pub fn credentials(&self) -> aws_credential_types::Credentials {
        aws_credential_types::Credentials::new(
            &self.admin_access_key_id,
            &self.admin_secret_access_key,
            None,
            None,
            "forensnap-local-world-admin",
        )
    }
}

/// A member account with its collector role and instances.
#[derive(Debug, Clone, Deserialize)]
pub struct Member {
    /// Account id.
    pub account: String,
    /// The collector role forensnap assumes.
    pub role_arn: String,
    /// The ExternalId the role's trust policy demands.
    pub external_id: String,
    /// The member's own volume key, when a volume used `encryption = "cmk"`.
    #[serde(default)]
    pub cmk_arn: Option<String>,
    /// Instances.
    pub instances: Vec<Instance>,
    /// The account's administrator.
    #[serde(flatten)]
    pub admin: Admin,
}

/// One instance.
#[derive(Debug, Clone, Deserialize)]
pub struct Instance {
    /// Name tag.
    pub name: String,
    /// Instance id.
    pub instance_id: String,
    /// Attached volumes, in the order of the world file.
    pub volumes: Vec<Volume>,
    /// The memory the stand-in AVML captures, MiB (instances with `memory_mib`).
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// Its SSM agent: `online`, `offline` or `none`.
    #[serde(default)]
    pub ssm: Option<String>,
}

/// One volume and the image it holds.
#[derive(Debug, Clone, Deserialize)]
pub struct Volume {
    /// Device name.
    pub device: String,
    /// Volume id.
    pub volume_id: String,
    /// Size in GiB.
    pub size_gib: u64,
    /// `none`, `default` or `cmk`.
    pub encryption: String,
    /// Absolute path of the raw image.
    pub image: String,
    /// Number of 512 KiB blocks that hold data.
    pub data_blocks: u64,
    /// SHA-256 of the image zero-padded to the volume size.
    pub image_sha256: String,
}

impl World {
    /// Build the world described by a world file; returns every id created.
    pub fn seed(&self, world_file: &Path) -> Result<Seeded, WorldError> {
        let err = |message: String| WorldError::Seed {
            path: world_file.to_path_buf(),
            message,
        };
        let output = Command::new(self.python())
            .args([
                "-m",
                "forensnap_world",
                "seed",
                "--endpoint",
                self.endpoint(),
            ])
            .arg(world_file)
            .env("PYTHONPATH", self.repo().join("localworld"))
            .output()
            .map_err(|e| err(e.to_string()))?;
        if !output.status.success() {
            return Err(err(String::from_utf8_lossy(&output.stderr)
                .trim()
                .to_string()));
        }
        serde_json::from_slice(&output.stdout)
            .map_err(|e| err(format!("unreadable seed output: {e}")))
    }
}

impl Seeded {
    /// The first member account (most worlds have one).
    pub fn member(&self) -> &Member {
        &self.members[0]
    }
}
