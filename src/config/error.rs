//! Configuration errors that say where: file, line, key, and what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key, such as `listener[0].tls.verify_client`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in one pass, so a user fixes them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} configuration error{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// Orders the errors by file, then line (errors of the whole file first), so a user
    /// reads them top to bottom; errors on one line keep the order they were found in.
    pub fn sort(&mut self) {
        self.0
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }
}

/// Collects errors against one source text, turning byte spans into line numbers.
pub struct Collector<'a> {
    file: &'a Path,
    source: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    /// Starts collecting for `file`, whose text is `source`.
    pub fn new(file: &'a Path, source: &'a str) -> Self {
        Collector {
            file,
            source,
            errors: Vec::new(),
        }
    }

    /// Records an error at a byte span of the source (None when there is no position).
    pub fn push(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| line_of(self.source, s.start));
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// How many errors so far.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// True when nothing has gone wrong so far.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Ends collection.
    pub fn finish(self) -> ConfigErrors {
        let mut errors = ConfigErrors(self.errors);
        errors.sort();
        errors
    }
}

/// The 1-based line that byte `offset` of `source` is on.
pub fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn errors_are_sorted_by_file_then_line() {
        let mut c = Collector::new(Path::new("b.toml"), "one\ntwo\nthree\n");
        c.push(Some(8..9), "late", "third line");
        c.push(None, "", "whole file");
        c.push(Some(0..1), "early", "first line");
        let mut errors = c.finish();
        errors.0.insert(
            0,
            ConfigError {
                file: "c.toml".into(),
                line: Some(1),
                key: String::new(),
                message: "other file".into(),
            },
        );
        errors.sort();
        assert_eq!(
            errors.to_string(),
            "4 configuration errors:\n  b.toml: whole file\n  b.toml:1: early: first line\n  b.toml:3: late: third line\n  c.toml:1: other file\n"
        );
    }
}
