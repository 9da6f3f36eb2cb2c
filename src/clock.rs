//! Wall-clock formatting without a date crate: the formats nginx and logs use.

use std::time::{SystemTime, UNIX_EPOCH};

/// Calendar fields of a UTC instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day, 1..=31.
    pub day: u32,
    /// Hour.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
}

/// Converts Unix seconds to UTC calendar fields (Howard Hinnant's days-from-civil inverse).
pub fn civil(unix: i64) -> Civil {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: ((secs % 3600) / 60) as u32,
        second: (secs % 60) as u32,
    }
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2026-11-23T14:05:09Z`, for log lines.
pub fn iso8601(unix: i64) -> String {
    let c = civil(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// OpenSSL's ASN1_TIME_print form, as nginx's `$ssl_client_v_end`: `Nov 23 14:05:09 2026 GMT`.
pub fn openssl_time(unix: i64) -> String {
    let c = civil(unix);
    let month = MONTHS.get(c.month as usize - 1).copied().unwrap_or("???");
    format!(
        "{month} {:>2} {:02}:{:02}:{:02} {} GMT",
        c.day, c.hour, c.minute, c.second, c.year
    )
}

/// nginx's `$time_local` (in UTC): `23/Nov/2026:14:05:09 +0000`.
pub fn time_local(unix: i64) -> String {
    let c = civil(unix);
    let month = MONTHS.get(c.month as usize - 1).copied().unwrap_or("???");
    format!(
        "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

/// nginx's `$time_iso8601` (in UTC): `2026-11-23T14:05:09+00:00`.
pub fn time_iso8601(unix: i64) -> String {
    let c = civil(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `$time_local` and `$time_iso8601` of the current second, formatted once per second per
/// thread (log lines ask for them on every request).
struct TimeCache {
    second: i64,
    local: String,
    iso: String,
}

thread_local! {
    static TIMES: std::cell::RefCell<TimeCache> = const {
        std::cell::RefCell::new(TimeCache { second: i64::MIN, local: String::new(), iso: String::new() })
    };
}

fn with_times(f: impl FnOnce(&TimeCache)) {
    let now = unix_now();
    TIMES.with(|t| {
        let mut t = t.borrow_mut();
        if t.second != now {
            t.second = now;
            t.local = time_local(now);
            t.iso = time_iso8601(now);
        }
        f(&t);
    });
}

/// Appends `$time_local` for now.
pub fn push_time_local(out: &mut Vec<u8>) {
    with_times(|t| out.extend_from_slice(t.local.as_bytes()));
}

/// Appends `$time_iso8601` for now.
pub fn push_time_iso8601(out: &mut Vec<u8>) {
    with_times(|t| out.extend_from_slice(t.iso.as_bytes()));
}

/// Appends [`openssl_time`] without a temporary string.
pub fn push_openssl_time(out: &mut Vec<u8>, unix: i64) {
    use std::io::Write;
    let c = civil(unix);
    let month = MONTHS.get(c.month as usize - 1).copied().unwrap_or("???");
    let _ = write!(
        out,
        "{month} {:>2} {:02}:{:02}:{:02} {} GMT",
        c.day, c.hour, c.minute, c.second, c.year
    );
}

/// The IMF-fixdate of RFC 9110 for the `Date` header: `Mon, 23 Nov 2026 14:05:09 GMT`.
pub fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let c = civil(unix);
    let weekday = DAYS[unix.div_euclid(86_400).rem_euclid(7) as usize];
    let month = MONTHS.get(c.month as usize - 1).copied().unwrap_or("???");
    format!(
        "{weekday}, {:02} {month} {} {:02}:{:02}:{:02} GMT",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

thread_local! {
    static DATE: std::cell::RefCell<(i64, bytes::Bytes)> =
        const { std::cell::RefCell::new((i64::MIN, bytes::Bytes::new())) };
}

/// The `Date` header value for now, formatted at most once per second per thread.
pub fn cached_http_date() -> bytes::Bytes {
    let now = unix_now();
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            *d = (now, bytes::Bytes::from(http_date(now)));
        }
        d.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_795_442_709), "2026-11-23T14:05:09Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(openssl_time(1_795_442_709), "Nov 23 14:05:09 2026 GMT");
        assert_eq!(openssl_time(0), "Jan  1 00:00:00 1970 GMT");
        assert_eq!(http_date(1_795_442_709), "Mon, 23 Nov 2026 14:05:09 GMT");
        assert_eq!(time_local(1_795_442_709), "23/Nov/2026:14:05:09 +0000");
        assert_eq!(time_iso8601(1_795_442_709), "2026-11-23T14:05:09+00:00");
        let mut out = Vec::new();
        push_openssl_time(&mut out, 1_795_442_709);
        assert_eq!(out, openssl_time(1_795_442_709).as_bytes());
    }
}
