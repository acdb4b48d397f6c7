//! The member-account session of a case.
//!
//! aws-config's `AssumeRoleProvider` cannot set a SourceIdentity, which forensnap needs so that
//! every CloudTrail record of the collection in the member account carries the case. This
//! provider makes the AssumeRole call itself; the SDK's identity cache holds the credentials and
//! asks again before they expire, so long collections keep a valid session.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use forensnap_core::CaseId;

/// AssumeRole into a member account for one case.
#[derive(Debug, Clone)]
pub struct CaseRoleProvider {
    /// STS client with the forensic account's credentials.
    sts: aws_sdk_sts::Client,
    /// The collector role.
    role_arn: String,
    /// The ExternalId the role's trust policy demands.
    external_id: String,
    /// `forensnap-<case>`.
    session_name: String,
    /// The case id.
    source_identity: String,
    /// Session lifetime.
    duration: Duration,
}

impl CaseRoleProvider {
    /// A provider for `role_arn`, using the forensic account's `sts` client.
    pub fn new(
        sts: aws_sdk_sts::Client,
        role_arn: &str,
        external_id: &str,
        case: &CaseId,
        duration: Duration,
    ) -> Self {
        CaseRoleProvider {
            sts,
            role_arn: role_arn.to_string(),
            external_id: external_id.to_string(),
            session_name: case.session_name(),
            source_identity: case.source_identity(),
            duration,
        }
    }

    /// An SDK config acting in the member account, in `region`, through this session.
    pub fn member_config(self, forensic: &SdkConfig, region: &str) -> SdkConfig {
        forensic
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .credentials_provider(SharedCredentialsProvider::new(self))
            .build()
    }

    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .source_identity(&self.source_identity)
            .external_id(&self.external_id)
            .duration_seconds(self.duration.as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                let e = crate::errors::aws_error("AssumeRole", e);
                tracing::warn!(role = %self.role_arn, error = %e, "AssumeRole refused");
                CredentialsError::provider_error(e)
            })?;
        let creds = out.credentials().ok_or_else(|| {
            CredentialsError::unhandled("AssumeRole answered without credentials")
        })?;
        let expires = SystemTime::try_from(*creds.expiration()).ok();
        tracing::info!(role = %self.role_arn, session = %self.session_name, "assumed member role");
        Ok(Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            expires,
            "forensnap-case-session",
        ))
    }
}

impl ProvideCredentials for CaseRoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}
