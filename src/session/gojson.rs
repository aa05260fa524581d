//! Go-compatible encodings: `encoding/json` bytes (struct order, HTML escaping), RFC3339Nano
//! times and `time.Duration` strings. No I/O.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;
use std::time::Duration;

/// Go `json.Marshal` bytes: serde's struct-order output with `<`, `>`, `&`, U+2028 and U+2029
/// escaped as Go does. (Those characters can only occur inside strings, so a byte rewrite is exact.)
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    Ok(go_escape(serde_json::to_vec(value)?))
}

/// Go `json.MarshalIndent(v, "", "  ")` plus a trailing newline.
pub fn to_pretty<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = go_escape(serde_json::to_vec_pretty(value)?);
    out.push(b'\n');
    Ok(out)
}

fn go_escape(raw: Vec<u8>) -> Vec<u8> {
    let needs = raw.iter().any(|b| matches!(b, b'<' | b'>' | b'&' | 0xE2));
    if !needs {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if i + 2 < raw.len()
                && raw[i + 1] == 0x80
                && matches!(raw[i + 2], 0xA8 | 0xA9) =>
            {
                out.extend_from_slice(if raw[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                continue;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// Go `time.Time` JSON form in UTC: RFC3339 with nanoseconds, trailing zeros trimmed.
pub fn format_time(t: DateTime<Utc>) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// RFC3339 with whole seconds (the lock file's `created_at`).
pub fn format_time_seconds(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parse any RFC3339 time (Go accepts every fraction length and offset).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Go `time.Duration.String()`: `0s`, `1.5ms`, `50ms`, `2s`, `2.013s`, `5m0s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", fixed(ns, 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", fixed(ns, 1_000_000, 6));
    }
    let hours = ns / 3_600_000_000_000;
    let rem = ns % 3_600_000_000_000;
    let mins = rem / 60_000_000_000;
    let secs_ns = rem % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || mins > 0 {
        out.push_str(&format!("{mins}m"));
    }
    out.push_str(&fixed(secs_ns, 1_000_000_000, 9));
    out.push('s');
    out
}

/// `v / unit` with the remainder as a trimmed decimal fraction of `digits` places.
fn fixed(v: u128, unit: u128, digits: usize) -> String {
    let whole = v / unit;
    let frac = v % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:0digits$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// Parse a Go duration string (`200ms`, `1m30s`, `1.5h`) into nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    go_parse_duration::parse_duration(s.trim()).ok()
}
