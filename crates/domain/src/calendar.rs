//! Local calendar arithmetic without a time-zone database: the marketplace has one fixed
//! offset from UTC (a setting). Days for route plans, months for commission statements.

/// The local calendar day ("YYYY-MM-DD") and minute of the day at `now_ms` (Unix epoch
/// milliseconds) for a place `offset_min` minutes east of UTC. Route plans are per local day.
pub fn local_day(now_ms: i64, offset_min: i64) -> (String, i64) {
    let local_min = now_ms.div_euclid(60_000) + offset_min;
    let days = local_min.div_euclid(1440);
    let minute = local_min.rem_euclid(1440);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (format!("{y:04}-{m:02}-{d:02}"), minute)
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A local month "YYYY-MM" as epoch-millisecond bounds [from, to).
pub fn month_bounds(month: &str, offset_min: i64) -> Option<(i64, i64)> {
    let (y, m) = month.trim().split_once('-')?;
    let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let at = |y, m| (days_from_civil(y, m, 1) * 1440 - offset_min) * 60_000;
    Some((at(y, m), at(ny, nm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_and_minutes() {
        // 2026-11-22 16:34 UTC is 10:34 in Oaxaca (UTC-6) and 00:34 the next day at UTC+8.
        assert_eq!(
            local_day(1_795_365_240_000, -360),
            ("2026-11-22".into(), 634)
        );
        assert_eq!(local_day(1_795_365_240_000, 480), ("2026-11-23".into(), 34));
        assert_eq!(local_day(0, 0), ("1970-01-01".into(), 0));
        assert_eq!(local_day(951_782_400_000, 0), ("2000-02-29".into(), 0));
        assert_eq!(local_day(-60_000, 0), ("1969-12-31".into(), 1439));
    }

    #[test]
    fn months_have_bounds_in_local_time() {
        let (from, to) = month_bounds("2026-11", -360).unwrap();
        assert_eq!(local_day(from, -360), ("2026-11-01".into(), 0));
        assert_eq!(local_day(to, -360), ("2026-12-01".into(), 0));
        assert_eq!(local_day(to - 1, -360).0, "2026-11-30");
        let (_, dec_end) = month_bounds("2026-12", 0).unwrap();
        assert_eq!(local_day(dec_end, 0).0, "2027-01-01");
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        for bad in ["2026-13", "2026", "abc", "1900-01", ""] {
            assert!(month_bounds(bad, 0).is_none(), "{bad}");
        }
    }
}
