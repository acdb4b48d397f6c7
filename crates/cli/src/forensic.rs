//! The forensic account as every subcommand that writes custody events needs it: SDK config and
//! clients from the config, the credentials checked to act in the forensic account, the actor
//! (IAM principal and person) and the case's custody log.

use anyhow::{Context, bail};
use aws_config::SdkConfig;
use forensnap_aws::clients::forensic_sdk_config;
use forensnap_aws::{Clients, KmsSigner, S3Store};
use forensnap_config::Config;
use forensnap_core::{Actor, CaseId};
use forensnap_custody::Custody;

/// Who acts and why, recorded in every custody event of the command.
#[derive(Debug, clap::Args)]
pub struct Attribution {
    /// Your name, recorded in every custody event (default: config `operator`, then $USER).
    #[arg(long, env = "FORENSNAP_OPERATOR")]
    pub operator: Option<String>,
    /// Purpose or authority (ticket, warrant), recorded in every custody event.
    #[arg(long)]
    pub purpose: Option<String>,
}

/// The forensic account's SDK configuration, clients and caller.
pub struct Forensic {
    /// SDK configuration (the member session and EBS build on it).
    pub sdk: SdkConfig,
    /// Clients of the forensic account.
    pub clients: Clients,
    /// The caller, as recorded in custody events.
    pub actor: Actor,
}

impl Forensic {
    /// Connect with the config's credentials and check that they act in the forensic account.
    pub async fn connect(config: &Config, who: &Attribution) -> anyhow::Result<Forensic> {
        let sdk = forensic_sdk_config(config).await;
        let clients = Clients::new(&sdk, &config.aws.endpoints);
        let caller = clients
            .sts
            .get_caller_identity()
            .send()
            .await
            .context("cannot identify the forensic credentials (sts:GetCallerIdentity); check [aws] in the config or the AWS credential chain")?;
        if caller.account() != Some(config.forensic.account.as_str()) {
            bail!(
                "the credentials act in account {:?}, but the config's forensic.account is {}; use the forensic account's credentials",
                caller.account(),
                config.forensic.account
            );
        }
        let operator = who
            .operator
            .clone()
            .or_else(|| config.operator.clone())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".to_string());
        let actor = Actor {
            arn: caller.arn().unwrap_or_default().to_string(),
            operator,
        };
        Ok(Forensic {
            sdk,
            clients,
            actor,
        })
    }

    /// The signing key (`forensic.signing_key_arn`), checked before anything is done: every
    /// evidence bag and custody checkpoint is signed with it.
    pub async fn signer(&self, config: &Config) -> anyhow::Result<KmsSigner> {
        let Some(key) = &config.forensic.signing_key_arn else {
            bail!(
                "forensic.signing_key_arn is not set: forensnap signs every evidence bag and custody checkpoint with the forensic account's ECC_NIST_P256 KMS key; set it to that key's ARN (forensic-vpc/forensic-account.yaml creates one)"
            );
        };
        Ok(KmsSigner::new(self.clients.kms.clone(), key).await?)
    }

    /// The evidence bucket, with the configured retention and legal hold.
    pub fn store(&self, config: &Config) -> S3Store {
        S3Store::new(
            self.clients.s3.clone(),
            &config.forensic.evidence_bucket,
            config.forensic.retention_days,
            config.forensic.legal_hold,
        )
    }

    /// The case's custody log (earlier events read and verified).
    pub async fn custody(
        &self,
        config: &Config,
        case: &CaseId,
        who: &Attribution,
    ) -> anyhow::Result<Custody<S3Store>> {
        Ok(Custody::open(
            self.store(config),
            &config.forensic.evidence_prefix,
            case,
            self.actor.clone(),
            who.purpose.clone(),
        )
        .await?)
    }
}
