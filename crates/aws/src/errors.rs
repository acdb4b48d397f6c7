//! SDK errors as [`CloudError`]: operation, kind, AWS error code, message and request id. The
//! one place the adapters read what AWS answered: its code is classified by
//! [`forensnap_store::classify`], an answer without a code by its HTTP status, and no answer at
//! all (connection, timeout, dispatch failure) is transient.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::error::display::DisplayErrorContext;
use forensnap_store::{CloudError, ErrorKind, classify};

/// The kind of an answer that carried no error code (a bare HEAD 404, a 503 from a proxy).
fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::Denied,
        409 | 412 => ErrorKind::Exists,
        429 => ErrorKind::Throttled,
        400 | 411 | 413 | 416 => ErrorKind::Invalid,
        s if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// Any SDK error as text with its full cause chain.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    format!("{}", DisplayErrorContext(err))
}

/// Convert any SDK error of `operation`.
pub fn aws_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let SdkError::ServiceError(service) = &err else {
        return CloudError::new(ErrorKind::Transient, operation, describe(&err));
    };
    let inner = service.err();
    let code = inner.code().map(str::to_string);
    let kind = match &code {
        Some(code) => classify(code),
        None => kind_of_status(service.raw().status().as_u16()),
    };
    CloudError {
        kind,
        operation,
        code,
        message: inner
            .message()
            .map(str::to_string)
            .unwrap_or_else(|| inner.to_string()),
        request_id: inner.meta().extra("aws_request_id").map(str::to_string),
    }
}
