//! nginx's `root`: static files under a directory, for GET and HEAD, with index files,
//! directory redirects, content types, `Last-Modified`/`ETag` and conditional 304s, as nginx's
//! static and index modules answer.
//!
//! The path served is the *normalized* `$uri` (no `..` survives normalization), so a request
//! can never leave `root`. File data is read through the worker's io_uring ring (monoio's
//! file API) in reused 64 KiB buffers and written to the client as it is read.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{BufMut, BytesMut};

use super::outcome::{LogFacts, Next, Refusal};
use super::refusal_log::Kind;
use super::request::Request;
use super::respond;
use crate::config::{StaticRoot, StaticTypes};
use crate::conn::Stream;
use crate::http;

const CHUNK: usize = 64 * 1024;

/// Serves the request's `$uri` from `root`. Returns whether the connection may carry another
/// request.
pub async fn serve(
    stream: &mut Stream,
    req: &Request<'_>,
    root: &StaticRoot,
    types: &StaticTypes,
    facts: &mut LogFacts,
) -> Next {
    let method = req.head.method_span.get(req.bytes);
    let is_head = method == b"HEAD";
    if method != b"GET" && !is_head {
        let refusal = Refusal::MethodNotAllowed;
        return respond::refuse_as(stream, req.dialect(), &refusal, facts).await;
    }
    // A request body on a GET is unusual; we do not read it, so the connection must close.
    let keep_alive = req.client_keeps_alive() && req.head.framing == http::BodyFraming::None;
    let path = match resolve(root, req.uri) {
        Ok(p) => p,
        Err(refusal) => return respond::refuse_as(stream, req.dialect(), &refusal, facts).await,
    };
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            let refusal = open_failed(&path, &e);
            return respond::refuse_as(stream, req.dialect(), &refusal, facts).await;
        }
    };
    if meta.is_dir() {
        let out = directory_redirect(req.uri, is_head, keep_alive, facts);
        return finish(stream, out, keep_alive, facts).await;
    }
    let file = match monoio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let refusal = open_failed(&path, &e);
            return respond::refuse_as(stream, req.dialect(), &refusal, facts).await;
        }
    };
    let size = meta.len();
    let (out, not_modified) = file_head(req, &path, &meta, types, keep_alive);
    facts.status = if not_modified { 304 } else { 200 };
    if not_modified || is_head {
        let _ = file.close().await;
        return finish(stream, out, keep_alive, facts).await;
    }
    facts.bytes = out.len() as u64;
    let limit = req.server.http.send_timeout;
    let sent = match write_within(stream, out, limit).await {
        Some(buf) => send_body(stream, &file, &path, size, buf, limit, facts).await,
        None => false,
    };
    let _ = file.close().await;
    Next::keep_if(sent && keep_alive)
}

/// Writes `buf` to the client within `limit` (nginx's `send_timeout`: a client that stops
/// reading a large file does not hold the connection longer); hands the buffer back, or None
/// when the write failed or timed out.
async fn write_within(stream: &mut Stream, buf: BytesMut, limit: Duration) -> Option<BytesMut> {
    match crate::deadline::timeout(limit, stream.write_owned(buf)).await {
        Ok((Ok(()), b)) => Some(b),
        _ => None,
    }
}

/// The file a `$uri` names under `root`: a directory's index file for a path ending in `/`
/// (403 when the directory has none, 404 when there is no directory).
fn resolve(root: &StaticRoot, uri: &[u8]) -> Result<PathBuf, Refusal> {
    let rel = uri.strip_prefix(b"/").unwrap_or(uri);
    let path = root.root.join(std::ffi::OsStr::from_bytes(rel));
    if !uri.ends_with(b"/") {
        return Ok(path);
    }
    if let Some(p) = root
        .index
        .iter()
        .map(|i| path.join(i))
        .find(|p| p.is_file())
    {
        return Ok(p);
    }
    if path.is_dir() {
        crate::refusal_line!(
            Kind::NotFound,
            info,
            "directory index of \"{}\" is forbidden (403)",
            path.display()
        );
        Err(Refusal::DirectoryListing)
    } else {
        Err(Refusal::NotFound)
    }
}

/// nginx: a directory without the slash is redirected to the slash.
fn directory_redirect(
    uri: &[u8],
    is_head: bool,
    keep_alive: bool,
    facts: &mut LogFacts,
) -> BytesMut {
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(b"HTTP/1.1 301 Moved Permanently\r\nServer: ringgate\r\nLocation: ");
    out.put_slice(uri);
    out.put_slice(b"/");
    let body = http::canned::error_page(301, "Moved Permanently");
    out.put_slice(
        format!(
            "\r\nContent-Type: text/html\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            }
        )
        .as_bytes(),
    );
    facts.status = 301;
    if !is_head {
        out.put_slice(&body);
        facts.body_bytes = body.len() as u64;
    }
    out
}

/// The response head for a file: 200, or 304 when the client's `If-None-Match` /
/// `If-Modified-Since` matches (the flag returned).
fn file_head(
    req: &Request<'_>,
    path: &Path,
    meta: &std::fs::Metadata,
    types: &StaticTypes,
    keep_alive: bool,
) -> (BytesMut, bool) {
    let (head, bytes) = (req.head, req.bytes);
    let size = meta.len();
    let mtime = meta.mtime();
    let etag = format!("\"{mtime:x}-{size:x}\"");
    let last_modified = crate::clock::http_date(mtime);
    let not_modified = head
        .header(bytes, b"if-none-match")
        .map(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii() == etag.as_bytes() || t.trim_ascii() == b"*")
        })
        .unwrap_or_else(|| {
            head.header(bytes, b"if-modified-since")
                .is_some_and(|v| v.trim_ascii() == last_modified.as_bytes())
        });
    let mut out = BytesMut::with_capacity(CHUNK);
    let status = if not_modified {
        "304 Not Modified"
    } else {
        "200 OK"
    };
    out.put_slice(
        format!(
            "HTTP/1.1 {status}\r\nServer: ringgate\r\nDate: {}\r\nContent-Type: {}\r\n",
            String::from_utf8_lossy(&crate::clock::cached_http_date()),
            content_type(path, types)
        )
        .as_bytes(),
    );
    if !not_modified {
        out.put_slice(format!("Content-Length: {size}\r\n").as_bytes());
    }
    out.put_slice(
        format!(
            "Last-Modified: {last_modified}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n{}\r\n",
            if keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            }
        )
        .as_bytes(),
    );
    (out, not_modified)
}

/// Reads the file through the ring in `CHUNK`s and writes each to the client. False when the
/// body could not be sent whole (the length is promised, so the connection must close).
async fn send_body(
    stream: &mut Stream,
    file: &monoio::fs::File,
    path: &Path,
    size: u64,
    mut buf: BytesMut,
    limit: Duration,
    facts: &mut LogFacts,
) -> bool {
    use monoio::buf::IoBufMut;
    let mut pos: u64 = 0;
    while pos < size {
        buf.clear();
        let want = usize::try_from(size - pos).unwrap_or(CHUNK).min(CHUNK);
        if buf.capacity() < want {
            buf.reserve(want);
        }
        let (res, slice) = file.read_at(buf.slice_mut(0..want), pos).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => {
                // The file shrank or failed under us.
                log::error!(
                    "\"{}\" ended at {pos} of {size} bytes while being sent; closing the connection",
                    path.display()
                );
                return false;
            }
            Ok(n) => {
                pos += n as u64;
                facts.body_bytes = pos;
                facts.bytes += n as u64;
            }
        }
        match write_within(stream, buf, limit).await {
            Some(b) => buf = b,
            None => return false,
        }
    }
    true
}

/// The content type for a file name's extension.
fn content_type<'a>(path: &Path, types: &'a StaticTypes) -> &'a str {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(|e| types.types.get(&e.to_ascii_lowercase()))
        .map_or(types.default_type.as_str(), String::as_str)
}

/// Why a file cannot be served, logged: 403 when permission is denied, else 404.
fn open_failed(path: &Path, e: &std::io::Error) -> Refusal {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        crate::refusal_line!(
            Kind::NotFound,
            error,
            "open() \"{}\" failed ({e}) (403)",
            path.display()
        );
        Refusal::Unreadable
    } else {
        crate::refusal_line!(
            Kind::NotFound,
            info,
            "open() \"{}\" failed ({e}) (404)",
            path.display()
        );
        Refusal::NotFound
    }
}

/// Sends a complete head-only (or small) response.
async fn finish(
    stream: &mut Stream,
    out: BytesMut,
    keep_alive: bool,
    facts: &mut LogFacts,
) -> Next {
    facts.bytes = out.len() as u64;
    let (res, _) = stream.write_owned(out).await;
    Next::keep_if(res.is_ok() && keep_alive)
}
