//! End-to-end tests of [`Parser::parse`]: every format, the payload guards,
//! property tests, the loghub header-stripping check and a speed loop.

use super::*;
use crate::record::{Format, Level, LogRecord, ParseIssue, TimeSource};

/// 2024-06-01T00:00:00Z.
const NOW: i64 = 1_717_200_000_000_000;
const KAFKA: i64 = 1_717_100_000_000_000;

fn ctx() -> ParseContext {
    ParseContext {
        transport_time_us: Some(KAFKA),
        ingest_time_us: NOW,
    }
}

fn parser() -> Parser {
    Parser::new(ParserConfig::default()).expect("default config is valid")
}

fn parse_with(p: &mut Parser, line: &str) -> LogRecord {
    let mut rec = LogRecord::default();
    p.parse(Some(line.as_bytes()), &ctx(), &mut rec);
    rec
}

fn parse(line: &str) -> LogRecord {
    parse_with(&mut parser(), line)
}

fn attr<'a>(rec: &'a LogRecord, key: &str) -> Option<&'a str> {
    rec.attributes
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn us(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
    (timestamp::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1_000_000
}

// ---- JSON ----

#[test]
fn json_basic_aliases() {
    let rec = parse(
        r#"{"ts":"2024-01-02T03:04:05.5Z","level":"WARN","msg":"disk low","service":"api","host":"h1","free":12,"ok":false,"tags":["a","b"],"http":{"status":503,"path":"/x"}}"#,
    );
    assert_eq!(rec.format, Format::Json);
    assert_eq!(rec.event_time_us, us(2024, 1, 2, 3, 4, 5) + 500_000);
    assert_eq!(rec.time_source, TimeSource::Parsed);
    assert_eq!(rec.level, Level::Warn);
    assert_eq!(rec.message, "disk low");
    assert_eq!(rec.service.as_deref(), Some("api"));
    assert_eq!(rec.host.as_deref(), Some("h1"));
    assert_eq!(attr(&rec, "free"), Some("12"));
    assert_eq!(attr(&rec, "ok"), Some("false"));
    assert_eq!(attr(&rec, "tags"), Some(r#"["a","b"]"#));
    assert_eq!(attr(&rec, "http.status"), Some("503"));
    assert_eq!(attr(&rec, "http.path"), Some("/x"));
    assert_eq!(rec.parse_issue, None);
    assert_eq!(rec.raw, None);
    assert!(attr(&rec, "msg").is_none() && attr(&rec, "level").is_none());
}

#[test]
fn json_nested_aliases_and_ecs() {
    let rec = parse(
        r#"{"@timestamp":"2024-01-02T03:04:05Z","log":{"level":"error","logger":"a.B"},"service":{"name":"billing"},"host":{"name":"n1"},"message":"boom"}"#,
    );
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.service.as_deref(), Some("billing"));
    assert_eq!(rec.host.as_deref(), Some("n1"));
    assert_eq!(rec.message, "boom");
    assert_eq!(attr(&rec, "log.logger"), Some("a.B"));
    assert_eq!(rec.parse_issue, None);
}

#[test]
fn json_logger_is_not_service_and_priorities() {
    let rec = parse(r#"{"logger":"com.x.Y","message":"m","msg":"other","time":1700000000}"#);
    assert_eq!(rec.service, None);
    assert_eq!(attr(&rec, "logger"), Some("com.x.Y"));
    assert_eq!(rec.message, "m");
    assert_eq!(attr(&rec, "msg"), Some("other"));
    assert_eq!(rec.event_time_us, 1_700_000_000_000_000);
}

#[test]
fn json_structlog_event_is_the_message_unless_there_is_one() {
    let rec = parse(
        r#"{"event":"user logged in","level":"info","timestamp":"2024-01-02T03:04:05Z","user":"ann"}"#,
    );
    assert_eq!(rec.message, "user logged in");
    assert_eq!(rec.level, Level::Info);
    assert!(attr(&rec, "event").is_none());
    let rec = parse(r#"{"message":"m","event":"login"}"#);
    assert_eq!(rec.message, "m");
    assert_eq!(attr(&rec, "event"), Some("login"));
}

#[test]
fn json_numeric_levels_and_epochs() {
    let rec = parse(r#"{"level":50,"time":1700000000123,"msg":"pino"}"#);
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.event_time_us, 1_700_000_000_123_000);
    let rec = parse(r#"{"severity":"3","timestamp":"1700000000.25","msg":"x"}"#);
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.event_time_us, 1_700_000_000_250_000);
}

#[test]
fn json_escapes_and_unicode() {
    let rec = parse(r#"{"msg":"line\nnext \"q\" \u00e9","k\"ey":"v"}"#);
    assert_eq!(rec.message, "line\nnext \"q\" é");
    assert_eq!(attr(&rec, "k\"ey"), Some("v"));
}

#[test]
fn json_wrong_types() {
    // Level as an object: kept as attributes, FieldType, raw kept.
    let line = r#"{"level":{"x":1},"msg":"m"}"#;
    let rec = parse(line);
    assert_eq!(rec.level, Level::Unknown);
    assert_eq!(attr(&rec, "level.x"), Some("1"));
    assert_eq!(rec.parse_issue, Some(ParseIssue::FieldType));
    assert_eq!(rec.raw.as_deref(), Some(line.as_bytes()));
    // Message as a number: converted.
    let rec = parse(r#"{"message":42}"#);
    assert_eq!(rec.message, "42");
    assert_eq!(rec.parse_issue, None);
    // Message as an array, timestamp as a bool, level as an array.
    let rec = parse(r#"{"message":[1,2],"time":true,"level":["e"]}"#);
    assert_eq!(rec.message, "");
    assert_eq!(attr(&rec, "message"), Some("[1,2]"));
    assert_eq!(rec.parse_issue, Some(ParseIssue::FieldType));
    assert_eq!(rec.time_source, TimeSource::Kafka);
    // Null message: empty, no issue.
    let rec = parse(r#"{"message":null,"level":"info"}"#);
    assert_eq!(rec.message, "");
    assert_eq!(rec.parse_issue, None);
    // Unknown level word: kept as the attribute.
    let rec = parse(r#"{"level":"loud","msg":"m"}"#);
    assert_eq!(rec.level, Level::Unknown);
    assert_eq!(attr(&rec, "level"), Some("loud"));
}

#[test]
fn json_bad_and_absurd_timestamps() {
    let rec = parse(r#"{"time":"yesterday","msg":"m"}"#);
    assert_eq!(rec.time_source, TimeSource::Kafka);
    assert_eq!(rec.event_time_us, KAFKA);
    assert_eq!(attr(&rec, "timestamp_raw"), Some("yesterday"));
    let rec = parse(r#"{"time":"1900-01-01T00:00:00Z","msg":"m"}"#);
    assert_eq!(rec.time_source, TimeSource::Kafka);
    assert_eq!(attr(&rec, "timestamp_raw"), Some("1900-01-01T00:00:00Z"));
    let rec = parse(r#"{"time":"2500-01-01T00:00:00Z","msg":"m"}"#);
    assert_eq!(rec.time_source, TimeSource::Kafka);
}

#[test]
fn malformed_json_is_text() {
    let line = r#"{"msg": "unterminated"#;
    let rec = parse(line);
    assert_eq!(rec.format, Format::Text);
    assert_eq!(rec.message, line);
    assert_eq!(rec.parse_issue, Some(ParseIssue::MalformedJson));
    assert_eq!(rec.raw.as_deref(), Some(line.as_bytes()));
    assert!(rec.attributes.is_empty());
    let rec = parse(r#"{"a":1} trailing"#);
    assert_eq!(rec.parse_issue, Some(ParseIssue::MalformedJson));
    let rec = parse("{not json at all}");
    assert_eq!(rec.parse_issue, Some(ParseIssue::MalformedJson));
}

#[test]
fn deeply_nested_json() {
    let deep = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let rec = parse(&deep);
    assert_eq!(rec.parse_issue, Some(ParseIssue::MalformedJson));
    // Valid and 100,000 levels deep: flattened down to the limit, marked.
    let deep = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let rec = parse(&deep);
    assert_eq!(rec.format, Format::Json);
    assert_eq!(rec.parse_issue, Some(ParseIssue::JsonTooDeep));
    let mut nested = String::from("1");
    for _ in 0..100 {
        nested = format!("{{\"a\":{nested}}}");
    }
    let rec = parse(&nested);
    assert_eq!(rec.format, Format::Json);
    assert_eq!(rec.parse_issue, Some(ParseIssue::JsonTooDeep));
    assert_eq!(rec.attributes.len(), 1);
    let (k, v) = &rec.attributes[0];
    assert_eq!(k.split('.').count(), DEFAULT_MAX_JSON_DEPTH);
    assert!(v.starts_with("{\"a\":"));
    let arrays = format!("{{\"x\":{}{}}}", "[".repeat(120), "]".repeat(120));
    assert_eq!(parse(&arrays).format, Format::Json);
    // Within the limit: no marker.
    let shallow = parse(r#"{"a":{"b":{"c":1}},"msg":"m"}"#);
    assert_eq!(shallow.parse_issue, None);
    assert_eq!(attr(&shallow, "a.b.c"), Some("1"));
    // A broken payload that also went too deep is malformed, not too deep.
    let mut broken = nested.clone();
    broken.pop();
    assert_eq!(parse(&broken).parse_issue, Some(ParseIssue::MalformedJson));
}

#[test]
fn repeated_alias_keys_are_bounded_too() {
    // Found by the `auto` fuzz target: alias keys were kept past the cap
    // without limit.
    let mut line = String::from("level=warn");
    for i in 0..1000 {
        line.push_str(&format!(" msg=m{i} ts=x{i}"));
    }
    let rec = parse(&line);
    assert_eq!(rec.format, Format::Logfmt);
    assert!(
        rec.attributes.len() <= DEFAULT_MAX_ATTRIBUTES + 17,
        "{}",
        rec.attributes.len()
    );
    assert_eq!(rec.level, Level::Warn);
    assert!(attr(&rec, "attributes_dropped").is_some());
}

#[test]
fn too_many_attributes_are_counted() {
    let mut line = String::from("{\"msg\":\"m\"");
    for i in 0..1000 {
        line.push_str(&format!(",\"k{i}\":{i}"));
    }
    line.push('}');
    let rec = parse(&line);
    assert_eq!(rec.message, "m");
    assert_eq!(rec.attributes.len(), DEFAULT_MAX_ATTRIBUTES);
    assert_eq!(attr(&rec, "attributes_dropped"), Some("745"));
}

#[test]
fn docker_json_file() {
    let rec = parse(
        r#"{"log":"2024-01-02 03:04:05,123 ERROR [main] com.x.Y - boom\n","stream":"stderr","time":"2024-05-01T00:00:00.000000001Z"}"#,
    );
    assert_eq!(rec.format, Format::Container);
    assert_eq!(rec.message, "boom");
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.event_time_us, us(2024, 1, 2, 3, 4, 5) + 123_000);
    assert_eq!(attr(&rec, "stream"), Some("stderr"));
    assert_eq!(attr(&rec, "logger"), Some("com.x.Y"));
    assert_eq!(attr(&rec, "thread"), Some("main"));
    // Inner JSON, wrapper time used when the inner has none.
    let rec = parse(
        r#"{"log":"{\"level\":\"info\",\"msg\":\"hi\"}\n","stream":"stdout","time":"2024-05-01T00:00:00Z","attrs":{"tag":"web"}}"#,
    );
    assert_eq!(rec.format, Format::Container);
    assert_eq!(rec.message, "hi");
    assert_eq!(rec.level, Level::Info);
    assert_eq!(rec.event_time_us, us(2024, 5, 1, 0, 0, 0));
    assert_eq!(attr(&rec, "container.tag"), Some("web"));
}

#[test]
fn cri_lines() {
    let rec = parse(r#"2023-10-06T00:17:09.669794202Z stdout F {"level":"warn","msg":"x"}"#);
    assert_eq!(rec.format, Format::Container);
    assert_eq!(rec.level, Level::Warn);
    assert_eq!(rec.message, "x");
    assert_eq!(rec.event_time_us, us(2023, 10, 6, 0, 17, 9) + 669_794);
    assert_eq!(attr(&rec, "stream"), Some("stdout"));
    let rec = parse("2023-10-06T00:17:09Z stderr P partial text");
    assert_eq!(rec.message, "partial text");
    assert_eq!(attr(&rec, "partial"), Some("true"));
    // Not unwrapped twice.
    let rec = parse("2023-10-06T00:17:09Z stdout F 2023-10-06T00:17:10Z stdout F inner");
    assert_eq!(rec.format, Format::Container);
    assert_eq!(rec.message, "stdout F inner");
}

// ---- logfmt ----

#[test]
fn logfmt_lines() {
    let rec = parse(
        r#"ts=2024-01-02T03:04:05Z level=info msg="hello \"world\"" app=web duration=1.5ms flag"#,
    );
    assert_eq!(rec.format, Format::Logfmt);
    assert_eq!(rec.level, Level::Info);
    assert_eq!(rec.message, "hello \"world\"");
    assert_eq!(rec.service.as_deref(), Some("web"));
    assert_eq!(attr(&rec, "duration"), Some("1.5ms"));
    assert_eq!(attr(&rec, "flag"), Some("true"));
    assert_eq!(rec.event_time_us, us(2024, 1, 2, 3, 4, 5));
    // Prose that starts like a pair is text.
    let rec = parse("a=b is what the user typed here today");
    assert_eq!(rec.format, Format::Text);
    assert_eq!(rec.message, "a=b is what the user typed here today");
    // Timestamp-prefixed logfmt.
    let rec = parse("2024-01-02T03:04:05Z level=error msg=bad");
    assert_eq!(rec.format, Format::Logfmt);
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.message, "bad");
    // Unterminated quote does not panic.
    let rec = parse("level=info msg=\"unterminated é\\");
    assert_eq!(rec.message, "unterminated é\\");
}

// ---- syslog ----

#[test]
fn syslog_5424() {
    let rec = parse(
        r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][x@1 k="a\"b"] An application event"#,
    );
    assert_eq!(rec.format, Format::Syslog);
    assert_eq!(rec.level, Level::Info);
    assert_eq!(rec.host.as_deref(), Some("mymachine.example.com"));
    assert_eq!(rec.service.as_deref(), Some("evntslog"));
    assert_eq!(rec.message, "An application event");
    assert_eq!(rec.event_time_us, us(2003, 10, 11, 22, 14, 15) + 3000);
    assert_eq!(attr(&rec, "sd.exampleSDID@32473.iut"), Some("3"));
    assert_eq!(attr(&rec, "sd.x@1.k"), Some("a\"b"));
    assert_eq!(attr(&rec, "msgid"), Some("ID47"));
    assert_eq!(attr(&rec, "syslog.facility"), Some("local4"));
    let rec = parse("<11>1 - - - - - -");
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.message, "");
    assert_eq!(rec.time_source, TimeSource::Kafka);
}

#[test]
fn syslog_3164() {
    let rec = parse("<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick");
    assert_eq!(rec.format, Format::Syslog);
    assert_eq!(rec.level, Level::Fatal);
    assert_eq!(rec.host.as_deref(), Some("mymachine"));
    assert_eq!(rec.service.as_deref(), Some("su"));
    assert_eq!(attr(&rec, "pid"), Some("123"));
    assert_eq!(rec.message, "'su root' failed for lonvick");
    assert_eq!(rec.event_time_us, us(2023, 10, 11, 22, 14, 15));
    assert_eq!(attr(&rec, "syslog.facility"), Some("auth"));
    // Without PRI.
    let rec = parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; x ");
    assert_eq!(rec.format, Format::Syslog);
    assert_eq!(rec.service.as_deref(), Some("sshd(pam_unix)"));
    assert_eq!(rec.host.as_deref(), Some("combo"));
    assert_eq!(rec.message, "authentication failure; x");
    assert_eq!(rec.event_time_us, us(2023, 6, 14, 15, 16, 1));
    // Garbage after PRI.
    let rec = parse("<999>junk");
    assert_eq!(rec.format, Format::Text);
}

// ---- access logs ----

#[test]
fn access_combined_and_common() {
    let rec = parse(
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 503 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" 0.042"#,
    );
    assert_eq!(rec.format, Format::Access);
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.event_time_us, us(2000, 10, 10, 20, 55, 36));
    assert_eq!(attr(&rec, "client.ip"), Some("127.0.0.1"));
    assert_eq!(attr(&rec, "user.name"), Some("frank"));
    assert_eq!(attr(&rec, "http.method"), Some("GET"));
    assert_eq!(attr(&rec, "http.path"), Some("/apache_pb.gif"));
    assert_eq!(attr(&rec, "http.protocol"), Some("HTTP/1.0"));
    assert_eq!(attr(&rec, "http.status"), Some("503"));
    assert_eq!(attr(&rec, "http.bytes"), Some("2326"));
    assert_eq!(
        attr(&rec, "http.referer"),
        Some("http://www.example.com/start.html")
    );
    assert_eq!(
        attr(&rec, "http.user_agent"),
        Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
    );
    assert_eq!(attr(&rec, "http.request_time"), Some("0.042"));
    let rec = parse(r#"::1 - - [10/Oct/2000:13:55:36 +0000] "POST /x HTTP/1.1" 404 -"#);
    assert_eq!(rec.format, Format::Access);
    assert_eq!(rec.level, Level::Warn);
    assert_eq!(attr(&rec, "http.bytes"), None);
    let rec = parse(r#"1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "\x16\x03" 400 0 "-" "-""#);
    assert_eq!(rec.format, Format::Access);
    assert_eq!(attr(&rec, "http.request"), Some("\\x16\\x03"));
    let rec = parse(
        r#"1.2.3.4 - - [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl" rt=0.1 uct="0.0""#,
    );
    assert_eq!(rec.level, Level::Info);
    assert_eq!(attr(&rec, "http.request_time"), Some("0.1"));
    assert_eq!(attr(&rec, "http.upstream_connect_time"), Some("0.0"));
}

// ---- text ----

#[test]
fn text_headers() {
    let rec = parse("2024-01-02 03:04:05,123 ERROR [main] something broke");
    assert_eq!(rec.format, Format::Text);
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.message, "something broke");
    assert_eq!(attr(&rec, "thread"), Some("main"));
    assert_eq!(rec.event_time_us, us(2024, 1, 2, 3, 4, 5) + 123_000);

    let rec =
        parse("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 terminating");
    assert_eq!(rec.level, Level::Info);
    assert_eq!(rec.message, "PacketResponder 1 terminating");
    assert_eq!(attr(&rec, "pid"), Some("148"));
    assert_eq!(attr(&rec, "logger"), Some("dfs.DataNode$PacketResponder"));
    assert_eq!(rec.event_time_us, us(2008, 11, 9, 20, 36, 15));

    let rec = parse("[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6");
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.message, "mod_jk child workerEnv in error state 6");
    assert_eq!(rec.event_time_us, us(2005, 12, 4, 4, 47, 44));

    // A level after the time's `,` or `|`; without one, the separator is
    // the message's.
    for (line, level, message) in [
        (
            "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack",
            Level::Info,
            "CBS    Loaded Servicing Stack",
        ),
        (
            "2016-09-28 04:30:30 | WARN | disk low",
            Level::Warn,
            "disk low",
        ),
        (
            "2016-09-28 04:30:30, then more",
            Level::Unknown,
            ", then more",
        ),
    ] {
        let rec = parse(line);
        assert_eq!(
            (rec.level, rec.message.as_str()),
            (level, message),
            "{line}"
        );
        assert_eq!(rec.event_time_us, us(2016, 9, 28, 4, 30, 30));
    }

    let rec = parse("2009/11/10 23:00:00 listening on :8080");
    assert_eq!(rec.level, Level::Unknown);
    assert_eq!(rec.message, "listening on :8080");
    assert_eq!(rec.time_source, TimeSource::Parsed);

    let rec = parse("WARNING:root:watch out");
    assert_eq!(rec.level, Level::Warn);
    assert_eq!(rec.message, "watch out");
    assert_eq!(attr(&rec, "logger"), Some("root"));

    let rec = parse("Error connecting to db");
    assert_eq!(rec.level, Level::Unknown);
    assert_eq!(rec.message, "Error connecting to db");

    let rec = parse("[ERROR] no time here");
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.message, "no time here");

    let rec = parse("myapp[42]: started");
    assert_eq!(rec.service.as_deref(), Some("myapp"));
    assert_eq!(rec.message, "started");

    let rec = parse("2024-01-02T03:04:05+02:00 INFO - com.x.Main - ready");
    assert_eq!(rec.event_time_us, us(2024, 1, 2, 1, 4, 5));
    assert_eq!(rec.message, "ready");
    assert_eq!(attr(&rec, "logger"), Some("com.x.Main"));

    let rec = parse("just some words");
    assert_eq!(rec.message, "just some words");
    assert_eq!(rec.time_source, TimeSource::Kafka);
}

#[test]
fn default_timezone_is_applied() {
    let cfg = ParserConfig {
        default_timezone: "+02:00".to_owned(),
        ..ParserConfig::default()
    };
    let mut p = Parser::new(cfg).expect("valid");
    let rec = parse_with(&mut p, "2024-01-02 03:04:05 INFO x");
    assert_eq!(rec.event_time_us, us(2024, 1, 2, 1, 4, 5));
}

// ---- forced formats and user patterns ----

#[test]
fn forced_formats() {
    let mut p = Parser::new(ParserConfig {
        format: FormatOverride::Text,
        ..ParserConfig::default()
    })
    .expect("valid");
    let rec = parse_with(&mut p, r#"{"msg":"x"}"#);
    assert_eq!(rec.format, Format::Text);
    assert_eq!(rec.message, r#"{"msg":"x"}"#);

    let mut p = Parser::new(ParserConfig {
        format: FormatOverride::Json,
        ..ParserConfig::default()
    })
    .expect("valid");
    let rec = parse_with(&mut p, "level=info msg=x");
    assert_eq!(rec.format, Format::Text);
    assert_eq!(rec.parse_issue, Some(ParseIssue::MalformedJson));

    let mut p = Parser::new(ParserConfig {
        format: FormatOverride::Logfmt,
        ..ParserConfig::default()
    })
    .expect("valid");
    let rec = parse_with(&mut p, "x=1 msg=hi");
    assert_eq!(rec.format, Format::Logfmt);
    assert_eq!(rec.message, "hi");
}

#[test]
fn per_topic_formats_override_the_global_one() {
    let cfg: ParserConfig = serde_json::from_str(
        r#"{"topics":{"legacy":{"format":"text"},"events":{"format":"json"},"same":{"format":"auto"}}}"#,
    )
    .expect("valid config");
    let mut p = Parser::new(cfg).expect("valid");
    let mut rec = LogRecord::default();
    let line = b"level=warn msg=\"disk low\"";
    p.parse_topic("legacy", Some(line), &ctx(), &mut rec);
    assert_eq!(rec.format, Format::Text);
    assert_eq!(rec.message, "level=warn msg=\"disk low\"");
    p.parse_topic("events", Some(line), &ctx(), &mut rec);
    assert_eq!(rec.parse_issue, Some(ParseIssue::MalformedJson));
    for topic in ["same", "other"] {
        p.parse_topic(topic, Some(line), &ctx(), &mut rec);
        assert_eq!(rec.format, Format::Logfmt, "{topic}");
        assert_eq!(rec.level, Level::Warn);
        assert_eq!(rec.message, "disk low");
    }
    // `parse` (no topic) keeps the global format after a per-topic one.
    p.parse_topic("legacy", Some(line), &ctx(), &mut rec);
    p.parse(Some(line), &ctx(), &mut rec);
    assert_eq!(rec.format, Format::Logfmt);
    assert!(serde_json::from_str::<ParserConfig>(r#"{"topics":{"t":{"fromat":"text"}}}"#).is_err());
}

#[test]
fn strict_mode_settings() {
    let cfg: ParserConfig = serde_json::from_str(r#"{"mode":"strict"}"#).expect("valid config");
    assert_eq!(cfg.mode, ParseMode::Strict);
    assert_eq!(cfg.dead_letter_topic_for("app"), "app.dlq");
    let cfg = ParserConfig {
        dead_letter_topic: "dead-{topic}-letters".to_owned(),
        ..ParserConfig::default()
    };
    assert_eq!(cfg.dead_letter_topic_for("app"), "dead-app-letters");
    assert_eq!(ParserConfig::default().mode, ParseMode::Lenient);
    let err = Parser::new(ParserConfig {
        dead_letter_topic: " ".to_owned(),
        ..ParserConfig::default()
    })
    .err()
    .expect("empty dead-letter topic is invalid");
    assert!(err.to_string().contains("dead_letter_topic"), "{err}");
    assert!(serde_json::from_str::<ParserConfig>(r#"{"mode":"strikt"}"#).is_err());
    for issue in ParseIssue::ALL {
        let parsed_anyway = matches!(issue, ParseIssue::FieldType | ParseIssue::JsonTooDeep);
        assert_eq!(issue.is_unparseable(), !parsed_anyway, "{issue:?}");
    }
}

#[test]
fn config_parses_from_json_and_rejects_unknown_fields() {
    let cfg: ParserConfig = serde_json::from_str(
        r#"{"format":"syslog","default_timezone":"-05:00","patterns":[{"name":"p","regex":"(?P<message>.*)"}]}"#,
    )
    .expect("valid config");
    assert_eq!(cfg.format, FormatOverride::Syslog);
    assert_eq!(cfg.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
    assert!(serde_json::from_str::<ParserConfig>(r#"{"bogus":1}"#).is_err());
    assert!(serde_json::from_str::<ParserConfig>(r#"{"format":"xml"}"#).is_err());
}

#[test]
fn user_patterns() {
    let cfg = ParserConfig {
        patterns: vec![PatternConfig {
            name: "legacy".to_owned(),
            regex: r"^(?P<timestamp>\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d) <(?P<level>\w+)> (?P<service>\w+) \((?P<user>\w+)\) (?P<message>.*)$".to_owned(),
            timestamp_format: Some("%d.%m.%Y %H:%M:%S".to_owned()),
        }],
        ..ParserConfig::default()
    };
    let mut p = Parser::new(cfg).expect("valid");
    let rec = parse_with(
        &mut p,
        "02.01.2024 03:04:05 <crit> billing (bob) card declined",
    );
    assert_eq!(rec.format, Format::Custom);
    assert_eq!(rec.level, Level::Fatal);
    assert_eq!(rec.service.as_deref(), Some("billing"));
    assert_eq!(rec.message, "card declined");
    assert_eq!(attr(&rec, "user"), Some("bob"));
    assert_eq!(attr(&rec, "pattern"), Some("legacy"));
    assert_eq!(rec.event_time_us, us(2024, 1, 2, 3, 4, 5));
    // Non-matching lines go to auto-detection.
    let rec = parse_with(&mut p, r#"{"msg":"x"}"#);
    assert_eq!(rec.format, Format::Json);
}

#[test]
fn invalid_config_is_rejected_naming_the_field() {
    let bad_regex = ParserConfig {
        patterns: vec![
            PatternConfig {
                regex: "(?P<message>.*)".to_owned(),
                ..PatternConfig::default()
            },
            PatternConfig {
                regex: "(?P<message>".to_owned(),
                ..PatternConfig::default()
            },
        ],
        ..ParserConfig::default()
    };
    let err = Parser::new(bad_regex).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.starts_with("parse.patterns[1].regex")),
        "{err:?}"
    );
    let no_names = ParserConfig {
        patterns: vec![PatternConfig {
            regex: ".*".to_owned(),
            ..PatternConfig::default()
        }],
        ..ParserConfig::default()
    };
    assert!(Parser::new(no_names).is_err());
    let bad_tz = ParserConfig {
        default_timezone: "Mars/Olympus".to_owned(),
        ..ParserConfig::default()
    };
    let err = Parser::new(bad_tz).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.starts_with("parse.default_timezone")),
        "{err:?}"
    );
    let zero = ParserConfig {
        max_message_bytes: 0,
        ..ParserConfig::default()
    };
    assert!(Parser::new(zero).is_err());
}

// ---- payload guards ----

#[test]
fn empty_payloads() {
    let mut p = parser();
    let mut rec = LogRecord::default();
    for payload in [
        None,
        Some(&b""[..]),
        Some(&b"\n"[..]),
        Some(&b"   \r\n"[..]),
    ] {
        p.parse(payload, &ctx(), &mut rec);
        assert_eq!(rec.message, "");
        assert_eq!(rec.parse_issue, Some(ParseIssue::Empty));
        assert_eq!(rec.format, Format::Invalid);
        assert_eq!(rec.time_source, TimeSource::Kafka);
    }
    let no_transport = ParseContext {
        transport_time_us: None,
        ingest_time_us: NOW,
    };
    p.parse(None, &no_transport, &mut rec);
    assert_eq!(rec.time_source, TimeSource::Ingest);
    assert_eq!(rec.event_time_us, NOW);
}

#[test]
fn invalid_utf8() {
    let payload = b"2024-01-02 03:04:05 ERROR bad \xff\xfe bytes";
    let mut rec = LogRecord::default();
    parser().parse(Some(payload), &ctx(), &mut rec);
    assert_eq!(rec.parse_issue, Some(ParseIssue::InvalidUtf8));
    assert_eq!(rec.raw.as_deref(), Some(&payload[..]));
    assert_eq!(rec.level, Level::Error);
    assert_eq!(rec.message, "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(rec.time_source, TimeSource::Parsed);
}

#[test]
fn oversized_payload_is_truncated_fast() {
    let mut big = String::from("2024-01-02 03:04:05 INFO ");
    while big.len() < 10 << 20 {
        big.push_str("é0123456789");
    }
    let start = std::time::Instant::now();
    let mut rec = LogRecord::default();
    parser().parse(Some(big.as_bytes()), &ctx(), &mut rec);
    let elapsed = start.elapsed();
    assert_eq!(rec.parse_issue, Some(ParseIssue::Oversized));
    assert!(rec.raw.is_none());
    assert!(rec.message.len() <= DEFAULT_MAX_MESSAGE_BYTES);
    assert!(rec.message.len() > DEFAULT_MAX_MESSAGE_BYTES - 100);
    assert_eq!(rec.level, Level::Info);
    // Reported, not asserted: timings belong in benchmarks.
    println!("10 MiB payload parsed in {elapsed:?}");

    let json = format!("{{\"msg\":\"{}\"}}", "x".repeat(2 << 20));
    parser().parse(Some(json.as_bytes()), &ctx(), &mut rec);
    assert_eq!(rec.parse_issue, Some(ParseIssue::Oversized));
    assert_eq!(rec.format, Format::Text);
}

#[test]
fn nul_and_control_bytes() {
    let rec = parse("2024-01-02 03:04:05 WARN a\0b\x01c\x1b[31m");
    assert_eq!(rec.level, Level::Warn);
    assert_eq!(rec.message, "a\0b\x01c\x1b[31m");
    let rec = parse("{\"msg\":\"a\\u0000b\"}");
    assert_eq!(rec.message, "a\0b");
    let rec = parse("\0\0\0");
    assert_eq!(rec.message, "\0\0\0");
}

#[test]
fn record_reuse_does_not_leak_fields() {
    let mut p = parser();
    let mut rec = LogRecord::default();
    p.parse(
        Some(br#"{"msg":"a","service":"s","host":"h","k":"v"}"#),
        &ctx(),
        &mut rec,
    );
    assert_eq!(rec.service.as_deref(), Some("s"));
    p.parse(Some(b"plain"), &ctx(), &mut rec);
    assert_eq!(rec.service, None);
    assert_eq!(rec.host, None);
    assert!(rec.attributes.is_empty());
    assert_eq!(rec.message, "plain");
    assert_eq!(rec.format, Format::Text);
}

#[test]
fn garbage_lines() {
    for line in [
        "{",
        "}",
        "<",
        "<1",
        "<12>",
        "<12>1",
        "[",
        "[]",
        "=",
        "a=",
        "=b",
        "\"",
        "2024-01-02",
        "2024-01-02T",
        "Jun",
        "Jun 14",
        "Jun 14 15:16:01",
        "Jun 14 15:16:01 ",
        "1.2.3.4 - - [",
        "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"",
        "2023-10-06T00:17:09Z stdout",
        "\u{feff}{\"msg\":\"bom\"}",
    ] {
        let rec = parse(line);
        assert!(rec.message.len() <= line.len(), "{line:?}");
    }
    assert_eq!(parse("\u{feff}{\"msg\":\"bom\"}").message, "bom");
}

// ---- properties ----

proptest::proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let mut rec = LogRecord::default();
        parser().parse(Some(&bytes), &ctx(), &mut rec);
    }

    #[test]
    fn parse_never_panics_on_structured_prefixes(
        prefix in proptest::sample::select(vec![
            "{\"msg\":", "<34>", "<165>1 ", "Jun 14 15:16:01 ", "[Sun Dec 04 04:47:44 2005] ",
            "2024-01-02 03:04:05,123 ", "1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"",
            "2023-10-06T00:17:09Z stdout F ", "level=info msg=\"", "081109 203615 ",
        ]),
        tail in "\\PC{0,80}",
    ) {
        let line = format!("{prefix}{tail}");
        let mut rec = LogRecord::default();
        parser().parse(Some(line.as_bytes()), &ctx(), &mut rec);
    }

    #[test]
    fn json_round_trip(
        message in "\\PC{0,40}",
        level in proptest::sample::select(vec![
            ("trace", Level::Trace), ("DEBUG", Level::Debug), ("info", Level::Info),
            ("Warning", Level::Warn), ("ERR", Level::Error), ("fatal", Level::Fatal),
        ]),
        service in "[a-z][a-z0-9-]{0,15}",
        secs in 0i64..4_000_000_000,
        extra in proptest::collection::btree_map("[a-z]{1,8}_x", "\\PC{0,10}", 0..5),
    ) {
        let mut obj = serde_json::Map::new();
        obj.insert("message".into(), message.clone().into());
        obj.insert("level".into(), level.0.into());
        obj.insert("service".into(), service.clone().into());
        obj.insert("ts".into(), secs.into());
        for (k, v) in &extra {
            obj.insert(k.clone(), v.clone().into());
        }
        let line = serde_json::Value::Object(obj).to_string();
        let rec = parse(&line);
        proptest::prop_assert_eq!(rec.format, Format::Json);
        // Line endings are trimmed only at the end of the payload, not inside a field.
        proptest::prop_assert_eq!(&rec.message, &message);
        proptest::prop_assert_eq!(rec.level, level.1);
        proptest::prop_assert_eq!(rec.service.as_deref(), Some(service.as_str()));
        proptest::prop_assert_eq!(rec.event_time_us, secs * 1_000_000);
        for (k, v) in &extra {
            proptest::prop_assert_eq!(attr(&rec, k), Some(v.as_str()));
        }
    }

    #[test]
    fn logfmt_round_trip(
        message in "[ -~]{0,40}",
        level in proptest::sample::select(vec![
            ("debug", Level::Debug), ("info", Level::Info), ("warn", Level::Warn), ("error", Level::Error),
        ]),
        service in "[a-z][a-z0-9-]{0,15}",
        extra in proptest::collection::btree_map("[a-z]{1,8}_x", "[ -~]{0,12}", 0..5),
    ) {
        // Every value quoted, with `\` and `"` escaped: what a logfmt writer emits.
        let q = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut line = format!("level={} service={} msg={}", level.0, service, q(&message));
        for (k, v) in &extra {
            line.push_str(&format!(" {k}={}", q(v)));
        }
        let rec = parse(&line);
        proptest::prop_assert_eq!(rec.format, Format::Logfmt);
        proptest::prop_assert_eq!(&rec.message, message.trim_end_matches(['\n', '\r']));
        proptest::prop_assert_eq!(rec.level, level.1);
        proptest::prop_assert_eq!(rec.service.as_deref(), Some(service.as_str()));
        for (k, v) in &extra {
            proptest::prop_assert_eq!(attr(&rec, k), Some(v.as_str()));
        }
    }

    #[test]
    fn syslog_5424_round_trip(
        pri in 0u8..192,
        secs in 0i64..4_000_000_000,
        host in "[a-z][a-z0-9.-]{0,20}",
        app in "[a-z][a-z0-9_-]{0,20}",
        procid in "[0-9]{1,6}",
        sd_value in "[ -~]{0,12}",
        message in "[!-~][ -~]{0,40}",
    ) {
        let ts = chrono::DateTime::from_timestamp(secs, 0).expect("in range").to_rfc3339();
        let sd = sd_value.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
        let line = format!("<{pri}>1 {ts} {host} {app} {procid} ID1 [ex@1 k=\"{sd}\"] {message}");
        let rec = parse(&line);
        proptest::prop_assert_eq!(rec.format, Format::Syslog);
        proptest::prop_assert_eq!(rec.level, syslog_severity(pri % 8));
        proptest::prop_assert_eq!(rec.event_time_us, secs * 1_000_000);
        proptest::prop_assert_eq!(rec.host.as_deref(), Some(host.as_str()));
        proptest::prop_assert_eq!(rec.service.as_deref(), Some(app.as_str()));
        proptest::prop_assert_eq!(attr(&rec, "sd.ex@1.k"), Some(sd_value.as_str()));
        proptest::prop_assert_eq!(&rec.message, message.trim_end());
    }
}

// ---- loghub: honest measurement of the text header stripping ----

/// Minimal CSV reader for the loghub `*_structured.csv` files (quoted
/// fields with `""` escapes, no multi-line fields).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn loghub_headers_are_stripped() {
    let dir = std::path::Path::new("/work/shared/eval/loghub-dev");
    let Ok(entries) = std::fs::read_dir(dir) else {
        println!("loghub-dev not found, skipped");
        return;
    };
    let mut checked = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let log = entry.path().join(format!("{name}_2k.log"));
        let csv = entry.path().join(format!("{name}_2k.log_structured.csv"));
        let (Ok(log), Ok(csv)) = (std::fs::read_to_string(&log), std::fs::read_to_string(&csv))
        else {
            continue;
        };
        let mut csv_lines = csv.lines();
        let header = csv_fields(csv_lines.next().unwrap_or_default());
        let Some(content_col) = header.iter().position(|h| h == "Content") else {
            continue;
        };
        let contents: Vec<String> = csv_lines
            .map(|l| csv_fields(l).get(content_col).cloned().unwrap_or_default())
            .collect();
        let mut p = parser();
        let mut rec = LogRecord::default();
        let (mut total, mut parsed, mut same) = (0usize, 0usize, 0usize);
        let mut mismatches = Vec::new();
        for (line, want) in log.lines().zip(&contents) {
            p.parse(Some(line.as_bytes()), &ctx(), &mut rec);
            total += 1;
            parsed += usize::from(rec.time_source == TimeSource::Parsed);
            if rec.message.trim() == want.trim() {
                same += 1;
            } else if mismatches.len() < 3 {
                mismatches.push(format!("{:?} != {:?}", rec.message, want));
            }
        }
        let parsed_frac = parsed as f64 / total.max(1) as f64;
        let same_frac = same as f64 / total.max(1) as f64;
        println!(
            "{name}: {total} lines, timestamp parsed {:.1}%, message == Content {:.1}% {mismatches:?}",
            parsed_frac * 100.0,
            same_frac * 100.0
        );
        assert!(parsed_frac >= 0.95, "{name}: timestamps {parsed_frac}");
        assert!(same_frac >= 0.95, "{name}: messages {same_frac}");
        checked += 1;
    }
    println!("loghub files checked: {checked}");
}

// ---- speed (reported, not asserted) ----

#[test]
#[ignore = "speed report; run with --release --ignored --nocapture"]
fn parse_speed_report() {
    let lines: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"timestamp":"2024-01-02T03:04:{:02}.{:03}Z","level":"info","service":"checkout","host":"node-{}","msg":"request completed in {} ms for user {}","http":{{"method":"GET","status":200,"path":"/api/v1/items/{}"}},"trace_id":"{:032x}"}}"#,
                i % 60,
                i % 1000,
                i % 7,
                i * 3,
                i * 17,
                i,
                i * 7919
            )
        })
        .collect();
    let avg = lines.iter().map(String::len).sum::<usize>() / lines.len();
    let mut p = parser();
    let mut rec = LogRecord::default();
    for (label, lines) in [
        ("json", lines.clone()),
        (
            "text",
            (0..1000)
                .map(|i| format!("2024-01-02 03:04:05,{i:03} INFO [main] com.x.Service: request {i} done in 12 ms"))
                .collect(),
        ),
        (
            "logfmt",
            (0..1000)
                .map(|i| format!("ts=2024-01-02T03:04:05Z level=info msg=\"request {i} done\" service=api duration=12ms status=200"))
                .collect(),
        ),
    ] {
        let rounds = 400;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            for l in &lines {
                p.parse(Some(l.as_bytes()), &ctx(), &mut rec);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let n = (rounds * lines.len()) as f64;
        println!("{label}: {:.0} lines/s ({:.2} us/line), avg json line {avg} bytes", n / secs, secs / n * 1e6);
    }
}

#[test]
fn text_service_tag_after_level() {
    let r = parse("2026-03-01T10:00:00.017985Z INFO payments[1002]: 3ds challenge completed seq=0");
    assert_eq!(r.level, Level::Info);
    assert_eq!(r.service.as_deref(), Some("payments"));
    assert_eq!(r.message, "3ds challenge completed seq=0");
    assert_eq!(r.time_source, TimeSource::Parsed);
    // A bracketed token that is not `name[digits]:` stays in the message.
    let r = parse("2026-03-01T10:00:00Z WARN cache[hot]: evicted");
    assert_eq!(r.service, None);
    assert_eq!(r.message, "cache[hot]: evicted");
}

#[test]
fn rsyslog_file_format() {
    let r = parse("2024-05-01T10:00:00.123456+02:00 web01 myapp[99]: rsyslog file format");
    assert_eq!(r.format, Format::Syslog);
    assert_eq!(r.host.as_deref(), Some("web01"));
    assert_eq!(r.service.as_deref(), Some("myapp"));
    assert_eq!(attr(&r, "pid"), Some("99"));
    assert_eq!(r.message, "rsyslog file format");
    assert_eq!(r.event_time_us, 1_714_550_400_123_456);
    // A level before a tagged service is no host.
    let r = parse("2024-05-01 10:00:00 ERROR worker[12]: crashed");
    assert_eq!(r.level, Level::Error);
    assert_eq!((r.host, r.service.as_deref()), (None, Some("worker")));
    // Without a pid, a word before `x:` is not taken for a host.
    let r = parse("2024-05-01T10:00:00Z server started: ok");
    assert_eq!((r.host, r.service), (None, None));
    assert_eq!(r.message, "server started: ok");
    // Nor is a numeric pid (HDFS).
    let r = parse("081109 203615 148 INFO dfs.DataNode$PacketResponder: done");
    assert_eq!((r.host.as_deref(), r.level), (None, Level::Info));
    assert_eq!(attr(&r, "pid"), Some("148"));
}

#[test]
fn python_logging_dashed_format() {
    let r = parse("2024-05-01 10:00:00,123 - myapp.db - ERROR - query failed");
    assert_eq!(r.level, Level::Error);
    assert_eq!(attr(&r, "logger"), Some("myapp.db"));
    assert_eq!(r.message, "query failed");
    assert_eq!(r.event_time_us, 1_714_557_600_123_000);
    let r = parse("2024-05-01 10:00:00,123 - WARNING - myapp - disk - 91% full");
    assert_eq!(r.level, Level::Warn);
    assert_eq!(attr(&r, "logger"), Some("myapp"));
    assert_eq!(r.message, "disk - 91% full");
    let r = parse("2024-05-01 10:00:00,123 - INFO - started in 3 s");
    assert_eq!(r.level, Level::Info);
    assert_eq!(r.message, "started in 3 s");
    // A dash in a message without a level stays in it.
    let r = parse("2024-05-01 10:00:00 - job done - 3 files");
    assert_eq!(r.level, Level::Unknown);
    assert_eq!(r.message, "- job done - 3 files");
}

/// A key that comes twice is kept once, with its last value: the archive's
/// attribute map has unique keys.
#[test]
fn repeated_keys_keep_their_last_value() {
    fn keys(r: &LogRecord) -> Vec<&str> {
        let mut k: Vec<&str> = r.attributes.iter().map(|(k, _)| k.as_str()).collect();
        k.sort_unstable();
        k
    }
    let r = parse("level=info msg=x dup=1 dup=2 other=3");
    assert_eq!(keys(&r), ["dup", "other"]);
    assert_eq!(attr(&r, "dup"), Some("2"));
    let r = parse(r#"{"msg":"x","a":1,"b":0,"a":2}"#);
    assert_eq!(keys(&r), ["a", "b"]);
    assert_eq!(attr(&r, "a"), Some("2"));
    let r = parse(r#"{"msg":"x","http.status":"200","http":{"status":"500"}}"#);
    assert_eq!(keys(&r), ["http.status"]);
    assert_eq!(attr(&r, "http.status"), Some("500"));
}

/// Serilog's JSON formatter: `Timestamp`, `Level`, `MessageTemplate` and,
/// when it renders one, `RenderedMessage`, which is the message.
#[test]
fn serilog_json() {
    let r = parse(
        r#"{"Timestamp":"2024-05-01T10:00:00.1234567+02:00","Level":"Warning","MessageTemplate":"Disk {Drive} at {Pct}%","Properties":{"Drive":"C","Pct":91}}"#,
    );
    assert_eq!(r.level, Level::Warn);
    assert_eq!(r.message, "Disk {Drive} at {Pct}%");
    assert_eq!(r.time_source, TimeSource::Parsed);
    assert_eq!(attr(&r, "Properties.Pct"), Some("91"));
    let r = parse(
        r#"{"Timestamp":"2024-05-01T10:00:00Z","Level":"Error","MessageTemplate":"Disk {Drive} full","RenderedMessage":"Disk \"C\" full"}"#,
    );
    assert_eq!(r.level, Level::Error);
    assert_eq!(r.message, "Disk \"C\" full");
    assert_eq!(attr(&r, "MessageTemplate"), Some("Disk {Drive} full"));
}

/// Kubernetes' klog (and glog): severity letter, month and day, time, thread
/// id, `file:line]`.
#[test]
fn klog_header() {
    let r = parse("I0501 10:00:00.123456    1234 main.go:42] Starting kubelet");
    assert_eq!(r.level, Level::Info);
    assert_eq!(r.message, "Starting kubelet");
    assert_eq!(attr(&r, "thread"), Some("1234"));
    assert_eq!(attr(&r, "source"), Some("main.go:42"));
    assert_eq!(r.time_source, TimeSource::Parsed);
    // 2024-05-01T10:00:00.123456Z, the year inferred from "now".
    assert_eq!(r.event_time_us, 1_714_557_600_123_456);
    let r = parse("E0501 10:00:01.000001 7 reflector.go:138] watch failed: EOF");
    assert_eq!(r.level, Level::Error);
    assert_eq!(r.message, "watch failed: EOF");
    let r = parse("W0501 10:00:01.5 7 x.go:1] w");
    assert_eq!(r.level, Level::Warn);
    let r = parse("F0501 10:00:01.000000 7 x.go:1] died");
    assert_eq!(r.level, Level::Fatal);
    // Words that merely look alike stay text.
    let r = parse("I0501 is not a klog line");
    assert_eq!(
        (r.level, r.message.as_str()),
        (Level::Unknown, "I0501 is not a klog line")
    );
}
