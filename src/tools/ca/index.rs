//! The files of an `openssl ca` directory: `index.txt` (the certificate database), `serial`
//! and `crlnumber` (hex counters), read and written byte-compatibly so that `openssl ca`,
//! `openssl ocsp -index` and `ringgate ca` can take turns on one CA.
//!
//! An `index.txt` line has six tab-separated fields: status (`V` valid, `R` revoked, `E`
//! expired), expiry time, revocation time (`YYMMDDHHMMSSZ[,reason]`, empty unless revoked),
//! serial in upper-case hex, file name (always `unknown`) and subject in OpenSSL's one-line
//! form (`/C=CN/O=MyCompany/CN=client1`).

use std::fmt::Write as _;
use std::path::Path;

use super::CaError;

/// One line of `index.txt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `V`, `R` or `E`.
    pub status: char,
    /// Expiry as written (UTCTime or GeneralizedTime text).
    pub expires: String,
    /// Revocation time and reason as written (`240101000000Z,keyCompromise`), or empty.
    pub revoked: String,
    /// Serial, upper-case hex.
    pub serial: String,
    /// The file field (`unknown`).
    pub file: String,
    /// Subject, OpenSSL one-line form.
    pub subject: String,
}

impl Entry {
    /// Expiry, Unix seconds (None when the text is not a time).
    pub fn expires_at(&self) -> Option<i64> {
        parse_time(&self.expires)
    }

    /// Revocation time, Unix seconds.
    pub fn revoked_at(&self) -> Option<i64> {
        parse_time(self.revoked.split(',').next().unwrap_or(""))
    }

    /// The revocation reason, as written after the comma.
    pub fn reason(&self) -> Option<&str> {
        self.revoked.split_once(',').map(|(_, r)| r)
    }

    /// Whether this is the entry for `serial` (hex, any case, leading zeros ignored).
    pub fn is_serial(&self, serial: &str) -> bool {
        same_serial(&self.serial, serial)
    }
}

/// Whether two hex serials are the same number.
pub fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches('0').to_ascii_uppercase();
    norm(a) == norm(b)
}

/// Reads `index.txt` (a missing file is an empty database).
pub fn read_index(path: &Path) -> Result<Vec<Entry>, CaError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CaError::io(path, e)),
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || CaError::Database {
            path: path.display().to_string(),
            line: n + 1,
        };
        if f.len() != 6 {
            return Err(bad());
        }
        let status = f[0]
            .chars()
            .next()
            .filter(|c| "VRE".contains(*c))
            .ok_or_else(bad)?;
        out.push(Entry {
            status,
            expires: f[1].to_string(),
            revoked: f[2].to_string(),
            serial: f[3].to_string(),
            file: f[4].to_string(),
            subject: f[5].to_string(),
        });
    }
    Ok(out)
}

/// Writes `index.txt` as `openssl ca` does: the new file beside it, the old one kept as
/// `index.txt.old`, then the rename.
pub fn write_index(path: &Path, entries: &[Entry]) -> Result<(), CaError> {
    let mut text = String::new();
    for e in entries {
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.status, e.expires, e.revoked, e.serial, e.file, e.subject
        );
    }
    replace_file(path, text.as_bytes(), "old")
}

/// Writes `bytes` to `path` through `path.new`, keeping the previous content as
/// `path.<backup>`, so that a crash leaves either the old or the new file.
pub fn replace_file(path: &Path, bytes: &[u8], backup: &str) -> Result<(), CaError> {
    let with = |ext: &str| {
        let mut p = path.as_os_str().to_owned();
        p.push(".");
        p.push(ext);
        std::path::PathBuf::from(p)
    };
    let new = with("new");
    std::fs::write(&new, bytes).map_err(|e| CaError::io(&new, e))?;
    if path.exists() {
        let old = with(backup);
        std::fs::copy(path, &old).map_err(|e| CaError::io(&old, e))?;
    }
    std::fs::rename(&new, path).map_err(|e| CaError::io(path, e))
}

/// Reads a hex counter file (`serial`, `crlnumber`) as big-endian bytes.
pub fn read_counter(path: &Path) -> Result<Vec<u8>, CaError> {
    let text = std::fs::read_to_string(path).map_err(|e| CaError::io(path, e))?;
    parse_hex(text.trim()).ok_or_else(|| CaError::Counter {
        path: path.display().to_string(),
    })
}

/// Writes a counter the way OpenSSL does: upper-case hex, an even number of digits.
pub fn write_counter(path: &Path, value: &[u8]) -> Result<(), CaError> {
    replace_file(path, format!("{}\n", hex(value)).as_bytes(), "old")
}

/// A counter or serial as `openssl ca` writes it in `serial`, `crlnumber` and `index.txt`:
/// [`serial_hex`](crate::x509::identity::serial_hex), the one place serials become hex
/// (upper case, leading zero bytes left out, `00` for zero).
pub fn hex(value: &[u8]) -> String {
    crate::x509::identity::serial_hex(value)
}

/// Parses hex digits (odd counts allowed) into big-endian bytes.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = if t.len() % 2 == 1 {
        format!("0{t}")
    } else {
        t.to_string()
    };
    (0..padded.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&padded[i..i + 2], 16).ok())
        .collect()
}

/// Adds one to a big-endian counter.
pub fn increment(value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    for b in v.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return v;
        }
    }
    v.insert(0, 1);
    v
}

/// An ASN.1 time as `index.txt` holds it: UTCTime `YYMMDDHHMMSSZ` for 1950-2049, else
/// GeneralizedTime `YYYYMMDDHHMMSSZ` (what OpenSSL writes).
pub fn format_time(unix: i64) -> String {
    let c = crate::clock::civil(unix);
    if (1950..2050).contains(&c.year) {
        format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            c.year % 100,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second
        )
    } else {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

/// Parses UTCTime or GeneralizedTime text.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.strip_suffix('Z')?;
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r).and_then(|s| s.parse::<i64>().ok());
    let (year, rest) = match t.len() {
        12 => {
            let yy = n(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        14 => (n(0..4)?, 4),
        _ => return None,
    };
    let (mo, d) = (n(rest..rest + 2)?, n(rest + 2..rest + 4)?);
    let (h, mi, s) = (
        n(rest + 4..rest + 6)?,
        n(rest + 6..rest + 8)?,
        n(rest + 8..rest + 10)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some(crate::x509::ocsp::days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// A Name in OpenSSL's one-line form (`X509_NAME_oneline`): `/C=CN/O=MyCompany/CN=client1`.
pub fn oneline(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter_rdn() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let short = match oid.as_str() {
                "2.5.4.6" => "C",
                "2.5.4.8" => "ST",
                "2.5.4.7" => "L",
                "2.5.4.10" => "O",
                "2.5.4.11" => "OU",
                "2.5.4.3" => "CN",
                "2.5.4.5" => "serialNumber",
                "1.2.840.113549.1.9.1" => "emailAddress",
                "0.9.2342.19200300.100.1.25" => "DC",
                "0.9.2342.19200300.100.1.1" => "UID",
                _ => oid.as_str(),
            };
            let value = attr
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|_| format!("{:?}", attr.as_slice()));
            let _ = write!(out, "/{short}={value}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_openssl_hex() {
        assert_eq!(parse_hex("1000"), Some(vec![0x10, 0x00]));
        assert_eq!(parse_hex("abc"), Some(vec![0x0a, 0xbc]));
        assert_eq!(parse_hex("xyz"), None);
        assert_eq!(hex(&increment(&[0x10, 0x00])), "1001");
        assert_eq!(hex(&increment(&[0xff])), "0100");
        assert_eq!(hex(&[0, 0, 0x7f]), "7F");
        assert!(same_serial("01001", "1001"));
        assert!(same_serial("abcd", "ABCD"));
    }

    #[test]
    fn times_round_trip() {
        let t = 1_767_225_600; // 2026-01-01T00:00:00Z
        assert_eq!(format_time(t), "260101000000Z");
        assert_eq!(parse_time("260101000000Z"), Some(t));
        let far = crate::x509::ocsp::days_from_civil(2051, 6, 1) * 86_400;
        assert_eq!(format_time(far), "20510601000000Z");
        assert_eq!(parse_time("20510601000000Z"), Some(far));
        assert_eq!(parse_time("991231235959Z").map(|x| x < 0), Some(false));
        assert_eq!(parse_time("nonsense"), None);
    }

    #[test]
    fn index_lines_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index.txt");
        let text = "V\t270101000000Z\t\t1000\tunknown\t/C=CN/O=MyCompany/CN=client1\n\
                    R\t270101000000Z\t260101000000Z,keyCompromise\t1001\tunknown\t/CN=x\n";
        std::fs::write(&p, text).unwrap();
        let e = read_index(&p).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].reason(), Some("keyCompromise"));
        assert_eq!(e[1].revoked_at(), Some(1_767_225_600));
        write_index(&p, &e).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        assert!(dir.path().join("index.txt.old").exists());
        std::fs::write(&p, "V\tbroken\n").unwrap();
        assert!(matches!(
            read_index(&p),
            Err(CaError::Database { line: 1, .. })
        ));
        assert!(read_index(&dir.path().join("none")).unwrap().is_empty());
    }
}
