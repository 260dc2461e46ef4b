//! Known fields of structured records: which keys name the timestamp, level,
//! service, host and message, and how they are taken out of the attributes.
//!
//! Keys are matched case-insensitively, including dotted keys produced by
//! flattening (`{"service":{"name":"x"}}` gives `service.name`). `logger` is
//! deliberately not a service alias: a logger names a class or module inside
//! a service, so it stays an attribute.

use crate::record::{LogRecord, ParseIssue};

use super::level::parse_level;
use super::timestamp::{self, TimeCtx};
use super::Scratch;

/// Attribute holding a timestamp that was found but could not be used.
pub const TIMESTAMP_RAW: &str = "timestamp_raw";
/// Attribute counting the attributes dropped over the configured limit.
pub const ATTRIBUTES_DROPPED: &str = "attributes_dropped";

/// Longest key checked against the aliases.
const MAX_ALIAS_KEY: usize = 13;

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
    if key.is_empty() || key.len() > MAX_ALIAS_KEY {
        return None;
    }
    // Cheap gate: the first letters of all aliases.
    if !matches!(
        key.as_bytes()[0].to_ascii_lowercase(),
        b't' | b'@' | b'd' | b'e' | b'l' | b's' | b'a' | b'c' | b'h' | b'm'
    ) {
        return None;
    }
    let mut buf = [0u8; MAX_ALIAS_KEY];
    for (dst, src) in buf.iter_mut().zip(key.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    let k = &buf[..key.len()];
    Some(match k {
        b"timestamp" => (Role::Time, 0),
        b"@timestamp" => (Role::Time, 1),
        b"time" => (Role::Time, 2),
        b"ts" => (Role::Time, 3),
        b"datetime" => (Role::Time, 4),
        b"date" => (Role::Time, 5),
        b"@t" => (Role::Time, 6),
        b"t" => (Role::Time, 7),
        b"asctime" => (Role::Time, 8),
        b"event_time" | b"eventtime" => (Role::Time, 9),
        b"time_local" | b"time_iso8601" => (Role::Time, 10),

        b"level" => (Role::Level, 0),
        b"severity" => (Role::Level, 1),
        b"log.level" => (Role::Level, 2),
        b"lvl" => (Role::Level, 3),
        b"loglevel" | b"log_level" => (Role::Level, 4),
        b"levelname" | b"level_name" => (Role::Level, 5),
        b"severity_text" | b"severitytext" => (Role::Level, 6),
        b"@l" => (Role::Level, 7),

        b"service" => (Role::Service, 0),
        b"service.name" => (Role::Service, 1),
        b"service_name" | b"servicename" => (Role::Service, 2),
        b"app" => (Role::Service, 3),
        b"app.name" | b"app_name" | b"appname" => (Role::Service, 4),
        b"application" => (Role::Service, 5),
        b"component" => (Role::Service, 6),

        b"host" => (Role::Host, 0),
        b"hostname" => (Role::Host, 1),
        b"host.name" => (Role::Host, 2),
        b"host.hostname" => (Role::Host, 3),

        b"message" => (Role::Message, 0),
        b"msg" => (Role::Message, 1),
        b"@message" => (Role::Message, 2),
        b"@m" => (Role::Message, 3),
        b"short_message" => (Role::Message, 4),
        b"log" => (Role::Message, 5),
        b"text" => (Role::Message, 6),
        b"@mt" => (Role::Message, 7),
        _ => return None,
    })
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
        let mut remove: [Option<(usize, Role, Kind)>; Role::COUNT] = [None; Role::COUNT];
        let mut wrong = false;
        for role in Role::ALL {
            let Some((_, i)) = best[role as usize] else {
                wrong |= self.wrong_type[role as usize];
                continue;
            };
            let kind = self.kinds.get(i).copied().unwrap_or(Kind::Str);
            let value = rec.attributes[i].1.as_str();
            let used = match role {
                Role::Time => {
                    let parsed = match kind {
                        Kind::Str | Kind::Num => timestamp::parse_value(value, tc),
                        _ => {
                            wrong |= kind == Kind::Bool;
                            None
                        }
                    };
                    match parsed {
                        Some(us) if timestamp::plausible(us) => {
                            rec.event_time_us = us;
                            rec.time_source = crate::record::TimeSource::Parsed;
                            self.have_time = true;
                            true
                        }
                        _ => {
                            if kind != Kind::Null {
                                let key = &mut rec.attributes[i].0;
                                key.clear();
                                key.push_str(TIMESTAMP_RAW);
                            }
                            false
                        }
                    }
                }
                Role::Level => match kind {
                    Kind::Str | Kind::Num => match parse_level(value) {
                        Some(level) => {
                            rec.level = level;
                            true
                        }
                        None => false,
                    },
                    Kind::Null => true,
                    _ => {
                        wrong = true;
                        false
                    }
                },
                Role::Service | Role::Host => {
                    matches!(kind, Kind::Str | Kind::Num | Kind::Bool) && !value.is_empty()
                }
                Role::Message => true,
            };
            if used {
                remove[role as usize] = Some((i, role, kind));
            }
        }
        // Remove from the back so the earlier indices stay valid.
        remove.sort_unstable_by(|a, b| b.map(|x| x.0).cmp(&a.map(|x| x.0)));
        for (i, role, kind) in remove.into_iter().flatten() {
            let (k, v) = rec.attributes.remove(i);
            if i < self.kinds.len() {
                self.kinds.remove(i);
            }
            Self::give(&mut self.pool, k);
            let kind_null = kind == Kind::Null;
            match role {
                Role::Time | Role::Level => Self::give(&mut self.pool, v),
                Role::Service => rec.service = Some(v),
                Role::Host => rec.host = Some(v),
                Role::Message => {
                    if kind_null {
                        Self::give(&mut self.pool, v);
                    } else {
                        let old = std::mem::replace(&mut rec.message, v);
                        Self::give(&mut self.pool, old);
                    }
                }
            }
        }
        if wrong {
            Self::issue(rec, ParseIssue::FieldType);
        }
    }
}
