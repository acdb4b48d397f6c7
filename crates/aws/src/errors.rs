//! SDK errors as [`AwsError`]: operation, AWS error code, message and request id.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use forensnap_preserve::AwsError;

/// What AWS said, when it answered: code, message, request id. `None` when no answer came
/// (connection, timeout, dispatch failure).
pub fn service_error<E, R>(err: &SdkError<E, R>) -> Option<(Option<String>, String, Option<String>)>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let SdkError::ServiceError(service) = err else {
        return None;
    };
    let inner = service.err();
    Some((
        inner.code().map(str::to_string),
        inner
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| inner.to_string()),
        inner.meta().extra("aws_request_id").map(str::to_string),
    ))
}

/// Any SDK error as text with its full cause chain.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!(
        "{}",
        aws_smithy_types::error::display::DisplayErrorContext(err)
    )
}

/// Convert any SDK error of `operation`.
pub fn aws_error<E, R>(operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match service_error(&err) {
        Some((code, message, request_id)) => AwsError {
            operation,
            code,
            message,
            request_id,
        },
        None => AwsError {
            operation,
            code: None,
            message: describe(&err),
            request_id: None,
        },
    }
}
