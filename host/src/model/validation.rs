//! Field-level validation errors for Weir's own kinds.
//!
//! Each Weir kind converts into a validated `Spec` once, at the edge. A conversion that
//! fails returns every problem it found as a [`FieldErrors`] list of `(path, message)`
//! pairs, so the translator can write one `Accepted=False` condition naming each field
//! (`spec.connectionConfig.connectTimeout: …`) instead of stopping at the first.

use std::fmt;

/// One problem with one field: where it is (`spec.healthChecks[0].timeout`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldError {
    /// Dotted path from the object root, with `[i]` for list items, e.g. `spec.targetRefs[1].kind`.
    pub path: String,
    /// What is wrong, written for the operator who has to fix the manifest.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem a validation found, in the order it found them; never empty when returned
/// as an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, thiserror::Error)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// An empty list, to push problems into while validating.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(value)` when nothing was recorded, otherwise the recorded problems.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_display_every_problem_with_its_path() {
        let mut errors = FieldErrors::new();
        errors.push("spec.status", "must be between 200 and 599");
        errors.push("spec.body", "is too long");
        assert_eq!(
            errors.to_string(),
            "spec.status: must be between 200 and 599; spec.body: is too long"
        );
        assert!(errors.into_result(()).is_err());
    }

    #[test]
    fn no_problems_means_ok() {
        assert_eq!(FieldErrors::new().into_result(7), Ok(7));
    }
}
