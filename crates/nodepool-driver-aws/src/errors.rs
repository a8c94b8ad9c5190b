//! AWS errors, typed by what the launcher does about them.
//!
//! Every SDK call goes through [`sdk_error`], which reads the AWS error code, HTTP status and
//! message and lets [`classify`] (pure, unit-tested) pick the [`DriverError`] kind. Messages
//! name the API call so a log line says which step failed.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use nodepool_driver::DriverError;

/// How an SDK call failed, before deciding what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// The AWS error code (`InsufficientInstanceCapacity`, `InvalidInstanceID.NotFound`...).
    pub code: Option<String>,
    pub message: Option<String>,
    /// The HTTP status, when a response came back.
    pub status: Option<u16>,
    /// No response at all: connection refused, timeout, DNS.
    pub no_response: bool,
}

/// Codes that mean "not there (any more)". AWS spells them per resource type.
fn is_not_found(code: &str) -> bool {
    code.ends_with(".NotFound")
        || code.ends_with(".NotFoundException")
        || (code.starts_with("InvalidInstanceID") && code.ends_with(".Malformed"))
        || matches!(
            code,
            "NoSuchKey"
                | "NoSuchBucket"
                | "NotFound"
                | "ResourceNotFoundException"
                | "NoSuchEntity"
        )
}

/// Codes AWS documents as quota refusals; the launcher aborts the node and refreshes quota.
fn is_quota(code: &str, message: &str) -> bool {
    code.ends_with("LimitExceeded")
        || code == "VcpuLimitExceeded"
        || code == "MaxSpotInstanceCountExceeded"
        || code == "ServiceQuotaExceededException"
        || message.to_ascii_lowercase().contains("quota")
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "InternalError"
            | "InternalFailure"
            | "InternalServerException"
            | "ServiceUnavailable"
            | "Unavailable"
    )
}

/// The driver error for a failed `call`. Order matters: `RequestLimitExceeded` is API
/// throttling, not a resource quota, so throttling is checked before quota.
pub fn classify(call: &str, failure: &CallFailure) -> DriverError {
    let code = failure.code.as_deref().unwrap_or("");
    let message = failure.message.as_deref().unwrap_or("");
    let text = match (failure.code.as_deref(), failure.message.as_deref()) {
        (Some(code), Some(message)) => format!("{call}: {code}: {message}"),
        (Some(code), None) => format!("{call}: {code}"),
        (None, Some(message)) => format!("{call}: {message}"),
        (None, None) => match failure.status {
            Some(status) => format!("{call}: HTTP status {status}"),
            None => format!("{call}: no response from AWS"),
        },
    };
    if failure.no_response {
        return DriverError::Transient(text);
    }
    if code == "InsufficientInstanceCapacity"
        || code == "InsufficientHostCapacity"
        || code == "InsufficientCapacity"
        || code == "SpotMaxPriceTooLow"
    {
        return DriverError::Capacity(text);
    }
    if is_throttling(code) || failure.status.is_some_and(|s| s >= 500 || s == 429) {
        return DriverError::Transient(text);
    }
    if is_not_found(code) || (code.is_empty() && failure.status == Some(404)) {
        return DriverError::NotFound(text);
    }
    if is_quota(code, message) {
        return DriverError::Quota(text);
    }
    DriverError::Fatal(text)
}

/// What an SDK error says, whichever service it came from.
pub fn failure<E>(err: &SdkError<E, HttpResponse>) -> CallFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let no_response = matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    );
    let mut message = err.message().map(str::to_string);
    if message.is_none() && !matches!(err, SdkError::ServiceError(_)) {
        // Construction and dispatch failures carry their reason in the error chain only.
        message = Some(
            aws_sdk_ec2::error::DisplayErrorContext(err)
                .to_string()
                .chars()
                .take(500)
                .collect(),
        );
    }
    CallFailure {
        code: err.code().map(str::to_string),
        message,
        status: err.raw_response().map(|r| r.status().as_u16()),
        no_response,
    }
}

/// Maps an SDK error of `call` to a [`DriverError`].
pub fn sdk_error<E>(call: &str, err: SdkError<E, HttpResponse>) -> DriverError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify(call, &failure(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(code: Option<&str>, message: &str, status: Option<u16>) -> CallFailure {
        CallFailure {
            code: code.map(str::to_string),
            message: Some(message.to_string()),
            status,
            no_response: false,
        }
    }

    #[test]
    fn capacity_quota_throttling_not_found_and_fatal() {
        let e = classify(
            "RunInstances",
            &fail(Some("InsufficientInstanceCapacity"), "no room", Some(500)),
        );
        assert_eq!(
            e,
            DriverError::Capacity("RunInstances: InsufficientInstanceCapacity: no room".into())
        );
        assert!(matches!(
            classify(
                "RunInstances",
                &fail(Some("VcpuLimitExceeded"), "x", Some(400))
            ),
            DriverError::Quota(_)
        ));
        assert!(matches!(
            classify(
                "RunInstances",
                &fail(Some("VolumeLimitExceeded"), "x", Some(400))
            ),
            DriverError::Quota(_)
        ));
        assert!(matches!(
            classify(
                "RunInstances",
                &fail(Some("InstanceLimitExceeded"), "x", Some(400))
            ),
            DriverError::Quota(_)
        ));
        // API rate limiting is not a resource quota.
        assert!(matches!(
            classify(
                "DescribeInstances",
                &fail(Some("RequestLimitExceeded"), "slow down", Some(503))
            ),
            DriverError::Transient(_)
        ));
        assert!(matches!(
            classify("DescribeInstances", &fail(None, "oops", Some(500))),
            DriverError::Transient(_)
        ));
        assert!(matches!(
            classify(
                "TerminateInstances",
                &fail(Some("InvalidInstanceID.NotFound"), "gone", Some(400))
            ),
            DriverError::NotFound(_)
        ));
        assert!(matches!(
            classify(
                "DeregisterImage",
                &fail(Some("InvalidAMIID.NotFound"), "gone", Some(400))
            ),
            DriverError::NotFound(_)
        ));
        assert!(matches!(
            classify(
                "RunInstances",
                &fail(Some("InvalidParameterValue"), "bad", Some(400))
            ),
            DriverError::Fatal(_)
        ));
        let no_answer = CallFailure {
            code: None,
            message: None,
            status: None,
            no_response: true,
        };
        assert_eq!(
            classify("DescribeInstances", &no_answer),
            DriverError::Transient("DescribeInstances: no response from AWS".into())
        );
    }
}
