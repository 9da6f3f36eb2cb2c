//! Choosing a location for a request and mapping its URI, as nginx does: locations match the
//! *normalized* path (percent-decoded, `//` merged, `.` and `..` resolved), so `/public/../admin`
//! is `/admin` and cannot slip past a rule written for `/admin`.

use std::borrow::Cow;

use std::sync::Arc;

use super::outcome::{LogFacts, Refusal};
use super::peer::Peer;
use super::refusal_log::Kind;
use super::request::Incoming;
use crate::config::{Config, Location, MatchKind, Server, Socket};
use crate::http::RequestHead;
use crate::tls::client_auth::ClientAuthMode;

/// Why a path cannot be normalized (nginx answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `..` climbs above the root.
    AboveRoot,
    /// A `%` not followed by two hex digits, or a decoded NUL.
    BadEncoding,
    /// The path does not start with `/`.
    NotAbsolute,
}

/// nginx's `$uri`: the decoded, normalized path (without the query). Borrowed when the path
/// is already normal, as nearly every real one is (no allocation on the request path).
pub fn normalize_path(raw: &[u8]) -> Result<Cow<'_, [u8]>, PathError> {
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize_slow(raw).map(Cow::Owned)
}

/// True when normalizing would give `raw` back: nothing to decode, no `.` or `..` segment, no
/// empty segment but a trailing one (a trailing slash is kept).
fn is_normal(raw: &[u8]) -> bool {
    if raw.contains(&b'%') {
        return false;
    }
    let rest = raw.get(1..).unwrap_or_default();
    let n = rest.split(|&b| b == b'/').count();
    rest.split(|&b| b == b'/')
        .enumerate()
        .all(|(i, seg)| match seg {
            b"." | b".." => false,
            b"" => i + 1 == n,
            _ => true,
        })
}

fn normalize_slow(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hi = raw.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = raw.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    let v = (h * 16 + l) as u8;
                    if v == 0 {
                        return Err(PathError::BadEncoding);
                    }
                    decoded.push(v);
                    i += 3;
                }
                _ => return Err(PathError::BadEncoding),
            }
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    for segment in decoded.split(|&b| b == b'/').skip(1) {
        match segment {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(PathError::AboveRoot);
                }
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            seg => {
                out.push(b'/');
                out.extend_from_slice(seg);
            }
        }
    }
    // Keep a trailing slash (or `/.`, `/..`) meaning "directory", as nginx does.
    let ends_dir = decoded.ends_with(b"/") || decoded.ends_with(b"/.") || decoded.ends_with(b"/..");
    if out.is_empty() || ends_dir {
        out.push(b'/');
    }
    Ok(out)
}

/// Picks the location for a normalized path as nginx does: an exact match; else the longest
/// prefix, if it is `^~`; else the first regex (in configuration order) that matches; else the
/// longest prefix.
pub fn find_location<'a>(locations: &'a [Location], path: &[u8]) -> Option<&'a Location> {
    let mut best: Option<&Location> = None;
    for loc in locations {
        let p = loc.path.as_bytes();
        match loc.kind {
            MatchKind::Exact if p == path => return Some(loc),
            MatchKind::Prefix | MatchKind::PrefixNoRegex
                if path.starts_with(p) && best.is_none_or(|b| b.path.len() < p.len()) =>
            {
                best = Some(loc);
            }
            _ => {}
        }
    }
    if best.is_some_and(|b| b.kind == MatchKind::PrefixNoRegex) {
        return best;
    }
    locations
        .iter()
        .find(|l| l.regex.as_ref().is_some_and(|r| r.is_match(path)))
        .or(best)
}

/// The target sent upstream, as nginx's `proxy_pass`:
/// - without a URI part, the client's original request target, unchanged;
/// - with one, the normalized path with the location's prefix replaced by that URI, then the
///   original query string.
pub fn map_target(
    out: &mut Vec<u8>,
    loc: &Location,
    uri: Option<&str>,
    raw_target: &[u8],
    normalized: &[u8],
) {
    match uri {
        None => out.extend_from_slice(raw_target),
        Some(uri) => {
            let rest = match loc.kind {
                // (The loader refuses a URI part in regex locations, as nginx does.)
                MatchKind::Exact | MatchKind::Regex | MatchKind::RegexNoCase => &[][..],
                MatchKind::Prefix | MatchKind::PrefixNoRegex => {
                    normalized.get(loc.path.len()..).unwrap_or(&[])
                }
            };
            out.extend_from_slice(uri.as_bytes());
            escape_path(out, rest);
            if let Some(q) = raw_target.iter().position(|&b| b == b'?') {
                out.extend_from_slice(&raw_target[q..]);
            }
        }
    }
}

/// Re-escapes a decoded path for the request line (nginx's NGX_ESCAPE_URI).
fn escape_path(out: &mut Vec<u8>, path: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in path {
        let keep = b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

/// A request's server and the names it is known by.
pub struct Routed<'a> {
    /// The server (virtual host) the Host selected among those on the address.
    pub server: &'a Server,
    /// `$host`.
    pub host: Cow<'a, [u8]>,
    /// `$uri`: the path normalized.
    pub uri: Cow<'a, [u8]>,
}

/// The route phase before locations: the normalized path, and the server by Host among the
/// servers on the address (421 when the Host escapes the TLS policy of the handshake).
pub fn route<'a>(
    config: &'a Config,
    socket: &Socket,
    peer: &Peer,
    incoming: Incoming<'a>,
    facts: &mut LogFacts,
) -> Result<Routed<'a>, Refusal> {
    let Incoming { head, bytes, .. } = incoming;
    let servers = &config.servers;
    let handshake = servers.get(peer.server).ok_or(Refusal::Internal)?;
    let raw_path = head.path_and_query.get(bytes);
    let path_only = raw_path.split(|&b| b == b'?').next().unwrap_or(raw_path);
    let uri = match normalize_path(path_only) {
        Ok(u) => u,
        Err(e) => {
            crate::refusal_line!(
                Kind::BadRequest,
                info,
                "listener={} peer={}: bad request path ({e:?}) (400)",
                handshake.name,
                peer.addr
            );
            return Err(Refusal::BadPath);
        }
    };
    let index = if socket.hosts.is_shared() {
        socket.hosts.select(head.host_for_nginx(bytes).as_deref())
    } else {
        peer.server
    };
    facts.server = index;
    let server = servers.get(index).ok_or(Refusal::Internal)?;
    let host = request_host(server, head, bytes);
    if let Some(why) = misdirected(socket, handshake, server, peer, head, bytes) {
        crate::refusal_line!(
            Kind::Misdirected,
            info,
            "listener={} peer={}: {why}; asked for host \"{}\" (421)",
            handshake.name,
            peer.addr,
            String::from_utf8_lossy(&host)
        );
        facts.decision = format!("deny: {why}").into();
        return Err(Refusal::Misdirected);
    }
    Ok(Routed { server, host, uri })
}

/// Domain fronting past client verification gets 421 Misdirected Request:
/// - nginx's rule: when several servers share the address and the client's SNI named one of
///   them, a request whose host is another name gets 421 if the server that host selects (or
///   the default one) verifies client certificates. One server on the address, or an SNI that
///   names none, is never checked: there was nothing else the handshake could have chosen;
/// - ringgate's own: when the Host selects a different server than the handshake did, and the
///   two ask for client certificates differently, the request would escape the TLS policy it
///   came through (nginx would apply the other server's verification to a handshake that was
///   not made for it).
///
/// Returns why, on a mismatch.
fn misdirected(
    socket: &Socket,
    handshake: &Server,
    chosen: &Server,
    peer: &Peer,
    head: &RequestHead,
    buf: &[u8],
) -> Option<String> {
    let hs_tls = handshake.tls.as_ref()?;
    if !std::ptr::eq(handshake, chosen) {
        if let Some(c) = chosen.tls.as_ref() {
            let differs = c.mode != hs_tls.mode
                || (c.mode != ClientAuthMode::Off
                    && !Arc::ptr_eq(c.client_auth(), hs_tls.client_auth()));
            if differs {
                return Some(format!(
                    "the TLS handshake was made for server `{}`, whose client-certificate policy differs from server `{}`",
                    handshake.name, chosen.name
                ));
            }
        }
    }
    if !socket.hosts.is_shared() || chosen.verify_client == ClientAuthMode::Off {
        return None;
    }
    let sni = peer.tls.as_ref()?.server_name.as_deref()?;
    socket.hosts.find(Some(sni.as_bytes()))?;
    let host = head.host_for_nginx(buf)?;
    (!host.eq_ignore_ascii_case(sni.as_bytes())).then(|| {
        format!(
            "client attempted to request the server name different from the one that was negotiated (\"{sni}\", server `{}` verifies client certificates)",
            chosen.name
        )
    })
}

/// nginx's `$host`: from the request, else the server's first name.
pub fn request_host<'a>(server: &'a Server, head: &RequestHead, bytes: &'a [u8]) -> Cow<'a, [u8]> {
    match head.host_for_nginx(bytes) {
        Some(h) => h,
        None => Cow::Borrowed(
            server
                .server_names
                .first()
                .map_or(&[][..], |s| s.as_bytes()),
        ),
    }
}

/// `$uri` for the access log: the normalized path, or the raw one when it does not normalize.
pub fn log_uri<'a>(head: &RequestHead, bytes: &'a [u8]) -> Cow<'a, [u8]> {
    let raw_path = head.path_and_query.get(bytes);
    let path_only = raw_path.split(|&b| b == b'?').next().unwrap_or(raw_path);
    normalize_path(path_only).unwrap_or(Cow::Borrowed(path_only))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Action;

    fn loc(path: &str, kind: MatchKind) -> Location {
        let regex = match kind {
            MatchKind::Regex => Some(regex::bytes::Regex::new(path).unwrap()),
            MatchKind::RegexNoCase => {
                Some(regex::bytes::Regex::new(&format!("(?i){path}")).unwrap())
            }
            _ => None,
        };
        Location {
            path: path.into(),
            kind,
            regex,
            action: Action::Return {
                status: 200,
                body: None,
            },
            set_headers: Vec::new(),
            verify_client: None,
            allow_roles: None,
            rules: Vec::new(),
            upgrade: Vec::new(),
        }
    }

    #[test]
    fn nginx_order_exact_prefix_stop_regex_prefix() {
        let locs = vec![
            loc("/", MatchKind::Prefix),
            loc("/images/", MatchKind::PrefixNoRegex),
            loc("\\.(gif|jpg)$", MatchKind::RegexNoCase),
            loc("^/api/v[0-9]+/", MatchKind::Regex),
            loc("/api/", MatchKind::Prefix),
            loc("/docs", MatchKind::Exact),
        ];
        let f = |p: &str| find_location(&locs, p.as_bytes()).unwrap().path.clone();
        assert_eq!(f("/docs"), "/docs");
        assert_eq!(f("/images/a.gif"), "/images/", "^~ stops the regex search");
        assert_eq!(f("/x/a.GIF"), "\\.(gif|jpg)$", "regex beats a plain prefix");
        assert_eq!(f("/api/v2/users"), "^/api/v[0-9]+/", "first matching regex");
        assert_eq!(f("/api/beta"), "/api/");
        assert_eq!(f("/other"), "/");
    }

    #[test]
    fn normalizes_like_nginx() {
        let n = |s: &str| {
            normalize_path(s.as_bytes()).map(|v| String::from_utf8(v.into_owned()).unwrap())
        };
        assert_eq!(n("/a//b/./c").unwrap(), "/a/b/c");
        assert_eq!(n("/public/../admin").unwrap(), "/admin");
        assert_eq!(n("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(n("/a/b/").unwrap(), "/a/b/");
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/a/..").unwrap(), "/");
        assert_eq!(n("/%41").unwrap(), "/A");
        assert_eq!(n("/.."), Err(PathError::AboveRoot));
        assert_eq!(n("/%zz"), Err(PathError::BadEncoding));
        assert_eq!(n("/%00"), Err(PathError::BadEncoding));
        assert_eq!(n("x"), Err(PathError::NotAbsolute));
    }

    /// The borrowed fast path gives exactly what the full normalization gives, for every path
    /// of up to six characters over the alphabet that matters.
    #[test]
    fn the_fast_path_agrees_with_full_normalization() {
        let alphabet = [b'/', b'.', b'a', b'%', b'2', b'e'];
        let mut paths: Vec<Vec<u8>> = vec![b"/".to_vec()];
        let mut frontier = paths.clone();
        for _ in 0..5 {
            let mut next = Vec::new();
            for p in &frontier {
                for &c in &alphabet {
                    let mut q = p.clone();
                    q.push(c);
                    next.push(q);
                }
            }
            paths.extend(next.iter().cloned());
            frontier = next;
        }
        let mut borrowed = 0;
        for p in &paths {
            let fast = normalize_path(p);
            assert_eq!(
                fast.as_deref().map_err(|e| *e),
                normalize_slow(p).as_deref().map_err(|e| *e),
                "{}",
                String::from_utf8_lossy(p)
            );
            if matches!(fast, Ok(Cow::Borrowed(_))) {
                borrowed += 1;
            }
        }
        assert!(borrowed > 100, "{borrowed} of {} borrowed", paths.len());
    }

    #[test]
    fn exact_beats_longest_prefix() {
        let locs = vec![
            loc("/", MatchKind::Prefix),
            loc("/api", MatchKind::Prefix),
            loc("/api/v1", MatchKind::Prefix),
            loc("/api", MatchKind::Exact),
        ];
        assert_eq!(find_location(&locs, b"/api/v1/x").unwrap().path, "/api/v1");
        assert_eq!(
            find_location(&locs, b"/api").unwrap().kind,
            MatchKind::Exact
        );
        assert_eq!(find_location(&locs, b"/apix").unwrap().path, "/api");
        assert_eq!(find_location(&locs, b"/other").unwrap().path, "/");
        assert!(find_location(&locs[1..3], b"/x").is_none());
    }

    #[test]
    fn maps_targets_like_proxy_pass() {
        let l = loc("/app/", MatchKind::Prefix);
        let mut out = Vec::new();
        map_target(&mut out, &l, None, b"/app/x%20y?q=1", b"/app/x y");
        assert_eq!(out, b"/app/x%20y?q=1");
        out.clear();
        map_target(&mut out, &l, Some("/"), b"/app/x%20y?q=1", b"/app/x y");
        assert_eq!(out, b"/x%20y?q=1");
        out.clear();
        map_target(&mut out, &l, Some("/v2/"), b"/app/", b"/app/");
        assert_eq!(out, b"/v2/");
        out.clear();
        let root = loc("/", MatchKind::Prefix);
        map_target(&mut out, &root, Some("/"), b"/a/b", b"/a/b");
        assert_eq!(out, b"/a/b");
    }
}
