//! The forensic account as forensnap's commands use it: connected with the config's credentials,
//! checked to act in the forensic account (STS GetCallerIdentity), and every adapter built on it
//! (the evidence store, the signer, EC2 of the forensic account and, through the case's role
//! session, of a member account, the EBS block source). The binary holds this type and never an
//! SDK client or configuration.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sts::operation::RequestId as _;
use forensnap_config::{Config, Member};
use forensnap_core::CaseId;
use forensnap_store::{CloudError, ErrorKind};

use crate::clients::forensic_sdk_config;
use crate::errors::aws_error;
use crate::signer::SignerError;
use crate::{
    CaseRoleProvider, Clients, DynamoCaseTable, EbsSource, KmsSigner, S3Store, SdkEc2, SdkSsm,
    SdkTrail, SqsQueue,
};

/// The forensic account, connected.
pub struct ForensicAccount {
    /// SDK configuration (the member sessions and EBS build on it).
    sdk: SdkConfig,
    /// Clients of the forensic account.
    clients: Clients,
    /// The configuration it was connected with.
    config: Config,
    /// The caller's ARN, as custody events record it.
    caller_arn: String,
}

impl ForensicAccount {
    /// Connect with the config's credentials and check that they act in `forensic.account`.
    pub async fn connect(config: &Config) -> Result<ForensicAccount, CloudError> {
        let sdk = forensic_sdk_config(config).await;
        let clients = Clients::new(&sdk, &config.aws.endpoints);
        let caller = clients
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_error("GetCallerIdentity", e))?;
        if caller.account() != Some(config.forensic.account.as_str()) {
            return Err(CloudError {
                kind: ErrorKind::Denied,
                operation: "GetCallerIdentity",
                code: Some("WrongAccount".into()),
                message: format!(
                    "the credentials act in account {:?}, but the config's forensic.account is {}; use the forensic account's credentials",
                    caller.account(),
                    config.forensic.account
                ),
                request_id: caller.request_id().map(str::to_string),
            });
        }
        Ok(ForensicAccount {
            caller_arn: caller.arn().unwrap_or_default().to_string(),
            sdk,
            clients,
            config: config.clone(),
        })
    }

    /// The caller's ARN.
    pub fn caller_arn(&self) -> &str {
        &self.caller_arn
    }

    /// The evidence bucket, with the configured legal hold (retention is the bucket's default,
    /// which collect checks against the configured retention before anything is done).
    pub fn store(&self) -> S3Store {
        let forensic = &self.config.forensic;
        S3Store::new(
            self.clients.s3.clone(),
            &forensic.evidence_bucket,
            forensic.legal_hold,
        )
    }

    /// The signer of key `key_id`, its spec and usage checked.
    pub async fn signer(&self, key_id: &str) -> Result<KmsSigner, SignerError> {
        KmsSigner::new(self.clients.kms.clone(), key_id).await
    }

    /// The ARN of the forensic EBS key (`forensic.ebs_key_arn` may name it by alias or id).
    pub async fn ebs_key_arn(&self) -> Result<String, CloudError> {
        let configured = &self.config.forensic.ebs_key_arn;
        let key = self
            .clients
            .kms
            .describe_key()
            .key_id(configured)
            .send()
            .await
            .map_err(|e| aws_error("DescribeKey", e))?;
        Ok(key
            .key_metadata()
            .and_then(|m| m.arn())
            .unwrap_or(configured)
            .to_string())
    }

    /// EC2 (and KMS) of the forensic account.
    pub fn forensic_ec2(&self) -> SdkEc2 {
        SdkEc2::new(
            self.clients.clone(),
            &self.config.forensic.account,
            &self.config.forensic.region,
        )
    }

    /// The SDK configuration of `member` in `region` through the case's role session (AssumeRole
    /// with the member's ExternalId, session name and SourceIdentity from the case; refreshed by
    /// the SDK). Each adapter of the member account is built on its own session.
    fn member_sdk(&self, member: &Member, case: &CaseId, region: &str) -> SdkConfig {
        let session = CaseRoleProvider::new(
            self.clients.sts.clone(),
            &member.role_arn(),
            &member.external_id,
            case,
            Duration::from_secs(u64::from(self.config.collect.session_seconds)),
        );
        session.member_config(&self.sdk, region)
    }

    /// EC2 of `member` in `region`, through the case's role session.
    pub fn member_ec2(&self, member: &Member, case: &CaseId, region: &str) -> SdkEc2 {
        let member_sdk = self.member_sdk(member, case, region);
        SdkEc2::new(
            Clients::new(&member_sdk, &self.config.aws.endpoints),
            &member.account,
            region,
        )
    }

    /// CloudTrail of the member account and region, and its trail's bucket, read through the
    /// case's member session.
    pub fn member_trail(&self, member: &Member, case: &CaseId, region: &str) -> SdkTrail {
        let member_sdk = self.member_sdk(member, case, region);
        let clients = Clients::new(&member_sdk, &self.config.aws.endpoints);
        SdkTrail::new(&member_sdk, clients.s3, &member.account, region)
    }

    /// The transfer bucket `bucket` (`[memory] transfer_bucket`): memory capture's plans.
    pub fn transfer_store(&self, bucket: &str) -> S3Store {
        S3Store::new(self.clients.s3.clone(), bucket, false)
    }

    /// SSM RunCommand (and EC2 instance types) of the member account and region, through the
    /// case's member session.
    pub fn member_ssm(&self, member: &Member, case: &CaseId, region: &str) -> SdkSsm {
        let member_sdk = self.member_sdk(member, case, region);
        let clients = Clients::new(&member_sdk, &self.config.aws.endpoints);
        SdkSsm::new(&member_sdk, clients.ec2)
    }

    /// The EBS direct APIs of the forensic account (its snapshots are the ones read).
    pub fn block_source(&self) -> EbsSource {
        EbsSource::new(&self.sdk, self.config.aws.endpoints.ebs.as_deref())
    }

    /// The daemon's request queue and dead-letter queue (`[daemon] queue_url`,
    /// `dead_letter_queue_url`), or `None` when the config names no queue.
    pub fn request_queue(&self) -> Option<SqsQueue> {
        let daemon = &self.config.daemon;
        match (&daemon.queue_url, &daemon.dead_letter_queue_url) {
            (Some(url), Some(dead)) => Some(SqsQueue::new(self.clients.sqs.clone(), url, dead)),
            _ => None,
        }
    }

    /// The case table (`[daemon] case_table`), or `None` when the config names none.
    pub fn case_table(&self) -> Option<DynamoCaseTable> {
        self.config
            .daemon
            .case_table
            .as_deref()
            .map(|table| DynamoCaseTable::new(self.clients.dynamodb.clone(), table))
    }
}
