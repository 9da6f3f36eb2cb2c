//! Tokens into a tree of directives, each with the file and line it came from; `include` is
//! expanded here, where nginx expands it: relative to the main file's directory (nginx's conf
//! prefix), globs sorted, no match being fine, a missing plain file or a loop being an error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::glob;
use super::lexer::{tokenize, Token, TokenKind};
use super::{NginxError, Origin};

/// One directive: `name args...;` or `name args... { block }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The first word.
    pub name: String,
    /// The other words.
    pub args: Vec<String>,
    /// The block's directives, for `name ... { }`.
    pub block: Option<Vec<Directive>>,
    /// Where the directive's first word is.
    pub origin: Origin,
}

/// Deepest nesting of blocks and includes together: far beyond any real file, low enough that
/// hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;
/// Most files one configuration may read (a glob that fans out is bounded too).
const MAX_FILES: usize = 1_000;
/// Largest file read.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most directives in one configuration, includes expanded.
const MAX_DIRECTIVES: usize = 500_000;

/// Parses the main file and everything it includes.
pub fn parse_file(path: &Path) -> Result<Vec<Directive>, NginxError> {
    let path = absolute(path);
    let text = read(&path, None)?;
    parse_str(&text, &path)
}

/// Parses `text` as the main file at `path` (which anchors relative includes and names the
/// file in errors); included files are read from disk.
pub fn parse_str(text: &str, path: &Path) -> Result<Vec<Directive>, NginxError> {
    let path = absolute(path);
    let conf_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut p = Parser {
        conf_dir,
        stack: vec![std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone())],
        files: 1,
        directives: 0,
    };
    p.parse_text(text, Arc::from(path.as_path()), 0)
}

/// `path` made absolute against the current directory, without resolving symlinks.
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

struct Parser {
    conf_dir: PathBuf,
    /// Files being parsed, outermost first (canonical paths), to find include loops.
    stack: Vec<PathBuf>,
    files: usize,
    directives: usize,
}

fn err(file: &Arc<Path>, line: usize, directive: &str, message: impl Into<String>) -> NginxError {
    NginxError {
        file: file.to_path_buf(),
        line: Some(line),
        directive: directive.to_string(),
        message: message.into(),
    }
}

fn read(path: &Path, from: Option<&Origin>) -> Result<String, NginxError> {
    let fail = |message: String| match from {
        Some(o) => NginxError {
            file: o.file.to_path_buf(),
            line: Some(o.line),
            directive: "include".into(),
            message,
        },
        None => NginxError {
            file: path.to_path_buf(),
            line: None,
            directive: String::new(),
            message,
        },
    };
    // Only regular files, and not huge ones: `include /dev/zero` must not hang.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(fail(format!("{} is not a regular file", path.display())))
        }
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return Err(fail(format!(
                "{} is larger than {} MiB",
                path.display(),
                MAX_FILE_BYTES >> 20
            )))
        }
        Ok(_) => {}
        Err(e) => return Err(fail(format!("cannot read {}: {e}", path.display()))),
    }
    let bytes = crate::files::read(path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        fail(format!(
            "{} is not UTF-8 text (line {line})",
            path.display()
        ))
    })
}

impl Parser {
    fn parse_text(
        &mut self,
        text: &str,
        file: Arc<Path>,
        depth: usize,
    ) -> Result<Vec<Directive>, NginxError> {
        let tokens = tokenize(text).map_err(|e| err(&file, e.line, "", e.message))?;
        let mut toks = Tokens {
            tokens: &tokens,
            pos: 0,
            file,
        };
        self.block(&mut toks, depth, None)
    }

    /// Reads directives until the end of the file (`opened` None) or the `}` closing the block
    /// opened by `opened`.
    fn block(
        &mut self,
        toks: &mut Tokens<'_>,
        depth: usize,
        opened: Option<&Origin>,
    ) -> Result<Vec<Directive>, NginxError> {
        let mut out = Vec::new();
        loop {
            let st = toks.statement();
            let file = &toks.file;
            match &st.end {
                None => {
                    st.at_end_of_file(file, opened)?;
                    return Ok(out);
                }
                Some((TokenKind::BlockEnd, line)) => {
                    if !st.words.is_empty() {
                        return Err(err(file, st.first_line, st.name(), "unexpected \"}\""));
                    }
                    if opened.is_none() {
                        return Err(err(file, *line, "", "unexpected \"}\""));
                    }
                    return Ok(out);
                }
                Some((TokenKind::Semicolon, line)) if st.words.is_empty() => {
                    return Err(err(file, *line, "", "unexpected \";\""));
                }
                Some((TokenKind::BlockStart, line)) if st.words.is_empty() => {
                    return Err(err(file, *line, "", "unexpected \"{\""));
                }
                Some((kind, _)) => {
                    let opens_block = *kind == TokenKind::BlockStart;
                    self.directive(toks, depth, st, opens_block, &mut out)?
                }
            }
        }
    }

    /// One directive whose words `st` holds, ended by `;` or (`opens_block`) by `{`: pushed
    /// onto `out`, its block read, or (`include`) the files it names read in its place.
    fn directive(
        &mut self,
        toks: &mut Tokens<'_>,
        depth: usize,
        st: Statement,
        opens_block: bool,
        out: &mut Vec<Directive>,
    ) -> Result<(), NginxError> {
        let origin = Origin {
            file: toks.file.clone(),
            line: st.first_line,
            directive: st.name().to_string(),
        };
        let fail = |message: &str| err(&origin.file, origin.line, &origin.directive, message);
        self.directives += 1;
        if self.directives > MAX_DIRECTIVES {
            return Err(fail(&format!("more than {MAX_DIRECTIVES} directives")));
        }
        let name = origin.directive.clone();
        let args: Vec<String> = st.words.into_iter().skip(1).collect();
        let block = if opens_block {
            if name == "include" {
                return Err(fail("directive \"include\" is not terminated by \";\""));
            }
            if depth + 1 > MAX_DEPTH {
                return Err(fail("blocks and includes are nested too deeply"));
            }
            Some(self.block(toks, depth + 1, Some(&origin))?)
        } else if name == "include" {
            if args.len() != 1 {
                return Err(fail("invalid number of arguments in \"include\" directive"));
            }
            out.extend(self.include(&args[0], &origin, depth)?);
            return Ok(());
        } else {
            None
        };
        out.push(Directive {
            name,
            args,
            block,
            origin,
        });
        Ok(())
    }

    fn include(
        &mut self,
        arg: &str,
        at: &Origin,
        depth: usize,
    ) -> Result<Vec<Directive>, NginxError> {
        let fail = |m: String| err(&at.file, at.line, "include", m);
        if arg.is_empty() {
            return Err(fail("include names no file".into()));
        }
        if depth + 1 > MAX_DEPTH {
            return Err(fail("blocks and includes are nested too deeply".into()));
        }
        let full = if arg.starts_with('/') {
            PathBuf::from(arg)
        } else {
            self.conf_dir.join(arg)
        };
        let files = if glob::is_pattern(arg) {
            glob::expand(&full.to_string_lossy())
                .map_err(|e| fail(format!("glob \"{}\" failed: {e}", full.display())))?
        } else {
            vec![full]
        };
        let mut out = Vec::new();
        for f in files {
            let canonical = std::fs::canonicalize(&f)
                .map_err(|e| fail(format!("cannot open {}: {e}", f.display())))?;
            if let Some(i) = self.stack.iter().position(|p| *p == canonical) {
                let chain: Vec<String> = self.stack[i..]
                    .iter()
                    .chain(std::iter::once(&canonical))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(fail(format!("include loop: {}", chain.join(" -> "))));
            }
            self.files += 1;
            if self.files > MAX_FILES {
                return Err(fail(format!("more than {MAX_FILES} files included")));
            }
            let text = read(&f, Some(at))?;
            self.stack.push(canonical);
            let parsed = self.parse_text(&text, Arc::from(f.as_path()), depth + 1);
            self.stack.pop();
            out.extend(parsed?);
        }
        Ok(out)
    }
}

/// One file's tokens and the reading position in them.
struct Tokens<'t> {
    tokens: &'t [Token],
    pos: usize,
    file: Arc<Path>,
}

/// The words of one statement and the token that ended it.
struct Statement {
    words: Vec<String>,
    /// Line of the first word.
    first_line: usize,
    /// `;`, `{` or `}` and its line; None at the end of the file.
    end: Option<(TokenKind, usize)>,
}

impl Tokens<'_> {
    /// Reads words up to the next `;`, `{`, `}` or the end of the file.
    fn statement(&mut self) -> Statement {
        let mut words: Vec<String> = Vec::new();
        let mut first_line = 0;
        while let Some(t) = self.tokens.get(self.pos) {
            self.pos += 1;
            match &t.kind {
                TokenKind::Word { text, .. } => {
                    if words.is_empty() {
                        first_line = t.line;
                    }
                    words.push(text.clone());
                }
                other => {
                    return Statement {
                        words,
                        first_line,
                        end: Some((other.clone(), t.line)),
                    }
                }
            }
        }
        Statement {
            words,
            first_line,
            end: None,
        }
    }
}

impl Statement {
    /// The directive's name: its first word ("" for none).
    fn name(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The file ended after this statement: fine only with no words pending and no block open.
    fn at_end_of_file(&self, file: &Arc<Path>, opened: Option<&Origin>) -> Result<(), NginxError> {
        if !self.words.is_empty() {
            return Err(err(
                file,
                self.first_line,
                self.name(),
                "unexpected end of file, expecting \";\" or \"}\"",
            ));
        }
        if let Some(o) = opened {
            return Err(err(
                file,
                o.line,
                &o.directive,
                "unexpected end of file, expecting \"}\"",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Directive>, NginxError> {
        parse_str(text, Path::new("/nonexistent-dir/nginx.conf"))
    }

    #[test]
    fn blocks_and_lines() {
        let ast = parse("user x;\nhttp {\n  server {\n    listen 80;\n  }\n}\n").unwrap();
        assert_eq!(ast.len(), 2);
        assert_eq!(ast[0].name, "user");
        assert_eq!(ast[0].args, ["x"]);
        let http = &ast[1];
        assert_eq!(http.origin.line, 2);
        let server = &http.block.as_ref().unwrap()[0];
        let listen = &server.block.as_ref().unwrap()[0];
        assert_eq!((listen.name.as_str(), listen.origin.line), ("listen", 4));
        assert_eq!(
            listen.origin.file.as_ref(),
            Path::new("/nonexistent-dir/nginx.conf")
        );
    }

    #[test]
    fn structural_errors_name_lines() {
        let e = parse("http {\n  server {\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("expecting \"}\""), "{e}");
        let e = parse("a b;\n}\n").unwrap_err();
        assert_eq!((e.line, e.message.as_str()), (Some(2), "unexpected \"}\""));
        let e = parse("http {\n listen 80\n}").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.directive, "listen");
        let e = parse("\n;").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = parse("events {}\nworker_processes 2").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string().contains("nginx.conf:2: worker_processes:"),
            "{e}"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = "a {".repeat(10_000);
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("too deeply"), "{e}");
    }

    #[test]
    fn includes_with_globs_relative_to_the_main_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        std::fs::write(d.path().join("conf.d/b.conf"), "b 1;\n").unwrap();
        std::fs::write(d.path().join("conf.d/a.conf"), "a 1;\ninclude inner.inc;\n").unwrap();
        // Relative to the main file's directory (nginx's conf prefix), not to conf.d.
        std::fs::write(d.path().join("inner.inc"), "\n\ninner 1;\n").unwrap();
        let main = d.path().join("nginx.conf");
        std::fs::write(
            &main,
            "http {\n include conf.d/*.conf;\n include none/*.conf;\n}\n",
        )
        .unwrap();
        let ast = parse_file(&main).unwrap();
        let http = ast[0].block.as_ref().unwrap();
        let names: Vec<&str> = http.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["a", "inner", "b"]);
        assert_eq!(http[1].origin.line, 3);
        assert!(http[1].origin.file.ends_with("inner.inc"));
    }

    #[test]
    fn missing_include_and_loops_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let main = d.path().join("nginx.conf");
        std::fs::write(&main, "\ninclude missing.conf;\n").unwrap();
        let e = parse_file(&main).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert_eq!(e.directive, "include");
        assert!(e.message.contains("missing.conf"), "{e}");

        std::fs::write(&main, "include a.conf;\n").unwrap();
        std::fs::write(d.path().join("a.conf"), "x 1;\ninclude b*.conf;\n").unwrap();
        std::fs::write(d.path().join("b.conf"), "include a.conf;\n").unwrap();
        let e = parse_file(&main).unwrap_err();
        assert!(e.message.contains("include loop"), "{e}");
        assert!(e.file.ends_with("b.conf"), "{e}");

        std::fs::write(&main, "include nginx.conf;\n").unwrap();
        let e = parse_file(&main).unwrap_err();
        assert!(e.message.contains("include loop"), "{e}");

        std::fs::write(&main, "include /dev/zero;\n").unwrap();
        let e = parse_file(&main).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
        std::fs::write(&main, "include /;\n").unwrap();
        assert!(parse_file(&main).is_err());
    }

    #[test]
    fn include_needs_one_argument_and_no_block() {
        assert!(parse("include;").is_err());
        assert!(parse("include a b;").is_err());
        assert!(parse("include a { }").is_err());
    }
}
