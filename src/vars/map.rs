//! nginx's `map`: a variable whose value is looked up from another value (often
//! `$ssl_client_s_dn`), compiled at load time.
//!
//! nginx's rules, kept exactly: exact strings are compared case-insensitively and win over
//! regexes; regexes (`~` case-sensitive, `~*` not) are tried in the order written and match
//! anywhere in the value (so `~OU=Admin` also matches `OU=AdminTest`, as in nginx; ringgate's
//! own `[identity]` roles match parsed attributes instead); otherwise the default (empty when
//! none is given).

use std::collections::HashMap;

use regex::bytes::Regex;

use super::Template;

/// One compiled `map`.
#[derive(Debug, Clone)]
pub struct VarMap {
    /// The variable's name, without `$`.
    pub name: String,
    /// What is looked up (a template such as `$ssl_client_s_dn`).
    pub source: Template,
    /// Exact entries, keyed by the lowercased string.
    exact: HashMap<Vec<u8>, Template>,
    /// Regex entries in file order.
    regexes: Vec<(Regex, Template)>,
    /// The value when nothing matches.
    default: Template,
}

impl VarMap {
    /// A map with no entries yet.
    pub fn new(name: String, source: Template, default: Template) -> Self {
        VarMap {
            name,
            source,
            exact: HashMap::new(),
            regexes: Vec::new(),
            default,
        }
    }

    /// Adds an exact entry; a repeated key keeps its first value (nginx refuses duplicates,
    /// and the loader reports them before calling this).
    pub fn add_exact(&mut self, key: &str, value: Template) -> bool {
        let k = key.as_bytes().to_ascii_lowercase();
        if self.exact.contains_key(&k) {
            return false;
        }
        self.exact.insert(k, value);
        true
    }

    /// Adds a regex entry (`~pattern`, or `~*pattern` with `nocase`).
    pub fn add_regex(
        &mut self,
        pattern: &str,
        nocase: bool,
        value: Template,
    ) -> Result<(), regex::Error> {
        let re = if nocase {
            Regex::new(&format!("(?i){pattern}"))?
        } else {
            Regex::new(pattern)?
        };
        self.regexes.push((re, value));
        Ok(())
    }

    /// The value template for a looked-up input.
    pub fn lookup(&self, input: &[u8]) -> &Template {
        if !input.is_empty() {
            if !self.exact.is_empty() {
                // Lowercase on the stack for the usual lengths (a DN, a host): no allocation.
                let mut stack = [0u8; 512];
                let hit = if input.len() <= stack.len() {
                    let key = &mut stack[..input.len()];
                    key.copy_from_slice(input);
                    key.make_ascii_lowercase();
                    self.exact.get(&key[..])
                } else {
                    self.exact.get(&input.to_ascii_lowercase())
                };
                if let Some(v) = hit {
                    return v;
                }
            }
            if let Some((_, v)) = self.regexes.iter().find(|(re, _)| re.is_match(input)) {
                return v;
            }
        }
        &self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::compile(s).unwrap()
    }

    fn lit(m: &VarMap, input: &str) -> String {
        let mut out = Vec::new();
        m.lookup(input.as_bytes()).render(&mut out, |_, _| {});
        String::from_utf8(out).unwrap()
    }

    /// The enterprise mTLS guide's `map $ssl_client_s_dn $client_role` (role from the OU).
    #[test]
    fn ou_role_map_behaves_like_nginx() {
        let mut m = VarMap::new("client_role".into(), t("$ssl_client_s_dn"), t("none"));
        m.add_regex("OU=Admin", false, t("admin")).unwrap();
        m.add_regex("OU=Client", false, t("client")).unwrap();
        m.add_regex("OU=Ops", false, t("ops")).unwrap();
        assert_eq!(lit(&m, "CN=client1,OU=Client,O=MyCompany,C=CN"), "client");
        assert_eq!(lit(&m, "CN=a,OU=Admin,O=MyCompany"), "admin");
        // nginx's regex is a search: OU=AdminTest is "admin" too (ringgate's roles avoid this).
        assert_eq!(lit(&m, "CN=a,OU=AdminTest"), "admin");
        assert_eq!(lit(&m, "CN=a,OU=Gateway"), "none");
        assert_eq!(lit(&m, ""), "none");
    }

    #[test]
    fn exact_entries_are_case_insensitive_and_win_over_regexes() {
        let mut m = VarMap::new("ip".into(), t("$ssl_client_s_dn"), t(""));
        m.add_regex(".*", false, t("regex")).unwrap();
        assert!(m.add_exact("CN=client1,OU=Client,O=MyCompany", t("10.0.0.5")));
        assert!(!m.add_exact("cn=client1,ou=client,o=mycompany", t("x")));
        assert_eq!(lit(&m, "cn=CLIENT1,OU=Client,O=MyCompany"), "10.0.0.5");
        assert_eq!(lit(&m, "CN=client1,OU=Client,O=MyCompany,C=CN"), "regex");
        let mut ci = VarMap::new("x".into(), t("$host"), t("d"));
        ci.add_regex("^api\\.", true, t("api")).unwrap();
        assert_eq!(lit(&ci, "API.example"), "api");
        assert!(ci.add_regex("(", false, t("")).is_err());
    }
}
