use serde::{Deserialize, Serialize};

/// How an AWS error should be treated. Decided once, from the error code and HTTP status, by `classify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Rate limited: retry with backoff.
    Throttling,
    /// 5xx, timeouts, dropped connections: retry.
    Transient,
    /// The caller lacks a permission: never retried.
    AccessDenied,
    /// The request is wrong: never retried.
    Validation,
    /// The resource does not exist: never retried.
    NotFound,
    /// Anything else.
    Other,
}

impl ErrorKind {
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Throttling | ErrorKind::Transient)
    }

    /// Classifies an AWS error code (and the HTTP status, when known).
    pub fn classify(code: &str, http_status: Option<u16>) -> ErrorKind {
        const THROTTLING: &[&str] = &[
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestThrottledException",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "LimitExceededException",
            "SlowDown",
            "PriorRequestNotComplete",
            "EC2ThrottledException",
            "RequestThrottled",
            "BandwidthLimitExceeded",
            // SSM answers this when one parameter is written too often; the SDK does not list it.
            "TooManyUpdates",
        ];
        const TRANSIENT: &[&str] = &[
            "RequestTimeout",
            "RequestTimeoutException",
            "InternalError",
            "InternalFailure",
            "InternalServerError",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "Unavailable",
            "ConnectionError",
            "TimeoutError",
            "DispatchFailure",
            // EC2, for too many copies in progress (AMIs, snapshots): it clears as they finish.
            "ResourceLimitExceeded",
        ];
        if THROTTLING.contains(&code) {
            return ErrorKind::Throttling;
        }
        if TRANSIENT.contains(&code) {
            return ErrorKind::Transient;
        }
        let lower = code.to_ascii_lowercase();
        if lower.contains("accessdenied") || lower.contains("unauthorized") || code == "AuthFailure" {
            return ErrorKind::AccessDenied;
        }
        if lower.contains("notfound") || lower.contains("nosuch") || code == "ParameterNotFound" {
            return ErrorKind::NotFound;
        }
        if lower.contains("validation") || lower.contains("invalid") || lower.contains("malformed") {
            return ErrorKind::Validation;
        }
        match http_status {
            Some(s) if s >= 500 => ErrorKind::Transient,
            Some(429) => ErrorKind::Throttling,
            _ => ErrorKind::Other,
        }
    }
}

/// An error from one AWS call, with enough context to act on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudError {
    /// IAM service prefix: `backup`, `ec2`, `ssm`, `cloudformation`.
    pub service: String,
    /// API operation, e.g. `StartBackupJob`.
    pub operation: String,
    pub region: String,
    pub code: String,
    pub message: String,
    pub kind: ErrorKind,
    /// The account the call was made in, when the run acts in more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

impl CloudError {
    pub fn new(service: &str, operation: &str, region: &str, code: &str, message: impl Into<String>) -> Self {
        CloudError {
            service: service.to_string(),
            operation: operation.to_string(),
            region: region.to_string(),
            code: code.to_string(),
            message: message.into(),
            kind: ErrorKind::classify(code, None),
            account: None,
        }
    }

    /// The error of a call made in `account`.
    pub fn in_account(mut self, account: Option<&str>) -> Self {
        if self.account.is_none() {
            self.account = account.map(str::to_string);
        }
        self
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
}

impl std::fmt::Display for CloudError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut call = format!("{}:{} in {}", self.service, self.operation, self.region);
        if let Some(a) = &self.account {
            call.push_str(&format!(" (account {a})"));
        }
        match self.kind {
            ErrorKind::AccessDenied => write!(
                f,
                "{call} was denied: {} ({}) — the caller needs {}:{}",
                self.message, self.code, self.service, self.operation
            ),
            ErrorKind::Throttling => write!(f, "{call} was throttled: {} ({})", self.message, self.code),
            _ => write!(f, "{call} failed: {} ({})", self.message, self.code),
        }
    }
}

impl std::error::Error for CloudError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_codes_that_matter() {
        assert_eq!(
            ErrorKind::classify("ThrottlingException", Some(400)),
            ErrorKind::Throttling
        );
        assert_eq!(ErrorKind::classify("RequestLimitExceeded", None), ErrorKind::Throttling);
        assert_eq!(ErrorKind::classify("TooManyUpdates", None), ErrorKind::Throttling);
        assert_eq!(
            ErrorKind::classify("AccessDeniedException", Some(403)),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            ErrorKind::classify("UnauthorizedOperation", None),
            ErrorKind::AccessDenied
        );
        assert_eq!(
            ErrorKind::classify("InvalidParameterValueException", None),
            ErrorKind::Validation
        );
        assert_eq!(ErrorKind::classify("ValidationError", None), ErrorKind::Validation);
        assert_eq!(
            ErrorKind::classify("ResourceNotFoundException", None),
            ErrorKind::NotFound
        );
        assert_eq!(
            ErrorKind::classify("InvalidInstanceID.NotFound", None),
            ErrorKind::NotFound
        );
        assert_eq!(ErrorKind::classify("Weird", Some(503)), ErrorKind::Transient);
        assert_eq!(ErrorKind::classify("Weird", Some(400)), ErrorKind::Other);
        assert!(ErrorKind::Throttling.is_transient() && !ErrorKind::AccessDenied.is_transient());
    }

    #[test]
    fn access_denied_names_the_missing_permission() {
        let e = CloudError::new(
            "backup",
            "StartBackupJob",
            "ap-northeast-1",
            "AccessDeniedException",
            "not allowed",
        );
        assert_eq!(
            e.to_string(),
            "backup:StartBackupJob in ap-northeast-1 was denied: not allowed (AccessDeniedException) — the caller needs backup:StartBackupJob"
        );
    }
}
