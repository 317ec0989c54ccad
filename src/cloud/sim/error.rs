//! Errors of the simulator itself (loading a scenario or a persisted world), never AWS errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `message` starts with `line:column` when the parser knows where it stopped.
    #[error("{}", parse_display(path, message))]
    Parse { path: PathBuf, message: String },
    /// The scenario parsed but makes no sense (an unknown operation in a fault, two actions in one fault, ...).
    #[error("invalid simulation scenario{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Invalid { path: Option<PathBuf>, message: String },
    /// A persisted world written by an incompatible version of the simulator.
    #[error("{}: simulated world has format version {found}, this drflow reads version {expected}; delete the file to start a new world", path.display())]
    Version { path: PathBuf, found: u32, expected: u32 },
}

/// `path:line:col: message` when the message starts with a location, `path: message` otherwise.
fn parse_display(path: &std::path::Path, message: &str) -> String {
    if message.starts_with(|c: char| c.is_ascii_digit()) {
        format!("{}:{message}", path.display())
    } else {
        format!("{}: {message}", path.display())
    }
}

impl SimError {
    pub(crate) fn yaml(path: &std::path::Path, e: &serde_yaml::Error) -> SimError {
        let text = e.to_string();
        let message = match e.location() {
            Some(l) => {
                // serde_yaml appends " at line L column C"; keep the location once, in front.
                let text = match text.rfind(" at line ") {
                    Some(i) if text[i..].contains(" column ") => &text[..i],
                    _ => &text,
                };
                format!("{}:{}: {text}", l.line(), l.column())
            }
            None => text,
        };
        SimError::Parse {
            path: path.to_path_buf(),
            message,
        }
    }

    pub(crate) fn json(path: &std::path::Path, e: &serde_json::Error) -> SimError {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let text = text.strip_suffix(&suffix).unwrap_or(&text);
        SimError::Parse {
            path: path.to_path_buf(),
            message: format!("{}:{}: {text}", e.line(), e.column()),
        }
    }
}
