//! What to do with a directive outside the supported subset: ignore it with a warning when it
//! cannot change what a client gets (and say why), refuse it otherwise.

/// The verdict on an unsupported directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Cannot change what a client gets: a warning with the reason.
    Ignore(&'static str),
    /// Changes behaviour ringgate does not have: an error with the reason.
    Refuse(String),
    /// Not a directive ringgate knows of.
    Unknown,
}

/// Directives that tune nginx internals, buffers, files or logs, never responses.
const IGNORED: &[(&str, &str)] = &[
    (
        "user",
        "ringgate runs as the user that starts it; set the user in the service manager",
    ),
    (
        "pid",
        "ringgate writes no pid file; the service manager tracks the process",
    ),
    ("daemon", "ringgate always runs in the foreground"),
    ("master_process", "ringgate has no master process"),
    (
        "worker_rlimit_nofile",
        "set the open-file limit with `ulimit -n` or LimitNOFILE= (see tuning/)",
    ),
    (
        "worker_rlimit_core",
        "core dump limits are set by the service manager",
    ),
    (
        "working_directory",
        "core dump location is set by the service manager",
    ),
    (
        "worker_priority",
        "set the nice value in the service manager",
    ),
    (
        "worker_cpu_affinity",
        "ringgate pins one worker per CPU itself (runtime.cpus)",
    ),
    (
        "multi_accept",
        "each ringgate worker accepts on its own SO_REUSEPORT socket",
    ),
    (
        "accept_mutex",
        "each ringgate worker accepts on its own SO_REUSEPORT socket",
    ),
    (
        "accept_mutex_delay",
        "each ringgate worker accepts on its own SO_REUSEPORT socket",
    ),
    (
        "use",
        "ringgate uses io_uring, or epoll where io_uring is unavailable",
    ),
    ("timer_resolution", "an nginx timer tuning"),
    ("pcre_jit", "a regex engine tuning"),
    ("lock_file", "ringgate has no accept mutex"),
    (
        "env",
        "ringgate does not pass environment variables to workers by name",
    ),
    (
        "thread_pool",
        "ringgate's workers do their own blocking work off the request path",
    ),
    ("sendfile", "a socket I/O tuning; responses are the same"),
    (
        "sendfile_max_chunk",
        "a socket I/O tuning; responses are the same",
    ),
    ("tcp_nopush", "a socket I/O tuning; responses are the same"),
    (
        "tcp_nodelay",
        "a socket I/O tuning; ringgate always sets TCP_NODELAY",
    ),
    ("aio", "a file I/O tuning; responses are the same"),
    ("aio_write", "a file I/O tuning; responses are the same"),
    ("directio", "a file I/O tuning; responses are the same"),
    ("output_buffers", "a buffer tuning; responses are the same"),
    ("postpone_output", "a buffer tuning; responses are the same"),
    ("send_lowat", "a socket tuning; responses are the same"),
    (
        "types_hash_max_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "types_hash_bucket_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "server_names_hash_max_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "server_names_hash_bucket_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "variables_hash_max_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "variables_hash_bucket_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "map_hash_max_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "map_hash_bucket_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "proxy_headers_hash_max_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "proxy_headers_hash_bucket_size",
        "sizes an nginx hash table; ringgate has none to size",
    ),
    (
        "server_tokens",
        "only chooses whether nginx shows its version in the Server header and error pages",
    ),
    (
        "ssl_ciphers",
        "ringgate offers rustls's AEAD cipher suites only (no legacy ciphers to choose from)",
    ),
    (
        "ssl_prefer_server_ciphers",
        "ringgate always uses its own preference order (TLS 1.3 first, AEAD only)",
    ),
    ("ssl_ecdh_curve", "ringgate offers X25519, P-256 and P-384"),
    (
        "ssl_dhparam",
        "ringgate has no finite-field DHE suites to use it",
    ),
    (
        "ssl_buffer_size",
        "a TLS record size tuning; responses are the same",
    ),
    (
        "ssl_early_data",
        "ringgate accepts no 0-RTT data; clients resend it after the handshake",
    ),
    (
        "ssl_stapling_verify",
        "ringgate always verifies the responses it staples (signature, status, times)",
    ),
    (
        "ssl_stapling_responder",
        "ringgate fetches staples from the certificate's own responder (authorityInfoAccess)",
    ),
    (
        "ssl_certificate_cache",
        "ringgate loads certificates once (and on reload)",
    ),
    (
        "proxy_ssl_ciphers",
        "ringgate offers rustls's AEAD cipher suites to upstreams",
    ),
    (
        "grpc_ssl_ciphers",
        "ringgate offers rustls's AEAD cipher suites to upstreams",
    ),
    (
        "grpc_ssl_certificate_cache",
        "ringgate loads certificates once (and on reload)",
    ),
    (
        "client_body_buffer_size",
        "ringgate streams request bodies instead of buffering them",
    ),
    (
        "client_header_buffer_size",
        "a buffer tuning; ringgate's limits are large_client_header_buffers (max_header_bytes, max_header_line_bytes)",
    ),
    (
        "client_body_temp_path",
        "ringgate streams request bodies and writes no temporary files",
    ),
    (
        "client_body_in_single_buffer",
        "ringgate streams request bodies instead of buffering them",
    ),
    (
        "proxy_buffering",
        "ringgate streams responses without buffering them",
    ),
    (
        "proxy_buffers",
        "ringgate streams responses without buffering them",
    ),
    (
        "proxy_buffer_size",
        "ringgate streams responses without buffering them",
    ),
    (
        "grpc_buffer_size",
        "ringgate streams responses without buffering them",
    ),
    (
        "proxy_busy_buffers_size",
        "ringgate streams responses without buffering them",
    ),
    (
        "proxy_max_temp_file_size",
        "ringgate streams responses and writes no temporary files",
    ),
    (
        "proxy_temp_file_write_size",
        "ringgate streams responses and writes no temporary files",
    ),
    (
        "proxy_temp_path",
        "ringgate streams responses and writes no temporary files",
    ),
    (
        "fastcgi_temp_path",
        "ringgate writes no temporary files (and has no FastCGI)",
    ),
    (
        "uwsgi_temp_path",
        "ringgate writes no temporary files (and has no uwsgi)",
    ),
    (
        "scgi_temp_path",
        "ringgate writes no temporary files (and has no SCGI)",
    ),
    (
        "proxy_request_buffering",
        "ringgate streams request bodies to the upstream as they arrive",
    ),
    (
        "proxy_ignore_client_abort",
        "ringgate stops the upstream request when the client leaves",
    ),
    ("proxy_socket_keepalive", "a socket tuning toward upstreams"),
    ("grpc_socket_keepalive", "a socket tuning toward upstreams"),
    ("grpc_socket_rcvbuf", "a socket tuning toward upstreams"),
    ("grpc_socket_sndbuf", "a socket tuning toward upstreams"),
    (
        "proxy_next_upstream",
        "ringgate retries only a stale pooled connection, for idempotent requests",
    ),
    (
        "proxy_next_upstream_tries",
        "ringgate retries only a stale pooled connection, for idempotent requests",
    ),
    (
        "proxy_next_upstream_timeout",
        "ringgate retries only a stale pooled connection, for idempotent requests",
    ),
    (
        "grpc_next_upstream",
        "ringgate retries only a stale pooled connection, for idempotent requests",
    ),
    (
        "grpc_next_upstream_tries",
        "ringgate retries only a stale pooled connection, for idempotent requests",
    ),
    (
        "grpc_next_upstream_timeout",
        "ringgate retries only a stale pooled connection, for idempotent requests",
    ),
    ("reset_timedout_connection", "a socket tuning on timeouts"),
    ("lingering_close", "a socket tuning when closing"),
    ("lingering_time", "a socket tuning when closing"),
    ("lingering_timeout", "a socket tuning when closing"),
    (
        "keepalive_disable",
        "only concerns old MSIE and Safari clients",
    ),
    (
        "keepalive_time",
        "ringgate bounds keep-alive with keepalive_timeout and keepalive_requests",
    ),
    ("resolver", "ringgate resolves upstream names once, at load"),
    (
        "resolver_timeout",
        "ringgate resolves upstream names once, at load",
    ),
    ("open_file_cache", "a file descriptor cache tuning"),
    ("open_file_cache_valid", "a file descriptor cache tuning"),
    ("open_file_cache_min_uses", "a file descriptor cache tuning"),
    ("open_file_cache_errors", "a file descriptor cache tuning"),
    ("open_log_file_cache", "a log file descriptor cache tuning"),
    (
        "log_not_found",
        "only decides whether missing files are written to the error log",
    ),
    ("log_subrequest", "ringgate makes no subrequests"),
    ("http2_recv_buffer_size", "ringgate sizes its HTTP/2 buffers itself"),
    ("http2_chunk_size", "ringgate sizes its HTTP/2 frames itself"),
    (
        "http2_body_preread_size",
        "ringgate's HTTP/2 stream window is 64 KiB, nginx's default",
    ),
    (
        "http2_idle_timeout",
        "an idle HTTP/2 connection is closed after keepalive_timeout, as in nginx 1.19.7+",
    ),
    ("gzip_vary", "only has an effect with `gzip on`"),
    ("gzip_types", "only has an effect with `gzip on`"),
    ("gzip_proxied", "only has an effect with `gzip on`"),
    ("gzip_comp_level", "only has an effect with `gzip on`"),
    ("gzip_buffers", "only has an effect with `gzip on`"),
    ("gzip_http_version", "only has an effect with `gzip on`"),
    ("gzip_min_length", "only has an effect with `gzip on`"),
    ("gzip_disable", "only has an effect with `gzip on`"),
];

/// Directives that are harmless only with the value given (nginx's default, or ringgate's own
/// fixed behaviour); any other value is refused.
const ONLY_WITH: &[(&str, &str, &str)] = &[
    (
        "gzip",
        "off",
        "responses are not compressed, as with nginx's default",
    ),
    (
        "gunzip",
        "off",
        "responses are passed as they are, as with nginx's default",
    ),
    (
        "gzip_static",
        "off",
        "no precompressed files are served, as with nginx's default",
    ),
    (
        "ssi",
        "off",
        "no server-side includes, as with nginx's default",
    ),
    (
        "autoindex",
        "off",
        "no directory listings, as with nginx's default",
    ),
    (
        "charset",
        "off",
        "Content-Type is not changed, as with nginx's default",
    ),
    (
        "underscores_in_headers",
        "off",
        "header names with `_` are dropped, as nginx's default",
    ),
    (
        "ignore_invalid_headers",
        "on",
        "invalid header names are dropped, as nginx's default",
    ),
    (
        "merge_slashes",
        "on",
        "`//` in paths is merged before matching, as nginx's default",
    ),
    (
        "chunked_transfer_encoding",
        "on",
        "chunked responses are allowed, as nginx's default",
    ),
    (
        "proxy_intercept_errors",
        "off",
        "upstream error pages are passed through, as nginx's default",
    ),
    (
        "grpc_intercept_errors",
        "off",
        "upstream error pages are passed through, as nginx's default",
    ),
    (
        "proxy_redirect",
        "off",
        "ringgate never rewrites the upstream's Location header",
    ),
    (
        "proxy_pass_request_headers",
        "on",
        "request headers are passed, as nginx's default",
    ),
    (
        "proxy_pass_request_body",
        "on",
        "request bodies are passed, as nginx's default",
    ),
    ("absolute_redirect", "on", "nginx's default"),
    ("port_in_redirect", "on", "nginx's default"),
    ("server_name_in_redirect", "off", "nginx's default"),
    ("msie_padding", "on", "only concerns old MSIE clients"),
    ("msie_refresh", "off", "nginx's default"),
    (
        "recursive_error_pages",
        "off",
        "nginx's default; ringgate has no error_page",
    ),
];

/// Directives refused with a specific reason (all others outside the subset get a generic one).
const REFUSED: &[(&str, &str)] = &[
    ("add_header", "ringgate does not add response headers"),
    ("more_set_headers", "ringgate does not add response headers"),
    (
        "rewrite",
        "ringgate does not rewrite URIs; use `return 301 ...` or proxy_pass with a URI part",
    ),
    ("set", "ringgate has no user-set variables; use `map`"),
    (
        "break",
        "ringgate has no rewrite phase beyond `if (...) { return ...; }`",
    ),
    ("try_files", "ringgate does not try files in turn"),
    ("error_page", "ringgate's error pages are fixed"),
    ("alias", "use `root`"),
    (
        "allow",
        "address rules are not supported; use certificate + address binding ([identity] bindings)",
    ),
    (
        "deny",
        "address rules are not supported; use certificate + address binding ([identity] bindings)",
    ),
    (
        "auth_basic",
        "ringgate authenticates clients by certificate only",
    ),
    (
        "auth_request",
        "ringgate authenticates clients by certificate only",
    ),
    ("limit_req", "ringgate has no request rate limiting"),
    ("limit_req_zone", "ringgate has no request rate limiting"),
    ("limit_conn", "ringgate has no connection limiting"),
    ("limit_conn_zone", "ringgate has no connection limiting"),
    ("limit_except", "ringgate has no per-method access rules"),
    ("expires", "ringgate does not add caching headers"),
    ("proxy_cache", "ringgate does not cache responses"),
    ("proxy_cache_path", "ringgate does not cache responses"),
    (
        "proxy_hide_header",
        "ringgate passes upstream response headers as they are",
    ),
    (
        "proxy_pass_header",
        "ringgate passes upstream response headers as they are",
    ),
    (
        "grpc_hide_header",
        "ringgate passes upstream response headers as they are",
    ),
    (
        "grpc_pass_header",
        "ringgate passes upstream response headers as they are",
    ),
    ("proxy_cookie_domain", "ringgate does not rewrite cookies"),
    ("proxy_cookie_path", "ringgate does not rewrite cookies"),
    (
        "proxy_set_body",
        "ringgate passes request bodies as they are",
    ),
    (
        "proxy_bind",
        "ringgate connects to upstreams from the default address",
    ),
    (
        "grpc_bind",
        "ringgate connects to upstreams from the default address",
    ),
    (
        "proxy_ssl_crl",
        "CRLs for upstream certificates are not supported",
    ),
    (
        "grpc_ssl_crl",
        "CRLs for upstream certificates are not supported",
    ),
    (
        "proxy_ssl_password_file",
        "encrypted private keys are not supported",
    ),
    (
        "grpc_ssl_password_file",
        "encrypted private keys are not supported",
    ),
    (
        "ssl_password_file",
        "encrypted private keys are not supported",
    ),
    ("ssl_reject_handshake", "not supported"),
    (
        "ssl_conf_command",
        "OpenSSL commands do not apply to rustls",
    ),
    (
        "grpc_ssl_conf_command",
        "OpenSSL commands do not apply to rustls",
    ),
    ("ssl_engine", "OpenSSL engines do not apply to rustls"),
    (
        "real_ip_header",
        "ringgate takes the client address from the connection",
    ),
    (
        "set_real_ip_from",
        "ringgate takes the client address from the connection",
    ),
    ("sub_filter", "ringgate does not rewrite response bodies"),
    ("load_module", "ringgate has no dynamic modules"),
    (
        "fastcgi_pass",
        "ringgate passes requests over HTTP only (proxy_pass, grpc_pass)",
    ),
    (
        "uwsgi_pass",
        "ringgate passes requests over HTTP only (proxy_pass, grpc_pass)",
    ),
    (
        "scgi_pass",
        "ringgate passes requests over HTTP only (proxy_pass, grpc_pass)",
    ),
    ("stream", "ringgate proxies HTTP only, not TCP streams"),
    ("mail", "ringgate proxies HTTP only"),
    (
        "satisfy",
        "ringgate authenticates clients by certificate only",
    ),
];

/// Decides what to do with a directive outside the subset.
pub fn disposition(name: &str, args: &[String]) -> Disposition {
    if let Some((_, reason)) = IGNORED.iter().find(|(n, _)| *n == name) {
        return Disposition::Ignore(reason);
    }
    if let Some((_, value, reason)) = ONLY_WITH.iter().find(|(n, _, _)| *n == name) {
        return if args.len() == 1 && args[0].eq_ignore_ascii_case(value) {
            Disposition::Ignore(reason)
        } else {
            Disposition::Refuse(format!(
                "ringgate supports only `{name} {value}` ({reason})"
            ))
        };
    }
    if let Some((_, reason)) = REFUSED.iter().find(|(n, _)| *n == name) {
        return Disposition::Refuse((*reason).to_string());
    }
    Disposition::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert!(matches!(
            disposition("sendfile", &["on".into()]),
            Disposition::Ignore(_)
        ));
        assert!(matches!(
            disposition("gzip", &["off".into()]),
            Disposition::Ignore(_)
        ));
        assert!(matches!(
            disposition("gzip", &["on".into()]),
            Disposition::Refuse(_)
        ));
        assert!(matches!(
            disposition("add_header", &[]),
            Disposition::Refuse(_)
        ));
        assert_eq!(disposition("frobnicate", &[]), Disposition::Unknown);
        // The gRPC module's twins of proxy_* directives get the same verdict.
        for (grpc, proxy, args) in [
            (
                "grpc_next_upstream",
                "proxy_next_upstream",
                vec!["error".to_string()],
            ),
            ("grpc_ssl_ciphers", "proxy_ssl_ciphers", vec!["HIGH".into()]),
            ("grpc_hide_header", "proxy_hide_header", vec!["X".into()]),
            ("grpc_bind", "proxy_bind", vec!["10.0.0.1".into()]),
            (
                "grpc_intercept_errors",
                "proxy_intercept_errors",
                vec!["on".into()],
            ),
            (
                "grpc_intercept_errors",
                "proxy_intercept_errors",
                vec!["off".into()],
            ),
        ] {
            let (g, p) = (disposition(grpc, &args), disposition(proxy, &args));
            assert_eq!(
                std::mem::discriminant(&g),
                std::mem::discriminant(&p),
                "{grpc}"
            );
        }
        // grpc_pass is translated (see SUPPORTED), no longer refused here.
        assert_eq!(disposition("grpc_pass", &[]), Disposition::Unknown);
    }
}
