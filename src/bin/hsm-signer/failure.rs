//! Errors as the user sees them: `error: <what failed>` then each cause.

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

/// Exit status for a verification that ran and said no.
pub(crate) const EXIT_INVALID: u8 = 1;
/// Exit status for every other failure.
pub(crate) const EXIT_ERROR: u8 = 2;

/// A failed command: what was being done, and the error chain under it.
pub(crate) struct Failure {
    context: Option<String>,
    error: Box<dyn Error + Send + Sync + 'static>,
}

impl Failure {
    /// A failure with only a message.
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        Self {
            context: None,
            error: message.into().into(),
        }
    }

    /// The message and its causes, one per entry.
    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(context) = &self.context {
            lines.push(context.clone());
        }
        let mut cause: Option<&(dyn Error + 'static)> = Some(self.error.as_ref());
        while let Some(e) = cause {
            let text = e.to_string();
            if lines.last() != Some(&text) {
                lines.push(text);
            }
            cause = e.source();
        }
        lines
    }

    /// The message and its causes on one line.
    pub(crate) fn summary(&self) -> String {
        self.lines().join(": ")
    }

    /// Prints the failure to standard error.
    pub(crate) fn report(&self) -> ExitCode {
        let lines = self.lines();
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("error: {line}\n"));
            } else {
                out.push_str(&format!("  caused by: {line}\n"));
            }
        }
        eprint!("{out}");
        ExitCode::from(EXIT_ERROR)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({:?}: {})", self.context, self.error)
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            context: None,
            error: Box::new(error),
        }
    }
}

/// Adds "what was being done" to an error.
pub(crate) trait Context<T> {
    /// Wraps the error under `message`.
    fn context(self, message: impl Into<String>) -> Result<T, Failure>;
}

impl<T, E: Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, message: impl Into<String>) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            context: Some(message.into()),
            error: Box::new(error),
        })
    }
}

impl<T> Context<T> for Result<T, Failure> {
    fn context(self, message: impl Into<String>) -> Result<T, Failure> {
        self.map_err(|mut failure| {
            if let Some(inner) = failure.context.take() {
                failure.error = Box::new(Wrapped {
                    message: inner,
                    source: failure.error,
                });
            }
            failure.context = Some(message.into());
            failure
        })
    }
}

/// A context message that became a cause of an outer one.
#[derive(Debug)]
struct Wrapped {
    message: String,
    source: Box<dyn Error + Send + Sync + 'static>,
}

impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.source.as_ref())
    }
}
