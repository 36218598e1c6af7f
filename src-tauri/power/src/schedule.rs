//! Schedule windows: whether a local time falls in one. Windows are civil time ("22:00" on the
//! wall clock), so a DST change moves them with the clock: on the night the clock springs forward
//! an hour of a window that spans the gap never happens, and on the night it falls back the
//! repeated hour is inside a window twice.

use hearth_settings::{Day, ScheduleWindow};
use jiff::civil::DateTime;

/// True when `now` (local civil time) falls in any window, or there are none.
pub fn allows(windows: &[ScheduleWindow], now: DateTime) -> bool {
    windows.is_empty() || windows.iter().any(|w| in_window(w, now))
}

fn in_window(w: &ScheduleWindow, now: DateTime) -> bool {
    let Some((start, end)) = w.minutes() else { return false };
    let today = now.weekday().to_monday_zero_offset() as usize;
    let yesterday = (today + 6) % 7;
    let minute = now.hour() as u16 * 60 + now.minute() as u16;
    let on = |day: usize| w.days.iter().any(|d| d.index() == day);
    if start < end {
        on(today) && (start..end).contains(&minute)
    } else {
        // Wraps midnight: the evening part belongs to its own day, the morning part to the day
        // the window started on, yesterday.
        (on(today) && minute >= start) || (on(yesterday) && minute < end)
    }
}

/// A window in words for a reason line: "Sat, Sun 22:00–07:00".
pub fn describe(w: &ScheduleWindow) -> String {
    let days: Vec<&str> = Day::ALL.iter().filter(|d| w.days.contains(d)).map(|d| d.name()).collect();
    format!("{} {}–{}", days.join(", "), w.start, w.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use jiff::tz::TimeZone;
    use jiff::{Timestamp, ToSpan};

    fn window(days: &[Day], start: &str, end: &str) -> ScheduleWindow {
        ScheduleWindow { days: days.to_vec(), start: start.into(), end: end.into() }
    }

    #[test]
    fn a_daytime_window_holds_from_start_up_to_end() {
        let w = [window(&[Day::Mon, Day::Tue], "09:00", "17:00")];
        // 2026-11-30 is a Monday.
        assert!(!allows(&w, date(2026, 11, 30).at(8, 59, 0, 0)));
        assert!(allows(&w, date(2026, 11, 30).at(9, 0, 0, 0)));
        assert!(allows(&w, date(2026, 12, 1).at(16, 59, 59, 0)));
        assert!(!allows(&w, date(2026, 12, 1).at(17, 0, 0, 0)));
        assert!(!allows(&w, date(2026, 12, 2).at(12, 0, 0, 0)), "Wednesday is not in the window");
        assert!(allows(&[], date(2026, 12, 2).at(12, 0, 0, 0)), "no windows: any time");
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_starts() {
        let w = [window(&[Day::Sat], "22:00", "07:00")];
        // 2026-12-05 is a Saturday.
        assert!(!allows(&w, date(2026, 12, 5).at(21, 59, 0, 0)));
        assert!(allows(&w, date(2026, 12, 5).at(22, 0, 0, 0)));
        assert!(allows(&w, date(2026, 12, 5).at(23, 59, 0, 0)));
        assert!(allows(&w, date(2026, 12, 6).at(0, 0, 0, 0)), "Sunday morning is Saturday's window");
        assert!(allows(&w, date(2026, 12, 6).at(6, 59, 0, 0)));
        assert!(!allows(&w, date(2026, 12, 6).at(7, 0, 0, 0)));
        assert!(!allows(&w, date(2026, 12, 6).at(22, 30, 0, 0)), "Sunday evening is not");
        assert!(!allows(&w, date(2026, 12, 5).at(3, 0, 0, 0)), "Saturday morning is Friday's, not in");
        // Sunday's window wraps into Monday: the week wraps too.
        let sun = [window(&[Day::Sun], "23:00", "01:00")];
        assert!(allows(&sun, date(2026, 11, 30).at(0, 30, 0, 0)));
        let whole = [window(&[Day::Wed], "00:00", "24:00")];
        assert!(allows(&whole, date(2026, 12, 2).at(23, 59, 59, 0)));
        assert!(!allows(&whole, date(2026, 12, 3).at(0, 0, 0, 0)));
    }

    /// Real minutes inside `w` on a day in `tz`, stepping through absolute time.
    fn minutes_in(w: &ScheduleWindow, tz: &TimeZone, day: jiff::civil::Date) -> i64 {
        let start = tz.to_zoned(day.at(0, 0, 0, 0)).unwrap().timestamp();
        let end = tz.to_zoned(day.tomorrow().unwrap().at(0, 0, 0, 0)).unwrap().timestamp();
        let mut t: Timestamp = start;
        let mut n = 0;
        while t < end {
            if allows(std::slice::from_ref(w), t.to_zoned(tz.clone()).datetime()) {
                n += 1;
            }
            t = t.checked_add(1.minute()).unwrap();
        }
        n
    }

    #[test]
    fn windows_follow_the_wall_clock_across_dst_changes() {
        let tz = TimeZone::get("America/New_York").expect("the system time-zone database");
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT. A 01:00–04:00 window lasts two real hours.
        let spring = window(&[Day::Sun], "01:00", "04:00");
        assert_eq!(minutes_in(&spring, &tz, date(2026, 3, 8)), 120);
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST. A 01:00–02:00 window lasts two real hours.
        let fall = window(&[Day::Sun], "01:00", "02:00");
        assert_eq!(minutes_in(&fall, &tz, date(2026, 11, 1)), 120);
        // An ordinary Sunday: one hour.
        assert_eq!(minutes_in(&fall, &tz, date(2026, 11, 8)), 60);
        // Across midnight on the spring-forward night: Sat 22:00 – Sun 06:00 is 7 real hours.
        let night = window(&[Day::Sat], "22:00", "06:00");
        let sat = minutes_in(&night, &tz, date(2026, 3, 7));
        let sun = minutes_in(&night, &tz, date(2026, 3, 8));
        assert_eq!((sat, sun), (120, 5 * 60));
    }

    #[test]
    fn describe_names_days_in_week_order() {
        let w = window(&[Day::Sun, Day::Sat], "22:00", "07:00");
        assert_eq!(describe(&w), "Sat, Sun 22:00–07:00");
    }
}
