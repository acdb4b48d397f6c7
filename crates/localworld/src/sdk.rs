//! SDK configurations that point the real AWS SDK clients at a local world.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::{Seeded, World};

/// The forensic operator's static credentials from a seed.
pub fn forensic_credentials(seeded: &Seeded) -> Credentials {
    Credentials::new(
        &seeded.forensic.access_key_id,
        &seeded.forensic.secret_access_key,
        None,
        None,
        "forensnap-localworld",
    )
}

/// An `SdkConfig` for `world` with the given credentials, region and the SDK's default retries.
pub async fn sdk_config(
    world: &World,
    region: &str,
    credentials: impl ProvideCredentials + 'static,
) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(world.endpoint())
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .load()
        .await
}
