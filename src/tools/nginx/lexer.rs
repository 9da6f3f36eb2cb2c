//! nginx's configuration tokens, read exactly as `ngx_conf_read_token` reads them, so that a
//! file nginx accepts splits into the same words here (quotes, escapes, comments, `${var}`).

use std::fmt;

/// One token and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Line of its first character.
    pub line: usize,
}

/// The four kinds of token nginx's reader distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A word, bare or quoted, with nginx's escapes (`\"`, `\'`, `\\`, `\t`, `\r`, `\n`)
    /// applied; `quoted` tells whether it was written in quotes.
    Word {
        /// The text.
        text: String,
        /// Written as `"..."` or `'...'`.
        quoted: bool,
    },
    /// `;`: ends a simple directive.
    Semicolon,
    /// `{`: opens a block.
    BlockStart,
    /// `}`: closes a block.
    BlockEnd,
}

/// A lexical error, with the line nginx would report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    /// 1-based line.
    pub line: usize,
    /// nginx's wording.
    pub message: String,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Splits a configuration file's text into tokens.
///
/// Rules (from nginx's reader): words end at whitespace, `;` or `{` (not at `}`: `a}` is one
/// word); `#` starts a comment only where a token could start; quotes open only at a token's
/// start and must be followed by whitespace, `;`, `{` or `)`; `\` makes the next character
/// ordinary; `{` right after `$` belongs to the word (`${var}`).
pub fn tokenize(src: &str) -> Result<Vec<Token>, LexError> {
    let mut lexer = Lexer::new(src);
    for (pos, &ch) in src.as_bytes().iter().enumerate() {
        lexer.pos = pos;
        lexer.step(ch)?;
    }
    lexer.finish()
}

/// Whether a state took the character whole, or passes it on to the next state's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// The character is consumed.
    Taken,
    /// The character goes on to the following rules, as nginx's reader falls through.
    FallThrough,
}

/// The reader's state, named as in ngx_conf_read_token.
struct Lexer<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    /// Line of the current character.
    line: usize,
    /// Byte offset of the current character.
    pos: usize,
    last_space: bool,
    need_space: bool,
    comment: bool,
    escaped: bool,
    variable: bool,
    d_quoted: bool,
    s_quoted: bool,
    /// Byte offset where the current word's text starts.
    start: usize,
    /// Line the current word starts on.
    start_line: usize,
}

impl<'s> Lexer<'s> {
    fn new(src: &'s str) -> Self {
        Lexer {
            src,
            tokens: Vec::new(),
            line: 1,
            pos: 0,
            last_space: true,
            need_space: false,
            comment: false,
            escaped: false,
            variable: false,
            d_quoted: false,
            s_quoted: false,
            start: 0,
            start_line: 1,
        }
    }

    /// Reads one character: through the comment and escape states, then the state after a
    /// closing quote, then the state between tokens, then the word rules.
    fn step(&mut self, ch: u8) -> Result<(), LexError> {
        if ch == b'\n' {
            self.line += 1;
            self.comment = false;
        }
        if self.comment {
            return Ok(());
        }
        if self.escaped {
            self.escaped = false;
            return Ok(());
        }
        if self.need_space && self.after_quote(ch)? == Flow::Taken {
            return Ok(());
        }
        if self.last_space && self.between_tokens(ch) == Flow::Taken {
            return Ok(());
        }
        self.in_word(ch);
        Ok(())
    }

    fn push(&mut self, kind: TokenKind) {
        self.tokens.push(Token {
            kind,
            line: self.line,
        });
    }

    /// Right after a closing quote: only whitespace, `;`, `{` or `)` may follow.
    fn after_quote(&mut self, ch: u8) -> Result<Flow, LexError> {
        if is_space(ch) {
            self.last_space = true;
            self.need_space = false;
            return Ok(Flow::Taken);
        }
        match ch {
            b';' | b'{' => {
                self.push(if ch == b';' {
                    TokenKind::Semicolon
                } else {
                    TokenKind::BlockStart
                });
                self.need_space = false;
                self.last_space = true;
                Ok(Flow::Taken)
            }
            b')' => {
                // nginx lets `)` follow a closing quote (`if ($a = "b")`); the `)` then
                // starts a word of its own.
                self.last_space = true;
                self.need_space = false;
                Ok(Flow::FallThrough)
            }
            other => Err(LexError {
                line: self.line,
                message: format!("unexpected \"{}\"", printable(other)),
            }),
        }
    }

    /// Between tokens: whitespace is skipped, and the character starts what comes next.
    fn between_tokens(&mut self, ch: u8) -> Flow {
        if is_space(ch) {
            return Flow::Taken;
        }
        self.start = self.pos;
        self.start_line = self.line;
        match ch {
            b';' => self.push(TokenKind::Semicolon),
            b'{' => self.push(TokenKind::BlockStart),
            b'}' => self.push(TokenKind::BlockEnd),
            b'#' => self.comment = true,
            b'\\' => {
                self.escaped = true;
                self.last_space = false;
            }
            b'"' | b'\'' => {
                self.start = self.pos + 1;
                self.d_quoted = ch == b'"';
                self.s_quoted = ch == b'\'';
                self.last_space = false;
            }
            _ => {
                // A bare word's first character falls through to the word rules, as in
                // nginx (a leading `$` sets `variable`).
                self.last_space = false;
                return Flow::FallThrough;
            }
        }
        Flow::Taken
    }

    /// Inside a word, bare or quoted: looks for its end.
    fn in_word(&mut self, ch: u8) {
        if ch == b'{' && self.variable {
            return;
        }
        self.variable = false;
        if ch == b'\\' {
            self.escaped = true;
            return;
        }
        if ch == b'$' {
            self.variable = true;
            return;
        }
        let quoted = self.d_quoted || self.s_quoted;
        let found = if self.d_quoted {
            ch == b'"'
        } else if self.s_quoted {
            ch == b'\''
        } else {
            is_space(ch) || ch == b';' || ch == b'{'
        };
        if !found {
            return;
        }
        if quoted {
            self.d_quoted = false;
            self.s_quoted = false;
            self.need_space = true;
        } else {
            self.last_space = true;
        }
        self.end_word(ch, quoted);
    }

    /// A word has ended at `ch`: the word, then the `;` or `{` that ended a bare one.
    fn end_word(&mut self, ch: u8, quoted: bool) {
        let raw = &self.src[self.start..self.pos];
        self.tokens.push(Token {
            kind: TokenKind::Word {
                text: unescape(raw),
                quoted,
            },
            line: self.start_line,
        });
        if !quoted {
            match ch {
                b';' => self.push(TokenKind::Semicolon),
                b'{' => self.push(TokenKind::BlockStart),
                _ => {}
            }
        }
    }

    /// The end of the file: an open quote is an error; an open bare word is kept.
    fn finish(mut self) -> Result<Vec<Token>, LexError> {
        if self.d_quoted || self.s_quoted {
            return Err(LexError {
                line: self.start_line,
                message: format!(
                    "unexpected end of file, missing terminating \"{}\" character",
                    if self.d_quoted { '"' } else { '\'' }
                ),
            });
        }
        if !self.last_space && !self.need_space {
            // A bare word still open at the end of the file: kept, so that the parser reports
            // the missing `;` with the directive's name.
            self.tokens.push(Token {
                kind: TokenKind::Word {
                    text: unescape(&self.src[self.start..]),
                    quoted: false,
                },
                line: self.start_line,
            });
        }
        Ok(self.tokens)
    }
}

fn is_space(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn printable(ch: u8) -> String {
    if ch.is_ascii_graphic() {
        (ch as char).to_string()
    } else {
        format!("\\x{ch:02x}")
    }
}

/// nginx's unescaping of a token: `\"`, `\'` and `\\` lose the backslash, `\t`, `\r`, `\n`
/// become control characters, every other backslash stays.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('"') | Some('\'') | Some('\\') => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            Some('t') => {
                chars.next();
                out.push('\t');
            }
            Some('r') => {
                chars.next();
                out.push('\r');
            }
            Some('n') => {
                chars.next();
                out.push('\n');
            }
            _ => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<String> {
        tokenize(src)
            .unwrap()
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Word { text, .. } => text,
                TokenKind::Semicolon => ";".into(),
                TokenKind::BlockStart => "{".into(),
                TokenKind::BlockEnd => "}".into(),
            })
            .collect()
    }

    #[test]
    fn bare_words_and_punctuation() {
        assert_eq!(
            words("listen 443 ssl;\nserver{ a b;}"),
            ["listen", "443", "ssl", ";", "server", "{", "a", "b", ";", "}"]
        );
        // `}` inside a word belongs to it, as in nginx.
        assert_eq!(words("a b}"), ["a", "b}"]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            words(r#"log_format x '$a [$b] ' "c \"d\" \t\n\q";"#),
            ["log_format", "x", "$a [$b] ", "c \"d\" \t\n\\q", ";"]
        );
        assert_eq!(words(r"a\ b c\;d;"), [r"a\ b", r"c\;d", ";"]);
        assert_eq!(words(r#"'it\'s' "a#b";"#), ["it's", "a#b", ";"]);
        // Quotes in the middle of a word are ordinary characters.
        assert_eq!(words(r#"a"b" c;"#), [r#"a"b""#, "c", ";"]);
        // Empty strings are words.
        assert_eq!(words(r#"default "";"#), ["default", "", ";"]);
        let t = tokenize("'x' y;").unwrap();
        assert!(matches!(&t[0].kind, TokenKind::Word { quoted: true, .. }));
        assert!(matches!(&t[1].kind, TokenKind::Word { quoted: false, .. }));
    }

    #[test]
    fn comments() {
        assert_eq!(
            words("# top\nuser nginx; # trailing\n  #x;y\nhttp { }"),
            ["user", "nginx", ";", "http", "{", "}"]
        );
        // `#` inside a word is not a comment.
        assert_eq!(words("a#b;"), ["a#b", ";"]);
    }

    #[test]
    fn variables_in_braces() {
        assert_eq!(
            words("return 200 ${scheme}://$host;"),
            ["return", "200", "${scheme}://$host", ";"]
        );
        // Only a `{` right after `$` belongs to the word.
        assert_eq!(words("a ${ b;"), ["a", "${", "b", ";"]);
        assert_eq!(words("set $a{ }"), ["set", "$a", "{", "}"]);
    }

    #[test]
    fn paren_after_quote_starts_a_word() {
        assert_eq!(
            words(r#"if ($a = "b c") { return 403; }"#),
            ["if", "($a", "=", "b c", ")", "{", "return", "403", ";", "}"]
        );
    }

    #[test]
    fn lines_are_counted() {
        let t = tokenize("a\n\nb 'x\ny' c;").unwrap();
        assert_eq!(
            t.iter().map(|t| t.line).collect::<Vec<_>>(),
            [1, 3, 3, 4, 4]
        );
    }

    #[test]
    fn errors() {
        let e = tokenize("a \"b\"c;").unwrap_err();
        assert_eq!(e.message, "unexpected \"c\"");
        let e = tokenize("a\n\"open").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("missing terminating"), "{e}");
    }

    #[test]
    fn word_at_end_of_file_is_kept_for_the_parser() {
        assert_eq!(words("a b"), ["a", "b"]);
        assert_eq!(words("a 'b'"), ["a", "b"]);
    }
}
