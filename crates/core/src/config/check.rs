//! `authflow check` (flow-config.md 2.4): the lines it prints and its exit status.

use std::path::Path;

use super::load::{Outcome, load_file_outcome};

/// What `authflow check --config FILE` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Standard output: exactly `ok`, or one `path: message` line per problem in file
    /// order (`FILE:LINE:COLUMN: message` for a syntax error, `FILE: cannot read: …`).
    pub stdout: Vec<String>,
    /// Standard error: `warning: path: message` lines (they never change the status).
    pub stderr: Vec<String>,
}

impl CheckOutcome {
    pub fn is_ok(&self) -> bool {
        self.stdout == ["ok"]
    }

    /// 0 when valid, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.is_ok() { 0 } else { 1 }
    }
}

/// Validates a config file like `check` (and `serve` before it starts): never opens a
/// network connection or a database.
pub fn check_file(path: &Path) -> CheckOutcome {
    from_outcome(load_file_outcome(path))
}

pub(crate) fn from_outcome(outcome: Outcome) -> CheckOutcome {
    let stdout = if outcome.problems.is_empty() {
        vec!["ok".to_string()]
    } else {
        outcome.problems.iter().map(ToString::to_string).collect()
    };
    let stderr = outcome
        .warnings
        .iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    CheckOutcome { stdout, stderr }
}
