//! nginx's `root`: static files under a directory, for GET and HEAD, with index files,
//! directory redirects, content types, `Last-Modified`/`ETag` and conditional 304s, as nginx's
//! static and index modules answer.
//!
//! The path served is the *normalized* `$uri` (no `..` survives normalization), so a request
//! can never leave `root`. File data is read through the worker's io_uring ring (monoio's
//! file API) in reused 64 KiB buffers and written to the client as it is read.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bytes::{BufMut, BytesMut};

use super::peer::LogFacts;
use crate::config::{StaticRoot, StaticTypes};
use crate::conn::Stream;
use crate::http::{self, Canned, RequestHead};

const CHUNK: usize = 64 * 1024;

/// Serves `uri` from `root` (the request head in `hb`). Returns Ok(true) when the connection
/// may carry another request.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    stream: &mut Stream,
    head: &RequestHead,
    hb: &[u8],
    root: &StaticRoot,
    uri: &[u8],
    types: &StaticTypes,
    keep_alive: bool,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    let method = head.method_span.get(hb);
    let is_head = method == b"HEAD";
    if method != b"GET" && !is_head {
        return canned(stream, Canned::MethodNotAllowed, facts).await;
    }
    // A request body on a GET is unusual; we do not read it, so the connection must close.
    let keep_alive = keep_alive && head.framing == http::BodyFraming::None;
    let rel = uri.strip_prefix(b"/").unwrap_or(uri);
    let mut path = root.root.join(std::ffi::OsStr::from_bytes(rel));
    if uri.ends_with(b"/") {
        match root
            .index
            .iter()
            .map(|i| path.join(i))
            .find(|p| p.is_file())
        {
            Some(p) => path = p,
            None => {
                let page = if path.is_dir() {
                    log::info!(
                        "directory index of \"{}\" is forbidden (403)",
                        path.display()
                    );
                    Canned::Forbidden
                } else {
                    Canned::NotFound
                };
                return canned(stream, page, facts).await;
            }
        }
    }
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => return not_found(stream, &path, &e, facts).await,
    };
    if meta.is_dir() {
        // nginx: a directory without the slash is redirected to the slash.
        let mut location = Vec::with_capacity(uri.len() + 1);
        location.extend_from_slice(uri);
        location.push(b'/');
        let mut out = BytesMut::with_capacity(256);
        out.put_slice(b"HTTP/1.1 301 Moved Permanently\r\nServer: ringgate\r\nLocation: ");
        out.put_slice(&location);
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
        return finish(stream, out, keep_alive, facts).await;
    }
    let file = match monoio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return not_found(stream, &path, &e, facts).await,
    };
    let size = meta.len();
    let mtime = meta.mtime();
    let etag = format!("\"{mtime:x}-{size:x}\"");
    let last_modified = crate::clock::http_date(mtime);
    let not_modified = head
        .header(hb, b"if-none-match")
        .map(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii() == etag.as_bytes() || t.trim_ascii() == b"*")
        })
        .unwrap_or_else(|| {
            head.header(hb, b"if-modified-since")
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
            content_type(&path, types)
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
    facts.status = if not_modified { 304 } else { 200 };
    if not_modified || is_head {
        let _ = file.close().await;
        return finish(stream, out, keep_alive, facts).await;
    }
    facts.bytes = out.len() as u64;
    let (res, mut buf) = stream.write_owned(out).await;
    res.map_err(|_| ())?;
    let mut pos: u64 = 0;
    while pos < size {
        buf.clear();
        let want = usize::try_from(size - pos).unwrap_or(CHUNK).min(CHUNK);
        if buf.capacity() < want {
            buf.reserve(want);
        }
        use monoio::buf::IoBufMut;
        let (res, slice) = file.read_at(buf.slice_mut(0..want), pos).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => {
                // The file shrank or failed under us: the length is promised, so close.
                log::error!(
                    "\"{}\" ended at {pos} of {size} bytes while being sent; closing the connection",
                    path.display()
                );
                let _ = file.close().await;
                return Err(());
            }
            Ok(n) => {
                pos += n as u64;
                facts.body_bytes = pos;
                facts.bytes += n as u64;
            }
        }
        let (res, b) = stream.write_owned(buf).await;
        buf = b;
        if res.is_err() {
            let _ = file.close().await;
            return Err(());
        }
    }
    let _ = file.close().await;
    if keep_alive {
        Ok(true)
    } else {
        Err(())
    }
}

/// The content type for a file name's extension.
fn content_type<'a>(path: &Path, types: &'a StaticTypes) -> &'a str {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(|e| types.types.get(&e.to_ascii_lowercase()))
        .map_or(types.default_type.as_str(), String::as_str)
}

async fn not_found(
    stream: &mut Stream,
    path: &Path,
    e: &std::io::Error,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    let page = if e.kind() == std::io::ErrorKind::PermissionDenied {
        log::error!("open() \"{}\" failed ({e}) (403)", path.display());
        Canned::Forbidden
    } else {
        log::info!("open() \"{}\" failed ({e}) (404)", path.display());
        Canned::NotFound
    };
    canned(stream, page, facts).await
}

async fn canned(stream: &mut Stream, page: Canned, facts: &mut LogFacts) -> Result<bool, ()> {
    super::connection::respond_canned(stream, page, facts).await
}

async fn finish(
    stream: &mut Stream,
    out: BytesMut,
    keep_alive: bool,
    facts: &mut LogFacts,
) -> Result<bool, ()> {
    facts.bytes = out.len() as u64;
    let (res, _) = stream.write_owned(out).await;
    res.map_err(|_| ())?;
    if keep_alive {
        Ok(true)
    } else {
        Err(())
    }
}
