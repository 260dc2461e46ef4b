//! Known fields of structured records: which keys name the timestamp, level,
//! service, host and message, and how they are taken out of the attributes.
//!
//! Keys are matched case-insensitively, including dotted keys produced by
//! flattening (`{"service":{"name":"x"}}` gives `service.name`). `logger` is
//! deliberately not a service alias: a logger names a class or module inside
//! a service, so it stays an attribute.

use crate::record::{Level, LogRecord, ParseIssue};

use super::level::parse_level;
use super::timestamp::{self, TimeCtx};
use super::Scratch;

/// Attribute holding a timestamp that was found but could not be used.
pub const TIMESTAMP_RAW: &str = "timestamp_raw";
/// Attribute counting the attributes dropped over the configured limit.
pub const ATTRIBUTES_DROPPED: &str = "attributes_dropped";

/// Longest key checked against the aliases.
const MAX_ALIAS_KEY: usize = 15;

/// The JSON type of an attribute value (text formats only produce `Str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Num,
    Bool,
    Null,
    /// An object (empty, or too deep to flatten), kept as JSON text.
    Obj,
    /// An array, kept as JSON text.
    Arr,
}

/// A known field of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Time = 0,
    Level = 1,
    Service = 2,
    Host = 3,
    Message = 4,
}

impl Role {
    pub const COUNT: usize = 5;
    const ALL: [Role; Role::COUNT] = [
        Role::Time,
        Role::Level,
        Role::Service,
        Role::Host,
        Role::Message,
    ];
}

/// The role a key names, with its priority (lower wins when several keys of
/// one record name the same role).
pub fn role_of(key: &str) -> Option<(Role, u8)> {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > MAX_ALIAS_KEY {
        return None;
    }
    // The aliases of this length and first letter: none for most keys that
    // are not aliases, one or two otherwise.
    let candidates = &SHAPES[b.len()][first_class(b[0])?];
    candidates
        .iter()
        .take_while(|&&i| i != 0)
        .map(|&i| ALIAS_LIST[usize::from(i) - 1])
        // Keys are mostly written in lower case, as the aliases are: one
        // comparison of the bytes settles them.
        .find(|(alias, _, _)| b == *alias || b.eq_ignore_ascii_case(alias))
        .map(|(_, role, prio)| (role, prio))
}

/// Every alias (lowercase) with the role it names and its priority.
const ALIAS_LIST: &[(&[u8], Role, u8)] = &[
    (b"timestamp", Role::Time, 0),
    (b"@timestamp", Role::Time, 1),
    (b"time", Role::Time, 2),
    (b"ts", Role::Time, 3),
    (b"datetime", Role::Time, 4),
    (b"date", Role::Time, 5),
    (b"@t", Role::Time, 6),
    (b"t", Role::Time, 7),
    (b"asctime", Role::Time, 8),
    (b"event_time", Role::Time, 9),
    (b"eventtime", Role::Time, 9),
    (b"time_local", Role::Time, 10),
    (b"time_iso8601", Role::Time, 10),
    (b"level", Role::Level, 0),
    (b"severity", Role::Level, 1),
    (b"log.level", Role::Level, 2),
    (b"lvl", Role::Level, 3),
    (b"loglevel", Role::Level, 4),
    (b"log_level", Role::Level, 4),
    (b"levelname", Role::Level, 5),
    (b"level_name", Role::Level, 5),
    (b"severity_text", Role::Level, 6),
    (b"severitytext", Role::Level, 6),
    (b"@l", Role::Level, 7),
    (b"service", Role::Service, 0),
    (b"service.name", Role::Service, 1),
    (b"service_name", Role::Service, 2),
    (b"servicename", Role::Service, 2),
    (b"app", Role::Service, 3),
    (b"app.name", Role::Service, 4),
    (b"app_name", Role::Service, 4),
    (b"appname", Role::Service, 4),
    (b"application", Role::Service, 5),
    (b"component", Role::Service, 6),
    (b"host", Role::Host, 0),
    (b"hostname", Role::Host, 1),
    (b"host.name", Role::Host, 2),
    (b"host.hostname", Role::Host, 3),
    (b"message", Role::Message, 0),
    (b"msg", Role::Message, 1),
    (b"@message", Role::Message, 2),
    (b"@m", Role::Message, 3),
    (b"short_message", Role::Message, 4),
    (b"log", Role::Message, 5),
    (b"text", Role::Message, 6),
    // Serilog's JSON formatter: the rendered message when it writes one,
    // else the template (as `@mt` in its compact format).
    (b"renderedmessage", Role::Message, 7),
    (b"@mt", Role::Message, 8),
    (b"messagetemplate", Role::Message, 8),
    // structlog's default key.
    (b"event", Role::Message, 9),
];
const ALIAS_COUNT: usize = ALIAS_LIST.len();

/// Letters a-z (either case) and `@`: the first bytes aliases may have.
const FIRST_CLASSES: usize = 27;
/// Aliases one length and first letter have at most.
const SHAPE_SLOTS: usize = 4;

/// The class of a key's first byte, if an alias may start with it.
const fn first_class(b: u8) -> Option<usize> {
    match b {
        b'a'..=b'z' => Some((b - b'a') as usize),
        b'A'..=b'Z' => Some((b - b'A') as usize),
        b'@' => Some(26),
        _ => None,
    }
}

/// For each key length and first letter, the aliases of that shape (their
/// index in [`ALIAS_LIST`] plus one; 0 ends the list).
static SHAPES: [[[u8; SHAPE_SLOTS]; FIRST_CLASSES]; MAX_ALIAS_KEY + 1] = shapes();

/// Builds [`SHAPES`]; fails to compile if a shape has too many aliases.
const fn shapes() -> [[[u8; SHAPE_SLOTS]; FIRST_CLASSES]; MAX_ALIAS_KEY + 1] {
    let mut table = [[[0u8; SHAPE_SLOTS]; FIRST_CLASSES]; MAX_ALIAS_KEY + 1];
    let mut i = 0;
    while i < ALIAS_COUNT {
        let alias = ALIAS_LIST[i].0;
        assert!(!alias.is_empty() && alias.len() <= MAX_ALIAS_KEY);
        let Some(class) = first_class(alias[0]) else {
            panic!("an alias starts with a byte outside a-z and @");
        };
        let slots = &mut table[alias.len()][class];
        let mut j = 0;
        while slots[j] != 0 {
            j += 1;
            assert!(j < SHAPE_SLOTS, "too many aliases of one shape");
        }
        slots[j] = (i + 1) as u8;
        i += 1;
    }
    table
}

/// What becomes of the value of a known field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// The record's event time.
    Time(i64),
    /// The record's level.
    Level(Level),
    /// The value itself is the service, host or message.
    Value,
    /// Taken out of the attributes and used for nothing (a null message
    /// or level).
    Drop,
    /// Stays an attribute, under its key.
    Keep,
    /// Stays an attribute, renamed [`TIMESTAMP_RAW`] (a timestamp that
    /// could not be used).
    KeepAsRawTime,
}

/// Judges the value of a field naming `role` (a scalar of JSON kind `kind`;
/// objects and arrays never get here): how it is used, and whether its type
/// is wrong for the role.
pub(crate) fn judge(role: Role, kind: Kind, value: &str, tc: &TimeCtx) -> (Use, bool) {
    match role {
        Role::Time => {
            let parsed = match kind {
                Kind::Str | Kind::Num => timestamp::parse_value(value, tc),
                _ => None,
            };
            let used = match parsed {
                Some(us) if timestamp::plausible(us) => Use::Time(us),
                _ if kind == Kind::Null => Use::Keep,
                _ => Use::KeepAsRawTime,
            };
            (used, kind == Kind::Bool)
        }
        Role::Level => match kind {
            Kind::Str | Kind::Num => (parse_level(value).map_or(Use::Keep, Use::Level), false),
            Kind::Null => (Use::Drop, false),
            _ => (Use::Keep, true),
        },
        Role::Service | Role::Host => {
            let scalar = matches!(kind, Kind::Str | Kind::Num | Kind::Bool);
            let used = if scalar && !value.is_empty() {
                Use::Value
            } else {
                Use::Keep
            };
            (used, false)
        }
        Role::Message if kind == Kind::Null => (Use::Drop, false),
        Role::Message => (Use::Value, false),
    }
}

impl Scratch {
    /// Takes the known fields out of `rec.attributes` (whose kinds are in
    /// `self.kinds`) into the record fields.
    pub(crate) fn resolve(&mut self, rec: &mut LogRecord, tc: &TimeCtx) {
        let mut best: [Option<(u8, usize)>; Role::COUNT] = [None; Role::COUNT];
        for (i, (k, _)) in rec.attributes.iter().enumerate() {
            let Some((role, prio)) = role_of(k) else {
                continue;
            };
            let kind = self.kinds.get(i).copied().unwrap_or(Kind::Str);
            if matches!(kind, Kind::Obj | Kind::Arr) {
                self.wrong_type[role as usize] = true;
                continue;
            }
            let slot = &mut best[role as usize];
            if slot.is_none_or(|(p, _)| prio < p) {
                *slot = Some((prio, i));
            }
        }
        // Indices to remove, taken from the back so earlier ones stay valid.
        let mut remove: [Option<(usize, Role, Use)>; Role::COUNT] = [None; Role::COUNT];
        let mut wrong = false;
        for role in Role::ALL {
            let Some((_, i)) = best[role as usize] else {
                wrong |= self.wrong_type[role as usize];
                continue;
            };
            let kind = self.kinds.get(i).copied().unwrap_or(Kind::Str);
            let (used, wrong_type) = judge(role, kind, &rec.attributes[i].1, tc);
            wrong |= wrong_type;
            match used {
                Use::Time(us) => self.use_time(rec, us),
                Use::Level(level) => rec.level = level,
                Use::Keep => continue,
                Use::KeepAsRawTime => {
                    let key = &mut rec.attributes[i].0;
                    key.clear();
                    key.push_str(TIMESTAMP_RAW);
                    continue;
                }
                Use::Value | Use::Drop => {}
            }
            remove[role as usize] = Some((i, role, used));
        }
        // Remove from the back so the earlier indices stay valid.
        remove.sort_unstable_by(|a, b| b.map(|x| x.0).cmp(&a.map(|x| x.0)));
        for (i, role, used) in remove.into_iter().flatten() {
            let (k, v) = rec.attributes.remove(i);
            if i < self.kinds.len() {
                self.kinds.remove(i);
            }
            Self::give(&mut self.pool, k);
            match (role, used) {
                (Role::Service, Use::Value) => rec.service = Some(v),
                (Role::Host, Use::Value) => rec.host = Some(v),
                (Role::Message, Use::Value) => {
                    let old = std::mem::replace(&mut rec.message, v);
                    Self::give(&mut self.pool, old);
                }
                _ => Self::give(&mut self.pool, v),
            }
        }
        if wrong {
            Self::issue(rec, ParseIssue::FieldType);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each alias names its role, whatever the case of its letters; a key
    /// that only starts with an alias names none.
    #[test]
    fn aliases_are_found_by_length_and_first_letter() {
        for &(alias, role, prio) in ALIAS_LIST {
            let key = std::str::from_utf8(alias).expect("aliases are ASCII");
            assert_eq!(role_of(key), Some((role, prio)), "{key}");
            assert_eq!(role_of(&key.to_ascii_uppercase()), Some((role, prio)));
            assert_eq!(role_of(&format!("{key}\0")), None, "{key} with a NUL");
            assert_eq!(role_of(&key[..key.len() - 1]).map(|r| r.0), {
                let shorter = &alias[..alias.len() - 1];
                ALIAS_LIST.iter().find(|a| a.0 == shorter).map(|a| a.1)
            });
        }
        let mut distinct: Vec<&[u8]> = ALIAS_LIST.iter().map(|a| a.0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ALIAS_COUNT, "aliases are distinct");
        assert!(ALIAS_LIST
            .iter()
            .all(|a| a.0.iter().all(|b| !b.is_ascii_uppercase())));
        for key in [
            "",
            "trace_id",
            "duration_ms",
            "x",
            "timestamps",
            "service.names",
        ] {
            assert_eq!(role_of(key), None, "{key}");
        }
    }
}
