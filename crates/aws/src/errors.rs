//! SDK errors as [`AwsError`]: operation, AWS error code, message and request id.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use forensnap_preserve::AwsError;

/// Convert any SDK error of `operation`.
pub fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            AwsError {
                operation,
                code: inner.code().map(str::to_string),
                message: inner
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| inner.to_string()),
                request_id: inner.meta().extra("aws_request_id").map(str::to_string),
            }
        }
        other => AwsError {
            operation,
            code: None,
            message: format!(
                "{}",
                aws_smithy_types::error::display::DisplayErrorContext(other)
            ),
            request_id: None,
        },
    }
}
