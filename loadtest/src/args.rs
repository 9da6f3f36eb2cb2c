//! Command line of `ringgate-load` and its validation.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// N connections, each sending requests back to back (optionally pipelined).
    Keepalive,
    /// Every request on a new connection (full or resumed TLS handshake).
    Handshake,
    /// N connections, each upgraded to a WebSocket once (HTTP/1.1 Upgrade, 101), then sending
    /// masked text messages back to back and reading each echo (optionally pipelined).
    Websocket,
    /// N HTTP/2 connections (TLS with ALPN h2; h2c with prior knowledge for http://), each
    /// carrying --streams concurrent streams, one request per stream, back to back.
    H2,
    /// gRPC unary calls over HTTP/2 (as h2): each a POST of one --message-size message with
    /// `content-type: application/grpc` and `te: trailers`, counted only when the answer is
    /// 200, `application/grpc`, the same message echoed and `grpc-status: 0` in its trailers.
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsVersion {
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
}

/// HTTP/1.1 and HTTP/2 (over TLS with a client certificate, or plain) load generator.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringgate-load", version, about, long_about = None)]
pub struct Args {
    /// Target URL: https://HOST:PORT/path or http://HOST:PORT/path
    pub url: String,

    /// keepalive: requests back to back on -c connections; handshake: one request per
    /// connection; websocket: messages to an echo server through -c upgraded connections;
    /// h2: HTTP/2 requests on --streams streams of each of -c connections; grpc: gRPC unary
    /// calls to an echo service, as h2
    #[arg(long, value_enum, default_value = "keepalive")]
    pub mode: Mode,

    /// Concurrent connections, spread over the threads (-t)
    #[arg(short = 'c', long = "connections", default_value_t = 10)]
    pub connections: usize,

    /// Requests (websocket: messages) in flight per connection (keepalive and websocket
    /// modes, closed loop)
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,

    /// Websocket mode: bytes of each text message; grpc mode: bytes of each gRPC message's
    /// payload (after its 5-byte prefix)
    #[arg(long, default_value_t = 32)]
    pub message_size: usize,

    /// h2 and grpc modes: concurrent streams per connection, each one request at a time
    /// (closed loop)
    #[arg(long, default_value_t = 1)]
    pub streams: usize,

    /// Run for this long (e.g. 10s, 500ms, 2m; a bare number is seconds)
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many requests in total
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,

    /// Open-loop constant rate in requests/s over all connections; latency is measured from
    /// each request's scheduled send time (no coordinated omission)
    #[arg(long)]
    pub rate: Option<f64>,

    /// OS threads, each driving its share of the connections with one event loop (epoll)
    #[arg(short = 't', long, default_value_t = 1)]
    pub threads: usize,

    /// Idle mode: open this many connections (TCP + TLS handshake, plus one request with
    /// --idle-request), hold them open for the duration (-d), then close them; for memory
    /// measurements. Replaces -c; no other load is sent
    #[arg(long, value_name = "N")]
    pub idle: Option<usize>,

    /// Idle mode: send one request on each connection after the handshake
    #[arg(long)]
    pub idle_request: bool,

    /// Handshake mode: resume TLS sessions (1.3 tickets, 1.2 session IDs or tickets)
    #[arg(long)]
    pub resume: bool,

    /// Pin the TLS protocol version
    #[arg(long, value_enum)]
    pub tls: Option<TlsVersion>,

    /// Client certificate chain (PEM)
    #[arg(long)]
    pub cert: Option<PathBuf>,

    /// Client private key (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long)]
    pub key: Option<PathBuf>,

    /// CA certificate(s) to verify the server (PEM)
    #[arg(long)]
    pub cacert: Option<PathBuf>,

    /// Do not verify the server certificate
    #[arg(short = 'k', long)]
    pub insecure: bool,

    /// Server name for SNI and verification (default: the URL host)
    #[arg(long)]
    pub sni: Option<String>,

    /// HTTP method
    #[arg(short = 'X', long, default_value = "GET")]
    pub method: String,

    /// Send a request body of this many bytes (with Content-Length)
    #[arg(long, default_value_t = 0)]
    pub body_size: usize,

    /// Extra request header "Name: value" (repeatable)
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,

    /// Connect/read/write timeout (e.g. 5s)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Print one JSON object on stdout instead of the text report
    #[arg(long)]
    pub json: bool,

    /// No progress lines on stderr
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// A parsed target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    /// Host as written in the URL (without brackets for IPv6).
    pub host: String,
    pub port: u16,
    /// Value for the Host header.
    pub authority: String,
    /// Path and query, starting with '/'.
    pub path: String,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 0.000_001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 10s, 500ms, 2m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

pub fn parse_url(url: &str) -> Result<Target> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        bail!("URL must start with https:// or http://: {url}");
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    if authority.is_empty() {
        bail!("URL has no host: {url}");
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| anyhow!("bad IPv6 host in {url}"))?;
        let host = &v6[..end];
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().with_context(|| format!("bad port in {url}"))?,
            None if after.is_empty() => default_port,
            None => bail!("bad authority in {url}"),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().with_context(|| format!("bad port in {url}"))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        bail!("URL has no host: {url}");
    }
    Ok(Target {
        tls,
        host,
        port,
        authority: authority.to_string(),
        path,
    })
}

/// Parses a "Name: value" header.
pub fn parse_header(h: &str) -> Result<(String, String)> {
    let (n, v) = h
        .split_once(':')
        .ok_or_else(|| anyhow!("header must be \"Name: value\": {h:?}"))?;
    let n = n.trim();
    if n.is_empty() || n.bytes().any(|b| b <= b' ' || b == 0x7f) {
        bail!("bad header name in {h:?}");
    }
    let v = v.trim();
    if v.bytes().any(|b| b == b'\r' || b == b'\n') {
        bail!("bad header value in {h:?}");
    }
    Ok((n.to_string(), v.to_string()))
}

/// Everything the workers need, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub addr: SocketAddr,
    pub mode: Mode,
    pub connections: usize,
    /// Event-loop threads (at most `connections`).
    pub threads: usize,
    /// Idle mode: hold `connections` open, no load.
    pub idle: bool,
    /// Idle mode: one request per connection once it is open.
    pub idle_request: bool,
    pub pipeline: usize,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub rate: Option<f64>,
    pub timeout: Duration,
    /// The serialized request (head + body), identical for every request; in websocket mode
    /// the upgrade request each connection sends once.
    pub request: Vec<u8>,
    pub head_request: bool,
    /// Websocket mode: the message frame.
    pub ws: Option<WsPlan>,
    /// h2 mode: the request every stream sends.
    pub h2: Option<H2Plan>,
}

/// What h2 mode sends on every stream.
#[derive(Debug, Clone)]
pub struct H2Plan {
    /// Concurrent streams per connection.
    pub streams: usize,
    pub method: http::Method,
    /// scheme, authority (the Host header's value when one is given) and path.
    pub uri: http::Uri,
    /// Regular fields (lower-case names; no Host, no connection-specific fields).
    pub headers: http::HeaderMap,
    /// The request body (empty: the HEADERS frame ends the stream).
    pub body: bytes::Bytes,
    /// grpc mode: `body` is one length-prefixed gRPC message, and each response must echo it
    /// (status 200, `application/grpc`, the same message, `grpc-status: 0` in the trailers).
    pub grpc: bool,
}

/// Fields HTTP/2 forbids (RFC 9113 section 8.2.2); `te` is allowed with `trailers` only.
const H2_CONNECTION_FIELDS: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The request of h2 mode: `Host` becomes `:authority`, the other headers fields as given.
pub fn h2_plan(
    target: &Target,
    method: &str,
    headers: &[(String, String)],
    body_size: usize,
    streams: usize,
) -> Result<H2Plan> {
    use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, USER_AGENT};
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| anyhow!("bad --method {method:?}"))?;
    let mut authority = target.authority.clone();
    let mut map = http::HeaderMap::new();
    for (n, v) in headers {
        let name = HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
            .map_err(|_| anyhow!("bad header name {n:?}"))?;
        if name == http::header::HOST {
            authority = v.clone();
            continue;
        }
        if H2_CONNECTION_FIELDS.contains(&name.as_str())
            || (name == http::header::TE && !v.eq_ignore_ascii_case("trailers"))
        {
            bail!(
                "header {n:?} is connection-specific: HTTP/2 forbids it (RFC 9113 section 8.2.2)"
            );
        }
        let value = HeaderValue::from_str(v).map_err(|_| anyhow!("bad value for header {n:?}"))?;
        map.append(name, value);
    }
    if !map.contains_key(USER_AGENT) {
        map.insert(USER_AGENT, HeaderValue::from_static("ringgate-load"));
    }
    if body_size > 0 && !map.contains_key(CONTENT_LENGTH) {
        map.insert(CONTENT_LENGTH, HeaderValue::from(body_size));
    }
    let uri = http::Uri::builder()
        .scheme(if target.tls { "https" } else { "http" })
        .authority(authority.as_str())
        .path_and_query(target.path.as_str())
        .build()
        .with_context(|| {
            format!(
                "no HTTP/2 request for authority {authority:?} and path {:?}",
                target.path
            )
        })?;
    Ok(H2Plan {
        streams,
        method,
        uri,
        headers: map,
        body: bytes::Bytes::from(vec![b'x'; body_size]),
        grpc: false,
    })
}

/// The request of grpc mode: a unary call, POST to the URL's path (`/bench.Echo/Unary` in
/// bench/run.sh) with `content-type: application/grpc` (unless `-H` gives another
/// `application/grpc+...`), `te: trailers` and one gRPC message of `message_size` payload
/// bytes, without `content-length` (as gRPC clients send it).
pub fn grpc_plan(
    target: &Target,
    headers: &[(String, String)],
    message_size: usize,
    streams: usize,
) -> Result<H2Plan> {
    use http::header::{HeaderValue, CONTENT_TYPE, TE};
    let mut plan = h2_plan(target, "POST", headers, 0, streams)?;
    if plan.headers.contains_key(http::header::CONTENT_LENGTH) {
        bail!("--mode grpc sends no content-length (gRPC clients do not)");
    }
    match plan.headers.get(CONTENT_TYPE) {
        None => {
            plan.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        }
        Some(v) if crate::grpc::is_grpc_content_type(v.as_bytes()) => {}
        Some(v) => bail!("--mode grpc: content-type {v:?} is not application/grpc"),
    }
    plan.headers
        .insert(TE, HeaderValue::from_static("trailers"));
    plan.body = crate::grpc::frame(&crate::grpc::payload(message_size));
    plan.grpc = true;
    Ok(plan)
}

/// What websocket mode sends once a connection is upgraded.
#[derive(Debug, Clone)]
pub struct WsPlan {
    /// One masked text frame, identical for every message (see `ws::MASK`).
    pub frame: Vec<u8>,
    pub message_size: usize,
}

impl Args {
    pub fn plan(&self) -> Result<Plan> {
        let target = parse_url(&self.url)?;
        if self.threads == 0 {
            bail!("-t/--threads must be at least 1");
        }
        if self.idle_request && self.idle.is_none() {
            bail!("--idle-request applies to --idle");
        }
        if let Some(n) = self.idle {
            if n == 0 {
                bail!("--idle must be at least 1");
            }
            if self.mode != Mode::Keepalive
                || self.rate.is_some()
                || self.requests.is_some()
                || self.pipeline > 1
            {
                bail!(
                    "--idle holds connections open: no --mode handshake, --rate, -n or --pipeline"
                );
            }
        }
        let connections = self.idle.unwrap_or(self.connections);
        if connections == 0 {
            bail!("-c/--connections must be at least 1");
        }
        if self.pipeline == 0 {
            bail!("--pipeline must be at least 1");
        }
        if self.pipeline > 1 && self.mode == Mode::Handshake {
            bail!("--pipeline applies to --mode keepalive and websocket only");
        }
        if self.mode == Mode::Websocket {
            if self.idle.is_some() || self.body_size > 0 || self.resume {
                bail!("--mode websocket sends messages: no --idle, --body-size or --resume");
            }
            if !self.method.eq_ignore_ascii_case("GET") {
                bail!("--mode websocket upgrades with GET: no -X {}", self.method);
            }
            if self.message_size > 1 << 24 {
                bail!("--message-size is at most 16 MiB");
            }
        } else if self.mode == Mode::Grpc {
            if self.body_size > 0 {
                bail!("--mode grpc sends one gRPC message: give its size with --message-size, not --body-size");
            }
            if !["GET", "POST"].contains(&self.method.to_ascii_uppercase().as_str()) {
                bail!("--mode grpc calls with POST: no -X {}", self.method);
            }
            if self.message_size > crate::grpc::MAX_MESSAGE {
                bail!("--message-size is at most 4 MiB in --mode grpc (gRPC's default limit)");
            }
        } else if self.message_size != 32 {
            bail!("--message-size applies to --mode websocket and grpc");
        }
        let h2_mode = matches!(self.mode, Mode::H2 | Mode::Grpc);
        if h2_mode {
            let m = if self.mode == Mode::H2 { "h2" } else { "grpc" };
            if self.streams == 0 {
                bail!("--streams must be at least 1");
            }
            if self.pipeline > 1 {
                bail!("--mode {m} sends one request per stream: use --streams, not --pipeline");
            }
            if self.rate.is_some() {
                bail!("--rate is not supported with --mode {m} (closed loop only)");
            }
        } else if self.streams != 1 {
            bail!("--streams applies to --mode h2 and grpc");
        }
        if self.pipeline > 1 && self.rate.is_some() {
            bail!("--pipeline with --rate is not supported; use more connections");
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("--rate must be a positive number of requests/s");
            }
        }
        if self.requests == Some(0) {
            bail!("-n/--requests must be at least 1");
        }
        let duration = match (self.duration, self.requests) {
            (None, None) => Some(Duration::from_secs(10)),
            (d, _) => d,
        };
        if self.resume && self.mode != Mode::Handshake {
            bail!("--resume applies to --mode handshake");
        }
        if target.tls {
            if self.cert.is_some() != self.key.is_some() {
                bail!("--cert and --key go together");
            }
            if self.cacert.is_none() && !self.insecure {
                bail!("give --cacert to verify the server, or --insecure");
            }
        } else if self.cert.is_some() || self.resume || self.tls.is_some() {
            bail!("TLS options given for a plain http:// URL");
        }
        let method = self.method.trim();
        if method.is_empty()
            || !method
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            bail!("bad --method {:?}", self.method);
        }
        let addr = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", target.host))?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to no address", target.host))?;

        let mut headers = Vec::new();
        for h in &self.headers {
            headers.push(parse_header(h)?);
        }
        let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        let mut req = format!("{method} {} HTTP/1.1\r\n", target.path);
        if !has("host") {
            req.push_str(&format!("Host: {}\r\n", target.authority));
        }
        if !has("user-agent") {
            req.push_str("User-Agent: ringgate-load\r\n");
        }
        for (n, v) in &headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if self.body_size > 0 && !has("content-length") {
            req.push_str(&format!("Content-Length: {}\r\n", self.body_size));
        }
        if self.mode == Mode::Handshake && !has("connection") {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        let mut request = req.into_bytes();
        request.resize(request.len() + self.body_size, b'x');
        let ws = (self.mode == Mode::Websocket).then(|| {
            request = crate::ws::upgrade_request(&target.path, &target.authority, &headers);
            WsPlan {
                frame: crate::ws::encode_frame(
                    crate::ws::OP_TEXT,
                    &crate::ws::message(self.message_size),
                    crate::ws::MASK,
                ),
                message_size: self.message_size,
            }
        });

        let h2 = match self.mode {
            Mode::H2 => Some(h2_plan(
                &target,
                method,
                &headers,
                self.body_size,
                self.streams,
            )?),
            Mode::Grpc => Some(grpc_plan(
                &target,
                &headers,
                self.message_size,
                self.streams,
            )?),
            _ => None,
        };

        Ok(Plan {
            target,
            addr,
            mode: self.mode,
            connections,
            threads: self.threads.min(connections),
            idle: self.idle.is_some(),
            idle_request: self.idle_request,
            pipeline: self.pipeline,
            duration,
            requests: self.requests,
            rate: self.rate,
            timeout: self.timeout,
            request,
            head_request: method.eq_ignore_ascii_case("HEAD"),
            ws,
            h2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        let mut all = vec!["ringgate-load"];
        all.extend_from_slice(v);
        Args::try_parse_from(all).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn urls() {
        let t = parse_url("https://127.0.0.1:8443/a/b?x=1").unwrap();
        assert!(t.tls);
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 8443);
        assert_eq!(t.authority, "127.0.0.1:8443");
        assert_eq!(t.path, "/a/b?x=1");
        let t = parse_url("http://localhost").unwrap();
        assert!(!t.tls);
        assert_eq!(t.port, 80);
        assert_eq!(t.path, "/");
        let t = parse_url("https://[::1]:9000").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 9000);
        let t = parse_url("http://h:1?q").unwrap();
        assert_eq!(t.path, "/?q");
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("https://:80/").is_err());
        assert!(parse_url("https://h:port/").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("X-A:  b c ").unwrap(),
            ("X-A".to_string(), "b c".to_string())
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn full_command_line() {
        let a = args(&[
            "https://127.0.0.1:8443/x",
            "--mode",
            "handshake",
            "-c",
            "50",
            "-d",
            "10s",
            "--resume",
            "--tls",
            "1.2",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
            "--cacert",
            "ca.pem",
            "--sni",
            "localhost",
            "-H",
            "X-Test: 1",
            "--body-size",
            "3",
            "-X",
            "POST",
            "--json",
        ]);
        assert_eq!(a.mode, Mode::Handshake);
        assert_eq!(a.connections, 50);
        assert_eq!(a.tls, Some(TlsVersion::V12));
        assert!(a.resume && a.json);
        let p = a.plan().unwrap();
        assert_eq!(p.duration, Some(Duration::from_secs(10)));
        let req = String::from_utf8(p.request).unwrap();
        assert!(req.starts_with("POST /x HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"));
        assert!(req.contains("X-Test: 1\r\n"));
        assert!(req.contains("Content-Length: 3\r\n"));
        assert!(req.contains("Connection: close\r\n"));
        assert!(req.ends_with("\r\n\r\nxxx"));
    }

    #[test]
    fn defaults_and_validation() {
        let p = args(&["http://127.0.0.1:8080/"]).plan().unwrap();
        assert_eq!(p.mode, Mode::Keepalive);
        assert_eq!(p.pipeline, 1);
        assert_eq!(p.duration, Some(Duration::from_secs(10)));
        assert!(!String::from_utf8(p.request).unwrap().contains("Connection"));
        let p = args(&["http://127.0.0.1:8080/", "-n", "100"])
            .plan()
            .unwrap();
        assert_eq!(p.duration, None);
        assert_eq!(p.requests, Some(100));
        // https needs --cacert or --insecure
        assert!(args(&["https://127.0.0.1:1/"]).plan().is_err());
        assert!(args(&["https://127.0.0.1:1/", "-k"]).plan().is_ok());
        assert!(args(&["https://127.0.0.1:1/", "-k", "--cert", "c"])
            .plan()
            .is_err());
        assert!(args(&["http://127.0.0.1:1/", "--resume"]).plan().is_err());
        assert!(
            args(&["http://127.0.0.1:1/", "--pipeline", "4", "--rate", "100"])
                .plan()
                .is_err()
        );
        assert!(args(&["http://127.0.0.1:1/", "-c", "0"]).plan().is_err());
        assert!(args(&["http://127.0.0.1:1/", "--rate=-5"]).plan().is_err());
        assert!(Args::try_parse_from(["ringgate-load", "x", "--tls", "1.1"]).is_err());
        assert!(Args::try_parse_from(["ringgate-load", "x", "--mode", "foo"]).is_err());
    }

    #[test]
    fn threads_and_idle() {
        let p = args(&["http://127.0.0.1:1/", "-t", "4", "-c", "2"])
            .plan()
            .unwrap();
        // No more threads than connections.
        assert_eq!(p.threads, 2);
        assert_eq!(args(&["http://127.0.0.1:1/"]).plan().unwrap().threads, 1);
        assert!(args(&["http://127.0.0.1:1/", "-t", "0"]).plan().is_err());
        let p = args(&[
            "http://127.0.0.1:1/",
            "--idle",
            "10000",
            "--idle-request",
            "-t",
            "2",
        ])
        .plan()
        .unwrap();
        assert!(p.idle && p.idle_request);
        assert_eq!((p.connections, p.threads), (10000, 2));
        assert!(args(&["http://127.0.0.1:1/", "--idle-request"])
            .plan()
            .is_err());
        assert!(args(&["http://127.0.0.1:1/", "--idle", "0"])
            .plan()
            .is_err());
        assert!(
            args(&["http://127.0.0.1:1/", "--idle", "5", "--rate", "10"])
                .plan()
                .is_err()
        );
        assert!(
            args(&["http://127.0.0.1:1/", "--idle", "5", "--mode", "handshake"])
                .plan()
                .is_err()
        );
    }
}
