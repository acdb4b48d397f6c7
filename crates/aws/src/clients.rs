//! SDK configuration and clients built from a forensnap config.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use forensnap_config::{Config, Endpoints};

/// How many attempts the SDK makes per call (standard mode: jittered exponential backoff,
/// throttling and 5xx retried, client errors not).
const MAX_ATTEMPTS: u32 = 6;

/// The SDK clients of one account, honouring the config's endpoints.
#[derive(Clone, Debug)]
pub struct Clients {
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// KMS.
    pub kms: aws_sdk_kms::Client,
    /// S3 (path-style when a custom endpoint is set).
    pub s3: aws_sdk_s3::Client,
    /// STS.
    pub sts: aws_sdk_sts::Client,
    /// SQS (the daemon's request queue).
    pub sqs: aws_sdk_sqs::Client,
    /// DynamoDB (the case table).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The configuration they were built from.
    pub sdk: SdkConfig,
}

/// The forensic account's SDK configuration: region, credentials (static ones only for local
/// worlds, else the default chain), one endpoint for all services, timeouts and retries.
pub async fn forensic_sdk_config(config: &Config) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.forensic.region.clone()))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(config.aws.attempt_timeout_seconds))
                .build(),
        );
    if let Some(url) = &config.aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(creds) = &config.aws.credentials {
        loader = loader.credentials_provider(Credentials::new(
            &creds.access_key_id,
            &creds.secret_access_key,
            None,
            None,
            "forensnap-config",
        ));
    }
    loader.load().await
}

impl Clients {
    /// Clients for `sdk`, with per-service endpoint overrides.
    pub fn new(sdk: &SdkConfig, endpoints: &Endpoints) -> Clients {
        let custom = sdk.endpoint_url().is_some() || endpoints.s3.is_some();
        let mut ec2 = aws_sdk_ec2::config::Builder::from(sdk);
        if let Some(url) = &endpoints.ec2 {
            ec2 = ec2.endpoint_url(url);
        }
        let mut kms = aws_sdk_kms::config::Builder::from(sdk);
        if let Some(url) = &endpoints.kms {
            kms = kms.endpoint_url(url);
        }
        let mut s3 = aws_sdk_s3::config::Builder::from(sdk).force_path_style(custom);
        if let Some(url) = &endpoints.s3 {
            s3 = s3.endpoint_url(url);
        }
        let mut sts = aws_sdk_sts::config::Builder::from(sdk);
        if let Some(url) = &endpoints.sts {
            sts = sts.endpoint_url(url);
        }
        let mut sqs = aws_sdk_sqs::config::Builder::from(sdk);
        if let Some(url) = &endpoints.sqs {
            sqs = sqs.endpoint_url(url);
        }
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(url) = &endpoints.dynamodb {
            dynamodb = dynamodb.endpoint_url(url);
        }
        Clients {
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
            kms: aws_sdk_kms::Client::from_conf(kms.build()),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            sdk: sdk.clone(),
        }
    }
}
