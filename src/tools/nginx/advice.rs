//! The loader's advice said in nginx's words: a user who wrote nginx.conf is told to add
//! `ssl_client_certificate`, not `[listener.tls]` with `client_certificate`.

/// Phrases of the loader's listener (server) messages and what nginx calls them; longer
/// phrases first, so that a phrase is replaced before the words inside it.
const SERVER_PHRASES: &[(&str, &str)] = &[
    (
        "add [listener.tls] with client_certificate",
        "add ssl_certificate, ssl_certificate_key and ssl_client_certificate (and `ssl` to listen)",
    ),
    ("tls.verify_client", "ssl_verify_client"),
    ("[listener.tls]", "ssl_certificate"),
];

/// Words (whole identifiers) of the loader's listener messages and their nginx directives.
const SERVER_WORDS: &[(&str, &str)] = &[
    ("client_certificate", "ssl_client_certificate"),
    ("trusted_certificate", "ssl_trusted_certificate"),
    ("verify_client", "ssl_verify_client"),
    ("verify_depth", "ssl_verify_depth"),
    ("crl", "ssl_crl"),
    ("session_ticket_key", "ssl_session_ticket_key"),
    ("session_tickets", "ssl_session_tickets"),
    ("session_timeout", "ssl_session_timeout"),
];

/// Phrases of the loader's upstream-TLS messages and the `proxy_ssl_*` directives.
const UPSTREAM_PHRASES: &[(&str, &str)] = &[
    ("verify = false", "proxy_ssl_verify off"),
    ("[upstream.tls]", "proxy_ssl_verify on"),
];

/// Words of the loader's upstream-TLS messages and their `proxy_ssl_*` directives.
const UPSTREAM_WORDS: &[(&str, &str)] = &[
    ("trusted_certificate", "proxy_ssl_trusted_certificate"),
    ("verify_depth", "proxy_ssl_verify_depth"),
    ("session_reuse", "proxy_ssl_session_reuse"),
];

/// `message`, reported against TOML key `key`, with ringgate's TOML names replaced by the
/// nginx directives they were translated from. `directive` is the nginx directive the key came
/// from: when it is the gRPC module's (`grpc_pass`, `grpc_ssl_verify`, ...), upstream TLS
/// settings are named `grpc_ssl_*` rather than `proxy_ssl_*`.
pub(super) fn in_nginx_words(key: &str, message: &str, directive: &str) -> String {
    let upstream = key.starts_with("upstream") || message.contains("[upstream.tls]");
    let (phrases, words) = if upstream {
        (UPSTREAM_PHRASES, UPSTREAM_WORDS)
    } else {
        (SERVER_PHRASES, SERVER_WORDS)
    };
    let grpc = upstream && directive.starts_with("grpc_");
    let module = |to: &str| {
        if grpc {
            to.replace("proxy_", "grpc_")
        } else {
            to.to_string()
        }
    };
    let mut out = message.to_string();
    for (from, to) in phrases {
        out = out.replace(from, &module(to));
    }
    let words: Vec<(&str, String)> = words.iter().map(|(f, t)| (*f, module(t))).collect();
    replace_words(&out, &words)
}

/// Replaces whole identifiers (runs of letters, digits and `_`) found in `words`.
fn replace_words<T: AsRef<str>>(text: &str, words: &[(&str, T)]) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let len = tail.find(|c: char| !is_word(c)).unwrap_or(tail.len());
        let word = &tail[..len];
        match words.iter().find(|(from, _)| *from == word) {
            Some((_, to)) => out.push_str(to.as_ref()),
            None => out.push_str(word),
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_advice_names_nginx_directives() {
        assert_eq!(
            in_nginx_words(
                "listener[0].tls.client_certificate",
                "verify_client (here or in a location) needs client_certificate, the CA bundle to verify clients against",
                "ssl_verify_client"
            ),
            "ssl_verify_client (here or in a location) needs ssl_client_certificate, the CA bundle to verify clients against"
        );
        assert_eq!(
            in_nginx_words(
                "listener[0]",
                "locations with verify_client or allow_roles need client certificates: add [listener.tls] with client_certificate",
                "server"
            ),
            "locations with ssl_verify_client or allow_roles need client certificates: add ssl_certificate, ssl_certificate_key and ssl_client_certificate (and `ssl` to listen)"
        );
    }

    #[test]
    fn upstream_advice_names_proxy_ssl_directives() {
        assert_eq!(
            in_nginx_words(
                "listener[0].location[0].proxy_pass",
                "https://a verifies the upstream's certificate by default: add [upstream.tls] to upstream `a` with trusted_certificate (the CA bundle to verify it with), or verify = false",
                "proxy_pass"
            ),
            "https://a verifies the upstream's certificate by default: add proxy_ssl_verify on to upstream `a` with proxy_ssl_trusted_certificate (the CA bundle to verify it with), or proxy_ssl_verify off"
        );
        // The same advice for a grpc_pass names the gRPC module's directives.
        assert_eq!(
            in_nginx_words(
                "upstream[0].tls.verify_depth",
                "verify_depth needs trusted_certificate",
                "grpc_ssl_verify_depth"
            ),
            "grpc_ssl_verify_depth needs grpc_ssl_trusted_certificate"
        );
    }

    #[test]
    fn words_inside_longer_words_are_kept() {
        assert_eq!(
            replace_words("crls crl_x crl.", &[("crl", "ssl_crl")]),
            "crls crl_x ssl_crl."
        );
    }
}
