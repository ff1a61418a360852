//! Human-readable sizes and ages, as the Docker CLI prints them (go-units).

/// Decimal units with four significant digits: "512B", "1.5kB", "21.47MB".
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[i])
}

/// "3 hours ago" for an RFC 3339 time; the raw text when it cannot be read.
pub fn human_duration_since(rfc3339: &str) -> String {
    let Some(t) = crate::image::parse_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!("{} ago", human_duration(now - t))
}

/// "5 seconds", "3 hours", "Less than a second" (go-units' HumanDuration).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let plural = |n: i64, u: &str| {
        if n == 1 {
            format!("1 {u}")
        } else {
            format!("{n} {u}s")
        }
    };
    match s {
        0 => "Less than a second".to_string(),
        1..=59 => plural(s, "second"),
        60..=3599 => plural(s / 60, "minute"),
        3600..=172_799 => plural(s / 3600, "hour"),
        172_800..=1_209_599 => plural(s / 86_400, "day"),
        1_209_600..=5_183_999 => plural(s / 604_800, "week"),
        5_184_000..=63_071_999 => plural(s / 2_592_000, "month"),
        _ => plural(s / 31_536_000, "year"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(21_474_836), "21.47MB");
        assert_eq!(human_size(123_456_789), "123.5MB");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(40 * 86_400), "5 weeks");
        assert_eq!(human_duration(3 * 31_536_000), "3 years");
    }
}
