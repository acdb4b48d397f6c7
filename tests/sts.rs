//! STS in the local world: AssumeRole refuses unknown roles, wrong ExternalIds and undeclared
//! SourceIdentity; the credentials land in the member account and stop working when they expire.

use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use forensnap_tests::*;

const ONE_VOLUME: [&str; 1] =
    ["device = \"/dev/xvda\"\nimage = \"root.img\"\nbuild = { kind = \"pattern\", blocks = 1 }"];

async fn assume(
    sts: &aws_sdk_sts::Client,
    role: &str,
    external_id: &str,
    duration: i32,
) -> Result<aws_sdk_sts::types::Credentials, String> {
    sts.assume_role()
        .role_arn(role)
        .role_session_name("forensnap-CASE-42")
        .source_identity("CASE-42")
        .external_id(external_id)
        .duration_seconds(duration)
        .send()
        .await
        .map(|out| out.credentials().expect("credentials").clone())
        .map_err(|e| {
            format!(
                "{}: {}",
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default()
            )
        })
}

fn static_credentials(c: &aws_sdk_sts::types::Credentials) -> Credentials {
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "test",
    )
}

#[tokio::test]
async fn assume_role_checks_the_role_and_its_trust_policy() {
    let env = Env::new(&world_toml("ev-sts", &ONE_VOLUME));
    let sts = aws_sdk_sts::Client::new(&env.forensic().await);
    let role = env.seeded.member().role_arn.clone();

    let err = assume(&sts, &role, "wrong-id", 900)
        .await
        .expect_err("wrong ExternalId");
    assert!(err.starts_with("AccessDenied"), "{err}");
    assert!(err.contains(&role), "names the role: {err}");
    let err = assume(
        &sts,
        "arn:aws:iam::111111111111:role/NoSuchRole",
        "ext-2026-forensnap",
        900,
    )
    .await
    .expect_err("no role");
    assert!(err.starts_with("AccessDenied"), "{err}");
    let err = assume(&sts, &role, "ext-2026-forensnap", 60)
        .await
        .expect_err("too short");
    assert!(err.starts_with("ValidationError"), "{err}");
    let err = assume(&sts, &role, "ext-2026-forensnap", 7200)
        .await
        .expect_err("over MaxSessionDuration");
    assert!(err.starts_with("ValidationError"), "{err}");

    let creds = assume(&sts, &role, "ext-2026-forensnap", 900)
        .await
        .expect("right ExternalId");
    let member = sdk_config(&env.world, "us-east-1", static_credentials(&creds)).await;
    let who = aws_sdk_sts::Client::new(&member)
        .get_caller_identity()
        .send()
        .await
        .expect("whoami");
    assert_eq!(who.account(), Some("111111111111"));
    assert_eq!(
        who.arn(),
        Some("arn:aws:sts::111111111111:assumed-role/ForensnapCollector/forensnap-CASE-42")
    );

    // The session acts in the member account: it sees the member's instance, the operator does not.
    let instance_id = env.seeded.member().instances[0].instance_id.clone();
    let seen = aws_sdk_ec2::Client::new(&member)
        .describe_instances()
        .send()
        .await
        .expect("describe");
    let ids: Vec<_> = seen
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(ids, vec![instance_id.as_str()]);
    let operator = aws_sdk_ec2::Client::new(&env.forensic_admin().await)
        .describe_instances()
        .send()
        .await
        .expect("describe");
    assert!(
        operator.reservations().is_empty(),
        "the forensic account has no instances"
    );
}

#[tokio::test]
async fn a_trust_policy_without_set_source_identity_refuses_a_source_identity() {
    let toml = world_toml("ev-sts-si", &ONE_VOLUME).replace(
        "external_id = \"ext-2026-forensnap\"",
        "external_id = \"ext-2026-forensnap\"\ntrust_source_identity = false",
    );
    let env = Env::new(&toml);
    let sts = aws_sdk_sts::Client::new(&env.forensic().await);
    let err = assume(
        &sts,
        &env.seeded.member().role_arn,
        "ext-2026-forensnap",
        900,
    )
    .await
    .expect_err("SourceIdentity");
    assert!(err.starts_with("AccessDenied"), "{err}");
    // member-role.yaml (RequireSourceIdentity) admits no session without a case id either.
    let err = sts
        .assume_role()
        .role_arn(&env.seeded.member().role_arn)
        .role_session_name("no-source-identity")
        .external_id("ext-2026-forensnap")
        .send()
        .await
        .expect_err("without SourceIdentity the template's role cannot be assumed");
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
}

#[tokio::test]
async fn temporary_credentials_expire_and_need_their_session_token() {
    let env = Env::new(&world_toml("ev-sts-exp", &ONE_VOLUME));
    let sts = aws_sdk_sts::Client::new(&env.forensic().await);
    let creds = assume(
        &sts,
        &env.seeded.member().role_arn,
        "ext-2026-forensnap",
        900,
    )
    .await
    .expect("assume");
    let ec2 = aws_sdk_ec2::Client::new(
        &sdk_config(&env.world, "us-east-1", static_credentials(&creds)).await,
    );
    ec2.describe_instances()
        .send()
        .await
        .expect("fresh credentials work");

    let tokenless = Credentials::new(
        creds.access_key_id(),
        creds.secret_access_key(),
        None,
        None,
        "test",
    );
    let err = aws_sdk_ec2::Client::new(&sdk_config(&env.world, "us-east-1", tokenless).await)
        .describe_instances()
        .send()
        .await
        .expect_err("no session token");
    assert_eq!(err.code(), Some("InvalidClientTokenId"), "{err:?}");

    env.world.advance_clock(899).expect("clock");
    ec2.describe_instances()
        .send()
        .await
        .expect("still valid one second before expiry");
    env.world.advance_clock(2).expect("clock");
    let err = ec2.describe_instances().send().await.expect_err("expired");
    assert_eq!(err.code(), Some("RequestExpired"), "{err:?}");
    let s3 = s3(&sdk_config(&env.world, "us-east-1", static_credentials(&creds)).await);
    let err = s3
        .list_buckets()
        .send()
        .await
        .expect_err("expired for S3 too");
    assert_eq!(err.code(), Some("ExpiredToken"), "{err:?}");
}

#[tokio::test]
async fn the_case_session_carries_the_case_and_renews_itself() {
    use aws_credential_types::provider::ProvideCredentials;
    let env = Env::new(&world_toml("ev-sts-session", &ONE_VOLUME));
    let sts = aws_sdk_sts::Client::new(&env.forensic().await);
    let case = forensnap_core::CaseId::parse("IR-77").expect("case");
    let role = &env.seeded.member().role_arn;
    let ttl = std::time::Duration::from_secs(900);
    let provider =
        forensnap_aws::CaseRoleProvider::new(sts.clone(), role, "ext-2026-forensnap", &case, ttl);
    let first = provider.provide_credentials().await.expect("assumed");
    let expiry = first.expiry().expect("temporary credentials expire");
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .expect("in the future")
        .as_secs();
    assert!((880..=900).contains(&left), "{left} s left");
    // Asked again (as the SDK's identity cache does before expiry), it assumes the role anew.
    let second = provider.provide_credentials().await.expect("renewed");
    assert_ne!(first.access_key_id(), second.access_key_id());
    let member = sdk_config(&env.world, "us-east-1", provider.clone()).await;
    let who = aws_sdk_sts::Client::new(&member)
        .get_caller_identity()
        .send()
        .await
        .expect("whoami");
    assert_eq!(
        who.arn(),
        Some("arn:aws:sts::111111111111:assumed-role/ForensnapCollector/forensnap-IR-77")
    );

    let wrong = forensnap_aws::CaseRoleProvider::new(sts, role, "nope", &case, ttl);
    let err = wrong.provide_credentials().await.expect_err("refused");
    assert!(format!("{err:?}").contains("AccessDenied"), "{err:?}");
}
