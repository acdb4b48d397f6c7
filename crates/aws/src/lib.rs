//! forensnap's AWS adapters: everything that touches the AWS SDK lives here.
//!
//! * [`clients`] -- SDK configuration and clients from a forensnap config (endpoints per service,
//!   timeouts, static credentials for local worlds).
//! * [`session`] -- the member-account session of a case: AssumeRole with ExternalId, a session
//!   name and SourceIdentity carrying the case, refreshed by the SDK before it expires.
//! * [`ebs`]     -- [`forensnap_acquire::BlockSource`] over the EBS direct APIs.
//! * [`ec2`]     -- [`forensnap_preserve::Ec2`] over EC2, KMS and STS.
//! * [`s3`]      -- [`forensnap_preserve::EvidenceStore`] over S3 Object Lock.
//! * [`s3sink`]  -- [`forensnap_acquire::sink::EvidenceSink`]: multipart uploads under Object Lock.
//! * [`signer`]  -- [`forensnap_core::seal::Signer`] over KMS (ECDSA P-256, the key never leaves KMS).
//! * [`errors`]  -- SDK errors turned into [`forensnap_preserve::AwsError`] with code and request id.

pub mod clients;
pub mod ebs;
pub mod ec2;
pub mod errors;
pub mod s3;
pub mod s3sink;
pub mod session;
pub mod signer;

pub use clients::Clients;
pub use ebs::EbsSource;
pub use ec2::SdkEc2;
pub use s3::S3Evidence;
pub use s3sink::S3Sink;
pub use session::CaseRoleProvider;
pub use signer::KmsSigner;
