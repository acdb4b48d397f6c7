//! One error type for every call to the cloud and the evidence store: the operation, what kind
//! of failure it is, and AWS's own code, message and request id kept whole.
//!
//! Rules: adapters (S3, EC2, a folder) read AWS error codes and HTTP statuses and set the
//! [`ErrorKind`]; nothing above the adapters matches a code string, it matches the kind. The
//! caller adds the step, the account and the resource ids when it wraps the error.

/// What kind of failure a call met, as the code above the adapters needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The key, snapshot, instance or upload does not exist.
    NotFound,
    /// A write refused because the key already exists (S3 `PreconditionFailed` on
    /// `If-None-Match: *`).
    Exists,
    /// The service asked us to slow down (throttling, `SlowDown`).
    Throttled,
    /// A quota of resources in flight is reached (EC2 `ResourceLimitExceeded`: concurrent
    /// snapshot copies); waiting for others to finish helps.
    LimitExceeded,
    /// AWS's side failed (5xx, a dropped connection, a timeout): the same call may succeed.
    Transient,
    /// The caller lacks the right (IAM, bucket or key policy).
    Denied,
    /// The operation is not permitted on this resource (EC2 `OperationNotPermitted`: sharing a
    /// snapshot on the AWS managed key).
    NotPermitted,
    /// The request was invalid (a bad parameter, a checksum that did not match, a bad path).
    Invalid,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// Whether simply calling again (after a backoff) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// A failed call: the operation, its kind, AWS's error code and message, and the request id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {}{message}{}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(), request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
pub struct CloudError {
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// The API operation (`CreateSnapshots`, `PutObject`, `read` for a folder).
    pub operation: &'static str,
    /// AWS's error code (`AccessDenied`), if it answered.
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// The request id, if any.
    pub request_id: Option<String>,
}

impl CloudError {
    /// An error of `kind` with no AWS code (a local failure, or no answer).
    pub fn new(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> Self {
        CloudError {
            kind,
            operation,
            code: None,
            message: message.into(),
            request_id: None,
        }
    }

    /// An answer from AWS: its code is classified by [`classify`].
    pub fn from_code(
        operation: &'static str,
        code: &str,
        message: impl Into<String>,
        request_id: Option<String>,
    ) -> Self {
        CloudError {
            kind: classify(code),
            operation,
            code: Some(code.to_string()),
            message: message.into(),
            request_id,
        }
    }

    /// Whether simply calling again may succeed (throttling, 5xx, no answer).
    pub fn is_transient(&self) -> bool {
        self.kind.is_retryable()
    }

    /// Whether the thing asked about does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

/// The kind of an AWS error code, the one place codes are read. Used by the adapters (and by
/// the in-memory fakes, which answer with AWS's codes).
pub fn classify(code: &str) -> ErrorKind {
    match code {
        // S3 If-None-Match, DynamoDB condition expressions.
        "PreconditionFailed" | "ConditionalCheckFailedException" => ErrorKind::Exists,
        "ResourceLimitExceeded" => ErrorKind::LimitExceeded,
        "OperationNotPermitted" => ErrorKind::NotPermitted,
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "Forbidden"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "KMSInvalidStateException"
        | "DisabledException" => ErrorKind::Denied,
        "RequestLimitExceeded"
        | "SlowDown"
        | "RequestThrottledException"
        | "ConcurrentLimitExceededException"
        | "ServiceQuotaExceededException"
        | "TooManyRequestsException"
        | "ProvisionedThroughputExceededException" => ErrorKind::Throttled,
        // DynamoDB: another transaction touched the item; SQS: a brief overload.
        "TransactionConflictException" | "TransactionInProgressException" => ErrorKind::Transient,
        "AWS.SimpleQueueService.NonExistentQueue"
        | "QueueDoesNotExist"
        | "ResourceNotFoundException" => ErrorKind::NotFound,
        "ReceiptHandleIsInvalid" | "MessageNotInflight" => ErrorKind::Invalid,
        "RequestTimeout" | "ServiceUnavailable" | "InternalError" | "InternalFailure" => {
            ErrorKind::Transient
        }
        "NoSuchKey" | "NoSuchUpload" | "NoSuchBucket" | "NoSuchVersion" | "NotFound" => {
            ErrorKind::NotFound
        }
        code if code.contains("Throttl") => ErrorKind::Throttled,
        code if code.starts_with("Internal") || code.contains("Unavailable") => {
            ErrorKind::Transient
        }
        code if code.contains("NotFound") => ErrorKind::NotFound,
        code if code.starts_with("Invalid")
            || code.contains("Mismatch")
            || code.contains("BadDigest") =>
        {
            ErrorKind::Invalid
        }
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_once_here() {
        let cases = [
            ("PreconditionFailed", ErrorKind::Exists),
            ("NoSuchKey", ErrorKind::NotFound),
            ("InvalidSnapshot.NotFound", ErrorKind::NotFound),
            ("InvalidInstanceID.NotFound", ErrorKind::NotFound),
            ("ResourceLimitExceeded", ErrorKind::LimitExceeded),
            ("OperationNotPermitted", ErrorKind::NotPermitted),
            ("AccessDenied", ErrorKind::Denied),
            ("SlowDown", ErrorKind::Throttled),
            ("ThrottlingException", ErrorKind::Throttled),
            ("RequestLimitExceeded", ErrorKind::Throttled),
            ("RequestThrottledException", ErrorKind::Throttled),
            ("ConcurrentLimitExceededException", ErrorKind::Throttled),
            ("InternalError", ErrorKind::Transient),
            ("ServiceUnavailable", ErrorKind::Transient),
            ("InvalidParameterValue", ErrorKind::Invalid),
            ("XAmzContentSHA256Mismatch", ErrorKind::Invalid),
            ("SomethingNew", ErrorKind::Other),
        ];
        for (code, kind) in cases {
            assert_eq!(classify(code), kind, "{code}");
        }
        assert!(CloudError::new(ErrorKind::Transient, "GetObject", "reset").is_transient());
        assert!(!CloudError::from_code("PutObject", "AccessDenied", "no", None).is_transient());
    }

    #[test]
    fn display_keeps_code_message_and_request_id() {
        let e = CloudError::from_code("PutObject", "AccessDenied", "denied", Some("r-1".into()));
        assert_eq!(
            e.to_string(),
            "PutObject: AccessDenied: denied (request id r-1)"
        );
        let e = CloudError::new(ErrorKind::Transient, "GetObject", "connection reset");
        assert_eq!(e.to_string(), "GetObject: connection reset");
    }
}
