//! SDK errors → [`CloudError`], in one generic helper for every operation of every service.
//!
//! The four SDK crates re-export the same smithy types (`SdkError`, `HttpResponse`, `ProvideErrorMetadata`);
//! they are named here through `aws_sdk_ssm` once.

use std::error::Error as StdError;

use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

use crate::cloud::{CloudError, ErrorKind};

/// Why the AWS backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no AWS credentials provider is configured")]
    NoCredentialsProvider,
    #[error("cannot load AWS credentials{}: {message}", .profile.as_ref().map(|p| format!(" for profile `{p}`")).unwrap_or_default())]
    Credentials { profile: Option<String>, message: String },
    #[error("cannot assume role {role_arn}: {message}")]
    AssumeRole { role_arn: String, message: String },
}

/// Longest excerpt of an unexpected (non-AWS) response body kept in a message.
const BODY_EXCERPT: usize = 200;

/// Maps any SDK error of any operation. `service` is the IAM prefix, `operation` the API name.
pub(crate) fn from_sdk<E>(service: &str, operation: &str, region: &str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let (code, message, kind) = match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            match se.err().code() {
                Some(code) => {
                    let message = se
                        .err()
                        .message()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("HTTP {status}"));
                    (code.to_string(), message, ErrorKind::classify(code, Some(status)))
                }
                // Not an AWS error document (e.g. an HTML 404 page from a proxy or a wrong endpoint).
                None => {
                    let code = format!("Http{status}");
                    let excerpt = se.raw().body().bytes().map(body_excerpt).unwrap_or_default();
                    let message = if excerpt.is_empty() {
                        format!("HTTP {status} with no AWS error code")
                    } else {
                        format!("HTTP {status} with no AWS error code: {excerpt}")
                    };
                    let kind = ErrorKind::classify(&code, Some(status));
                    (code, message, kind)
                }
            }
        }
        SdkError::TimeoutError(_) => (
            "TimeoutError".to_string(),
            format!(
                "no response within {}s: {}",
                super::ATTEMPT_TIMEOUT.as_secs(),
                chain(&err)
            ),
            ErrorKind::Transient,
        ),
        SdkError::DispatchFailure(df) => {
            let what = if df.is_timeout() {
                format!("could not connect within {}s", super::CONNECT_TIMEOUT.as_secs())
            } else {
                "could not send the request".to_string()
            };
            let env = format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase());
            (
                "ConnectionError".to_string(),
                format!(
                    "{what} to the {service} endpoint for {region} (check the network, proxy, and AWS_ENDPOINT_URL / \
                     {env} if set): {}",
                    chain(&err)
                ),
                ErrorKind::Transient,
            )
        }
        SdkError::ResponseError(re) => (
            "ResponseError".to_string(),
            format!(
                "unreadable response (HTTP {}): {}",
                re.raw().status().as_u16(),
                chain(&err)
            ),
            ErrorKind::Transient,
        ),
        SdkError::ConstructionFailure(_) => (
            "InvalidRequest".to_string(),
            format!("the request could not be built: {}", chain(&err)),
            ErrorKind::Validation,
        ),
        _ => ("Unknown".to_string(), chain(&err), ErrorKind::Other),
    };
    CloudError {
        service: service.to_string(),
        operation: operation.to_string(),
        region: region.to_string(),
        code,
        message,
        kind,
        account: None,
    }
}

/// An error and its sources, `: `-separated (the SDK's top-level messages alone say little: "dispatch failure").
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !parts.last().is_some_and(|last| last.contains(&s)) {
            parts.push(s);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// The start of a body as one line of text: tags dropped, whitespace collapsed, at most [`BODY_EXCERPT`] chars.
fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if in_tag => {}
            c => out.push(c),
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    let line = words.join(" ");
    match line.char_indices().nth(BODY_EXCERPT) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::error::ErrorMetadata;
    use aws_sdk_ssm::operation::get_parameter::GetParameterError;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse::new(status.try_into().unwrap(), body.to_string().into())
    }

    #[test]
    fn maps_a_service_error_with_its_code_and_status() {
        let meta = ErrorMetadata::builder()
            .code("AccessDeniedException")
            .message("not allowed")
            .build();
        let err = SdkError::service_error(GetParameterError::generic(meta), response(400, "{}"));
        let e = from_sdk("ssm", "GetParameter", "eu-west-1", err);
        assert_eq!(
            (e.service.as_str(), e.operation.as_str(), e.region.as_str()),
            ("ssm", "GetParameter", "eu-west-1")
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("AccessDeniedException", "not allowed")
        );
        assert_eq!(e.kind, ErrorKind::AccessDenied);

        let meta = ErrorMetadata::builder().code("Weird").build();
        let err = SdkError::service_error(GetParameterError::generic(meta), response(503, ""));
        let e = from_sdk("ssm", "GetParameter", "eu-west-1", err);
        assert_eq!((e.message.as_str(), e.kind), ("HTTP 503", ErrorKind::Transient));
    }

    #[test]
    fn maps_a_non_aws_error_page() {
        let html = "<!doctype html>\n<html><title>404 Not Found</title><h1>Not Found</h1>\n<p>The requested URL was not found.</p></html>";
        let err = SdkError::service_error(
            GetParameterError::generic(ErrorMetadata::builder().build()),
            response(404, html),
        );
        let e = from_sdk("backup", "StartBackupJob", "us-east-1", err);
        assert_eq!(e.code, "Http404");
        assert_eq!(
            e.message,
            "HTTP 404 with no AWS error code: 404 Not Found Not Found The requested URL was not found."
        );
        assert_eq!(e.kind, ErrorKind::Other);
    }

    #[test]
    fn maps_transport_errors() {
        let err: SdkError<GetParameterError, HttpResponse> = SdkError::timeout_error("took too long");
        let e = from_sdk("ssm", "GetParameter", "us-east-1", err);
        assert_eq!((e.code.as_str(), e.kind), ("TimeoutError", ErrorKind::Transient));

        let err: SdkError<GetParameterError, HttpResponse> = SdkError::construction_failure("bad input");
        let e = from_sdk("ssm", "GetParameter", "us-east-1", err);
        assert_eq!((e.code.as_str(), e.kind), ("InvalidRequest", ErrorKind::Validation));

        let err: SdkError<GetParameterError, HttpResponse> =
            SdkError::response_error("truncated", response(200, "{\"Param"));
        let e = from_sdk("ssm", "GetParameter", "us-east-1", err);
        assert_eq!((e.code.as_str(), e.kind), ("ResponseError", ErrorKind::Transient));
    }

    #[test]
    fn excerpts_are_short_single_lines() {
        let long = format!("<p>{}</p>", "x ".repeat(500));
        let ex = body_excerpt(long.as_bytes());
        assert_eq!(ex.chars().count(), BODY_EXCERPT + 1);
        assert!(ex.ends_with('…') && !ex.contains('\n'));
    }
}
