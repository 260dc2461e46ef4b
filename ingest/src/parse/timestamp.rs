//! Timestamp recognition: every textual and numeric form the parsers meet,
//! turned into microseconds since the Unix epoch, UTC.
//!
//! Hand-written over bytes rather than chrono format strings: the text parser
//! probes every line's prefix, and a failed probe must cost a few byte
//! comparisons, not a format-string interpretation.

/// Microseconds in one second.
const US_PER_SEC: i64 = 1_000_000;
/// Microseconds in one day.
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;
/// Earliest accepted year: anything before is a parsing accident.
pub const MIN_YEAR: i64 = 1970;
/// Latest accepted year.
pub const MAX_YEAR: i64 = 2200;

/// Epoch numbers below this magnitude are seconds (up to year 5138).
const EPOCH_SECONDS_BELOW: f64 = 1e11;
/// Epoch numbers below this magnitude (and above the seconds bound) are ms.
const EPOCH_MILLIS_BELOW: f64 = 1e14;
/// Epoch numbers below this magnitude (and above the ms bound) are µs; above, ns.
const EPOCH_MICROS_BELOW: f64 = 1e17;

/// How a time zone-less stamp is interpreted and how far ahead a syslog
/// date without a year may lie.
#[derive(Debug, Clone, Copy)]
pub struct TimeCtx {
    /// Offset east of UTC, in seconds, applied to stamps without a zone.
    pub default_offset_secs: i32,
    /// Reference "now" (the ingest time) for year inference.
    pub now_us: i64,
}

/// Parses a time zone setting: `UTC`, `Z`, `GMT`, `+02:00`, `-0530`, `+2`.
pub fn parse_offset_setting(s: &str) -> Result<i32, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("gmt") || t == "Z" || t.is_empty() {
        return Ok(0);
    }
    let stripped = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    let b = stripped.as_bytes();
    if let Some((secs, used)) = parse_zone_offset(b, 0, true) {
        if used == b.len() {
            return Ok(secs);
        }
    }
    Err(format!(
        "unsupported time zone {s:?}: use UTC or a fixed offset such as +02:00"
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year of a microsecond timestamp.
pub fn year_of(us: i64) -> i64 {
    let z = us.div_euclid(US_PER_DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    if m <= 2 {
        y + 1
    } else {
        y
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// True when `us` lies within the accepted years.
pub fn plausible(us: i64) -> bool {
    let lo = days_from_civil(MIN_YEAR, 1, 1) * US_PER_DAY;
    let hi = days_from_civil(MAX_YEAR + 1, 1, 1) * US_PER_DAY;
    (lo..hi).contains(&us)
}

/// Broken-down civil time, before the zone is applied.
#[derive(Debug, Clone, Copy)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: u32,
}

impl Civil {
    /// Microseconds since the epoch for this local time at `offset_secs`.
    fn to_us(self, offset_secs: i32) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
            || !(0..=9999).contains(&self.year)
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second.min(59))
            - i64::from(offset_secs);
        Some(secs * US_PER_SEC + i64::from(self.micros))
    }
}

fn num(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// One or two digits (a space-padded or unpadded day); returns value and length.
fn num_1_2(b: &[u8], at: usize) -> Option<(u32, usize)> {
    let first = *b.get(at)?;
    if !first.is_ascii_digit() {
        return None;
    }
    match b.get(at + 1) {
        Some(c) if c.is_ascii_digit() => {
            Some((u32::from(first - b'0') * 10 + u32::from(c - b'0'), 2))
        }
        _ => Some((u32::from(first - b'0'), 1)),
    }
}

fn month_abbr(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    let lower = [
        s[0].to_ascii_lowercase(),
        s[1].to_ascii_lowercase(),
        s[2].to_ascii_lowercase(),
    ];
    Some(match &lower {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

fn is_weekday(b: &[u8], at: usize) -> bool {
    let Some(s) = b.get(at..at + 3) else {
        return false;
    };
    let lower = [
        s[0].to_ascii_lowercase(),
        s[1].to_ascii_lowercase(),
        s[2].to_ascii_lowercase(),
    ];
    matches!(
        &lower,
        b"mon" | b"tue" | b"wed" | b"thu" | b"fri" | b"sat" | b"sun"
    )
}

/// `HH:MM:SS` at `at`; returns (h, m, s, bytes used).
fn hms(b: &[u8], at: usize) -> Option<(u32, u32, u32, usize)> {
    let h = num(b, at, 2)?;
    if b.get(at + 2) != Some(&b':') {
        return None;
    }
    let m = num(b, at + 3, 2)?;
    if b.get(at + 5) != Some(&b':') {
        return None;
    }
    let s = num(b, at + 6, 2)?;
    Some((h, m, s, 8))
}

/// A `.123` or `,123456789` fraction at `at`; returns (micros, bytes used).
fn fraction(b: &[u8], at: usize) -> (u32, usize) {
    match b.get(at) {
        Some(b'.') | Some(b',') => {}
        _ => return (0, 0),
    }
    let mut i = at + 1;
    let mut micros = 0u32;
    let mut digits = 0;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        if digits < 6 {
            micros = micros * 10 + u32::from(c - b'0');
        }
        digits += 1;
        i += 1;
    }
    if digits == 0 {
        return (0, 0);
    }
    for _ in digits..6 {
        micros *= 10;
    }
    (micros, i - at)
}

/// A numeric zone offset `+HH:MM`, `+HHMM` or `+HH` at `at`; returns
/// (seconds east, bytes used). `lenient` also accepts a single hour digit.
fn parse_zone_offset(b: &[u8], at: usize, lenient: bool) -> Option<(i32, usize)> {
    let sign = match b.get(at)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, mut used) = if let Some(h) = num(b, at + 1, 2) {
        (h, 3)
    } else if lenient {
        (num(b, at + 1, 1)?, 2)
    } else {
        return None;
    };
    let mut m = 0;
    if b.get(at + used) == Some(&b':') {
        m = num(b, at + used + 1, 2)?;
        used += 3;
    } else if let Some(mm) = num(b, at + used, 2) {
        m = mm;
        used += 2;
    }
    if h > 18 || m > 59 {
        return None;
    }
    Some((sign * (h as i32 * 3600 + m as i32 * 60), used))
}

/// A zone after a time: `Z`, `+01:00`, `-0700`, optionally after one space,
/// or ` UTC`/` GMT`. Returns (offset, bytes used) or None when absent.
fn zone(b: &[u8], at: usize) -> Option<(i32, usize)> {
    match b.get(at) {
        Some(b'Z') | Some(b'z') => return Some((0, 1)),
        Some(b'+') | Some(b'-') => return parse_zone_offset(b, at, false),
        Some(b' ') => {}
        _ => return None,
    }
    match b.get(at + 1) {
        Some(b'+') | Some(b'-') => {
            let (off, used) = parse_zone_offset(b, at + 1, false)?;
            // A lone ` -07` is too likely a number that follows the stamp.
            (used >= 5).then_some((off, used + 1))
        }
        Some(b'U') | Some(b'G') => {
            let w = b.get(at + 1..at + 4)?;
            let end_ok = b.get(at + 4).is_none_or(|c| !c.is_ascii_alphanumeric());
            ((w == b"UTC" || w == b"GMT") && end_ok).then_some((0, 4))
        }
        _ => None,
    }
}

/// `YYYY-MM-DD[T ]HH:MM[:SS][.frac][zone]` or `YYYY/MM/DD HH:MM:SS`.
fn iso(b: &[u8], tc: &TimeCtx, allow_date_only: bool) -> Option<(i64, usize)> {
    let year = num(b, 0, 4)?;
    let sep = *b.get(4)?;
    if sep != b'-' && sep != b'/' {
        return None;
    }
    let month = num(b, 5, 2)?;
    if b.get(7) != Some(&sep) {
        return None;
    }
    let day = num(b, 8, 2)?;
    let mut civil = Civil {
        year: i64::from(year),
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
    };
    let has_time = matches!(b.get(10), Some(b'T') | Some(b't') | Some(b' ') | Some(b'_'))
        && num(b, 11, 2).is_some();
    if !has_time {
        if allow_date_only {
            return Some((civil.to_us(tc.default_offset_secs)?, 10));
        }
        return None;
    }
    civil.hour = num(b, 11, 2)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    civil.minute = num(b, 14, 2)?;
    let mut i = 16;
    if b.get(i) == Some(&b':') {
        civil.second = num(b, i + 1, 2)?;
        i += 3;
        let (micros, used) = fraction(b, i);
        civil.micros = micros;
        i += used;
    }
    let mut offset = tc.default_offset_secs;
    if let Some((off, used)) = zone(b, i) {
        offset = off;
        i += used;
    }
    Some((civil.to_us(offset)?, i))
}

/// Syslog `Mmm dd HH:MM:SS[.frac]`, the year inferred from `now`: the most
/// recent such date not more than a day ahead. Also accepts a trailing
/// ` YYYY` and a zone.
fn syslog_date(b: &[u8], at: usize, tc: &TimeCtx) -> Option<(i64, usize)> {
    let month = month_abbr(b, at)?;
    if b.get(at + 3) != Some(&b' ') {
        return None;
    }
    let mut i = at + 4;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let (day, used) = num_1_2(b, i)?;
    i += used;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let (mut civil, used) = clock_on(b, i, month, day)?;
    i += used;
    // ctime style: `... HH:MM:SS YYYY`.
    if b.get(i) == Some(&b' ') {
        if let Some(y) = num(b, i + 1, 4) {
            if b.get(i + 5).is_none_or(|c| !c.is_ascii_digit()) {
                civil.year = i64::from(y);
                let mut end = i + 5;
                let mut offset = tc.default_offset_secs;
                if let Some((off, used)) = zone(b, end) {
                    offset = off;
                    end += used;
                }
                return Some((civil.to_us(offset)?, end));
            }
        }
    }
    let mut offset = tc.default_offset_secs;
    if let Some((off, used)) = zone(b, i) {
        offset = off;
        i += used;
    }
    Some((in_recent_year(civil, offset, tc)?, i))
}

/// `HH:MM:SS[.frac]` at `at` on a day of the year 0 (for the caller to
/// set or find): the civil time and the bytes spanned.
fn clock_on(b: &[u8], at: usize, month: u32, day: u32) -> Option<(Civil, usize)> {
    let (hour, minute, second, used) = hms(b, at)?;
    let (micros, frac) = fraction(b, at + used);
    let civil = Civil {
        year: 0,
        month,
        day,
        hour,
        minute,
        second,
        micros,
    };
    Some((civil, used + frac))
}

/// A date without a year: the most recent one not more than a day ahead of
/// `now`.
fn in_recent_year(mut civil: Civil, offset: i32, tc: &TimeCtx) -> Option<i64> {
    let limit = tc.now_us.saturating_add(US_PER_DAY);
    let this_year = year_of(tc.now_us);
    for y in (this_year - 8..=this_year + 1).rev() {
        civil.year = y;
        if let Some(us) = civil.to_us(offset) {
            if us <= limit {
                return Some(us);
            }
        }
    }
    None
}

/// The header of Kubernetes' klog and Google's glog, `Lmmdd
/// hh:mm:ss.uuuuuu`: the severity letter (`I`, `W`, `E`, `F`), and the time
/// in the default zone, its year inferred as for syslog. Returns the
/// letter, the time and the bytes spanned.
pub fn klog_prefix(s: &str, tc: &TimeCtx) -> Option<(u8, i64, usize)> {
    let b = s.as_bytes();
    let letter = *b.first()?;
    if !matches!(letter, b'I' | b'W' | b'E' | b'F') || b.get(5) != Some(&b' ') {
        return None;
    }
    let (civil, used) = clock_on(b, 6, num(b, 1, 2)?, num(b, 3, 2)?)?;
    let i = 6 + used;
    if b.get(i).is_some_and(|c| !c.is_ascii_whitespace()) {
        return None;
    }
    Some((
        letter,
        in_recent_year(civil, tc.default_offset_secs, tc)?,
        i,
    ))
}

/// Common log format `10/Oct/2000:13:55:36 -0700`.
fn clf(b: &[u8], tc: &TimeCtx) -> Option<(i64, usize)> {
    let day = num(b, 0, 2)?;
    if b.get(2) != Some(&b'/') {
        return None;
    }
    let month = month_abbr(b, 3)?;
    if b.get(6) != Some(&b'/') {
        return None;
    }
    let year = num(b, 7, 4)?;
    if b.get(11) != Some(&b':') {
        return None;
    }
    let (mut civil, used) = clock_on(b, 12, month, day)?;
    civil.year = i64::from(year);
    let mut i = 12 + used;
    let mut offset = tc.default_offset_secs;
    if let Some((off, used)) = zone(b, i) {
        offset = off;
        i += used;
    }
    Some((civil.to_us(offset)?, i))
}

/// Compact `YYMMDD HHMMSS` (HDFS style).
fn compact(b: &[u8], tc: &TimeCtx) -> Option<(i64, usize)> {
    let yy = num(b, 0, 2)?;
    let month = num(b, 2, 2)?;
    let day = num(b, 4, 2)?;
    if b.get(6) != Some(&b' ') {
        return None;
    }
    let hour = num(b, 7, 2)?;
    let minute = num(b, 9, 2)?;
    let second = num(b, 11, 2)?;
    if b.get(13).is_some_and(|c| !c.is_ascii_whitespace()) {
        return None;
    }
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    let civil = Civil {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
        micros: 0,
    };
    Some((civil.to_us(tc.default_offset_secs)?, 13))
}

/// Epoch number (seconds, ms, µs or ns told apart by magnitude) to µs.
pub fn epoch_to_us(v: f64) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let a = v.abs();
    let us = if a < EPOCH_SECONDS_BELOW {
        v * 1e6
    } else if a < EPOCH_MILLIS_BELOW {
        v * 1e3
    } else if a < EPOCH_MICROS_BELOW {
        v
    } else {
        v / 1e3
    };
    if us.abs() > 9.0e18 {
        return None;
    }
    Some(us.round() as i64)
}

/// Integer epoch to µs, exact for integers too large for f64.
pub fn epoch_int_to_us(v: i64) -> Option<i64> {
    let a = v.unsigned_abs();
    if (a as f64) < EPOCH_SECONDS_BELOW {
        v.checked_mul(1_000_000)
    } else if (a as f64) < EPOCH_MILLIS_BELOW {
        v.checked_mul(1000)
    } else if (a as f64) < EPOCH_MICROS_BELOW {
        Some(v)
    } else {
        Some(v / 1000)
    }
}

/// A numeric epoch written as text: `1700000000`, `1700000000.123`, `-5`.
fn numeric(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits_start = usize::from(b.first() == Some(&b'-'));
    let body = b.get(digits_start..)?;
    if body.is_empty() || !body[0].is_ascii_digit() {
        return None;
    }
    if body.iter().all(u8::is_ascii_digit) {
        if body.len() > 19 {
            return None;
        }
        return epoch_int_to_us(s.parse::<i64>().ok()?);
    }
    if body
        .iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return epoch_to_us(s.parse::<f64>().ok()?);
    }
    None
}

/// Recognizes a timestamp at the start of a text line. Returns the time and
/// the number of bytes it spans (a closing `]` is not included).
pub fn parse_prefix(s: &str, tc: &TimeCtx) -> Option<(i64, usize)> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if first.is_ascii_digit() {
        if let Some(r) = iso(b, tc, false) {
            return Some(r);
        }
        if let Some(r) = clf(b, tc) {
            return Some(r);
        }
        if let Some(r) = compact(b, tc) {
            return Some(r);
        }
        return epoch_prefix(b);
    }
    if is_weekday(b, 0) {
        // `Sun Dec 04 04:47:44 2005` or `Sun, 04 Dec 2005 ...` (only the first).
        if b.get(3) == Some(&b' ') {
            return syslog_date(b, 4, tc);
        }
        return None;
    }
    syslog_date(b, 0, tc)
}

/// A 10-digit (seconds, optional fraction) or 13-digit (ms) epoch followed by
/// a space: other digit runs are too likely ids or counters.
fn epoch_prefix(b: &[u8]) -> Option<(i64, usize)> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut end = n;
    if n == 10 && b.get(10) == Some(&b'.') {
        end += 1 + b[11..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    if !(n == 10 || n == 13) || b.get(end).is_some_and(|c| !c.is_ascii_whitespace()) {
        return None;
    }
    let text = std::str::from_utf8(&b[..end]).ok()?;
    Some((numeric(text)?, end))
}

/// Parses a whole field value (JSON, logfmt, captures): numeric epochs,
/// numeric strings, and every textual form (date-only allowed).
pub fn parse_value(s: &str, tc: &TimeCtx) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(us) = numeric(t) {
        return Some(us);
    }
    let b = t.as_bytes();
    let parsed = if b[0].is_ascii_digit() {
        iso(b, tc, true)
            .or_else(|| clf(b, tc))
            .or_else(|| compact(b, tc))
    } else if is_weekday(b, 0) {
        rfc2822(b, tc).or_else(|| {
            if b.get(3) == Some(&b' ') {
                syslog_date(b, 4, tc)
            } else {
                None
            }
        })
    } else {
        syslog_date(b, 0, tc)
    };
    let (us, used) = parsed?;
    (used == b.len()).then_some(us)
}

/// RFC 2822 / HTTP date `Tue, 10 Oct 2000 13:55:36 +0000` (or `GMT`).
fn rfc2822(b: &[u8], tc: &TimeCtx) -> Option<(i64, usize)> {
    if b.get(3) != Some(&b',') || b.get(4) != Some(&b' ') {
        return None;
    }
    let (day, used) = num_1_2(b, 5)?;
    let mut i = 5 + used;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let month = month_abbr(b, i + 1)?;
    i += 4;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let year = num(b, i + 1, 4)?;
    i += 5;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    let (hour, minute, second, used) = hms(b, i + 1)?;
    i += 1 + used;
    let mut offset = tc.default_offset_secs;
    if let Some((off, used)) = zone(b, i) {
        offset = off;
        i += used;
    }
    let civil = Civil {
        year: i64::from(year),
        month,
        day,
        hour,
        minute,
        second,
        micros: 0,
    };
    Some((civil.to_us(offset)?, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-06-01T00:00:00Z, a fixed "now" for year inference.
    const NOW: i64 = 1_717_200_000 * US_PER_SEC;

    fn tc() -> TimeCtx {
        TimeCtx {
            default_offset_secs: 0,
            now_us: NOW,
        }
    }

    fn us(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * US_PER_SEC
    }

    #[test]
    fn rfc3339_and_iso_variants() {
        let base = us(2024, 1, 2, 3, 4, 5);
        let cases = [
            ("2024-01-02T03:04:05Z", base),
            ("2024-01-02T03:04:05.123Z", base + 123_000),
            ("2024-01-02T03:04:05.123456789Z", base + 123_456),
            ("2024-01-02 03:04:05,123", base + 123_000),
            ("2024-01-02T05:04:05+02:00", base),
            ("2024-01-02T05:04:05+0200", base),
            ("2024-01-01T22:04:05-05:00", base),
            ("2024-01-02T03:04:05", base),
            ("2024-01-02 03:04:05 +0000", base),
            ("2024-01-02 03:04:05 UTC", base),
            ("2024/01/02 03:04:05", base),
            ("2024-01-02T03:04Z", base - 5 * US_PER_SEC),
            ("2024-01-02", us(2024, 1, 2, 0, 0, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_value(text, &tc()), Some(want), "{text}");
        }
    }

    #[test]
    fn default_offset_applies_to_zoneless_only() {
        let t = TimeCtx {
            default_offset_secs: 7200,
            now_us: NOW,
        };
        let base = us(2024, 1, 2, 3, 4, 5);
        assert_eq!(parse_value("2024-01-02T05:04:05", &t), Some(base));
        assert_eq!(parse_value("2024-01-02T03:04:05Z", &t), Some(base));
    }

    #[test]
    fn other_textual_forms() {
        assert_eq!(
            parse_value("10/Oct/2000:13:55:36 -0700", &tc()),
            Some(us(2000, 10, 10, 20, 55, 36))
        );
        assert_eq!(
            parse_value("Sun Dec 04 04:47:44 2005", &tc()),
            Some(us(2005, 12, 4, 4, 47, 44))
        );
        assert_eq!(
            parse_value("081109 203615", &tc()),
            Some(us(2008, 11, 9, 20, 36, 15))
        );
        assert_eq!(
            parse_value("Tue, 10 Oct 2000 13:55:36 GMT", &tc()),
            Some(us(2000, 10, 10, 13, 55, 36))
        );
    }

    #[test]
    fn syslog_year_is_inferred_from_now() {
        // Before now in the same year.
        assert_eq!(
            parse_value("Jan 11 22:14:15", &tc()),
            Some(us(2024, 1, 11, 22, 14, 15))
        );
        // Within a day ahead: still this year.
        assert_eq!(
            parse_value("Jun  1 12:00:00", &tc()),
            Some(us(2024, 6, 1, 12, 0, 0))
        );
        // More than a day ahead: last year.
        assert_eq!(
            parse_value("Oct 11 22:14:15", &tc()),
            Some(us(2023, 10, 11, 22, 14, 15))
        );
        // Feb 29 goes back to the last leap year that is not ahead.
        let t = TimeCtx {
            default_offset_secs: 0,
            now_us: us(2025, 6, 1, 0, 0, 0),
        };
        assert_eq!(
            parse_value("Feb 29 00:00:00", &t),
            Some(us(2024, 2, 29, 0, 0, 0))
        );
    }

    #[test]
    fn epochs_by_magnitude() {
        let s = 1_700_000_000i64;
        for (text, want) in [
            ("1700000000", s * US_PER_SEC),
            ("1700000000.5", s * US_PER_SEC + 500_000),
            ("1700000000123", s * US_PER_SEC + 123_000),
            ("1700000000123456", s * US_PER_SEC + 123_456),
            ("1700000000123456789", s * US_PER_SEC + 123_456),
        ] {
            assert_eq!(parse_value(text, &tc()), Some(want), "{text}");
        }
    }

    #[test]
    fn prefixes_report_their_length() {
        let line = "2024-01-02 03:04:05,123 ERROR x";
        assert_eq!(parse_prefix(line, &tc()).map(|r| r.1), Some(23));
        let line = "081109 203615 148 INFO x";
        assert_eq!(parse_prefix(line, &tc()).map(|r| r.1), Some(13));
        let line = "Jun 14 15:16:01 combo sshd";
        assert_eq!(parse_prefix(line, &tc()).map(|r| r.1), Some(15));
        let line = "Sun Dec 04 04:47:44 2005] [error]";
        assert_eq!(parse_prefix(line, &tc()).map(|r| r.1), Some(24));
        assert!(parse_prefix("12345 is not a time", &tc()).is_none());
        assert!(parse_prefix("Junk 14 15:16:01", &tc()).is_none());
    }

    #[test]
    fn rejects_garbage_and_bad_fields() {
        for text in [
            "",
            "now",
            "2024-13-02T03:04:05Z",
            "2024-02-30T03:04:05Z",
            "2024-01-02T25:04:05Z",
            "2024-01-02T03:04:05Zjunk",
            "Foo 11 22:14:15",
            "NaN",
        ] {
            assert_eq!(parse_value(text, &tc()), None, "{text}");
        }
    }

    #[test]
    fn plausibility_window() {
        assert!(plausible(us(2024, 1, 1, 0, 0, 0)));
        assert!(!plausible(us(1969, 12, 31, 0, 0, 0)));
        assert!(!plausible(us(2201, 1, 1, 0, 0, 0)));
    }

    #[test]
    fn offset_settings() {
        assert_eq!(parse_offset_setting("UTC"), Ok(0));
        assert_eq!(parse_offset_setting("+02:00"), Ok(7200));
        assert_eq!(parse_offset_setting("-0530"), Ok(-19_800));
        assert_eq!(parse_offset_setting("+2"), Ok(7200));
        assert!(parse_offset_setting("Europe/Paris").is_err());
    }

    #[test]
    fn year_of_round_trips() {
        for y in [1970, 1999, 2000, 2024, 2100, 2200] {
            assert_eq!(year_of(days_from_civil(y, 7, 1) * US_PER_DAY), y);
            assert_eq!(year_of(days_from_civil(y, 1, 1) * US_PER_DAY), y);
            assert_eq!(year_of(days_from_civil(y, 12, 31) * US_PER_DAY), y);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_value(&s, &tc());
            let _ = parse_prefix(&s, &tc());
        }

        #[test]
        fn epoch_magnitudes(secs in 0i64..4_000_000_000, sub in 0i64..1_000_000) {
            let us_want = secs * US_PER_SEC + sub;
            proptest::prop_assert_eq!(parse_value(&secs.to_string(), &tc()), Some(secs * US_PER_SEC));
            let ms = secs * 1000 + sub / 1000;
            if secs >= 100_000_000 {
                proptest::prop_assert_eq!(parse_value(&ms.to_string(), &tc()), Some(ms * 1000));
                proptest::prop_assert_eq!(parse_value(&us_want.to_string(), &tc()), Some(us_want));
                let ns = us_want * 1000;
                proptest::prop_assert_eq!(parse_value(&ns.to_string(), &tc()), Some(us_want));
            }
        }
    }
}
