//! Entry points shared by the fuzz targets (tests/fuzz/) and the unit test that replays their
//! corpus, so that both exercise exactly the same code: no input may panic.

use std::path::Path;

/// nginx_parse: lexer, parser and translator on arbitrary bytes; a successful translation
/// must be valid TOML whose every line maps back to the input.
pub fn nginx_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: relative includes find nothing.
    let main = Path::new("/nonexistent-ringgate-fuzz/nginx.conf");
    if let Ok(t) = super::translate_str(text, main) {
        if let Err(e) = toml::from_str::<toml::Table>(&t.toml) {
            panic!("generated TOML does not parse: {e}\n{}", t.toml);
        }
        for n in 1..=t.toml.lines().count() {
            let _ = t.source_map.origin(n);
        }
    }
}

/// toml_load: the TOML loader on arbitrary text.
pub fn toml_load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::config::parse_str(text, Path::new("/nonexistent-ringgate-fuzz/ringgate.toml"));
}

#[cfg(test)]
mod tests {
    fn corpus(target: &str) -> Vec<std::path::PathBuf> {
        crate::http::fuzz::corpus(target, 1)
    }

    #[test]
    fn nginx_parse_corpus_replays_without_panic() {
        for f in corpus("nginx_parse") {
            super::nginx_parse(&std::fs::read(&f).unwrap());
        }
    }

    #[test]
    fn toml_load_corpus_replays_without_panic() {
        for f in corpus("toml_load") {
            super::toml_load(&std::fs::read(&f).unwrap());
        }
    }
}
