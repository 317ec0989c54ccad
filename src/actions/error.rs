//! How an action fails, and how a retrier sees that failure.

use crate::cloud::{CloudError, ErrorKind};
use crate::workflow::FailureClass;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Cloud(Box<CloudError>),
    /// A resource reached a state it will not leave, e.g. a FAILED backup job.
    #[error("{message}")]
    Failed { code: String, message: String },
    /// The inputs are unusable at run time.
    #[error("{0}")]
    Input(String),
    /// A write did not stick (read-back differs); worth retrying.
    #[error("{0}")]
    NotVerified(String),
    /// An approval step journaled that it waits for a decision: the run stops here (not a failure).
    #[error("waiting for approval")]
    AwaitingApproval,
}

impl From<CloudError> for ActionError {
    fn from(e: CloudError) -> Self {
        ActionError::Cloud(Box::new(e))
    }
}

impl ActionError {
    pub fn failed(code: &str, message: impl Into<String>) -> ActionError {
        ActionError::Failed {
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// The journal's word for the failure: throttling, transient, access_denied, validation, not_found, other.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ActionError::Cloud(e) => e.kind,
            ActionError::Failed { .. } => ErrorKind::Other,
            ActionError::Input(_) => ErrorKind::Validation,
            ActionError::NotVerified(_) => ErrorKind::Transient,
            ActionError::AwaitingApproval => ErrorKind::Other,
        }
    }

    pub fn code(&self) -> String {
        match self {
            ActionError::Cloud(e) => e.code.clone(),
            ActionError::Failed { code, .. } => code.clone(),
            ActionError::Input(_) => "InvalidInput".to_string(),
            ActionError::NotVerified(_) => "NotVerified".to_string(),
            ActionError::AwaitingApproval => "AwaitingApproval".to_string(),
        }
    }

    /// The AWS call that failed, `service:Operation`, when it was one.
    pub fn operation(&self) -> Option<String> {
        match self {
            ActionError::Cloud(e) => Some(format!("{}:{}", e.service, e.operation)),
            _ => None,
        }
    }

    /// What a retrier's `errors` are matched against.
    pub fn class(&self) -> FailureClass {
        let kind = self.kind();
        FailureClass {
            throttling: kind == ErrorKind::Throttling,
            transient: kind.is_transient(),
            code: self.code(),
            timed_out: false,
        }
    }
}
