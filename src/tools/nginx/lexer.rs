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
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut line = 1usize;
    let mut i = 0usize;
    // State, named as in ngx_conf_read_token.
    let mut last_space = true;
    let mut need_space = false;
    let mut comment = false;
    let mut escaped = false;
    let mut variable = false;
    let mut d_quoted = false;
    let mut s_quoted = false;
    let mut start = 0usize;
    let mut start_line = 1usize;

    while i < bytes.len() {
        let ch = bytes[i];
        i += 1;
        if ch == b'\n' {
            line += 1;
            if comment {
                comment = false;
            }
        }
        if comment {
            continue;
        }
        if escaped {
            escaped = false;
            continue;
        }
        if need_space {
            if is_space(ch) {
                last_space = true;
                need_space = false;
                continue;
            }
            match ch {
                b';' => {
                    tokens.push(Token {
                        kind: TokenKind::Semicolon,
                        line,
                    });
                    need_space = false;
                    last_space = true;
                    continue;
                }
                b'{' => {
                    tokens.push(Token {
                        kind: TokenKind::BlockStart,
                        line,
                    });
                    need_space = false;
                    last_space = true;
                    continue;
                }
                b')' => {
                    // nginx lets `)` follow a closing quote (`if ($a = "b")`); the `)` then
                    // starts a word of its own.
                    last_space = true;
                    need_space = false;
                }
                other => {
                    return Err(LexError {
                        line,
                        message: format!("unexpected \"{}\"", printable(other)),
                    });
                }
            }
        }
        if last_space {
            if is_space(ch) {
                continue;
            }
            start = i - 1;
            start_line = line;
            match ch {
                b';' => {
                    tokens.push(Token {
                        kind: TokenKind::Semicolon,
                        line,
                    });
                    continue;
                }
                b'{' => {
                    tokens.push(Token {
                        kind: TokenKind::BlockStart,
                        line,
                    });
                    continue;
                }
                b'}' => {
                    tokens.push(Token {
                        kind: TokenKind::BlockEnd,
                        line,
                    });
                    continue;
                }
                b'#' => {
                    comment = true;
                    continue;
                }
                b'\\' => {
                    escaped = true;
                    last_space = false;
                    continue;
                }
                b'"' => {
                    start = i;
                    d_quoted = true;
                    last_space = false;
                    continue;
                }
                b'\'' => {
                    start = i;
                    s_quoted = true;
                    last_space = false;
                    continue;
                }
                _ => {
                    last_space = false;
                }
            }
            // A bare word's first character falls through to the word rules below, as in
            // nginx (a leading `$` sets `variable`).
        }
        if ch == b'{' && variable {
            continue;
        }
        variable = false;
        if ch == b'\\' {
            escaped = true;
            continue;
        }
        if ch == b'$' {
            variable = true;
            continue;
        }
        let mut found = false;
        let quoted = d_quoted || s_quoted;
        if d_quoted {
            if ch == b'"' {
                d_quoted = false;
                need_space = true;
                found = true;
            }
        } else if s_quoted {
            if ch == b'\'' {
                s_quoted = false;
                need_space = true;
                found = true;
            }
        } else if is_space(ch) || ch == b';' || ch == b'{' {
            last_space = true;
            found = true;
        }
        if found {
            let raw = &src[start..i - 1];
            tokens.push(Token {
                kind: TokenKind::Word {
                    text: unescape(raw),
                    quoted,
                },
                line: start_line,
            });
            if !quoted {
                match ch {
                    b';' => tokens.push(Token {
                        kind: TokenKind::Semicolon,
                        line,
                    }),
                    b'{' => tokens.push(Token {
                        kind: TokenKind::BlockStart,
                        line,
                    }),
                    _ => {}
                }
            }
        }
    }
    if d_quoted || s_quoted {
        return Err(LexError {
            line: start_line,
            message: format!(
                "unexpected end of file, missing terminating \"{}\" character",
                if d_quoted { '"' } else { '\'' }
            ),
        });
    }
    if !last_space && !need_space {
        // A bare word still open at the end of the file: kept, so that the parser reports
        // the missing `;` with the directive's name.
        tokens.push(Token {
            kind: TokenKind::Word {
                text: unescape(&src[start..]),
                quoted: false,
            },
            line: start_line,
        });
    }
    Ok(tokens)
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
