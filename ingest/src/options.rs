//! The error of a configuration value rejected at start-up.

/// An option whose value cannot be used: the option, named as in the TOML
/// file (`segment.max_rows`), and what is wrong with its value. It never
/// goes away on retry: the configuration has to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {problem}")]
pub struct InvalidOption {
    pub option: &'static str,
    pub problem: String,
}

impl InvalidOption {
    pub fn new(option: &'static str, problem: impl Into<String>) -> Self {
        Self {
            option,
            problem: problem.into(),
        }
    }
}

/// `Err` of an [`InvalidOption`] unless `ok`.
pub fn require(ok: bool, option: &'static str, problem: &str) -> Result<(), InvalidOption> {
    if ok {
        Ok(())
    } else {
        Err(InvalidOption::new(option, problem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_option_first() {
        let e = InvalidOption::new("segment.max_rows", "must be at least 1");
        assert_eq!(e.to_string(), "segment.max_rows: must be at least 1");
        assert_eq!(require(true, "x", "y"), Ok(()));
        assert_eq!(require(false, "x", "y").map_err(|e| e.option), Err("x"));
    }
}
