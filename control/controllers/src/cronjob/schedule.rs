//! CronJob schedules, with the semantics of upstream's parser (robfig/cron v3
//! `ParseStandard`): five fields — minute, hour, day of month, month (1–12 or JAN–DEC), day of
//! week (0–6 or SUN–SAT) — each `*`, `?`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a
//! list of those; the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`,
//! `@daily`/`@midnight`, `@hourly` and `@every <duration>`. As in cron (and robfig), when both
//! day fields are restricted a day matches if *either* does; a `*` in one makes it a plain AND.
//! Times are civil times in the CronJob's `timeZone` (jiff's tz database), so `0 9 * * *` in
//! `Europe/Berlin` follows daylight saving time.
//!
//! Why not a cron crate: the ones on jiff (jiff-cron) take seconds and years, number weekdays
//! 1–7 and AND the two day fields — three differences from what `kubectl create cronjob`
//! users write and upstream runs.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Cron(Fields),
    /// `@every <duration>`: fixed intervals.
    Every(std::time::Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Either day field was `*` or `?`: both must match (else either).
    day_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(text: &str, names: &[&str], base: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + base);
    }
    text.parse::<u32>()
        .map_err(|_| format!("failed to parse int from {text}"))
}

/// One field into a bit set; the bool says whether it was `*`/`?`.
fn field(text: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<u32>()
                        .map_err(|_| format!("failed to parse int from {s}"))?,
                ),
            ),
            None => (part, None),
        };
        let (start, end, is_star) = if range == "*" || range == "?" {
            (min, max, true)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, base)?, value(b, names, base)?, false)
        } else {
            let v = value(range, names, base)?;
            // `5/10` means 5 to the end, by 10 (robfig).
            (v, if step.is_some() { max } else { v }, false)
        };
        if start < min {
            return Err(format!(
                "beginning of range ({start}) below minimum ({min}): {part}"
            ));
        }
        if end > max {
            return Err(format!(
                "end of range ({end}) above maximum ({max}): {part}"
            ));
        }
        if start > end {
            return Err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {part}"
            ));
        }
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
        star |= is_star && step == 1;
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
            return Err("CRON_TZ or TZ used in schedule; use spec.timeZone instead".into());
        }
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => {
                if let Some(duration) = other.strip_prefix("@every ") {
                    let span: jiff::Span = duration
                        .trim()
                        .parse()
                        .map_err(|e| format!("failed to parse duration {duration}: {e}"))?;
                    let signed = span
                        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                        .map_err(|e| e.to_string())?;
                    let seconds = signed.as_secs().max(1) as u64;
                    return Ok(Schedule::Every(std::time::Duration::from_secs(seconds)));
                }
                if other.starts_with('@') {
                    return Err(format!("unrecognized descriptor: {other}"));
                }
                other
            }
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                parts.len(),
                parts.join(" ")
            ));
        }
        let (minutes, _) = field(parts[0], 0, 59, &[], 0)?;
        let (hours, _) = field(parts[1], 0, 23, &[], 0)?;
        let (days, dom_star) = field(parts[2], 1, 31, &[], 0)?;
        let (months, _) = field(parts[3], 1, 12, &MONTHS, 1)?;
        let (weekdays, dow_star) = field(parts[4], 0, 6, &WEEKDAYS, 0)?;
        Ok(Schedule::Cron(Fields {
            minutes,
            hours,
            days,
            months,
            weekdays,
            day_star: dom_star || dow_star,
        }))
    }

    /// The first activation strictly after `after`, in `tz`; `None` if there is none in the
    /// next five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        match self {
            Schedule::Every(every) => {
                let seconds = after.as_second() + every.as_secs() as i64;
                Timestamp::from_second(seconds).ok()
            }
            Schedule::Cron(fields) => fields.next(after, tz),
        }
    }
}

impl Fields {
    fn day_matches(&self, t: DateTime) -> bool {
        let dom = self.days & (1 << t.day()) != 0;
        let dow = self.weekdays & (1 << t.weekday().to_sunday_zero_offset()) != 0;
        if self.day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        // Start at the next whole minute, in civil time.
        let start = after.to_zoned(tz.clone()).datetime();
        let mut t = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = start.year() + 5;
        while t.year() <= limit {
            if self.months & (1 << t.month()) == 0 {
                t = t
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .start_of_day();
                continue;
            }
            if !self.day_matches(t) {
                t = t.start_of_day().checked_add(1.day()).ok()?;
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // A civil time skipped by a DST gap runs at the gap's end, as "compatible" says.
            let at = tz.to_ambiguous_zoned(t).compatible().ok()?.timestamp();
            if at > after {
                return Some(at);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn next(expr: &str, after: &str) -> String {
        Schedule::parse(expr)
            .expect("parses")
            .next(ts(after), &TimeZone::UTC)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn every_minute_and_steps() {
        assert_eq!(
            next("* * * * *", "2026-01-01T10:00:30Z"),
            "2026-01-01T10:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T10:01:00Z"),
            "2026-01-01T10:15:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-01-01T10:26:00Z"),
            "2026-01-01T10:45:00Z"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2026-01-01T13:00:00Z"),
            "2026-01-01T17:00:00Z"
        );
    }

    #[test]
    fn descriptors_names_and_day_fields() {
        assert_eq!(
            next("@hourly", "2026-01-01T10:00:00Z"),
            "2026-01-01T11:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2026-03-01T00:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        // 2026-01-01 is a Thursday: the next Monday is the 5th.
        assert_eq!(
            next("0 0 * * MON", "2026-01-01T00:00:00Z"),
            "2026-01-05T00:00:00Z"
        );
        assert_eq!(
            next("0 0 1 feb *", "2026-01-01T00:00:00Z"),
            "2026-02-01T00:00:00Z"
        );
        // Both day fields restricted: the 15th OR a Monday.
        assert_eq!(
            next("0 0 15 * 1", "2026-01-06T00:00:00Z"),
            "2026-01-12T00:00:00Z"
        );
        assert_eq!(next("0 0 30 2 *", "2026-01-01T00:00:00Z"), "");
        let every = Schedule::parse("@every 90s").expect("parses");
        assert_eq!(every, Schedule::Every(std::time::Duration::from_secs(90)));
    }

    #[test]
    fn time_zones_follow_dst() {
        let berlin = TimeZone::get("Europe/Berlin").expect("tzdb");
        let s = Schedule::parse("0 9 * * *").expect("parses");
        // Winter: 09:00 CET = 08:00 UTC; summer: 09:00 CEST = 07:00 UTC.
        assert_eq!(
            s.next(ts("2026-01-10T12:00:00Z"), &berlin)
                .expect("next")
                .to_string(),
            "2026-01-11T08:00:00Z"
        );
        assert_eq!(
            s.next(ts("2026-07-10T12:00:00Z"), &berlin)
                .expect("next")
                .to_string(),
            "2026-07-11T07:00:00Z"
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        assert!(Schedule::parse("* * * *")
            .unwrap_err()
            .contains("expected exactly 5 fields"));
        assert!(Schedule::parse("60 * * * *")
            .unwrap_err()
            .contains("above maximum"));
        assert!(Schedule::parse("* * * * 7")
            .unwrap_err()
            .contains("above maximum"));
        assert!(Schedule::parse("TZ=UTC * * * * *")
            .unwrap_err()
            .contains("spec.timeZone"));
        assert!(Schedule::parse("@fortnightly").is_err());
        assert!(Schedule::parse("x * * * *")
            .unwrap_err()
            .contains("failed to parse int"));
    }
}
