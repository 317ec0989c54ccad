//! Located problems in a workflow file, rendered by miette with a caret excerpt and a hint.

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, SourceCode};

use super::source::{Part, Source, Span, YamlPath};

/// What kind of problem: also its stable code (`drflow::workflow::<code>`), used by tests and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Syntax,
    Shape,
    UnknownKey,
    MissingKey,
    BadVersion,
    UnknownAction,
    MissingInput,
    UnknownInput,
    BadType,
    BadReference,
    NotYetRun,
    DuplicateId,
    RoutingCycle,
    BadRoute,
    BadDuration,
    BadRegion,
    BadExpression,
    BadPattern,
    BadRetry,
    BadStep,
    BadFile,
    ConcurrentWrite,
    BadLifecycle,
    BadQuota,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "syntax",
            Code::Shape => "shape",
            Code::UnknownKey => "unknown_key",
            Code::MissingKey => "missing_key",
            Code::BadVersion => "bad_version",
            Code::UnknownAction => "unknown_action",
            Code::MissingInput => "missing_input",
            Code::UnknownInput => "unknown_input",
            Code::BadType => "bad_type",
            Code::BadReference => "bad_reference",
            Code::NotYetRun => "not_yet_run",
            Code::DuplicateId => "duplicate_id",
            Code::RoutingCycle => "routing_cycle",
            Code::BadRoute => "bad_route",
            Code::BadDuration => "bad_duration",
            Code::BadRegion => "bad_region",
            Code::BadExpression => "bad_expression",
            Code::BadPattern => "bad_pattern",
            Code::BadRetry => "bad_retry",
            Code::BadStep => "bad_step",
            Code::BadFile => "bad_file",
            Code::ConcurrentWrite => "concurrent_write",
            Code::BadLifecycle => "bad_lifecycle",
            Code::BadQuota => "bad_quota",
        }
    }
}

/// One problem, with where it is.
#[derive(Clone)]
pub struct Problem {
    pub code: Code,
    /// A warning does not make the workflow invalid: AWS would accept it but not do what it says.
    pub warning: bool,
    pub message: String,
    pub label: String,
    pub hint: Option<String>,
    pub span: Span,
    pub line: usize,
    pub column: usize,
    file: String,
    text: Arc<String>,
}

impl Problem {
    /// `file:line:col`
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }

    /// The problem rendered as text without colours (what tests and non-terminal output see).
    pub fn render_plain(&self) -> String {
        let mut out = String::new();
        let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_context_lines(1)
            .with_width(120);
        let _ = handler.render_report(&mut out, self);
        out
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.location(), self.message, self.code.as_str())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl miette::Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("drflow::workflow::{}", self.code.as_str())))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.warning {
            miette::Severity::Warning
        } else {
            miette::Severity::Error
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.hint.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = LabeledSpan::new(Some(self.label.clone()), self.span.offset, self.span.len);
        Some(Box::new(std::iter::once(span)))
    }
}

impl SourceCode for Problem {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.as_str().read_span(span, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.file.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// Collects problems while validating; all of them are reported at once.
pub struct Problems<'s> {
    source: &'s Source,
    text: Arc<String>,
    pub list: Vec<Problem>,
}

impl<'s> Problems<'s> {
    pub fn new(source: &'s Source) -> Self {
        Problems {
            source,
            text: Arc::new(source.text.clone()),
            list: Vec::new(),
        }
    }

    pub fn at_span(
        &mut self,
        code: Code,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> &mut Problem {
        let (line, column) = self.source.line_col(span.offset);
        self.list.push(Problem {
            code,
            warning: false,
            message: message.into(),
            label: label.into(),
            hint: None,
            span,
            line,
            column,
            file: self.source.name(),
            text: self.text.clone(),
        });
        self.list.last_mut().expect("just pushed")
    }

    /// A problem with the value (or, with `Part::Key`, the key) at `path`.
    pub fn at(&mut self, code: Code, path: &YamlPath, part: Part, message: impl Into<String>) -> &mut Problem {
        let span = self.source.locate(path, part);
        let message = message.into();
        let label = short_label(code);
        self.at_span(code, span, message, label)
    }

    /// A problem `inner` bytes into the scalar at `path`.
    pub fn within(
        &mut self,
        code: Code,
        path: &YamlPath,
        inner: usize,
        len: usize,
        message: impl Into<String>,
    ) -> &mut Problem {
        let span = self.source.locate_within(path, inner, len);
        self.at_span(code, span, message, short_label(code))
    }

    /// No errors (warnings do not count).
    pub fn is_empty(&self) -> bool {
        self.list.iter().all(|p| p.warning)
    }

    pub fn source(&self) -> &'s Source {
        self.source
    }
}

impl Problem {
    /// Makes it a warning.
    pub fn warn(&mut self) -> &mut Problem {
        self.warning = true;
        self
    }

    pub fn hint(&mut self, hint: impl Into<String>) -> &mut Problem {
        self.hint = Some(hint.into());
        self
    }

    pub fn label(&mut self, label: impl Into<String>) -> &mut Problem {
        self.label = label.into();
        self
    }
}

fn short_label(code: Code) -> &'static str {
    match code {
        Code::Syntax => "here",
        Code::Shape => "wrong type",
        Code::UnknownKey => "unknown key",
        Code::MissingKey => "missing",
        Code::BadVersion => "unsupported version",
        Code::UnknownAction => "unknown action",
        Code::MissingInput => "inputs missing",
        Code::UnknownInput => "not an input of this action",
        Code::BadType => "wrong type",
        Code::BadReference => "unknown reference",
        Code::NotYetRun => "has not run yet here",
        Code::DuplicateId => "duplicate id",
        Code::RoutingCycle => "cycle",
        Code::BadRoute => "bad target",
        Code::BadDuration => "bad duration",
        Code::BadRegion => "bad region",
        Code::BadExpression => "bad expression",
        Code::BadPattern => "bad pattern",
        Code::BadRetry => "bad retry",
        Code::BadStep => "bad step",
        Code::BadFile => "bad file",
        Code::ConcurrentWrite => "written twice at once",
        Code::BadLifecycle => "lifecycle",
        Code::BadQuota => "quota",
    }
}

/// Closest candidate by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("max_attemps", ["max_attempts", "interval"]),
            Some("max_attempts")
        );
        assert_eq!(did_you_mean("zzz", ["max_attempts", "interval"]), None);
    }
}
