//! nginx's `if (...)` conditions, as written in `rule.if`: parsed and compiled at load time.
//!
//! Forms (nginx's): `$var` (true unless empty or `0`), `$var = value`, `$var != value` (the
//! value may hold variables and may be quoted), `$var ~ regex`, `$var ~* regex` (case
//! insensitive), `$var !~ regex`, `$var !~* regex`. File tests (`-f`, `-d`, ...) are refused.

use regex::bytes::Regex;

use super::{Lookup, Names, Template, Var};

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `$var`: true unless the value is empty or `0`.
    Truthy(Var),
    /// `$var = value` / `$var != value`.
    Equals {
        /// The variable compared.
        var: Var,
        /// What it is compared with.
        value: Template,
        /// `!=`.
        negate: bool,
    },
    /// `$var ~ regex` and friends.
    Matches {
        /// The variable matched.
        var: Var,
        /// The regex (case-insensitive already for `~*`).
        regex: Regex,
        /// `!~`, `!~*`.
        negate: bool,
    },
}

impl Condition {
    /// Parses `text` (with or without nginx's surrounding parentheses).
    pub fn parse(text: &str, names: Names<'_>) -> Result<Condition, String> {
        let mut t = text.trim();
        if let Some(inner) = t.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            t = inner.trim();
        }
        if t.starts_with('-') || t.starts_with("!-") {
            return Err(format!(
                "`{text}`: file tests (-f, -d, -e, -x) are not supported"
            ));
        }
        let Some(after) = t.strip_prefix('$') else {
            return Err(format!(
                "`{text}`: a condition starts with a $variable (as in nginx's if)"
            ));
        };
        let (name, rest) = if let Some(b) = after.strip_prefix('{') {
            let end = b
                .find('}')
                .ok_or_else(|| format!("`{text}`: unclosed ${{"))?;
            (&b[..end], &b[end + 1..])
        } else {
            let len = after
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            (&after[..len], &after[len..])
        };
        let var = names
            .lookup(name)
            .ok_or_else(|| format!("unknown variable `${name}`"))?;
        let rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(Condition::Truthy(var));
        }
        let (op, operand) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], rest[i..].trim()),
            None => {
                // `$a=b` without spaces is one token in nginx too: refuse clearly.
                return Err(format!(
                    "`{text}`: expected `$var OP value` with spaces around the operator"
                ));
            }
        };
        let operand = unquote(operand)?;
        match op {
            "=" | "!=" => Ok(Condition::Equals {
                var,
                value: Template::compile_with(&operand, names).map_err(|e| e.to_string())?,
                negate: op == "!=",
            }),
            "~" | "~*" | "!~" | "!~*" => {
                let nocase = op.ends_with('*');
                let pattern = if nocase {
                    format!("(?i){operand}")
                } else {
                    operand
                };
                let regex =
                    Regex::new(&pattern).map_err(|e| format!("`{text}`: bad regex: {e}"))?;
                Ok(Condition::Matches {
                    var,
                    regex,
                    negate: op.starts_with('!'),
                })
            }
            other => Err(format!(
                "`{text}`: `{other}` is not an operator; expected =, !=, ~, ~*, !~ or !~*"
            )),
        }
    }

    /// Evaluates against `l`. Values already held (headers, DNs, the verify result) and
    /// literal operands are compared in place: no temporary buffer for the usual conditions.
    pub fn eval(&self, l: &impl Lookup) -> bool {
        let mut held = Vec::new();
        match self {
            Condition::Truthy(v) => match l.borrow(v) {
                Some(b) => !(b.is_empty() || b == b"0"),
                None => {
                    l.append(v, &mut held);
                    !(held.is_empty() || held == b"0")
                }
            },
            Condition::Equals {
                var,
                value: other,
                negate,
            } => {
                let lhs: &[u8] = match l.borrow(var) {
                    Some(b) => b,
                    None => {
                        l.append(var, &mut held);
                        &held
                    }
                };
                let equal = match (other.as_literal(), other.single_var()) {
                    (Some(lit), _) => lhs == lit.as_bytes(),
                    (None, Some(v)) if l.borrow(v).is_some() => Some(lhs) == l.borrow(v),
                    _ => {
                        let mut rhs = Vec::new();
                        other.render(&mut rhs, |v, o| l.append(v, o));
                        lhs == rhs.as_slice()
                    }
                };
                equal != *negate
            }
            Condition::Matches { var, regex, negate } => {
                let m = match l.borrow(var) {
                    Some(b) => regex.is_match(b),
                    None => {
                        l.append(var, &mut held);
                        regex.is_match(&held)
                    }
                };
                m != *negate
            }
        }
    }
}

/// nginx's quoting: `"..."` or `'...'` with `\` escaping the quote; bare words as they are.
fn unquote(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let Some(q @ ('"' | '\'')) = chars.next() else {
        return Ok(s.to_string());
    };
    let mut out = String::new();
    let mut escaped = false;
    for c in chars.by_ref() {
        if escaped {
            if c != q && c != '\\' {
                out.push('\\');
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == q {
            return if chars.as_str().trim().is_empty() {
                Ok(out)
            } else {
                Err(format!("`{s}`: text after the closing quote"))
            };
        } else {
            out.push(c);
        }
    }
    Err(format!("`{s}`: unclosed quote"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values for the tests: the verify result is "held" (borrowable), the rest appended.
    struct Fake<'a> {
        verify: &'a str,
        addr: &'a str,
    }

    impl Lookup for Fake<'_> {
        fn append(&self, v: &Var, out: &mut Vec<u8>) {
            match v {
                Var::SslClientVerify => out.extend_from_slice(self.verify.as_bytes()),
                Var::RemoteAddr => out.extend_from_slice(self.addr.as_bytes()),
                Var::Map(0) => out.extend_from_slice(b"10.0.0.5"),
                _ => {}
            }
        }

        fn borrow(&self, v: &Var) -> Option<&[u8]> {
            (*v == Var::SslClientVerify).then_some(self.verify.as_bytes())
        }
    }

    fn eval(c: &Condition, verify: &str, addr: &str) -> bool {
        c.eval(&Fake { verify, addr })
    }

    /// The enterprise mTLS guide's `if` conditions: an unverified client, a foreign address.
    #[test]
    fn verify_and_allowed_ip_conditions() {
        let maps = ["allowed_ip".to_string()];
        let names = Names { maps: &maps };
        let c = Condition::parse("($ssl_client_verify != SUCCESS)", names).unwrap();
        assert!(eval(&c, "NONE", ""));
        assert!(eval(&c, "FAILED:certificate has expired", ""));
        assert!(!eval(&c, "SUCCESS", ""));
        let c = Condition::parse("$remote_addr != $allowed_ip", names).unwrap();
        assert!(!eval(&c, "", "10.0.0.5"));
        assert!(eval(&c, "", "127.0.0.1"));
    }

    #[test]
    fn regex_truthy_and_quotes() {
        let n = Names::default();
        let c = Condition::parse("$ssl_client_verify ~* \"^fail\"", n).unwrap();
        assert!(eval(&c, "FAILED:x", ""));
        let c = Condition::parse("$ssl_client_verify !~ ^SUCC", n).unwrap();
        assert!(eval(&c, "NONE", ""));
        assert!(!eval(&c, "SUCCESS", ""));
        let c = Condition::parse("$ssl_client_verify", n).unwrap();
        assert!(eval(&c, "x", ""));
        assert!(!eval(&c, "0", ""));
        assert!(!eval(&c, "", ""));
        let c = Condition::parse("$remote_addr = 'a b'", n).unwrap();
        assert!(eval(&c, "", "a b"));
    }

    #[test]
    fn refusals_say_why() {
        let n = Names::default();
        for (text, why) in [
            ("-f /etc/x", "file tests"),
            ("remote_addr = x", "starts with a $variable"),
            ("$nope = 1", "unknown variable"),
            ("$remote_addr == x", "not an operator"),
            ("$remote_addr ~ (", "bad regex"),
            ("$remote_addr = \"x", "unclosed quote"),
            ("$remote_addr=x", "spaces around"),
        ] {
            let e = Condition::parse(text, n).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
