//! [`ConfigProblem`]: what `ClusterConfig::validate` (and a registry's
//! settings check) reports: the field at fault and what is wrong with it.

/// A configuration problem: which field, and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cluster config: `{field}` {problem}")]
pub struct ConfigProblem {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong and what to do.
    pub problem: &'static str,
}
