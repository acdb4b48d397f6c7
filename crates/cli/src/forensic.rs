//! The forensic account as every subcommand that writes custody events needs it: SDK config and
//! clients from the config, the credentials checked to act in the forensic account, the actor
//! (IAM principal and person) and the case's custody log.

use anyhow::{Context, bail};
use forensnap_aws::{ForensicAccount, KmsSigner, S3Store};
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

/// The forensic account, connected, and who acts in it.
pub struct Forensic {
    /// The account and the adapters built on it.
    pub account: ForensicAccount,
    /// The caller, as recorded in custody events.
    pub actor: Actor,
}

impl Forensic {
    /// Connect with the config's credentials and check that they act in the forensic account.
    pub async fn connect(config: &Config, who: &Attribution) -> anyhow::Result<Forensic> {
        // Both are recorded in every custody event: refused before anything is done.
        if let Some(operator) = &who.operator {
            forensnap_config::check_label(operator)
                .map_err(|m| anyhow::anyhow!("--operator {operator:?} {m}"))?;
        }
        if let Some(purpose) = &who.purpose {
            forensnap_config::check_text(purpose, 1024)
                .map_err(|m| anyhow::anyhow!("--purpose {purpose:?} {m}"))?;
        }
        let account = ForensicAccount::connect(config)
            .await
            .context("checking the forensic credentials with sts:GetCallerIdentity (they come from the config's [aws] table or the AWS credential chain)")?;
        let operator = who
            .operator
            .clone()
            .or_else(|| config.operator.clone())
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".to_string());
        let actor = Actor {
            arn: account.caller_arn().to_string(),
            operator,
        };
        Ok(Forensic { account, actor })
    }

    /// The signing key (`forensic.signing_key_arn`), checked before anything is done: every
    /// evidence bag and custody checkpoint is signed with it.
    pub async fn signer(&self, config: &Config) -> anyhow::Result<KmsSigner> {
        let Some(key) = &config.forensic.signing_key_arn else {
            bail!(
                "forensic.signing_key_arn is not set: forensnap signs every evidence bag and custody checkpoint with the forensic account's ECC_NIST_P256 KMS key; set it to that key's ARN (forensic-vpc/forensic-account.yaml creates one)"
            );
        };
        Ok(self.account.signer(key).await?)
    }

    /// The evidence bucket, with the configured retention and legal hold.
    pub fn store(&self) -> S3Store {
        self.account.store()
    }

    /// The case's custody log (earlier events read and verified).
    pub async fn custody(
        &self,
        config: &Config,
        case: &CaseId,
        who: &Attribution,
    ) -> anyhow::Result<Custody<S3Store>> {
        self.custody_for(config, case, who.purpose.clone()).await
    }

    /// The case's custody log, every event recording `purpose`.
    pub async fn custody_for(
        &self,
        config: &Config,
        case: &CaseId,
        purpose: Option<String>,
    ) -> anyhow::Result<Custody<S3Store>> {
        Ok(Custody::open(
            self.store(),
            &config.forensic.evidence_prefix,
            case,
            self.actor.clone(),
            purpose,
        )
        .await?)
    }
}
