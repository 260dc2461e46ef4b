//! Synthetic application logs: several services with their own rates, levels
//! and messages, in JSON, logfmt and plain-text lines, following a daily-like
//! rate curve, optionally with an injected incident. Deterministic for a seed:
//! the demo, the tests and the benchmarks all use it.

use std::fmt::Write as _;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};

/// One simulated service.
struct Service {
    name: &'static str,
    /// Mean events per second of event time at the daily average.
    rate: f64,
    /// Error ratio in normal operation.
    error_ratio: f64,
    hosts: u32,
    info: &'static [&'static str],
    errors: &'static [&'static str],
}

const SERVICES: &[Service] = &[
    Service {
        name: "checkout",
        rate: 12.0,
        error_ratio: 0.01,
        hosts: 3,
        info: &[
            "order {id} placed with {n} items total {amount} EUR",
            "cart {id} updated: {n} items",
            "GET /api/cart/{id} 200 in {ms}ms",
        ],
        errors: &[
            "payment service returned 502 for order {id}",
            "order {id} failed: inventory reservation timed out after {ms}ms",
        ],
    },
    Service {
        name: "payments",
        rate: 8.0,
        error_ratio: 0.015,
        hosts: 2,
        info: &[
            "payment {id} authorized amount={amount} currency=EUR",
            "refund {id} settled in {ms}ms",
            "3ds challenge completed for card ending {n}",
        ],
        errors: &[
            "payment {id} declined: card expired",
            "acquirer timeout after {ms}ms for payment {id}",
        ],
    },
    Service {
        name: "search",
        rate: 20.0,
        error_ratio: 0.005,
        hosts: 4,
        info: &[
            "query \"{word}\" returned {n} hits in {ms}ms",
            "index shard {n} refreshed in {ms}ms",
            "GET /search?q={word} 200 in {ms}ms",
        ],
        errors: &["shard {n} unavailable, partial results for query \"{word}\""],
    },
    Service {
        name: "auth",
        rate: 6.0,
        error_ratio: 0.02,
        hosts: 2,
        info: &[
            "user {id} logged in from {ip}",
            "token refreshed for user {id}",
            "session {id} expired after {n} minutes",
        ],
        errors: &[
            "login failed for user {id} from {ip}: bad credentials",
            "ldap bind failed: connection reset by {ip}",
        ],
    },
    Service {
        name: "inventory",
        rate: 5.0,
        error_ratio: 0.01,
        hosts: 2,
        info: &[
            "reserved {n} units of sku-{id}",
            "stock level for sku-{id} is {n}",
            "cache miss for key sku-{id}",
        ],
        errors: &[
            "db connection pool exhausted (active={n})",
            "deadlock detected while reserving sku-{id}",
        ],
    },
    Service {
        name: "frontend",
        rate: 25.0,
        error_ratio: 0.004,
        hosts: 5,
        info: &[
            "GET /product/{id} 200 in {ms}ms",
            "GET /static/app.{n}.js 304 in {ms}ms",
            "rendered page home in {ms}ms",
        ],
        errors: &[
            "upstream checkout returned 503 for /cart/{id}",
            "template render error on /product/{id}",
        ],
    },
];

const WORDS: &[&str] = &[
    "shoes", "laptop", "coffee", "lamp", "desk", "phone", "jacket", "book",
];

/// Sum of the services' base rates: the default events per second.
pub fn base_rate() -> f64 {
    SERVICES.iter().map(|s| s.rate).sum()
}

/// Names of the simulated services.
pub fn service_names() -> Vec<&'static str> {
    SERVICES.iter().map(|s| s.name).collect()
}

/// An injected incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub kind: IncidentKind,
    pub service: String,
    /// Start, in seconds of event time after the generator's start.
    pub start_secs: f64,
    pub duration_secs: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentKind {
    /// The service's error ratio jumps to 40%.
    ErrorBurst,
    /// The service's traffic drops to 5%.
    TrafficDrop,
    /// The service's traffic grows fivefold.
    TrafficSurge,
    /// A tenth of the service's lines become warnings of a template it never
    /// logged before.
    NewTemplate,
    /// The service's `duration_ms` quadruples.
    Latency,
    /// The service's traffic grows linearly to twice its rate over the
    /// duration, and stays there: a slow change that must not alert.
    Drift,
}

impl IncidentKind {
    /// Whether a detector should alert on it.
    pub fn should_alert(self) -> bool {
        !matches!(self, IncidentKind::Drift)
    }
}

/// The template of [`IncidentKind::NewTemplate`] lines.
pub const NEW_TEMPLATE_LINE: &str = "circuit breaker opened for shard {n} after repeated failures";

impl FromStr for Incident {
    type Err = String;

    /// `KIND:SERVICE@START+DURATION`, e.g. `error-burst:payments@40m+5m`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || {
            format!("incident `{s}`: expected KIND:SERVICE@START+DURATION, e.g. error-burst:payments@40m+5m")
        };
        let (kind, rest) = s.split_once(':').ok_or_else(usage)?;
        let (service, when) = rest.split_once('@').ok_or_else(usage)?;
        let (start, duration) = when.split_once('+').ok_or_else(usage)?;
        let kind = match kind {
            "error-burst" => IncidentKind::ErrorBurst,
            "traffic-drop" => IncidentKind::TrafficDrop,
            "traffic-surge" => IncidentKind::TrafficSurge,
            "new-template" => IncidentKind::NewTemplate,
            "latency" => IncidentKind::Latency,
            "drift" => IncidentKind::Drift,
            _ => {
                return Err(format!(
                    "incident kind `{kind}`: expected error-burst, traffic-drop, traffic-surge, new-template, latency or drift"
                ))
            }
        };
        if !SERVICES.iter().any(|x| x.name == service) {
            return Err(format!(
                "incident service `{service}`: expected one of {}",
                service_names().join(", ")
            ));
        }
        Ok(Incident {
            kind,
            service: service.to_string(),
            start_secs: parse_duration_secs(start).ok_or_else(usage)?,
            duration_secs: parse_duration_secs(duration).ok_or_else(usage)?,
        })
    }
}

/// Parses `90`, `90s`, `15m`, `2h`, `1d` into seconds.
pub fn parse_duration_secs(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    (v.is_finite() && v >= 0.0).then_some(v * mult)
}

/// Generator settings.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub seed: u64,
    /// Event time of the first record, microseconds since the epoch.
    pub start_us: i64,
    /// Scales every service's rate (1.0 = [`base_rate`] events per second).
    pub rate_scale: f64,
    /// Share of lines written as JSON; the rest split between logfmt and text.
    pub json_share: f64,
    /// Injected incidents (any number, any overlap).
    pub incidents: Vec<Incident>,
}

/// What the active incidents change about one service's lines.
#[derive(Debug, Clone, Copy)]
struct Mods {
    error_ratio: f64,
    new_template: bool,
    latency: f64,
}

/// One generated line with what the parser should find in it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub seq: u64,
    pub service: &'static str,
    pub level: &'static str,
    pub event_time_us: i64,
    /// The message a parser should extract from the line.
    pub message: String,
    pub line: String,
}

/// An endless, deterministic stream of log lines in event-time order.
pub struct Generator {
    cfg: GeneratorConfig,
    rng: StdRng,
    /// Seconds of event time elapsed.
    second: u64,
    /// Lines of the current second, in order.
    queue: std::collections::VecDeque<Generated>,
    seq: u64,
}

impl Generator {
    pub fn new(cfg: GeneratorConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            rng,
            second: 0,
            queue: Default::default(),
            seq: 0,
        }
    }

    /// Daily-like curve: quiet at night, busy in the afternoon (0.5x..1.5x).
    fn daily_factor(&self, t_us: i64) -> f64 {
        let secs_of_day = t_us.div_euclid(1_000_000).rem_euclid(86_400) as f64;
        1.0 + 0.5 * (std::f64::consts::TAU * (secs_of_day / 86_400.0 - 0.375)).sin()
    }

    fn fill_second(&mut self) {
        let sec_start = self.cfg.start_us + self.second as i64 * 1_000_000;
        let elapsed = self.second as f64;
        let daily = self.daily_factor(sec_start);
        let mut lines = Vec::new();
        for svc in SERVICES {
            let mut rate = svc.rate * self.cfg.rate_scale * daily;
            let mut mods = Mods {
                error_ratio: svc.error_ratio,
                new_template: false,
                latency: 1.0,
            };
            for inc in self.cfg.incidents.iter().filter(|i| i.service == svc.name) {
                let into = elapsed - inc.start_secs;
                if inc.kind == IncidentKind::Drift && into >= 0.0 {
                    rate *= 1.0 + (into / inc.duration_secs.max(1.0)).min(1.0);
                }
                if into < 0.0 || into >= inc.duration_secs {
                    continue;
                }
                match inc.kind {
                    IncidentKind::ErrorBurst => mods.error_ratio = 0.4,
                    IncidentKind::TrafficDrop => rate *= 0.05,
                    IncidentKind::TrafficSurge => rate *= 5.0,
                    IncidentKind::NewTemplate => mods.new_template = true,
                    IncidentKind::Latency => mods.latency = 4.0,
                    IncidentKind::Drift => {}
                }
            }
            let n = Poisson::new(rate.max(1e-9)).map_or(0.0, |p| p.sample(&mut self.rng)) as u64;
            for _ in 0..n {
                let offset_us = self.rng.random_range(0..1_000_000);
                lines.push((sec_start + offset_us, svc, mods));
            }
        }
        lines.sort_by_key(|(t, _, _)| *t);
        for (t, svc, mods) in lines {
            let g = self.render(t, svc, mods);
            self.queue.push_back(g);
        }
        self.second += 1;
    }

    fn render(&mut self, t_us: i64, svc: &'static Service, mods: Mods) -> Generated {
        let error_ratio = mods.error_ratio;
        let rng = &mut self.rng;
        let r: f64 = rng.random();
        let (level, template) = if mods.new_template && rng.random::<f64>() < 0.1 {
            ("warn", NEW_TEMPLATE_LINE)
        } else if r < error_ratio {
            ("error", svc.errors[rng.random_range(0..svc.errors.len())])
        } else if r < error_ratio + 0.03 {
            ("warn", svc.info[rng.random_range(0..svc.info.len())])
        } else if r < error_ratio + 0.10 {
            ("debug", svc.info[rng.random_range(0..svc.info.len())])
        } else {
            ("info", svc.info[rng.random_range(0..svc.info.len())])
        };
        let ms = (f64::from(rng.random_range(1..900u32)) * mods.latency) as u32;
        let mut msg = String::with_capacity(96);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            msg.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            match &rest[open + 1..open + close] {
                "id" => {
                    let _ = write!(msg, "{}", rng.random_range(10_000..99_999_999u64));
                }
                "n" => {
                    let _ = write!(msg, "{}", rng.random_range(1..64));
                }
                "ms" => {
                    let _ = write!(msg, "{ms}");
                }
                "amount" => {
                    let _ = write!(
                        msg,
                        "{}.{:02}",
                        rng.random_range(1..500),
                        rng.random_range(0..100)
                    );
                }
                "ip" => {
                    let _ = write!(
                        msg,
                        "10.{}.{}.{}",
                        rng.random_range(0..255),
                        rng.random_range(0..255),
                        rng.random_range(1..255)
                    );
                }
                "word" => msg.push_str(WORDS[rng.random_range(0..WORDS.len())]),
                other => msg.push_str(other),
            }
            rest = &rest[open + close + 1..];
        }
        msg.push_str(rest);
        let host = format!("{}-{}", svc.name, rng.random_range(1..=svc.hosts));
        let trace: u64 = rng.random();
        let seq = self.seq;
        self.seq += 1;
        let ts = chrono::DateTime::from_timestamp_micros(t_us)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let shape: f64 = rng.random();
        let (line, message) = if shape < self.cfg.json_share {
            let msg_json = serde_json::to_string(&msg).unwrap_or_default();
            let line = format!(
                r#"{{"ts":"{ts}","level":"{level}","service":"{}","host":"{host}","msg":{msg_json},"trace_id":"{trace:016x}","duration_ms":{ms},"region":"eu-west-1","seq":{seq}}}"#,
                svc.name
            );
            (line, msg)
        } else if shape < self.cfg.json_share + (1.0 - self.cfg.json_share) / 2.0 {
            let escaped = msg.replace('\\', "\\\\").replace('"', "\\\"");
            let line = format!(
                r#"ts={ts} level={level} service={} host={host} msg="{escaped}" trace_id={trace:016x} duration_ms={ms} seq={seq}"#,
                svc.name
            );
            (line, msg)
        } else {
            let message = format!("{msg} seq={seq}");
            let line = format!(
                "{ts} {} {}[{}]: {message}",
                level.to_uppercase(),
                svc.name,
                1000 + svc.hosts
            );
            (line, message)
        };
        Generated {
            seq,
            service: svc.name,
            level,
            event_time_us: t_us,
            message,
            line,
        }
    }
}

impl Iterator for Generator {
    type Item = Generated;

    fn next(&mut self) -> Option<Generated> {
        while self.queue.is_empty() {
            self.fill_second();
        }
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(seed: u64) -> GeneratorConfig {
        GeneratorConfig {
            seed,
            start_us: 1_700_000_000_000_000,
            rate_scale: 1.0,
            json_share: 0.8,
            incidents: Vec::new(),
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a: Vec<String> = Generator::new(cfg(7)).take(500).map(|g| g.line).collect();
        let b: Vec<String> = Generator::new(cfg(7)).take(500).map(|g| g.line).collect();
        let c: Vec<String> = Generator::new(cfg(8)).take(500).map(|g| g.line).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn ordered_unique_and_mixed() {
        let lines: Vec<Generated> = Generator::new(cfg(1)).take(5000).collect();
        assert!(lines
            .windows(2)
            .all(|w| w[0].event_time_us <= w[1].event_time_us));
        assert!(lines.iter().enumerate().all(|(i, g)| g.seq == i as u64));
        let json = lines.iter().filter(|g| g.line.starts_with('{')).count();
        assert!(json > 3500 && json < 4500, "{json}");
        assert!(lines.iter().all(|g| g.line.contains(&format!("{}", g.seq))));
        for g in lines.iter().filter(|g| g.line.starts_with('{')).take(50) {
            let v: serde_json::Value = serde_json::from_str(&g.line).expect("valid JSON");
            assert_eq!(v["service"], g.service);
        }
    }

    #[test]
    fn error_burst_raises_error_ratio() {
        let mut c = cfg(3);
        c.incidents = vec!["error-burst:payments@60s+60s"
            .parse()
            .expect("valid incident")];
        let lines: Vec<Generated> = Generator::new(c)
            .take_while(|g| g.event_time_us < 1_700_000_000_000_000 + 180_000_000)
            .collect();
        let in_burst = |g: &&Generated| {
            g.service == "payments"
                && g.event_time_us >= 1_700_000_060_000_000
                && g.event_time_us < 1_700_000_120_000_000
        };
        let burst: Vec<&Generated> = lines.iter().filter(in_burst).collect();
        let errors = burst.iter().filter(|g| g.level == "error").count();
        assert!(
            errors as f64 > 0.25 * burst.len() as f64,
            "{errors}/{}",
            burst.len()
        );
    }

    #[test]
    fn incident_syntax() {
        assert!("error-burst:nope@1m+1m".parse::<Incident>().is_err());
        assert!("bogus:checkout@1m+1m".parse::<Incident>().is_err());
        let i: Incident = "traffic-drop:search@40m+10m".parse().expect("valid");
        assert_eq!((i.start_secs, i.duration_secs), (2400.0, 600.0));
        assert_eq!(parse_duration_secs("1.5h"), Some(5400.0));
    }
}
