//! Reading the files a configuration names (the configuration itself, certificates, keys,
//! CRLs, OCSP responses, ticket keys) with bounds: a path that names a device, a FIFO or a
//! runaway file gets an error instead of a hang or an exhausted memory at load or reload;
//! and opening the log files ringgate writes (error log, access logs) all the same way.

use std::io::{self, Read};
use std::path::Path;

/// Largest file ringgate reads as configuration material. The largest real one is a CRL of a
/// big CA (a few MiB); 64 MiB leaves room and still bounds a mistake.
pub const MAX_FILE: u64 = 64 * 1024 * 1024;

/// Reads a whole regular file of at most [`MAX_FILE`] bytes.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    read_at_most(path, MAX_FILE)
}

/// Reads a whole regular file as UTF-8 text, of at most [`MAX_FILE`] bytes.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

fn read_at_most(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    // Checked before opening: opening a FIFO would block until a writer comes.
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a device, FIFO or directory)",
        ));
    }
    if meta.len() > max {
        return Err(too_large(max));
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow between the check and the read: read one byte past the bound to see.
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(out)
}

/// Opens a log file for appending, creating it 0640 if missing: O_APPEND keeps each `write`
/// whole at the end even with several writers, and 0640 keeps client addresses and identities
/// away from other users. The error log and every access log are opened this one way.
pub fn open_log(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

fn too_large(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {} MiB", max / (1024 * 1024)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let e = read(Path::new("/dev/zero")).expect_err("/dev/zero");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let d = tempfile::tempdir().expect("tempdir");
        assert!(read(d.path()).is_err());
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read(&fifo).expect_err("fifo");
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
    }

    #[test]
    fn files_over_the_bound_are_refused_and_small_ones_read() {
        let d = tempfile::tempdir().expect("tempdir");
        let big = d.path().join("big");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(MAX_FILE + 1))
            .expect("sparse file");
        let e = read(&big).expect_err("too large");
        assert!(e.to_string().contains("larger than 64 MiB"), "{e}");
        let e = read_at_most(&big, 10).expect_err("too large");
        assert!(e.to_string().contains("larger than"), "{e}");
        let small = d.path().join("small");
        std::fs::write(&small, "text\n").expect("write");
        assert_eq!(read_to_string(&small).expect("read"), "text\n");
        std::fs::write(&small, [0xff, 0xfe]).expect("write");
        assert!(read_to_string(&small).is_err());
    }
}
