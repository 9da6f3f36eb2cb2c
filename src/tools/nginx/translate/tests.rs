//! Translation tests: every directive, inheritance, errors and warnings, the nginx
//! TLS-termination guide's and the enterprise mTLS guide's configurations under tests/nginx/,
//! and loading through the TOML loader where it already knows the keys.

use std::path::{Path, PathBuf};

use toml::Value;

use crate::tools::nginx::{translate_file, translate_str, NginxErrors, Translation};

const MAIN: &str = "/nonexistent-ringgate-test/nginx.conf";

fn tr(text: &str) -> Translation {
    match translate_str(text, Path::new(MAIN)) {
        Ok(t) => t,
        Err(e) => panic!("translation failed:\n{e}\n--- input:\n{text}"),
    }
}

fn tr_err(text: &str) -> NginxErrors {
    match translate_str(text, Path::new(MAIN)) {
        Ok(t) => panic!("expected an error, got:\n{}", t.toml),
        Err(e) => e,
    }
}

fn doc(t: &Translation) -> toml::Table {
    match toml::from_str(&t.toml) {
        Ok(v) => v,
        Err(e) => panic!("generated TOML does not parse: {e}\n{}", t.toml),
    }
}

/// Follows a path like `listener.0.tls.verify_client`.
fn get<'a>(t: &'a toml::Table, path: &str) -> &'a Value {
    let mut parts = path.split('.');
    let first = parts.next().unwrap();
    let mut v = t
        .get(first)
        .unwrap_or_else(|| panic!("no {first} in {t:#?}"));
    for p in parts {
        v = match p.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(p),
        }
        .unwrap_or_else(|| panic!("no {p} in {path}: {v:#?}"));
    }
    v
}

fn has(t: &toml::Table, path: &str) -> bool {
    let mut parts = path.split('.');
    let mut v = match t.get(parts.next().unwrap()) {
        Some(v) => v,
        None => return false,
    };
    for p in parts {
        v = match match p.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(p),
        } {
            Some(v) => v,
            None => return false,
        };
    }
    true
}

fn s<'a>(t: &'a toml::Table, path: &str) -> &'a str {
    get(t, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn i(t: &toml::Table, path: &str) -> i64 {
    get(t, path)
        .as_integer()
        .unwrap_or_else(|| panic!("{path} is not an integer"))
}

fn http(body: &str) -> String {
    format!("events {{}}\nhttp {{\n{body}\n}}\n")
}

fn warned(t: &Translation, directive: &str) -> bool {
    t.warnings.iter().any(|w| w.origin.directive == directive)
}

fn error_text(e: &NginxErrors) -> String {
    e.to_string()
}

#[test]
fn main_context_and_runtime() {
    let t = tr("worker_processes auto;\nerror_log /var/log/e.log warn;\nworker_shutdown_timeout 5s;\nevents { worker_connections 10; multi_accept on; use epoll; }\nhttp { server { listen 80; return 204; } }");
    let d = doc(&t);
    assert_eq!(i(&d, "runtime.workers"), 0);
    assert_eq!(s(&d, "runtime.error_log"), "/var/log/e.log");
    assert_eq!(s(&d, "runtime.log_level"), "warn");
    assert_eq!(s(&d, "runtime.shutdown_timeout"), "5s");
    assert_eq!(i(&d, "runtime.max_connections_per_worker"), 10);
    assert!(!warned(&t, "worker_connections"));
    assert!(warned(&t, "multi_accept") && warned(&t, "use"));
    let d = doc(&tr("worker_processes 3; http { server { return 204; } }"));
    assert_eq!(i(&d, "runtime.workers"), 3);
    // stderr keeps ringgate's default destination; relative paths are under the conf dir.
    let d = doc(&tr(
        "error_log stderr info; http { server { return 204; } }",
    ));
    assert!(!has(&d, "runtime.error_log"));
    assert_eq!(s(&d, "runtime.log_level"), "info");
    let d = doc(&tr("error_log logs/e.log; http { server { return 204; } }"));
    assert_eq!(
        s(&d, "runtime.error_log"),
        "/nonexistent-ringgate-test/logs/e.log"
    );
}

#[test]
fn listen_forms_make_one_listener_per_address() {
    let d = doc(&tr(&http(
        "server { listen 127.0.0.1:8080; listen [::1]:8443 ssl default_server; server_name a.example *.b.example _;\n ssl_certificate c.pem; ssl_certificate_key k.pem; return 204; }",
    )));
    assert_eq!(s(&d, "listener.0.listen"), "127.0.0.1:8080");
    assert_eq!(s(&d, "listener.1.listen"), "[::1]:8443");
    assert!(!has(&d, "listener.0.tls"));
    assert_eq!(
        s(&d, "listener.1.tls.certificates.0.cert"),
        "/nonexistent-ringgate-test/c.pem"
    );
    assert_eq!(get(&d, "listener.1.default_server").as_bool(), Some(true));
    assert!(!has(&d, "listener.0.default_server"));
    assert_eq!(s(&d, "listener.0.name"), "a.example-8080");
    assert_eq!(s(&d, "listener.1.name"), "a.example-8443");
    let names = get(&d, "listener.0.server_names").as_array().unwrap();
    assert_eq!(names.len(), 3);
    // No listen: nginx's *:80.
    let d = doc(&tr(&http("server { return 204; }")));
    assert_eq!(s(&d, "listener.0.listen"), "80");
}

#[test]
fn ssl_on_one_listen_makes_the_address_tls_for_every_server() {
    let d = doc(&tr(&http(
        "ssl_certificate /c.pem; ssl_certificate_key /k.pem;\nserver { listen 443 ssl; server_name a; return 204; }\nserver { listen 443; server_name b; return 204; }",
    )));
    assert!(has(&d, "listener.0.tls"));
    assert!(has(&d, "listener.1.tls"));
    assert_eq!(s(&d, "listener.1.tls.certificates.0.key"), "/k.pem");
    // Deprecated `ssl on`.
    let t = tr(&http(
        "server { listen 443; ssl on; ssl_certificate /c; ssl_certificate_key /k; return 204; }",
    ));
    assert!(has(&doc(&t), "listener.0.tls"));
    assert!(warned(&t, "ssl"));
}

#[test]
fn tls_directives_translate() {
    let t = tr(&http(
        r#"ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 10m;
        ssl_session_tickets off;
        ssl_session_ticket_key /t1.key;
        ssl_session_ticket_key /t2.key;
        server {
            listen 443 ssl;
            ssl_certificate /rsa.crt; ssl_certificate_key /rsa.key;
            ssl_certificate /ec.crt; ssl_certificate_key /ec.key;
            ssl_client_certificate /ca.crt;
            ssl_trusted_certificate /more.crt;
            ssl_verify_client optional;
            ssl_crl /ca.crl;
            ssl_ciphers HIGH:!aNULL;
            return 204;
        }"#,
    ));
    let d = doc(&t);
    let tls = "listener.0.tls";
    assert_eq!(
        get(&d, &format!("{tls}.certificates"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s(&d, &format!("{tls}.certificates.1.key")), "/ec.key");
    let protocols = get(&d, &format!("{tls}.protocols")).as_array().unwrap();
    assert_eq!(protocols.len(), 2);
    assert!(t.warnings.iter().any(|w| w.message.contains("TLSv1.1")));
    assert_eq!(i(&d, &format!("{tls}.session_cache")), 40_000);
    assert_eq!(s(&d, &format!("{tls}.session_timeout")), "10m");
    assert_eq!(
        get(&d, &format!("{tls}.session_tickets")).as_bool(),
        Some(false)
    );
    assert_eq!(
        get(&d, &format!("{tls}.session_ticket_key"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s(&d, &format!("{tls}.client_certificate")), "/ca.crt");
    assert_eq!(s(&d, &format!("{tls}.trusted_certificate")), "/more.crt");
    assert_eq!(s(&d, &format!("{tls}.verify_client")), "optional");
    assert_eq!(s(&d, &format!("{tls}.verify_failure")), "http");
    assert_eq!(s(&d, &format!("{tls}.crl.0")), "/ca.crl");
}

#[test]
fn ocsp_and_stapling_directives_translate() {
    let t = tr(&http(
        r#"ssl_ocsp_cache shared:OCSP:1m;
        server {
            listen 443 ssl;
            ssl_certificate /chain.crt; ssl_certificate_key /k.key;
            ssl_client_certificate /ca.crt;
            ssl_verify_client on;
            ssl_ocsp leaf;
            ssl_ocsp_responder http://ocsp.internal:8080/;
            ssl_stapling on;
            ssl_stapling_verify on;
            return 204;
        }
        server {
            listen 444 ssl;
            ssl_certificate /c.crt; ssl_certificate_key /k.key;
            ssl_stapling on;
            ssl_stapling_file /c.ocsp;
            ssl_ocsp off;
            return 204;
        }"#,
    ));
    let d = doc(&t);
    let tls = "listener.0.tls";
    assert_eq!(s(&d, &format!("{tls}.ocsp_client")), "leaf");
    assert_eq!(
        s(&d, &format!("{tls}.ocsp_responder")),
        "http://ocsp.internal:8080/"
    );
    assert_eq!(i(&d, &format!("{tls}.ocsp_cache")), 4_000);
    assert_eq!(s(&d, &format!("{tls}.certificates.0.ocsp")), "fetch");
    assert!(warned(&t, "ssl_stapling_verify"));
    // An explicit file wins over fetching; `ssl_ocsp off` writes nothing.
    assert_eq!(s(&d, "listener.1.tls.certificates.0.ocsp"), "/c.ocsp");
    assert!(!has(&d, "listener.1.tls.ocsp_client"));
}

#[test]
fn nginx_tls_and_http_defaults_are_written_out() {
    // Depth 1, verification off even with a CA, no session cache, no X-Forwarded-*,
    // keepalive 75s / 1000, body 1m.
    let d = doc(&tr(&http(
        "server { listen 443 ssl; ssl_certificate /c; ssl_certificate_key /k; ssl_client_certificate /ca; return 204; }",
    )));
    assert_eq!(s(&d, "listener.0.tls.verify_client"), "off");
    assert!(!has(&d, "listener.0.tls.verify_failure"));
    assert_eq!(i(&d, "listener.0.tls.verify_depth"), 1);
    assert_eq!(i(&d, "listener.0.tls.session_cache"), 0);
    assert_eq!(
        get(&d, "listener.0.http.x_forwarded_for").as_bool(),
        Some(false)
    );
    assert_eq!(
        get(&d, "listener.0.http.x_forwarded_proto").as_bool(),
        Some(false)
    );
    assert_eq!(s(&d, "listener.0.http.keepalive_timeout"), "75s");
    assert_eq!(i(&d, "listener.0.http.keepalive_requests"), 1000);
    assert_eq!(s(&d, "listener.0.http.client_max_body_size"), "1m");
}

#[test]
fn session_cache_sizes_count_sessions() {
    for (v, n) in [
        ("off", 0),
        ("none", 0),
        ("builtin", 20480),
        ("builtin:500 shared:A:1m", 4500),
    ] {
        let d = doc(&tr(&http(&format!(
            "server {{ listen 443 ssl; ssl_certificate /c; ssl_certificate_key /k; ssl_session_cache {v}; return 204; }}"
        ))));
        assert_eq!(i(&d, "listener.0.tls.session_cache"), n, "{v}");
    }
}

#[test]
fn client_side_settings_inherit_into_the_listener() {
    let d = doc(&tr(&http(
        "keepalive_timeout 30s 20s; keepalive_requests 50; client_max_body_size 10m;\n client_body_timeout 5s; send_timeout 6s;\nserver { client_header_timeout 7s; return 204; }\nserver { client_max_body_size 0; keepalive_timeout 0; return 204; }",
    )));
    assert_eq!(s(&d, "listener.0.http.keepalive_timeout"), "30s");
    assert_eq!(i(&d, "listener.0.http.keepalive_requests"), 50);
    assert_eq!(s(&d, "listener.0.http.client_max_body_size"), "10m");
    assert_eq!(s(&d, "listener.0.http.header_timeout"), "7s");
    assert_eq!(s(&d, "listener.0.http.body_timeout"), "5s");
    assert_eq!(s(&d, "listener.0.http.send_timeout"), "6s");
    assert_eq!(s(&d, "listener.1.http.client_max_body_size"), "0");
    // keepalive_timeout 0: one request per connection.
    assert!(!has(&d, "listener.1.http.keepalive_timeout"));
    assert_eq!(i(&d, "listener.1.http.keepalive_requests"), 1);
}

#[test]
fn per_location_values_must_match_the_server() {
    let t = tr(&http(
        "client_max_body_size 2m; server { location / { client_max_body_size 2M; return 204; } }",
    ));
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let e = tr_err(&http(
        "server { client_max_body_size 2m;\n location /up {\n client_max_body_size 100m; return 204; } }",
    ));
    let text = error_text(&e);
    assert!(
        text.contains("nginx.conf:5: client_max_body_size: ringgate applies this per server"),
        "{text}"
    );
    let t = tr(&http(
        "server { access_log /a.log; location / { access_log /b.log; return 204; } }",
    ));
    assert!(warned(&t, "access_log"));
}

#[test]
fn proxy_set_header_inherits_only_into_levels_without_their_own() {
    let d = doc(&tr(&http(
        r#"proxy_set_header X-From http;
        server {
            location /a { proxy_pass http://127.0.0.1:1; }
        }
        server {
            proxy_set_header X-From server;
            proxy_set_header X-Server yes;
            location /b { proxy_pass http://127.0.0.1:1; }
            location /c { proxy_pass http://127.0.0.1:1; proxy_set_header X-Own 1; }
            location /d { proxy_pass http://127.0.0.1:1; proxy_set_header Host ""; }
        }"#,
    )));
    let loc = |l: usize, n: usize| format!("listener.{l}.location.{n}.set_header");
    assert_eq!(s(&d, &format!("{}.X-From", loc(0, 0))), "http");
    assert_eq!(s(&d, &format!("{}.X-From", loc(1, 0))), "server");
    assert_eq!(s(&d, &format!("{}.X-Server", loc(1, 0))), "yes");
    assert_eq!(s(&d, &format!("{}.X-Own", loc(1, 1))), "1");
    assert!(!has(&d, &format!("{}.X-From", loc(1, 1))));
    assert_eq!(s(&d, &format!("{}.Host", loc(1, 2))), "");
}

#[test]
fn large_client_header_buffers_become_the_head_and_line_limits() {
    let t = tr(&http(
        "large_client_header_buffers 8 16k;\nclient_body_temp_path /tmp/b;\nfastcgi_temp_path /tmp/f;\nuwsgi_temp_path /tmp/u;\nscgi_temp_path /tmp/s;\nserver { return 204; }",
    ));
    let d = doc(&t);
    assert_eq!(i(&d, "listener.0.http.max_header_bytes"), 8 * 16 * 1024);
    assert_eq!(s(&d, "listener.0.http.max_header_line_bytes"), "16k");
    for temp in ["fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"] {
        assert!(warned(&t, temp), "{temp} not warned about");
    }
    assert!(!warned(&t, "large_client_header_buffers"));
}

#[test]
fn websocket_idiom_imports_as_upgrade() {
    let t = tr(&http(
        r#"map $http_upgrade $connection_upgrade { default upgrade; '' close; }
        server {
            location /ws {
                proxy_pass http://127.0.0.1:1;
                proxy_http_version 1.1;
                proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection $connection_upgrade;
                proxy_set_header X-Real-IP $remote_addr;
            }
            location /fixed {
                proxy_pass http://127.0.0.1:1;
                proxy_set_header Upgrade "WebSocket";
                proxy_set_header Connection "upgrade";
            }
            location /h2c {
                proxy_pass http://127.0.0.1:1;
                proxy_set_header Upgrade h2c;
            }
        }"#,
    ));
    let d = doc(&t);
    let ws = "listener.0.location.0";
    let upgrade = get(&d, &format!("{ws}.upgrade"));
    assert_eq!(upgrade.as_array().map(Vec::len), Some(1), "{}", t.toml);
    assert_eq!(s(&d, &format!("{ws}.upgrade.0")), "websocket");
    // Upgrade and Connection are ringgate's to write; the other headers stay.
    assert!(!has(&d, &format!("{ws}.set_header.Upgrade")), "{}", t.toml);
    assert!(
        !has(&d, &format!("{ws}.set_header.Connection")),
        "{}",
        t.toml
    );
    assert_eq!(s(&d, &format!("{ws}.set_header.X-Real-IP")), "$remote_addr");
    assert_eq!(s(&d, "listener.0.location.1.upgrade.0"), "websocket");
    // h2c is never tunnelled, and the importer says so.
    assert!(!has(&d, "listener.0.location.2.upgrade"), "{}", t.toml);
    let w: Vec<_> = t
        .warnings
        .iter()
        .filter(|w| w.origin.directive == "proxy_set_header")
        .collect();
    assert_eq!(w.len(), 1, "{:?}", t.warnings);
    assert!(
        w[0].message.starts_with("h2c is never tunnelled"),
        "{:?}",
        w
    );
    // The configuration loads as it is written.
    crate::config::parse_str(&t.toml, std::path::Path::new("nginx.toml")).unwrap();
}

#[test]
fn proxy_settings_make_one_upstream_per_combination() {
    let t = tr(&http(
        r#"proxy_read_timeout 30s;
        proxy_http_version 1.1; proxy_set_header Connection "";
        upstream app { server 127.0.0.1:8080 weight=3 max_fails=2; server 127.0.0.2 backup; keepalive 16; keepalive_timeout 30s; least_conn; }
        server {
            location /a { proxy_pass http://app; }
            location /b { proxy_pass http://app/x/; }
            location /c { proxy_pass http://app; proxy_connect_timeout 2s; proxy_set_header X-P $proxy_host; proxy_set_header Connection ""; }
            location /d { proxy_pass http://10.0.0.1:9000; proxy_send_timeout 3s; proxy_http_version 1.1; }
            location /e { proxy_pass http://10.0.0.1:80/; }
        }"#,
    ));
    let d = doc(&t);
    assert_eq!(s(&d, "upstream.0.name"), "app");
    assert_eq!(s(&d, "upstream.0.servers.0"), "127.0.0.1:8080");
    assert_eq!(get(&d, "upstream.0.servers").as_array().unwrap().len(), 1);
    assert_eq!(i(&d, "upstream.0.max_fails"), 2);
    assert_eq!(s(&d, "upstream.0.backup_servers.0"), "127.0.0.2:80");
    assert_eq!(i(&d, "upstream.0.keepalive"), 16);
    assert_eq!(s(&d, "upstream.0.keepalive_timeout"), "30s");
    assert_eq!(s(&d, "upstream.0.read_timeout"), "30s");
    assert_eq!(s(&d, "upstream.1.name"), "app#2");
    assert_eq!(s(&d, "upstream.1.connect_timeout"), "2s");
    assert_eq!(s(&d, "upstream.2.name"), "10.0.0.1:9000");
    assert_eq!(s(&d, "upstream.2.send_timeout"), "3s");
    // Without an upstream block nginx keeps no upstream connection alive.
    assert_eq!(i(&d, "upstream.2.keepalive"), 0);
    assert_eq!(s(&d, "upstream.3.name"), "10.0.0.1");
    assert_eq!(s(&d, "upstream.3.servers.0"), "10.0.0.1:80");
    let loc = |n: usize, k: &str| format!("listener.0.location.{n}.{k}");
    assert_eq!(s(&d, &loc(0, "proxy_pass")), "http://app");
    assert_eq!(s(&d, &loc(1, "proxy_pass")), "http://app/x/");
    assert_eq!(s(&d, &loc(2, "proxy_pass")), "http://app#2");
    // The renamed upstream keeps nginx's $proxy_host.
    assert_eq!(s(&d, &loc(2, "set_header.Host")), "app");
    assert_eq!(s(&d, &loc(2, "set_header.X-P")), "app");
    assert_eq!(s(&d, &loc(0, "set_header.Connection")), "");
    assert_eq!(s(&d, &loc(4, "proxy_pass")), "http://10.0.0.1/");
    assert!(t
        .warnings
        .iter()
        .any(|w| w.message.contains("weight=3 ignored")));
    assert!(!t.warnings.iter().any(|w| w.message.contains("backup")));
    assert!(warned(&t, "least_conn"));
}

#[test]
fn upstream_keepalive_counts_only_where_nginx_reuses_connections() {
    // nginx's defaults (HTTP/1.0, Connection: close) make `keepalive` ineffective.
    let t = tr(&http(
        "upstream app { server 127.0.0.1:1; keepalive 8; }\nserver { location / { proxy_pass http://app; } location /b { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }",
    ));
    let d = doc(&t);
    assert_eq!(i(&d, "upstream.0.keepalive"), 0);
    assert_eq!(i(&d, "upstream.1.keepalive"), 8);
    assert_eq!(s(&d, "upstream.1.name"), "app#2");
    assert_eq!(
        t.warnings
            .iter()
            .filter(|w| w.origin.directive == "keepalive")
            .count(),
        1
    );
    let t = tr(&http(
        "proxy_http_version 1.0;\nserver { listen 443 ssl http2; listen localhost:8080; ssl_certificate /c; ssl_certificate_key /k; return 204; }",
    ));
    assert!(warned(&t, "proxy_http_version"));
    assert!(!t.warnings.iter().any(|w| w.message.contains("http2")));
    assert!(t.warnings.iter().any(|w| w.message.contains("localhost")));
    let d = doc(&t);
    assert_eq!(s(&d, "listener.1.listen"), "127.0.0.1:8080");
    assert_eq!(get(&d, "listener.0.http2").as_bool(), Some(true));
    assert!(!has(&d, "listener.1.h2c"), "{}", t.toml);
}

#[test]
fn http2_follows_listen_and_the_http2_directive_and_is_off_otherwise() {
    let t = tr(&http(
        r#"http2_max_concurrent_streams 64;
        server { listen 443 ssl http2; server_name a; ssl_certificate /c; ssl_certificate_key /k; return 204; }
        server { listen 443 ssl; server_name b; ssl_certificate /c; ssl_certificate_key /k; return 204; }
        server { listen 8443 ssl; http2 on; ssl_certificate /c; ssl_certificate_key /k; return 204; }
        server { listen 9443 ssl; ssl_certificate /c; ssl_certificate_key /k; return 204; }
        server { listen 9444 ssl http2; http2 off; ssl_certificate /c; ssl_certificate_key /k; return 204; }
        server { listen 8080 http2; return 204; }
        server { listen 8081; return 204; }"#,
    ));
    let d = doc(&t);
    let h2 = |i: usize| get(&d, &format!("listener.{i}.http2")).as_bool();
    // `listen ... http2` is the address's: both servers on 443 get it, as in nginx.
    assert_eq!(h2(0), Some(true), "{}", t.toml);
    assert_eq!(h2(1), Some(true));
    assert_eq!(h2(2), Some(true));
    // nginx's default is off, and ringgate's on: the importer writes it.
    assert_eq!(h2(3), Some(false));
    assert_eq!(h2(4), Some(false));
    // On a plain listen, http2 is HTTP/2 with prior knowledge.
    assert_eq!(get(&d, "listener.5.h2c").as_bool(), Some(true));
    assert!(!has(&d, "listener.5.http2"));
    assert!(!has(&d, "listener.6.h2c"));
    assert_eq!(i(&d, "listener.0.http.http2_max_concurrent_streams"), 64);
    assert!(
        !t.warnings.iter().any(|w| w.message.contains("http2")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn https_upstreams_follow_nginx_defaults() {
    let d = doc(&tr(&http(
        "server { location / { proxy_pass https://backend.internal:8443/api/; } }",
    )));
    assert_eq!(s(&d, "upstream.0.name"), "backend.internal:8443");
    assert_eq!(get(&d, "upstream.0.tls.verify").as_bool(), Some(false));
    assert_eq!(get(&d, "upstream.0.tls.server_name").as_bool(), Some(false));
    assert_eq!(s(&d, "upstream.0.tls.name"), "backend.internal");
    assert!(!has(&d, "upstream.0.tls.trusted_certificate"));
    assert_eq!(
        s(&d, "listener.0.location.0.proxy_pass"),
        "https://backend.internal:8443/api/"
    );
    let d = doc(&tr(&http(
        r#"proxy_ssl_protocols TLSv1.3; proxy_ssl_session_reuse off;
        server { location / { proxy_pass https://10.1.1.1; proxy_ssl_verify on;
          proxy_ssl_trusted_certificate ca.pem; proxy_ssl_name app.internal; proxy_ssl_server_name on;
          proxy_ssl_certificate c.pem; proxy_ssl_certificate_key k.pem; proxy_ssl_verify_depth 3; } }"#,
    )));
    assert_eq!(s(&d, "upstream.0.servers.0"), "10.1.1.1:443");
    assert_eq!(get(&d, "upstream.0.tls.verify").as_bool(), Some(true));
    assert_eq!(
        s(&d, "upstream.0.tls.trusted_certificate"),
        "/nonexistent-ringgate-test/ca.pem"
    );
    assert_eq!(s(&d, "upstream.0.tls.name"), "app.internal");
    assert_eq!(get(&d, "upstream.0.tls.server_name").as_bool(), Some(true));
    assert_eq!(
        s(&d, "upstream.0.tls.certificate"),
        "/nonexistent-ringgate-test/c.pem"
    );
    assert_eq!(
        s(&d, "upstream.0.tls.key"),
        "/nonexistent-ringgate-test/k.pem"
    );
    assert_eq!(i(&d, "upstream.0.tls.verify_depth"), 3);
    assert_eq!(
        get(&d, "upstream.0.tls.session_reuse").as_bool(),
        Some(false)
    );
    assert_eq!(s(&d, "upstream.0.tls.protocols.0"), "TLSv1.3");
    let e = tr_err(&http(
        "server { location / { proxy_pass https://x; proxy_ssl_verify on; } }",
    ));
    assert!(
        error_text(&e).contains("proxy_ssl_trusted_certificate"),
        "{e}"
    );
    let e = tr_err(&http(
        "server { location / { proxy_pass https://x; proxy_ssl_certificate /c; } }",
    ));
    assert!(error_text(&e).contains("proxy_ssl_certificate_key"), "{e}");
}

#[test]
fn locations_rules_and_returns() {
    let t = tr(&http(
        r#"server {
            if ($http_x_block) { return 403 "blocked"; }
            location = /exact { return 200 "hi\n"; }
            location ~* \.png$ { proxy_pass http://127.0.0.1:1; }
            location ~ ^/re { return https://example.com$request_uri; }
            location ^~ /static/ { root /srv; index index.htm; }
            location / {
                if ($ssl_client_verify != SUCCESS) { return 401; }
                if ($request_method ~ "^(PUT|DELETE)$") { return 405; }
                proxy_pass http://127.0.0.1:1;
            }
            location /gone { return 410; proxy_pass http://127.0.0.1:1; }
            location /first { return 302 /a; return 200; }
        }"#,
    ));
    let d = doc(&t);
    let l = |n: usize, k: &str| format!("listener.0.location.{n}.{k}");
    assert_eq!(s(&d, "listener.0.rule.0.if"), "$http_x_block");
    assert_eq!(i(&d, "listener.0.rule.0.return.status"), 403);
    assert_eq!(s(&d, "listener.0.rule.0.return.body"), "blocked");
    assert_eq!(s(&d, &l(0, "match")), "exact");
    assert_eq!(s(&d, &l(0, "return.body")), "hi\n");
    assert_eq!(s(&d, &l(1, "match")), "regex_nocase");
    assert_eq!(s(&d, &l(1, "path")), "\\.png$");
    assert_eq!(s(&d, &l(2, "match")), "regex");
    assert_eq!(i(&d, &l(2, "return.status")), 302);
    assert_eq!(
        s(&d, &l(2, "return.body")),
        "https://example.com$request_uri"
    );
    assert_eq!(s(&d, &l(3, "match")), "prefix_no_regex");
    assert_eq!(s(&d, &l(3, "root")), "/srv");
    assert_eq!(s(&d, &l(3, "index.0")), "index.htm");
    assert!(!has(&d, &l(4, "match")));
    assert_eq!(s(&d, &l(4, "rule.0.if")), "$ssl_client_verify != SUCCESS");
    assert_eq!(i(&d, &l(4, "rule.0.return")), 401);
    assert_eq!(
        s(&d, &l(4, "rule.1.if")),
        "$request_method ~ \"^(PUT|DELETE)$\""
    );
    assert_eq!(s(&d, &l(4, "proxy_pass")), "http://127.0.0.1:1");
    // return wins over proxy_pass; the second return is never reached.
    assert_eq!(i(&d, &l(5, "return")), 410);
    assert!(!has(&d, &l(5, "proxy_pass")));
    assert_eq!(s(&d, &l(6, "return.body")), "/a");
    assert_eq!(
        t.warnings
            .iter()
            .filter(|w| w.message.contains("never used"))
            .count(),
        2
    );
    // A location `/` exists: no fallback location is added.
    assert_eq!(get(&d, "listener.0.location").as_array().unwrap().len(), 7);
}

#[test]
fn unmatched_requests_get_nginx_static_fallback() {
    let t = tr(&http(
        "root /srv/www; server { location /api { proxy_pass http://127.0.0.1:1; } }",
    ));
    let d = doc(&t);
    assert_eq!(s(&d, "listener.0.location.1.path"), "/");
    assert_eq!(s(&d, "listener.0.location.1.root"), "/srv/www");
    // Without `types`, nginx's default_type text/plain and ringgate's built-in table.
    assert_eq!(s(&d, "static.default_type"), "text/plain");
    assert!(!has(&d, "static.types"));
    let t = tr(&http("server { location /p { } }"));
    assert!(t
        .warnings
        .iter()
        .any(|w| w.message.contains("default root")));
    assert_eq!(
        s(&doc(&t), "listener.0.location.0.root"),
        "/nonexistent-ringgate-test/html"
    );
}

#[test]
fn per_location_ssl_verify_client_extension() {
    let d = doc(&tr(&http(
        "server { listen 443 ssl; ssl_certificate /c; ssl_certificate_key /k; ssl_client_certificate /ca; ssl_verify_client optional;\n location /public { ssl_verify_client off; }\n location /admin { ssl_verify_client on; } }",
    )));
    assert_eq!(s(&d, "listener.0.location.0.verify_client"), "off");
    assert_eq!(s(&d, "listener.0.location.1.verify_client"), "on");
    // A location requiring a certificate makes failures answer nginx's pages even when the
    // server's own verification is off.
    let d = doc(&tr(&http(
        "server { listen 443 ssl; ssl_certificate /c; ssl_certificate_key /k; ssl_client_certificate /ca;\n location /admin { ssl_verify_client on; } }",
    )));
    assert_eq!(s(&d, "listener.0.tls.verify_client"), "off");
    assert_eq!(s(&d, "listener.0.tls.verify_failure"), "http");
    let e = tr_err(&http(
        "server { location / { ssl_verify_client optional_no_ca; } }",
    ));
    assert!(error_text(&e).contains("ssl_verify_client"), "{e}");
}

#[test]
fn maps_log_formats_and_access_logs() {
    let t = tr(&http(
        r#"log_format main escape=json '$remote_addr - $request' " $status";
        log_format unused '$status';
        access_log logs/access.log main buffer=32k;
        map $http_x_tenant $tenant {
            default none;
            \default literal-default;
            ~*^ACME acme;
            volatile;
        }
        server { return 204; }
        server { access_log off; return 204; }
        server { access_log /c.log; return 204; }"#,
    ));
    let d = doc(&t);
    assert_eq!(s(&d, "log_format.main"), "$remote_addr - $request $status");
    assert!(!has(&d, "log_format.unused"));
    assert_eq!(
        s(&d, "listener.0.access_log.path"),
        "/nonexistent-ringgate-test/logs/access.log"
    );
    assert_eq!(s(&d, "listener.0.access_log.format"), "main");
    assert!(!has(&d, "listener.1.access_log"));
    assert_eq!(s(&d, "listener.2.access_log.format"), "combined");
    assert_eq!(s(&d, "map.0.source"), "$http_x_tenant");
    assert_eq!(s(&d, "map.0.variable"), "tenant");
    assert_eq!(s(&d, "map.0.default"), "none");
    assert_eq!(s(&d, "map.0.entries.0.exact"), "default");
    assert_eq!(s(&d, "map.0.entries.1.regex_nocase"), "^ACME");
    assert_eq!(s(&d, "map.0.entries.1.value"), "acme");
    assert!(warned(&t, "volatile") && warned(&t, "log_format") && warned(&t, "access_log"));
    let e = tr_err(&http("server { access_log /a.log nosuch; return 204; }"));
    assert!(error_text(&e).contains("unknown log format"), "{e}");
    let e = tr_err(&http("map $a $b { hostnames; }"));
    assert!(error_text(&e).contains("hostnames"), "{e}");
    let e = tr_err(&http("map $a b { }"));
    assert!(error_text(&e).contains("invalid variable"), "{e}");
}

#[test]
fn types_and_default_type() {
    let d = doc(&tr(&http(
        "types { text/html html HTM; image/png png; text/x-html html; }\ndefault_type application/octet-stream;\nserver { root /srv; }",
    )));
    assert_eq!(s(&d, "static.default_type"), "application/octet-stream");
    assert_eq!(s(&d, "static.types.html"), "text/x-html");
    assert_eq!(s(&d, "static.types.htm"), "text/html");
    // No location serves files: no [static] section.
    let d = doc(&tr(&http(
        "types { text/html html; } server { return 204; }",
    )));
    assert!(!has(&d, "static"));
    let e = tr_err(&http("server { types { a/b c; } return 204; }"));
    assert!(error_text(&e).contains("one MIME type table"), "{e}");
}

#[test]
fn ignored_directives_warn_with_a_reason() {
    let t = tr(&http(
        "sendfile on; tcp_nopush on; tcp_nodelay on; types_hash_max_size 2048; server_tokens off;\n gzip off; ssl_ciphers HIGH; ssl_prefer_server_ciphers on; proxy_buffering off;\n server { return 204; }",
    ));
    for d in [
        "sendfile",
        "tcp_nopush",
        "tcp_nodelay",
        "types_hash_max_size",
        "server_tokens",
        "gzip",
        "ssl_ciphers",
        "ssl_prefer_server_ciphers",
        "proxy_buffering",
    ] {
        assert!(warned(&t, d), "{d}");
    }
    let w = t
        .warnings
        .iter()
        .find(|w| w.origin.directive == "sendfile")
        .unwrap();
    assert_eq!(w.origin.line, 3);
    assert!(
        w.to_string()
            .starts_with("/nonexistent-ringgate-test/nginx.conf:3: warning: sendfile: ignored: "),
        "{w}"
    );
}

#[test]
fn behaviour_changing_directives_are_errors_with_file_and_line() {
    for (snippet, needle) in [
        ("gzip on;", "gzip: not supported"),
        ("server { add_header X 1; return 204; }", "add_header: not supported"),
        ("server { location / { rewrite ^ /x; } }", "rewrite: not supported"),
        ("frobnicate 1;", "frobnicate: unknown or unsupported directive"),
        ("server { location / { location /x { } } }", "nested locations"),
        ("server { location / { if ($a) { proxy_pass http://x; } } }", "inside if is not supported"),
        ("server { proxy_pass http://x; }", "proxy_pass: \"proxy_pass\" directive is not allowed here"),
        ("server { location / { ssl_certificate /c; } }", "not allowed here"),
        ("server { listen 443 ssl; return 204; }", "no \"ssl_certificate\""),
        ("server { listen 443 ssl; ssl_certificate /c; return 204; }", "ssl_certificate_key"),
        ("server { location ~ x { proxy_pass http://h/uri; } }", "cannot have URI part"),
        ("server { ssl_verify_depth 1; ssl_verify_depth 2; return 204; }", "is duplicate"),
        ("server { listen 80 default_server; return 204; } server { listen 80 default_server; return 204; }", "duplicate default server"),
        ("server { location / { return 204; } location / { return 204; } }", "duplicate location"),
        ("server { return abc; }", "invalid return code"),
        ("server { if ($a <> b) { return 403; } }", "invalid condition"),
        ("server { listen example.com:80; return 204; }", "host names in listen"),
        ("upstream u { }", "no servers are inside upstream"),
        ("server { location / { proxy_pass http://$x; } }", "variables in proxy_pass"),
        ("server { location @named { } }", "named locations"),
        ("server { ssl_verify_client maybe; return 204; }", "invalid value"),
        ("server { keepalive_timeout 5x; return 204; }", "keepalive_timeout"),
        ("server { keepalive_requests 9223372036854775808; return 204; }", "number too large"),
        ("server { listen 80; listen *:80; return 204; }", "duplicate listen 80"),
    ] {
        let e = tr_err(&http(snippet));
        let text = error_text(&e);
        assert!(text.contains(needle), "{snippet}: {text}");
        assert!(text.contains("nginx.conf:3:"), "{snippet}: {text}");
    }
    let e = tr_err("http { server { return 204; } }\nhttp { }");
    assert!(error_text(&e).contains("nginx.conf:2: http:"), "{e}");
}

#[test]
fn all_errors_are_reported_at_once() {
    let e = tr_err(&http("gzip on;\nadd_header X 1;\nserver { return 204; }"));
    assert_eq!(e.0.len(), 2, "{e}");
    assert!(error_text(&e).starts_with("2 configuration errors"), "{e}");
}

#[test]
fn fragments_are_read_in_their_context() {
    // A conf.d file: server blocks without http.
    let t = tr("server { listen 8080; return 204; }");
    assert_eq!(s(&doc(&t), "listener.0.listen"), "8080");
    assert!(t
        .warnings
        .iter()
        .any(|w| w.message.contains("no http block")));
    // The inside of a server block.
    let t = tr("listen 8081;\nlocation / { return 204; }");
    assert_eq!(s(&doc(&t), "listener.0.listen"), "8081");
    // The nginx TLS-termination guide's mTLS-to-upstream location, verbatim (closed).
    let t = tr("location / {\n    proxy_pass https://upstreamserver;\n    proxy_ssl_verify on;\n    proxy_ssl_verify_depth 2;\n    proxy_ssl_certificate /etc/certs/public.pem;\n    proxy_ssl_certificate_key /etc/certs/private.key;\n    proxy_ssl_trusted_certificate /certs/trust.crt;\n}\n");
    let d = doc(&t);
    assert_eq!(
        s(&d, "upstream.0.tls.trusted_certificate"),
        "/certs/trust.crt"
    );
}

#[test]
fn generated_lines_map_back_to_nginx_lines() {
    let t = tr(&http("server {\n listen 8443 ssl;\n ssl_certificate /c.pem;\n ssl_certificate_key /k.pem;\n return 204;\n}"));
    for (n, line) in t.toml.lines().enumerate() {
        if line.starts_with("listen =") {
            let o = t.source_map.origin(n + 1).unwrap();
            assert_eq!((o.line, o.directive.as_str()), (4, "listen"));
        }
        if line.contains("cert =") {
            let o = t.source_map.origin(n + 1).unwrap();
            assert_eq!((o.line, o.directive.as_str()), (5, "ssl_certificate"));
        }
    }
    assert!(
        t.toml.contains("# from nginx.conf:3 (server)"),
        "{}",
        t.toml
    );
}

#[test]
fn loader_errors_name_the_nginx_line() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("nginx.conf");
    std::fs::write(
        &main,
        "events {}\nhttp {\n  server {\n    listen 127.0.0.1:0 ssl;\n    ssl_certificate missing.crt;\n    ssl_certificate_key missing.key;\n    return 204;\n  }\n}\n",
    )
    .unwrap();
    let e = crate::tools::nginx::load(&main).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!("{}:5: ssl_certificate: ", main.display())),
        "{text}"
    );
    assert!(text.contains("missing.crt"), "{text}");
}

/// Writes a PKI (ca.crt, server.crt/key, client certificates) into `dir`.
fn pki(dir: &Path) {
    crate::demo::make_pki(dir).unwrap();
}

#[test]
fn tls_termination_with_client_certificates_loads_and_behaves_as_nginx() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let main = dir.path().join("nginx.conf");
    // The nginx TLS-termination guide's client-certificate server, with relative paths (nginx
    // resolves them against the conf dir).
    std::fs::write(
        &main,
        "events {}\nhttp {\nserver {\n    listen 127.0.0.1:0 ssl;\n    ssl_certificate server.crt;\n    ssl_certificate_key server.key;\n    ssl_client_certificate ca.crt;\n    ssl_verify_client on;\n    ssl_verify_depth 2;\n    location / {\n        proxy_pass http://127.0.0.1:9/;\n        proxy_set_header Host $host;\n    }\n}\n}\n",
    )
    .unwrap();
    let (c, warnings) = crate::tools::nginx::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    let l = &c.servers[0];
    assert_eq!(l.addr.to_string(), "127.0.0.1:0");
    assert!(!l.http.x_forwarded_for && !l.http.x_forwarded_proto);
    assert_eq!(l.http.keepalive_timeout, std::time::Duration::from_secs(75));
    assert!(l.tls.is_some());
    let loc = &l.locations[0];
    assert_eq!(loc.set_headers[0].0, "Host");
    match &loc.action {
        crate::config::Action::Proxy(p) => {
            assert_eq!(p.uri.as_deref(), Some("/"));
            assert_eq!(c.upstreams[p.upstream].keepalive, 0);
            assert_eq!(
                c.upstreams[p.upstream].servers[0].to_string(),
                "127.0.0.1:9"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn plain_proxy_with_upstream_block_loads() {
    let t = tr(&http(
        "upstream app { server 127.0.0.1:8081; server 127.0.0.1:8082; keepalive 8; }\nserver { listen 127.0.0.1:0; server_name app.local;\n keepalive_requests 10; client_max_body_size 5m;\n location /api/ { proxy_pass http://app/v1/; proxy_set_header X-Real-IP $remote_addr; proxy_read_timeout 5s;\n proxy_http_version 1.1; proxy_set_header Connection \"\"; }\n location = /health { return 200 ok; } }",
    ));
    let c = crate::config::parse_str(&t.toml, Path::new(MAIN))
        .unwrap_or_else(|e| panic!("{e}\n{}", t.toml));
    let l = &c.servers[0];
    assert_eq!(l.server_names, ["app.local"]);
    assert_eq!(l.http.keepalive_requests, 10);
    assert_eq!(l.http.client_max_body_size, 5 * 1024 * 1024);
    // /api/, = /health, and the fallback: nginx's default root does not exist, so 404.
    assert_eq!(l.locations.len(), 3);
    assert_eq!(l.locations[1].kind, crate::config::MatchKind::Exact);
    assert!(matches!(
        l.locations[2].action,
        crate::config::Action::Return { status: 404, .. }
    ));
    let up = &c.upstreams[0];
    assert_eq!(
        (up.name.as_str(), up.servers.len(), up.keepalive),
        ("app", 2, 8)
    );
    assert_eq!(up.read_timeout, std::time::Duration::from_secs(5));
}

/// A guide's configuration from tests/nginx/, its placeholders replaced.
fn guide_config(name: &str, vars: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx");
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(src.join(name)).unwrap();
    for (k, v) in vars {
        text = text.replace(k, v);
    }
    assert!(!text.contains('@'), "placeholder left in {name}");
    std::fs::copy(src.join("mime.types"), dir.path().join("mime.types")).unwrap();
    let main = dir.path().join("nginx.conf");
    std::fs::write(&main, text).unwrap();
    (dir, main)
}

#[test]
fn tls_termination_guide_config_translates() {
    let (_dir, main) = guide_config(
        "tls-termination-guide.conf",
        &[
            ("@ROOT@", ""),
            ("@PORT_S1@", "9000"),
            ("@PORT_S2@", "8080"),
            ("@APP@", "app.cluster.local:9000"),
            ("@MTLS_APP@", "upstreamserver:443"),
        ],
    );
    let t = translate_file(&main).unwrap_or_else(|e| panic!("{e}"));
    let d = doc(&t);
    // TLS termination with client certificates, proxying to the app.
    assert_eq!(s(&d, "listener.0.listen"), "9000");
    assert_eq!(
        s(&d, "listener.0.tls.certificates.0.cert"),
        "/etc/erapemfile/public.pem"
    );
    assert_eq!(
        s(&d, "listener.0.tls.certificates.0.key"),
        "/etc/erakeyfile/private.key"
    );
    assert_eq!(
        s(&d, "listener.0.tls.client_certificate"),
        "/etc/eratrustfile/trust_client.crt"
    );
    assert_eq!(s(&d, "listener.0.tls.verify_client"), "on");
    assert_eq!(i(&d, "listener.0.tls.verify_depth"), 2);
    assert_eq!(
        s(&d, "listener.0.location.0.proxy_pass"),
        "http://app.cluster.local:9000/"
    );
    assert_eq!(s(&d, "listener.0.location.0.set_header.Host"), "$host");
    // mTLS toward the upstream.
    assert_eq!(
        s(&d, "listener.1.location.0.proxy_pass"),
        "https://upstreamserver"
    );
    assert!(!has(&d, "listener.1.location.0.set_header"));
    let up = "upstream.1";
    assert_eq!(s(&d, &format!("{up}.name")), "upstreamserver");
    assert_eq!(s(&d, &format!("{up}.servers.0")), "upstreamserver:443");
    assert_eq!(get(&d, &format!("{up}.tls.verify")).as_bool(), Some(true));
    assert_eq!(i(&d, &format!("{up}.tls.verify_depth")), 2);
    assert_eq!(
        s(&d, &format!("{up}.tls.certificate")),
        "/etc/certs/public.pem"
    );
    assert_eq!(s(&d, &format!("{up}.tls.key")), "/etc/certs/private.key");
    assert_eq!(
        s(&d, &format!("{up}.tls.trusted_certificate")),
        "/certs/trust.crt"
    );
    assert_eq!(
        get(&d, &format!("{up}.tls.server_name")).as_bool(),
        Some(false)
    );
    assert_eq!(s(&d, &format!("{up}.tls.name")), "upstreamserver");
}

#[test]
fn enterprise_mtls_guide_config_translates() {
    let (_dir, main) = guide_config(
        "enterprise-mtls-guide.conf",
        &[
            ("@ROOT@", ""),
            ("@HTTPS_PORT@", "443"),
            ("@HTTP_PORT@", "80"),
        ],
    );
    let t = translate_file(&main).unwrap_or_else(|e| panic!("{e}"));
    let d = doc(&t);
    assert_eq!(i(&d, "runtime.workers"), 0);
    assert_eq!(s(&d, "runtime.error_log"), "/var/log/nginx/error.log");
    assert_eq!(
        s(&d, "log_format.ssl_log"),
        "$remote_addr [$time_local] ClientVerify:$ssl_client_verify DN:$ssl_client_s_dn"
    );
    assert_eq!(s(&d, "static.default_type"), "application/octet-stream");
    assert_eq!(s(&d, "static.types.html"), "text/html");
    assert_eq!(s(&d, "map.0.variable"), "client_role");
    assert_eq!(s(&d, "map.0.default"), "none");
    assert_eq!(s(&d, "map.0.entries.0.regex"), "OU=Admin");
    assert_eq!(s(&d, "map.0.entries.2.value"), "ops");
    assert_eq!(
        s(&d, "map.1.entries.0.exact"),
        "CN=client1,OU=Client,O=MyCompany"
    );
    assert_eq!(s(&d, "map.1.entries.0.value"), "10.0.0.5");
    enterprise_mtls_server(&d);
    // The HTTP -> HTTPS redirect.
    assert_eq!(s(&d, "listener.1.listen"), "80");
    assert_eq!(i(&d, "listener.1.location.0.return.status"), 301);
    assert_eq!(
        s(&d, "listener.1.location.0.return.body"),
        "https://$host$request_uri"
    );
    for ignored in [
        "user",
        "pid",
        "sendfile",
        "tcp_nopush",
        "types_hash_max_size",
        "server_tokens",
        "ssl_prefer_server_ciphers",
    ] {
        assert!(warned(&t, ignored), "{ignored}");
    }
}

/// The enterprise mTLS guide's mTLS server, translated: its certificate checks, the
/// certificate+IP rule and the per-path locations.
fn enterprise_mtls_server(d: &toml::Table) {
    let l = "listener.0";
    assert_eq!(s(d, &format!("{l}.listen")), "443");
    assert_eq!(s(d, &format!("{l}.server_names.0")), "server.example.com");
    assert_eq!(s(d, &format!("{l}.access_log.format")), "ssl_log");
    assert_eq!(
        s(d, &format!("{l}.tls.client_certificate")),
        "/etc/nginx/ssl/ca/ca.crt"
    );
    assert_eq!(s(d, &format!("{l}.tls.verify_client")), "on");
    assert_eq!(i(d, &format!("{l}.tls.verify_depth")), 2);
    assert_eq!(
        get(d, &format!("{l}.tls.protocols"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s(d, &format!("{l}.rule.0.if")),
        "$remote_addr != $allowed_ip"
    );
    assert_eq!(i(d, &format!("{l}.rule.0.return")), 403);
    assert_eq!(s(d, &format!("{l}.location.0.root")), "/var/www/html");
    assert_eq!(
        s(d, &format!("{l}.location.0.rule.0.if")),
        "$ssl_client_verify != SUCCESS"
    );
    assert_eq!(s(d, &format!("{l}.location.1.path")), "/public");
    assert_eq!(s(d, &format!("{l}.location.1.verify_client")), "off");
    assert_eq!(s(d, &format!("{l}.location.2.verify_client")), "on");
}

#[test]
fn enterprise_mtls_guide_snippets_translate_verbatim() {
    // The mTLS server and the HTTP->HTTPS redirect, verbatim, as a conf.d file.
    let t = tr("server {\n    listen 443 ssl;\n    server_name server.example.com;\n    ssl_certificate /etc/nginx/ssl/server/server.crt;\n    ssl_certificate_key /etc/nginx/ssl/server/server.key;\n    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_client_certificate /etc/nginx/ssl/ca/ca.crt;\n    ssl_verify_client on;\n    ssl_verify_depth 2;\n    location / {\n        if ($ssl_client_verify != SUCCESS) { return 401; }\n        proxy_set_header X-SSL-Client-DN $ssl_client_s_dn;\n        proxy_set_header X-SSL-Client-Verify $ssl_client_verify;\n        root /var/www/html;\n    }\n}\n\n# Force HTTPS\nserver {\n    listen 80;\n    return 301 https://$host$request_uri;\n}\n");
    assert_eq!(doc(&t)["listener"].as_array().unwrap().len(), 2);
    // The role map with its request header, and the log_format with its access_log.
    tr("map $ssl_client_s_dn $client_role {\n    default \"none\";\n    ~OU=Admin \"admin\";\n    ~OU=Client \"client\";\n    ~OU=Ops \"ops\";\n}\nproxy_set_header X-Client-Role $client_role;\n");
    tr("log_format ssl_log '$remote_addr [$time_local] '\n'ClientVerify:$ssl_client_verify DN:$ssl_client_s_dn';\naccess_log /var/log/nginx/ssl_access.log ssl_log;\n");
    // The per-path client-certificate locations, as the inside of a server.
    tr("location /public { ssl_verify_client off; }\nlocation /admin { ssl_verify_client on; }\n");
}

#[test]
fn server_failure_settings_become_the_upstreams() {
    let t = tr(&http(
        r#"upstream app {
            server 127.0.0.1:8080 max_fails=3 fail_timeout=30s;
            server 127.0.0.2:8080 max_fails=5;
            server 127.0.0.3:8080 backup;
        }
        server { location / { proxy_pass http://app; } }"#,
    ));
    let d = doc(&t);
    assert_eq!(i(&d, "upstream.0.max_fails"), 3);
    assert_eq!(s(&d, "upstream.0.fail_timeout"), "30s");
    assert_eq!(s(&d, "upstream.0.backup_servers.0"), "127.0.0.3:8080");
    assert!(t
        .warnings
        .iter()
        .any(|w| w.message.contains("max_fails=5 ignored") && w.message.contains("set 3")));
    // An implicit upstream keeps ringgate's (nginx's) defaults: nothing written.
    let d = doc(&tr(&http(
        "server { location / { proxy_pass http://127.0.0.1:9000; } }",
    )));
    assert!(!has(&d, "upstream.0.max_fails"));
}

#[test]
fn a_fragment_read_as_the_inside_of_a_server_says_why() {
    let t = tr("keepalive_timeout 10s;\n\nif ($request_method = POST) {\n    return 405;\n}\nreturn 204;\n");
    let w: Vec<String> = t.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![format!("{MAIN}:3: warning: server: no http or server block: the file is read as the inside of one server block because it holds `if`, which nginx takes only in a server or a location")]
    );
}

/// Loads `body` (the inside of `http { }`) from a nginx.conf in `dir`; the error text.
fn load_errors(dir: &Path, body: &str) -> String {
    let main = dir.join("nginx.conf");
    std::fs::write(&main, http(body)).unwrap();
    crate::tools::nginx::load(&main).unwrap_err().to_string()
}

#[test]
fn a_key_file_error_names_the_ssl_certificate_key_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let got = load_errors(
        dir.path(),
        "server {\n    listen 127.0.0.1:0 ssl;\n    ssl_certificate missing.crt;\n    ssl_certificate_key missing.key;\n    return 204;\n}",
    );
    let enoent = "No such file or directory (os error 2)";
    assert_eq!(
        got,
        format!("2 configuration errors:\n  {d}/nginx.conf:5: ssl_certificate: cannot read {d}/missing.crt: {enoent} (TOML key listener[0].tls.certificates[0].cert)\n  {d}/nginx.conf:6: ssl_certificate_key: cannot read {d}/missing.key: {enoent} (TOML key listener[0].tls.certificates[0].key)\n")
    );
}

#[test]
fn loader_advice_names_nginx_directives() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let d = dir.path().display();
    let got = load_errors(
        dir.path(),
        "server {\n    listen 127.0.0.1:0 ssl;\n    ssl_certificate server.crt;\n    ssl_certificate_key server.key;\n    ssl_verify_client on;\n    return 204;\n}",
    );
    assert_eq!(got, format!("1 configuration error:\n  {d}/nginx.conf:7: ssl_verify_client: ssl_verify_client (here or in a location) needs ssl_client_certificate, the CA bundle to verify clients against (TOML key listener[0].tls.client_certificate)\n"));
}

#[test]
fn grpc_pass_to_an_address_makes_an_implicit_http2_upstream() {
    // No scheme is grpc://; nginx's `:authority` (and so the upstream's name) keeps the port.
    for (pass, want) in [
        ("127.0.0.1:9000", "grpc://127.0.0.1:9000"),
        ("grpc://127.0.0.1:9000", "grpc://127.0.0.1:9000"),
        ("GRPC://[::1]:50051", "grpc://[::1]:50051"),
        ("grpc://127.0.0.1:80", "grpc://127.0.0.1:80"),
    ] {
        let t = tr(&http(&format!(
            "server {{ location / {{ grpc_pass {pass}; }} }}"
        )));
        let d = doc(&t);
        assert_eq!(s(&d, "listener.0.location.0.proxy_pass"), want, "{pass}");
        let name = want.strip_prefix("grpc://").unwrap();
        assert_eq!(s(&d, "upstream.0.name"), name, "{pass}");
        assert_eq!(s(&d, "upstream.0.protocol"), "h2", "{pass}");
        assert_eq!(s(&d, "upstream.0.servers.0"), name, "{pass}");
        // Without an upstream block and `keepalive`, nginx opens a connection per request.
        assert_eq!(i(&d, "upstream.0.keepalive"), 0, "{pass}");
        assert!(!has(&d, "upstream.0.tls"), "{pass}");
        assert!(t.warnings.is_empty(), "{pass}: {:?}", t.warnings);
        let line = t
            .toml
            .lines()
            .find(|l| l.starts_with("protocol ="))
            .unwrap();
        assert!(line.ends_with("# nginx.conf:3"), "{line}");
    }
}

#[test]
fn grpcs_pass_to_an_address_declares_a_tls_upstream_with_nginx_defaults() {
    // As with proxy_pass https://host: ringgate's loader needs a declared upstream with
    // [upstream.tls], so the importer writes one with nginx's grpc_ssl_* defaults.
    let d = doc(&tr(&http(
        "server { location / { grpc_pass grpcs://backend.internal:8443; } }",
    )));
    assert_eq!(
        s(&d, "listener.0.location.0.proxy_pass"),
        "grpcs://backend.internal:8443"
    );
    assert_eq!(s(&d, "upstream.0.name"), "backend.internal:8443");
    assert_eq!(s(&d, "upstream.0.protocol"), "h2");
    assert_eq!(s(&d, "upstream.0.servers.0"), "backend.internal:8443");
    assert_eq!(get(&d, "upstream.0.tls.verify").as_bool(), Some(false));
    assert_eq!(get(&d, "upstream.0.tls.server_name").as_bool(), Some(false));
    assert_eq!(s(&d, "upstream.0.tls.name"), "backend.internal");
    // Every grpc_ssl_* directive, inherited from http and server.
    let t = tr(&http(
        r#"grpc_ssl_protocols TLSv1.3; grpc_ssl_session_reuse off;
        server {
          grpc_ssl_certificate c.pem; grpc_ssl_certificate_key k.pem;
          location / { grpc_pass grpcs://10.1.1.1:443; grpc_ssl_verify on;
            grpc_ssl_trusted_certificate ca.pem; grpc_ssl_name app.internal;
            grpc_ssl_server_name on; grpc_ssl_verify_depth 3; } }"#,
    ));
    let d = doc(&t);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let tls = |k: &str| format!("upstream.0.tls.{k}");
    assert_eq!(s(&d, "upstream.0.name"), "10.1.1.1:443");
    assert_eq!(s(&d, "upstream.0.servers.0"), "10.1.1.1:443");
    assert_eq!(get(&d, &tls("verify")).as_bool(), Some(true));
    assert_eq!(
        s(&d, &tls("trusted_certificate")),
        "/nonexistent-ringgate-test/ca.pem"
    );
    assert_eq!(i(&d, &tls("verify_depth")), 3);
    assert_eq!(s(&d, &tls("name")), "app.internal");
    assert_eq!(get(&d, &tls("server_name")).as_bool(), Some(true));
    assert_eq!(
        s(&d, &tls("certificate")),
        "/nonexistent-ringgate-test/c.pem"
    );
    assert_eq!(s(&d, &tls("key")), "/nonexistent-ringgate-test/k.pem");
    assert_eq!(s(&d, &tls("protocols.0")), "TLSv1.3");
    assert_eq!(get(&d, &tls("session_reuse")).as_bool(), Some(false));
    // nginx's own checks, in the gRPC module's words.
    let e = tr_err(&http(
        "server { location / { grpc_pass grpcs://x:1; grpc_ssl_verify on; } }",
    ));
    assert!(
        error_text(&e).contains(
            "grpc_ssl_verify: no \"grpc_ssl_trusted_certificate\" for \"grpc_ssl_verify\""
        ),
        "{e}"
    );
    let e = tr_err(&http(
        "server { location / { grpc_pass grpcs://x:1; grpc_ssl_certificate /c; } }",
    ));
    assert!(error_text(&e).contains("grpc_ssl_certificate_key"), "{e}");
}

#[test]
fn grpc_pass_to_an_upstream_block_makes_it_http2() {
    let t = tr(&http(
        r#"upstream grpcservers { server 10.0.0.1:50051; server 10.0.0.2:50051 backup; keepalive 8; }
        upstream secure { server 10.0.0.3:443 max_fails=2; }
        server {
            location /a.Svc/ { grpc_pass grpc://grpcservers; }
            location /b.Svc/ { grpc_pass grpcs://secure; grpc_ssl_verify off; }
            location /c.Svc/ { grpc_pass grpcservers; }
        }"#,
    ));
    let d = doc(&t);
    assert_eq!(s(&d, "upstream.0.name"), "grpcservers");
    assert_eq!(s(&d, "upstream.0.protocol"), "h2");
    assert_eq!(s(&d, "upstream.0.servers.0"), "10.0.0.1:50051");
    assert_eq!(s(&d, "upstream.0.backup_servers.0"), "10.0.0.2:50051");
    // The gRPC module keeps connections alive with `keepalive` alone (no
    // proxy_http_version / Connection idiom): keepalive counts, and no warning.
    assert_eq!(i(&d, "upstream.0.keepalive"), 8);
    assert!(!warned(&t, "keepalive"), "{:?}", t.warnings);
    assert_eq!(s(&d, "upstream.1.name"), "secure");
    assert_eq!(s(&d, "upstream.1.protocol"), "h2");
    assert_eq!(i(&d, "upstream.1.max_fails"), 2);
    assert_eq!(get(&d, "upstream.1.tls.verify").as_bool(), Some(false));
    assert_eq!(s(&d, "upstream.1.tls.name"), "secure");
    let loc = |n: usize| format!("listener.0.location.{n}.proxy_pass");
    assert_eq!(s(&d, &loc(0)), "grpc://grpcservers");
    assert_eq!(s(&d, &loc(1)), "grpcs://secure");
    // The same block and settings: the same upstream.
    assert_eq!(s(&d, &loc(2)), "grpc://grpcservers");
    assert_eq!(d["upstream"].as_array().unwrap().len(), 2);
    // A grpc_pass host with no port and no upstream block: nginx's "no port in upstream".
    let e = tr_err(&http("server { location / { grpc_pass grpc://app; } }"));
    assert!(
        error_text(&e).contains("grpc_pass: no port in upstream \"app\""),
        "{e}"
    );
}

#[test]
fn an_upstream_block_for_both_proxy_pass_and_grpc_pass_becomes_two_upstreams() {
    // nginx's proxy module speaks HTTP/1.x and its gRPC module HTTP/2 to the same servers;
    // ringgate has one protocol per [[upstream]], so the block becomes two, as it does for
    // two locations with different proxy_* settings.
    let t = tr(&http(
        r#"upstream app { server 127.0.0.1:8080; }
        server {
            location /web/ { proxy_pass http://app; }
            location /api.Svc/ { grpc_pass grpc://app; grpc_set_header X-P $proxy_host; }
        }"#,
    ));
    let d = doc(&t);
    assert_eq!(s(&d, "upstream.0.name"), "app");
    assert!(!has(&d, "upstream.0.protocol"));
    assert_eq!(s(&d, "upstream.1.name"), "app#2");
    assert_eq!(s(&d, "upstream.1.protocol"), "h2");
    assert_eq!(s(&d, "upstream.1.servers.0"), "127.0.0.1:8080");
    assert_eq!(s(&d, "listener.0.location.0.proxy_pass"), "http://app");
    assert_eq!(s(&d, "listener.0.location.1.proxy_pass"), "grpc://app#2");
    // nginx's :authority for the renamed upstream stays the block's name.
    assert_eq!(s(&d, "listener.0.location.1.set_header.Host"), "app");
    assert!(
        t.toml
            .contains("upstream block \"app\", for grpc_pass, with the grpc_* settings"),
        "{}",
        t.toml
    );
}

#[test]
fn grpc_settings_inherit_apart_from_proxy_settings() {
    let t = tr(&http(
        r#"proxy_read_timeout 11s; grpc_read_timeout 22s;
        proxy_set_header X-Proxy http; grpc_set_header X-Grpc http;
        server {
            grpc_connect_timeout 3s;
            location /p { proxy_pass http://127.0.0.1:8080; }
            location /g { grpc_pass 127.0.0.1:9000; grpc_send_timeout 4s; }
            location /h { grpc_pass 127.0.0.1:9001; grpc_set_header X-Own 1; grpc_read_timeout 5s; }
        }"#,
    ));
    let d = doc(&t);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    // The proxy_pass location: proxy_* only.
    assert_eq!(s(&d, "upstream.0.name"), "127.0.0.1:8080");
    assert_eq!(s(&d, "upstream.0.read_timeout"), "11s");
    assert!(!has(&d, "upstream.0.connect_timeout"));
    assert!(!has(&d, "upstream.0.send_timeout"));
    assert_eq!(s(&d, "listener.0.location.0.set_header.X-Proxy"), "http");
    assert!(!has(&d, "listener.0.location.0.set_header.X-Grpc"));
    // The grpc_pass locations: grpc_* only, from http, server and location.
    assert_eq!(s(&d, "upstream.1.name"), "127.0.0.1:9000");
    assert_eq!(s(&d, "upstream.1.read_timeout"), "22s");
    assert_eq!(s(&d, "upstream.1.connect_timeout"), "3s");
    assert_eq!(s(&d, "upstream.1.send_timeout"), "4s");
    assert_eq!(s(&d, "listener.0.location.1.set_header.X-Grpc"), "http");
    assert!(!has(&d, "listener.0.location.1.set_header.X-Proxy"));
    assert_eq!(s(&d, "upstream.2.read_timeout"), "5s");
    assert_eq!(s(&d, "upstream.2.connect_timeout"), "3s");
    // A level with its own grpc_set_header inherits none of its parent's.
    assert_eq!(s(&d, "listener.0.location.2.set_header.X-Own"), "1");
    assert!(!has(&d, "listener.0.location.2.set_header.X-Grpc"));
}

#[test]
fn the_other_modules_settings_in_a_location_are_warned_about() {
    let t = tr(&http(
        r#"server {
            location /g { grpc_pass 127.0.0.1:9000; proxy_read_timeout 5s; proxy_set_header X 1; }
            location /p { proxy_pass http://127.0.0.1:8080; grpc_read_timeout 5s; }
        }"#,
    ));
    let d = doc(&t);
    assert!(!has(&d, "upstream.0.read_timeout"));
    assert!(!has(&d, "listener.0.location.0.set_header"));
    assert!(!has(&d, "upstream.1.read_timeout"));
    for directive in [
        "proxy_read_timeout",
        "proxy_set_header",
        "grpc_read_timeout",
    ] {
        let w = t
            .warnings
            .iter()
            .find(|w| w.origin.directive == directive)
            .unwrap_or_else(|| panic!("{directive}: {:?}", t.warnings));
        assert!(
            w.message.starts_with("ignored: this location passes with "),
            "{w}"
        );
    }
}

#[test]
fn proxy_pass_and_grpc_pass_in_one_location_the_last_one_passes() {
    // Each module sets the location's handler; nginx keeps the last.
    let t = tr(&http(
        "server { location / {\n proxy_pass http://127.0.0.1:8080;\n grpc_pass 127.0.0.1:9000;\n } }",
    ));
    let d = doc(&t);
    assert_eq!(
        s(&d, "listener.0.location.0.proxy_pass"),
        "grpc://127.0.0.1:9000"
    );
    assert_eq!(d["upstream"].as_array().unwrap().len(), 1);
    let w = t
        .warnings
        .iter()
        .find(|w| w.origin.directive == "proxy_pass")
        .unwrap();
    assert_eq!(w.origin.line, 4);
    assert!(
        w.message
            .starts_with("never used: the grpc_pass on line 5 passes this location's requests"),
        "{w}"
    );
    // A return answers first, whichever pass.
    let t = tr(&http(
        "server { location / { grpc_pass 127.0.0.1:9000; return 204; } }",
    ));
    assert!(warned(&t, "grpc_pass"));
    assert!(!has(&doc(&t), "upstream"));
}

#[test]
fn grpc_pass_errors_name_the_line() {
    for (snippet, needle) in [
        ("server { location / { grpc_pass unix:/run/g.sock; } }", "grpc_pass: unix socket upstreams are not supported"),
        ("server { location / { grpc_pass grpc://unix:/run/g.sock; } }", "grpc_pass: unix socket upstreams are not supported"),
        ("server { location / { grpc_pass grpcs://unix:/run/g.sock; } }", "grpc_pass: unix socket upstreams are not supported"),
        ("server { location / { grpc_pass grpc://$backend; } }", "variables in grpc_pass"),
        ("server { location / { grpc_pass grpc://h:1/x.Svc; } }", "grpc_pass takes no URI part"),
        ("server { location / { grpc_pass http://h:1; } }", "invalid URL prefix"),
        ("server { location / { grpc_pass grpc://h:1; grpc_pass grpc://h:2; } }", "\"grpc_pass\" directive is duplicate"),
        ("server { location / { grpc_pass a:1 b:2; } }", "invalid number of arguments"),
        ("server { grpc_pass grpc://h:1; }", "grpc_pass: \"grpc_pass\" directive is not allowed here"),
        ("grpc_pass grpc://h:1; server { return 204; }", "\"grpc_pass\" directive is not allowed here"),
        ("server { location / { if ($a) { grpc_pass h:1; } } }", "inside if is not supported"),
        ("server { location / { grpc_pass h:1; grpc_read_timeout 1s; grpc_read_timeout 2s; } }", "\"grpc_read_timeout\" directive is duplicate"),
        ("server { location / { grpc_pass h:1; grpc_connect_timeout 5x; } }", "grpc_connect_timeout"),
        ("server { location / { grpc_pass h:1; grpc_hide_header X; } }", "grpc_hide_header: not supported: ringgate passes upstream response headers as they are"),
        ("server { location / { grpc_pass h:1; grpc_pass_header X; } }", "grpc_pass_header: not supported"),
        ("server { location / { grpc_pass h:1; grpc_intercept_errors on; } }", "grpc_intercept_errors: not supported"),
        ("server { location / { grpc_pass h:1; grpc_bind 10.0.0.1; } }", "grpc_bind: not supported"),
        ("server { location / { grpc_pass grpcs://h:1; grpc_ssl_crl /c.crl; } }", "grpc_ssl_crl: not supported"),
        ("server { location / { grpc_pass grpcs://h:1; grpc_ssl_password_file /p; } }", "grpc_ssl_password_file: not supported"),
        ("server { location / { grpc_pass h:1; grpc_frobnicate on; } }", "grpc_frobnicate: unknown or unsupported directive"),
    ] {
        let e = tr_err(&http(snippet));
        let text = error_text(&e);
        assert!(text.contains(needle), "{snippet}: {text}");
        assert!(text.contains("nginx.conf:3:"), "{snippet}: {text}");
    }
}

#[test]
fn grpc_directives_ringgate_need_not_honour_are_warned_about() {
    let t = tr(&http(
        r#"grpc_buffer_size 16k; grpc_ssl_ciphers HIGH; grpc_socket_keepalive on;
        grpc_next_upstream error timeout; grpc_next_upstream_tries 2; grpc_next_upstream_timeout 5s;
        grpc_intercept_errors off;
        server { location / { grpc_pass h:1; } }"#,
    ));
    for d in [
        "grpc_buffer_size",
        "grpc_ssl_ciphers",
        "grpc_socket_keepalive",
        "grpc_next_upstream",
        "grpc_next_upstream_tries",
        "grpc_next_upstream_timeout",
        "grpc_intercept_errors",
    ] {
        assert!(warned(&t, d), "{d}: {:?}", t.warnings);
    }
    let next = t
        .warnings
        .iter()
        .find(|w| w.origin.directive == "grpc_next_upstream")
        .unwrap();
    let proxy = tr(&http(
        "proxy_next_upstream error; server { location / { proxy_pass http://h; } }",
    ));
    assert_eq!(
        next.message,
        proxy
            .warnings
            .iter()
            .find(|w| w.origin.directive == "proxy_next_upstream")
            .unwrap()
            .message
    );
}

#[test]
fn grpc_over_an_mtls_http2_listener_translates() {
    let t = tr(&http(
        r#"server {
            listen 443 ssl http2;
            server_name grpc.example.com;
            ssl_certificate /etc/ssl/server.crt;
            ssl_certificate_key /etc/ssl/server.key;
            ssl_client_certificate /etc/ssl/ca.crt;
            ssl_verify_client on;
            location / {
                grpc_pass grpc://127.0.0.1:9000;
                grpc_connect_timeout 2s;
                grpc_read_timeout 1h;
                grpc_send_timeout 1h;
                grpc_set_header X-Client-DN $ssl_client_s_dn;
            }
        }"#,
    ));
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    let d = doc(&t);
    assert_eq!(get(&d, "listener.0.http2").as_bool(), Some(true));
    assert_eq!(s(&d, "listener.0.tls.verify_client"), "on");
    assert_eq!(
        s(&d, "listener.0.tls.client_certificate"),
        "/etc/ssl/ca.crt"
    );
    let loc = "listener.0.location.0";
    assert_eq!(s(&d, &format!("{loc}.proxy_pass")), "grpc://127.0.0.1:9000");
    assert_eq!(
        s(&d, &format!("{loc}.set_header.X-Client-DN")),
        "$ssl_client_s_dn"
    );
    assert_eq!(s(&d, "upstream.0.protocol"), "h2");
    assert_eq!(s(&d, "upstream.0.connect_timeout"), "2s");
    assert_eq!(s(&d, "upstream.0.read_timeout"), "1h");
    assert_eq!(s(&d, "upstream.0.send_timeout"), "1h");
    // Each value names its nginx line.
    for (key, directive) in [
        ("protocol", "grpc_pass"),
        ("connect_timeout", "grpc_connect_timeout"),
        ("read_timeout", "grpc_read_timeout"),
    ] {
        let n = t
            .toml
            .lines()
            .position(|l| l.starts_with(&format!("{key} =")))
            .unwrap();
        assert_eq!(
            t.source_map.origin(n + 1).unwrap().directive,
            directive,
            "{key}"
        );
    }
}

/// Needs the HTTP/2-upstream configuration (`protocol`, `grpc://`, `grpcs://`) in
/// crate::config; until that change is merged the loader refuses these keys. After merging,
/// run `cargo test --lib tools::nginx -- --ignored` and drop the `ignore`.
#[test]
fn grpc_translations_load() {
    let t = tr(&http(
        r#"upstream grpcservers { server 127.0.0.1:50051; keepalive 4; }
        upstream secure { server 127.0.0.1:50052; }
        server {
            listen 127.0.0.1:0;
            http2 on;
            location /a.Svc/ { grpc_pass grpc://grpcservers; grpc_read_timeout 7s; }
            location /b.Svc/ { grpc_pass 127.0.0.1:9000; }
            location /c.Svc/ { grpc_pass grpcs://secure; grpc_ssl_verify off; }
            location /d.Svc/ { grpc_pass grpcs://127.0.0.1:9443; }
            location /web/ { proxy_pass http://grpcservers; }
        }"#,
    ));
    let c = crate::config::parse_str(&t.toml, Path::new(MAIN))
        .unwrap_or_else(|e| panic!("{e}\n{}", t.toml));
    let up = c
        .upstreams
        .iter()
        .find(|u| u.name == "grpcservers")
        .unwrap();
    assert_eq!(up.read_timeout, std::time::Duration::from_secs(7));
    assert_eq!(up.keepalive, 4);
    assert_eq!(c.servers[0].locations.len(), 6);
}
