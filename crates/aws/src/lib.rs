//! forensnap's AWS adapters: everything that touches the AWS SDK lives here.
//!
//! * [`account`] -- the forensic account connected and checked, and every adapter built on it
//!   (the binary holds this, never an SDK client).
//! * [`clients`] -- SDK configuration and clients from a forensnap config (endpoints per service,
//!   timeouts, static credentials for local worlds).
//! * [`session`] -- the member-account session of a case: AssumeRole with ExternalId, a session
//!   name and SourceIdentity carrying the case, refreshed by the SDK before it expires.
//! * [`cloudtrail`] -- [`forensnap_ports::Trail`] over CloudTrail (the bytes of every LookupEvents
//!   exchange kept) and read-only S3 access to the trail's bucket.
//! * [`ebs`]     -- [`forensnap_ports::BlockSource`] over the EBS direct APIs.
//! * [`ec2`]     -- [`forensnap_ports::Ec2`] over EC2, KMS and STS.
//! * [`s3`]      -- the evidence store ([`forensnap_store`]'s read, write and audit traits) over
//!   S3 Object Lock, multipart uploads included.
//! * [`ssm`]     -- [`forensnap_ports::Ssm`] over SSM RunCommand (the document's hash pinned on
//!   SendCommand) and EC2 DescribeInstanceTypes.
//! * [`sqs`]     -- [`forensnap_ports::RequestQueue`] over SQS: the daemon's request queue and its
//!   dead-letter queue.
//! * [`dynamodb`] -- [`forensnap_ports::CaseTable`] over DynamoDB: leases, case states, item
//!   progress and instance claims, with conditional writes only.
//! * [`signer`]  -- [`forensnap_core::seal::Signer`] over KMS (ECDSA P-256, the key never leaves KMS).
//! * [`errors`]  -- SDK errors turned into [`forensnap_store::CloudError`]: the one place AWS error
//!   codes are classified into kinds.

pub mod account;
pub mod clients;
pub mod cloudtrail;
pub mod dynamodb;
pub mod ebs;
pub mod ec2;
pub mod errors;
pub mod s3;
pub mod session;
pub mod signer;
pub mod sqs;
pub mod ssm;

pub use account::ForensicAccount;
pub use clients::Clients;
pub use cloudtrail::SdkTrail;
pub use dynamodb::DynamoCaseTable;
pub use ebs::EbsSource;
pub use ec2::SdkEc2;
pub use s3::S3Store;
pub use session::CaseRoleProvider;
pub use signer::KmsSigner;
pub use sqs::SqsQueue;
pub use ssm::SdkSsm;
