//! Virtual servers: several `[[listener]]` entries (nginx `server` blocks) on one address,
//! chosen by name as nginx chooses them: at the handshake by SNI, per request by Host.
//!
//! nginx's order: an exact name, then the longest leading wildcard (`*.example.com`, or
//! `.example.com` which also matches `example.com`), then the longest trailing wildcard
//! (`www.example.*`), then the first matching regular expression (`~^api\d+\.`), else the
//! address's default server.

use regex::Regex;

/// The servers that share one address, by name.
#[derive(Debug, Clone)]
pub struct VirtualHosts {
    exact: Vec<(String, usize)>,
    /// `*.example.com` stored as `.example.com`; `.example.com` also adds `example.com` to `exact`.
    leading: Vec<(String, usize)>,
    /// `www.example.*` stored as `www.example.`.
    trailing: Vec<(String, usize)>,
    regexes: Vec<(Regex, usize)>,
    /// The server used when no name matches.
    pub default: usize,
    /// Every server on the address, in configuration order.
    pub servers: Vec<usize>,
}

/// A `server_names` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server name `{name}`: {why}")]
pub struct BadServerName {
    /// The name as written.
    pub name: String,
    /// What is wrong with it.
    pub why: String,
}

impl VirtualHosts {
    /// An address served by `default` alone, until [`VirtualHosts::add`] adds names.
    pub fn new(default: usize) -> Self {
        VirtualHosts {
            exact: Vec::new(),
            leading: Vec::new(),
            trailing: Vec::new(),
            regexes: Vec::new(),
            default,
            servers: vec![default],
        }
    }

    /// Adds server `id` with its names; the first server to claim a name keeps it, as in nginx
    /// (which warns "conflicting server name").
    pub fn add(&mut self, id: usize, names: &[String]) -> Result<(), BadServerName> {
        if !self.servers.contains(&id) {
            self.servers.push(id);
        }
        for raw in names {
            let bad = |why: &str| BadServerName {
                name: raw.clone(),
                why: why.to_string(),
            };
            if let Some(re) = raw.strip_prefix('~') {
                let re = Regex::new(&format!("(?i){re}")).map_err(|e| bad(&e.to_string()))?;
                self.regexes.push((re, id));
                continue;
            }
            let name = raw.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                // nginx's `server_name ""`: requests without Host; the default handles them.
                continue;
            }
            if let Some(suffix) = name.strip_prefix('*') {
                if !suffix.starts_with('.') || suffix.contains('*') {
                    return Err(bad("a wildcard is `*.name` or `name.*`"));
                }
                push_new(&mut self.leading, suffix, id);
            } else if let Some(rest) = name.strip_prefix('.') {
                push_new(&mut self.exact, rest, id);
                push_new(&mut self.leading, &name, id);
            } else if let Some(prefix) = name.strip_suffix('*') {
                if !prefix.ends_with('.') || prefix.contains('*') {
                    return Err(bad("a wildcard is `*.name` or `name.*`"));
                }
                push_new(&mut self.trailing, prefix, id);
            } else if name.contains('*') {
                return Err(bad("`*` may only stand for a whole first or last label"));
            } else {
                push_new(&mut self.exact, &name, id);
            }
        }
        // Longest wildcard first, as nginx prefers the most specific.
        self.leading
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        self.trailing
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Ok(())
    }

    /// True when more than one server shares the address (choosing costs something).
    pub fn is_shared(&self) -> bool {
        self.servers.len() > 1
    }

    /// The server for a name (SNI or Host, without port), or the default.
    pub fn select(&self, name: Option<&[u8]>) -> usize {
        self.find(name).unwrap_or(self.default)
    }

    /// The server whose names match, if any.
    pub fn find(&self, name: Option<&[u8]>) -> Option<usize> {
        let name = name?;
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() {
            return None;
        }
        if let Some((_, id)) = self
            .exact
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
        {
            return Some(*id);
        }
        let ends_with = |suffix: &str| {
            let s = suffix.as_bytes();
            name.len() > s.len() && name[name.len() - s.len()..].eq_ignore_ascii_case(s)
        };
        if let Some((_, id)) = self.leading.iter().find(|(s, _)| ends_with(s)) {
            return Some(*id);
        }
        let starts_with = |prefix: &str| {
            let p = prefix.as_bytes();
            name.len() > p.len() && name[..p.len()].eq_ignore_ascii_case(p)
        };
        if let Some((_, id)) = self.trailing.iter().find(|(p, _)| starts_with(p)) {
            return Some(*id);
        }
        let text = std::str::from_utf8(name).ok()?;
        self.regexes
            .iter()
            .find(|(re, _)| re.is_match(text))
            .map(|(_, id)| *id)
    }
}

fn push_new(list: &mut Vec<(String, usize)>, name: &str, id: usize) {
    if !list.iter().any(|(n, _)| n == name) {
        list.push((name.to_string(), id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn nginx_priority_exact_leading_trailing_regex() {
        let mut v = VirtualHosts::new(0);
        v.add(0, &names(&["default.test"])).unwrap();
        v.add(1, &names(&["*.example.com"])).unwrap();
        v.add(2, &names(&["*.api.example.com", "www.example.*"]))
            .unwrap();
        v.add(
            3,
            &names(&["~^node\\d+\\.example\\.com$", "exact.example.com"]),
        )
        .unwrap();
        v.add(4, &names(&[".example.org"])).unwrap();
        let s = |n: &str| v.select(Some(n.as_bytes()));
        assert_eq!(s("exact.example.com"), 3);
        assert_eq!(s("EXACT.example.com."), 3);
        assert_eq!(s("a.api.example.com"), 2, "longest leading wildcard");
        assert_eq!(s("x.example.com"), 1);
        assert_eq!(s("node7.example.com"), 1, "wildcards before regexes");
        assert_eq!(s("www.example.net"), 2);
        assert_eq!(s("example.org"), 4);
        assert_eq!(s("a.b.example.org"), 4);
        assert_eq!(s("nothing.test"), 0);
        assert_eq!(v.select(None), 0);
        assert_eq!(
            s("example.com"),
            0,
            "*.example.com does not match example.com"
        );
        assert!(v.is_shared());
    }

    #[test]
    fn regexes_after_wildcards() {
        let mut v = VirtualHosts::new(0);
        v.add(1, &names(&["~^node\\d+\\.test$"])).unwrap();
        assert_eq!(v.select(Some(b"NODE12.test")), 1);
        assert_eq!(v.find(Some(b"node.test")), None);
    }

    #[test]
    fn bad_names_are_refused() {
        let mut v = VirtualHosts::new(0);
        assert!(v.add(0, &names(&["a.*.com"])).is_err());
        assert!(v.add(0, &names(&["*x.com"])).is_err());
        assert!(v.add(0, &names(&["~("])).is_err());
    }
}
