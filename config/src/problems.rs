//! What validation found: each problem with where it is and how to fix it.

use std::fmt;

/// How bad a problem is once `strict_alb` has been applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// hostalb runs, but ALB would refuse this configuration.
    Warning,
    /// The configuration cannot be used.
    Error,
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// Where it is, e.g. `listener[0].rule[2].conditions[1]`.
    pub path: String,
    pub message: String,
    /// What to change.
    pub fix: String,
    /// An ALB limit (a warning unless `strict_alb = true`) rather than an impossibility.
    pub alb_limit: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match (self.severity, self.alb_limit) {
            (Severity::Error, false) => "error",
            (Severity::Error, true) => "error (ALB limit, strict_alb = true)",
            (Severity::Warning, true) => "warning (ALB limit)",
            (Severity::Warning, false) => "warning",
        };
        write!(f, "{kind}: {}: {}", self.path, self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// Why a configuration could not be loaded: the file could not be read or parsed, or it
/// parsed and validation found errors (all of them are listed, warnings included).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {} error(s):\n{}", count_errors(.problems), render(.problems))]
    Invalid { origin: String, problems: Vec<Problem> },
}

impl ConfigError {
    /// Every problem found (one for read and syntax errors).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Invalid { problems, .. } => problems.clone(),
            ConfigError::Read { source, .. } => vec![Problem {
                severity: Severity::Error,
                path: "(file)".into(),
                message: format!("cannot read: {source}"),
                fix: "check the path and its permissions".into(),
                alb_limit: false,
            }],
            ConfigError::Syntax { message, .. } => vec![Problem {
                severity: Severity::Error,
                path: "(syntax)".into(),
                message: message.clone(),
                fix: "correct the syntax at the position shown".into(),
                alb_limit: false,
            }],
        }
    }
}

fn count_errors(problems: &[Problem]) -> usize {
    problems.iter().filter(|p| p.severity == Severity::Error).count()
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
