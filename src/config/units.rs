//! nginx-style durations (`60s`, `500ms`, `1m`) and sizes (`16k`, `1m`), so values copied from an
//! nginx.conf mean the same thing here.

use std::time::Duration;

/// Parses an nginx time: a number with an optional unit (`ms`, `s`, `m`, `h`, `d`; no unit means
/// seconds, as in nginx), or several such parts (`1m30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration like 500ms, 60s, 5m or 1h"
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let factor_ms: u64 = match unit {
            "ms" => 1,
            "" | "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "`{text}` has an unknown time unit `{unit}` (ms, s, m, h, d)"
                ))
            }
        };
        total_ms = value
            .checked_mul(factor_ms)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| format!("`{text}` is too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Parses an nginx size: bytes with an optional `k` or `m` (or `g`) suffix, case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, factor) = match text.as_bytes().last() {
        Some(b'k' | b'K') => (&text[..text.len() - 1], 1024),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 1024 * 1024),
        Some(b'g' | b'G') => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 512, 16k or 1m"))?;
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A duration or size as written in the file: a bare integer (seconds or bytes) or a string with
/// a unit.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    /// A bare number: seconds for durations, bytes for sizes.
    Number(u64),
    /// A string with an nginx unit.
    Text(String),
}

impl Quantity {
    /// Interprets the value as a duration.
    pub fn duration(&self) -> Result<Duration, String> {
        match self {
            Quantity::Number(n) => Ok(Duration::from_secs(*n)),
            Quantity::Text(t) => parse_duration(t),
        }
    }

    /// Interprets the value as a size in bytes.
    pub fn size(&self) -> Result<u64, String> {
        match self {
            Quantity::Number(n) => Ok(*n),
            Quantity::Text(t) => parse_size(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_nginx() {
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes_follow_nginx() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("16k").unwrap(), 16384);
        assert_eq!(parse_size("1M").unwrap(), 1 << 20);
        assert!(parse_size("1q").is_err());
        assert!(parse_size("k").is_err());
    }
}
