//! The nginx configuration front end: an nginx.conf becomes ringgate's TOML, so that users run
//! the file they already have (`ringgate run --nginx-config`) or convert it once
//! (`ringgate import-nginx`).
//!
//! nginx.conf -> [`lexer`] tokens -> [`parser`] directives (file and line each, includes
//! expanded) -> [`translate`] TOML text, a [`SourceMap`] from TOML lines back to nginx lines,
//! and warnings for directives that cannot change behaviour. [`load`] feeds the TOML to
//! [`crate::config::parse_str`] and maps every error back to the nginx file and line.

#![warn(missing_docs)]

mod advice;
pub mod fuzz;
pub mod glob;
pub mod lexer;
pub mod parser;
pub mod translate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ConfigError, ConfigErrors};

/// Where a directive was written: file, 1-based line, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file (the main nginx.conf or an included one).
    pub file: Arc<Path>,
    /// 1-based line of the directive's first word.
    pub line: usize,
    /// The directive's name, for messages.
    pub directive: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An nginx configuration ringgate cannot run: what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {}{}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), if directive.is_empty() { String::new() } else { format!("{directive}: ") }, message)]
pub struct NginxError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when there is one.
    pub line: Option<usize>,
    /// The directive concerned (may be empty for lexical errors).
    pub directive: String,
    /// What is wrong.
    pub message: String,
}

impl NginxError {
    pub(crate) fn at(origin: &Origin, message: impl Into<String>) -> Self {
        NginxError {
            file: origin.file.to_path_buf(),
            line: Some(origin.line),
            directive: origin.directive.clone(),
            message: message.into(),
        }
    }
}

impl From<NginxError> for ConfigError {
    fn from(e: NginxError) -> ConfigError {
        ConfigError {
            file: e.file,
            line: e.line,
            key: e.directive,
            message: e.message,
        }
    }
}

/// A directive ringgate ignores (and why), or a behaviour it approximates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub origin: Origin,
    /// What is ignored or approximated, and why.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: warning: {}: {}",
            self.origin, self.origin.directive, self.message
        )
    }
}

/// For each line of the generated TOML, the nginx directive it came from.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    lines: Vec<Option<Origin>>,
    /// Lines holding values of several directives (`{ cert = .., key = .. }`): the line,
    /// the TOML key's last part, and that key's own directive.
    fields: Vec<(usize, &'static str, Origin)>,
}

impl SourceMap {
    /// Records the origin of the next TOML line.
    pub(crate) fn push(&mut self, origin: Option<Origin>) {
        self.lines.push(origin);
    }

    /// On the last line recorded, the key ending in `.{field}` came from `origin`, not from
    /// the line's own directive.
    pub(crate) fn field(&mut self, field: &'static str, origin: Origin) {
        self.fields.push((self.lines.len(), field, origin));
    }

    /// The nginx directive behind TOML key `key` on line `line`: the key's own directive
    /// when the line holds several, else the line's.
    pub fn origin_of(&self, line: usize, key: &str) -> Option<&Origin> {
        self.fields
            .iter()
            .find(|(l, field, _)| {
                *l == line
                    && key
                        .strip_suffix(field)
                        .is_some_and(|rest| rest.ends_with('.'))
            })
            .map(|(_, _, o)| o)
            .or_else(|| self.origin(line))
    }

    /// The nginx directive behind TOML line `line` (1-based): the line's own origin, else the
    /// nearest line above that has one (a table header takes its first key's place).
    pub fn origin(&self, line: usize) -> Option<&Origin> {
        let end = line.min(self.lines.len());
        self.lines[..end].iter().rev().find_map(|o| o.as_ref())
    }
}

/// The result of translating an nginx configuration.
#[derive(Debug, Clone)]
pub struct Translation {
    /// ringgate's TOML, loadable with [`crate::config::parse_str`].
    pub toml: String,
    /// TOML line -> nginx file:line.
    pub source_map: SourceMap,
    /// Directives ignored or approximated.
    pub warnings: Vec<Warning>,
}

/// Every problem found, so a user fixes them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", ConfigErrors(self.0.iter().cloned().map(ConfigError::from).collect()))]
pub struct NginxErrors(pub Vec<NginxError>);

impl From<NginxErrors> for ConfigErrors {
    fn from(e: NginxErrors) -> ConfigErrors {
        ConfigErrors(e.0.into_iter().map(ConfigError::from).collect())
    }
}

/// Translates the nginx configuration in `path` (and the files it includes).
pub fn translate_file(path: &Path) -> Result<Translation, NginxErrors> {
    let ast = parser::parse_file(path).map_err(|e| NginxErrors(vec![e]))?;
    translate::translate(&ast, &parser::absolute(path))
}

/// Translates `text` as if it were the main file at `path` (includes are read from disk,
/// relative to `path`'s directory).
pub fn translate_str(text: &str, path: &Path) -> Result<Translation, NginxErrors> {
    let ast = parser::parse_str(text, path).map_err(|e| NginxErrors(vec![e]))?;
    translate::translate(&ast, &parser::absolute(path))
}

/// Translates and loads an nginx configuration; errors from the loader name nginx lines.
pub fn load(path: &Path) -> Result<(Config, Vec<Warning>), ConfigErrors> {
    let t = translate_file(path)?;
    let config = load_translation(&t, path)?;
    Ok((config, t.warnings))
}

/// Loads a translation through the TOML loader, mapping errors back to nginx lines.
pub fn load_translation(t: &Translation, path: &Path) -> Result<Config, ConfigErrors> {
    crate::config::parse_str(&t.toml, path).map_err(|e| remap(e, &t.source_map, path))
}

/// Rewrites loader errors (which name TOML lines) to name the nginx directive behind them.
pub fn remap(errors: ConfigErrors, map: &SourceMap, main: &Path) -> ConfigErrors {
    let mut remapped = ConfigErrors(
        errors
            .0
            .into_iter()
            .map(|e| match e.line.and_then(|l| map.origin_of(l, &e.key)) {
                Some(o) => ConfigError {
                    file: o.file.to_path_buf(),
                    line: Some(o.line),
                    key: o.directive.clone(),
                    message: if e.key.is_empty() {
                        e.message
                    } else {
                        let advice = advice::in_nginx_words(&e.key, &e.message, &o.directive);
                        format!("{advice} (TOML key {})", e.key)
                    },
                },
                None => ConfigError {
                    file: main.to_path_buf(),
                    line: None,
                    ..e
                },
            })
            .collect(),
    );
    remapped.sort();
    remapped
}
