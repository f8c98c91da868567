//! Instants in requests: RFC 3339 (`2026-11-25T10:00:00Z`) or relative to now (`now`,
//! `now-15m`, `now-2h`, `now-7d`, `now+30s`; units s, m, h, d, w).

use chrono::{DateTime, Utc};

/// A time range in nanoseconds since the epoch: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl TimeRange {
    /// Parses the `from` and `to` request parameters; errors name the parameter.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<TimeRange, String> {
        let parse = |name: &str, value: Option<&str>| -> Result<Option<i64>, String> {
            match value.map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => parse_instant(v, now)
                    .map(Some)
                    .map_err(|e| format!("{name}: {e}")),
            }
        };
        let range = TimeRange {
            from: parse("from", from)?,
            to: parse("to", to)?,
        };
        if let (Some(from), Some(to)) = (range.from, range.to) {
            if from >= to {
                return Err("from must be before to".into());
            }
        }
        Ok(range)
    }

    pub fn contains(&self, nanos: i64) -> bool {
        self.from.is_none_or(|from| nanos >= from) && self.to.is_none_or(|to| nanos < to)
    }
}

/// Parses one instant into nanoseconds since the epoch.
pub fn parse_instant(text: &str, now: DateTime<Utc>) -> Result<i64, String> {
    if let Some(rest) = text.strip_prefix("now") {
        let now_nanos = now.timestamp_nanos_opt().ok_or("now is out of range")?;
        if rest.is_empty() {
            return Ok(now_nanos);
        }
        let (sign, amount) = match rest.as_bytes()[0] {
            b'-' => (-1i64, &rest[1..]),
            b'+' => (1i64, &rest[1..]),
            _ => {
                return Err(format!(
                    "{text:?}: expected now, now-<n><unit> or now+<n><unit>"
                ))
            }
        };
        let unit_at = amount
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(amount.len());
        let (digits, unit) = amount.split_at(unit_at);
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("{text:?}: expected a number after now{}", &rest[..1]))?;
        let unit_nanos: i64 = match unit {
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => return Err(format!("{text:?}: unit must be one of s, m, h, d, w")),
        };
        return n
            .checked_mul(unit_nanos)
            .and_then(|offset| now_nanos.checked_add(sign * offset))
            .ok_or_else(|| format!("{text:?} is out of range"));
    }
    DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("{text:?} is neither RFC 3339 nor relative to now: {e}"))?
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("{text:?} is out of range"))
}

/// Nanoseconds since the epoch as RFC 3339 with nanoseconds.
pub fn format_nanos(nanos: i64) -> String {
    DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn relative_and_absolute() {
        let n = now().timestamp_nanos_opt().unwrap();
        assert_eq!(parse_instant("now", now()), Ok(n));
        assert_eq!(parse_instant("now-15m", now()), Ok(n - 15 * 60_000_000_000));
        assert_eq!(parse_instant("now+1h", now()), Ok(n + 3_600_000_000_000));
        assert_eq!(
            parse_instant("now-7d", now()),
            Ok(n - 7 * 86_400_000_000_000)
        );
        assert_eq!(
            parse_instant("2026-11-25T09:59:59.5Z", now()),
            Ok(n - 500_000_000)
        );
        assert_eq!(format_nanos(n), "2026-11-25T10:00:00.000000000Z");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        for bad in [
            "now-",
            "now-5y",
            "now*5m",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "now-99999999999999d",
        ] {
            assert!(parse_instant(bad, now()).is_err(), "{bad}");
        }
        let err = TimeRange::parse(Some("now"), Some("now-1h"), now()).unwrap_err();
        assert!(err.contains("before"), "{err}");
        let err = TimeRange::parse(Some("soon"), None, now()).unwrap_err();
        assert!(err.starts_with("from:"), "{err}");
    }
}
