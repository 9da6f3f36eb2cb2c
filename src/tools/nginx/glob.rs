//! `include` patterns expanded as nginx expands them with glob(3): `*`, `?` and `[...]` in any
//! path component, a leading `.` matched only explicitly, `\` escaping, results sorted by
//! byte order (nginx runs in the C locale), no match being no error.

use std::path::{Path, PathBuf};

/// True when nginx would treat `pattern` as a glob (it contains `*`, `?` or `[`).
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Every existing path matching `pattern` (an absolute path), sorted.
pub fn expand(pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let absolute = pattern.starts_with('/');
    let mut current: Vec<PathBuf> = vec![if absolute {
        PathBuf::from("/")
    } else {
        PathBuf::from(".")
    }];
    let components: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
    for (n, comp) in components.iter().enumerate() {
        let last = n + 1 == components.len();
        let mut next = Vec::new();
        for dir in &current {
            if !is_pattern(comp) {
                let p = dir.join(unescape(comp));
                if last || p.is_dir() {
                    if last && std::fs::symlink_metadata(&p).is_err() {
                        continue;
                    }
                    next.push(p);
                }
                continue;
            }
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(_) => continue,
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !matches(comp.as_bytes(), name.as_bytes()) {
                    continue;
                }
                let p = dir.join(name);
                if last || p.is_dir() {
                    next.push(p);
                }
            }
        }
        current = next;
        if current.is_empty() {
            break;
        }
    }
    if components.is_empty() {
        current.clear();
    }
    let mut out: Vec<PathBuf> = current
        .into_iter()
        .map(|p| {
            if absolute {
                p
            } else {
                p.strip_prefix(".").map(Path::to_path_buf).unwrap_or(p)
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    out.dedup();
    Ok(out)
}

fn unescape(comp: &str) -> String {
    let mut out = String::new();
    let mut chars = comp.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// fnmatch(3) of one path component, without FNM_PERIOD's exceptions beyond the leading dot:
/// linear backtracking on the last `*`, so hostile patterns cost O(pattern × name).
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, len)) = class(&pattern[p..], name[n]) {
                        if ok {
                            p += len;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == b'[' {
                        // An unterminated `[` is an ordinary character.
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == name[n] {
                        p += 2;
                        n += 1;
                        continue;
                    }
                }
                c => {
                    if c == name[n] {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the bracket expression at the start of `pat`; returns whether it
/// matched and the expression's length, or None when the `[` is not closed.
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *pat.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let (lo, step) = if lo == b'\\' {
            (*pat.get(i + 1)?, 2)
        } else {
            (lo, 1)
        };
        i += step;
        if pat.get(i) == Some(&b'-') && pat.get(i + 1).is_some_and(|&b| b != b']') {
            let hi = *pat.get(i + 1)?;
            i += 2;
            if lo <= c && c <= hi {
                matched = true;
            }
        } else if lo == c {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_rules() {
        assert!(matches(b"*.conf", b"a.conf"));
        assert!(!matches(b"*.conf", b".hidden.conf"));
        assert!(matches(b".*.conf", b".hidden.conf"));
        assert!(matches(b"a?c", b"abc"));
        assert!(!matches(b"a?c", b"ac"));
        assert!(matches(b"[a-c]x", b"bx"));
        assert!(!matches(b"[!a-c]x", b"bx"));
        assert!(matches(b"[]]", b"]"));
        assert!(matches(b"\\*", b"*"));
        assert!(!matches(b"\\*", b"a"));
        assert!(matches(b"*a*b*c", b"xxaxxbxxc"));
        assert!(!matches(b"*a*b*c", b"xxaxxbxx"));
        assert!(matches(b"[", b"["));
        // A hostile pattern stays linear.
        let p = "*a".repeat(50) + "b";
        assert!(!matches(p.as_bytes(), "a".repeat(200).as_bytes()));
    }

    #[test]
    fn expands_sorted_in_byte_order() {
        let d = tempfile::tempdir().unwrap();
        for n in ["b.conf", "a.conf", "B.conf", "c.txt", ".h.conf"] {
            std::fs::write(d.path().join(n), "").unwrap();
        }
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/x.conf"), "").unwrap();
        let pat = format!("{}/*.conf", d.path().display());
        let got: Vec<String> = expand(&pat)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(got, ["B.conf", "a.conf", "b.conf"]);
        let pat = format!("{}/s*/*.conf", d.path().display());
        assert_eq!(expand(&pat).unwrap(), [d.path().join("sub/x.conf")]);
        let pat = format!("{}/none/*.conf", d.path().display());
        assert!(expand(&pat).unwrap().is_empty());
    }
}
