//! Go-syntax durations (`168h`, `1m30s`, `1.5h`, `300ms`) for every config file and env value.
//!
//! The one serde module for durations: [`serde`] for `Duration` fields, [`option`] for
//! `Option<Duration>` fields. Parsing wraps the `go-parse-duration` crate and rejects negative
//! values; formatting reproduces Go's `time.Duration.String()` so a value read and written back
//! compares equal. Invariant: no I/O.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("duration must be >= 0: {0:?}")]
    Negative(String),
}

/// Parse a Go duration string (units ns, us, µs, ms, s, m, h; `0` alone is allowed).
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    let nanos =
        go_parse_duration::parse_duration(t).map_err(|_| DurationError::Invalid(s.to_string()))?;
    if nanos < 0 {
        return Err(DurationError::Negative(s.to_string()));
    }
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}

/// Format like Go's `time.Duration.String()`: `168h0m0s`, `1m30s`, `1.5s`, `300ms`, `0s`.
pub fn format(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_string();
    }
    if total < 1_000 {
        return format!("{total}ns");
    }
    if total < 1_000_000 {
        return format!("{}µs", frac(total, 1_000));
    }
    if total < 1_000_000_000 {
        return format!("{}ms", frac(total, 1_000_000));
    }
    let secs_total = total / 1_000_000_000;
    let sub = total % 1_000_000_000;
    let h = secs_total / 3600;
    let m = (secs_total % 3600) / 60;
    let s = secs_total % 60;
    let secs = frac(u128::from(s as u64) * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / unit` with the fraction's trailing zeros trimmed (`1500, 1000` → `1.5`).
fn frac(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Visitor shared by both serde modules: a string, or the integer `0`.
struct DurVisitor;

impl ::serde::de::Visitor<'_> for DurVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Go duration string such as 168h, 1m30s or 1.5h")
    }
    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
    fn visit_u64<E: ::serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        if v == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(E::custom(format!(
                "invalid duration {v}: missing unit (use e.g. {v}s or {v}h)"
            )))
        }
    }
    fn visit_i64<E: ::serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        if v < 0 {
            return Err(E::custom(DurationError::Negative(v.to_string())));
        }
        self.visit_u64(v.unsigned_abs())
    }
}

/// `#[serde(with = "crate::ops::duration::serde")]` for `Duration` fields.
pub mod serde {
    use std::time::Duration;

    pub fn serialize<S: ::serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub fn deserialize<'de, D: ::serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(super::DurVisitor)
    }
}

/// `#[serde(with = "crate::ops::duration::option")]` for `Option<Duration>` fields
/// (absent / null / empty string = `None`).
pub mod option {
    use std::time::Duration;

    pub fn serialize<S: ::serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: ::serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        struct OptVisitor;
        impl<'de> ::serde::de::Visitor<'de> for OptVisitor {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a Go duration string such as 168h, 1m30s or 1.5h, or nothing")
            }
            fn visit_none<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: ::serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: ::serde::Deserializer<'de>>(
                self,
                d: D2,
            ) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(self)
            }
            fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.trim().is_empty() {
                    return Ok(None);
                }
                super::DurVisitor.visit_str(v).map(Some)
            }
            fn visit_u64<E: ::serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                super::DurVisitor.visit_u64(v).map(Some)
            }
            fn visit_i64<E: ::serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                super::DurVisitor.visit_i64(v).map(Some)
            }
        }
        d.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        assert_eq!(parse("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert!(matches!(parse("-1h"), Err(DurationError::Negative(_))));
        assert!(matches!(parse("7d"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("bad"), Err(DurationError::Invalid(_))));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(168 * 3600)), "168h0m0s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(300)), "300ms");
        assert_eq!(format(Duration::from_micros(2)), "2µs");
        assert_eq!(format(Duration::ZERO), "0s");
        for s in ["168h", "1m30s", "1.5h", "2.013s", "50ms", "1h0m0.5s"] {
            let d = parse(s).unwrap();
            assert_eq!(parse(&format(d)), Ok(d), "{s}");
        }
    }
}
