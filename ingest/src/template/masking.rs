//! Tokenization and variable masking: the preprocessing that decides, per
//! token, what is template text and what is a variable.
//!
//! Hand-written byte classifiers instead of regexes: one pass per token, no
//! allocation (output goes into a reused buffer), and the rules are easier to
//! keep consistent. The aim is that the *same kind* of variable always gives
//! the *same* masked shape (`blk_-42` and `blk_42` both become `blk_<*>`),
//! because a miner that only learns variables by seeing them vary assigns
//! the first lines of a template a different id than the later ones.

use super::config::{MaskKind, TemplateConfig};

/// The wildcard that replaces a variable.
pub const WILDCARD: &str = "<*>";

const MONTHS_AND_DAYS: [&str; 19] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Mon",
    "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
];

/// Generic top-level domains accepted as the end of a two-label host name;
/// longer names also accept any two-letter country code.
const GENERIC_TLDS: [&str; 10] = [
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io",
];

/// Quoted spans of at least this many words are prose, folded into one
/// variable; shorter multi-word spans are tokenized normally.
const QUOTED_PROSE_WORDS: usize = 4;

/// Longest quoted span folded into one token, in bytes.
const MAX_QUOTED_BYTES: usize = 512;

/// The masking rules enabled by a [`TemplateConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Masker {
    numbers: bool,
    ip: bool,
    uuid: bool,
    hex: bool,
    path: bool,
    url: bool,
    email: bool,
    time: bool,
    hostname: bool,
    quoted: bool,
    max_token_bytes: usize,
}

/// Class bits of a byte for the tokenizer, one table lookup per byte.
/// Whitespace (as `u8::is_ascii_whitespace`) ends a token.
const WHITESPACE: u8 = 1;
/// Bytes that can make a token anything but a plain word: digits, the
/// separators of numbers, addresses, paths, keys and e-mails, and the
/// punctuation that [`Masker::mask_token`] strips around a token.
const SPECIAL: u8 = 2;
/// `=`: the token may be `key=value`, whose value may open a quote.
const EQUALS: u8 = 4;
/// An ASCII digit: a token of digits only is a plain number.
const DIGIT: u8 = 8;
/// `-`: the token may be a generated name (`fluentd-xkcvb`).
const HYPHEN: u8 = 16;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = SPECIAL | DIGIT;
        c += 1;
    }
    let extra = b".:/\\@=()[]{}<>\"',;!?";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = SPECIAL;
        i += 1;
    }
    t[b'=' as usize] |= EQUALS;
    t[b'-' as usize] = HYPHEN;
    let ws = b"\t\n\x0c\r ";
    let mut i = 0;
    while i < ws.len() {
        t[ws[i] as usize] = WHITESPACE;
        i += 1;
    }
    t
};

fn is_space(b: u8) -> bool {
    CLASS[b as usize] & WHITESPACE != 0
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

pub(crate) fn is_open(b: u8) -> bool {
    matches!(b, b'(' | b'[' | b'{' | b'<' | b'"' | b'\'')
}

pub(crate) fn is_close(b: u8) -> bool {
    matches!(
        b,
        b')' | b']' | b'}' | b'>' | b',' | b';' | b':' | b'.' | b'!' | b'?' | b'"' | b'\''
    )
}

impl Masker {
    pub(crate) fn new(cfg: &TemplateConfig) -> Self {
        let on = |k| cfg.masks.contains(&k);
        Self {
            numbers: on(MaskKind::Numbers),
            ip: on(MaskKind::Ip),
            uuid: on(MaskKind::Uuid),
            hex: on(MaskKind::Hex),
            path: on(MaskKind::Path),
            url: on(MaskKind::Url),
            email: on(MaskKind::Email),
            time: on(MaskKind::Time),
            hostname: on(MaskKind::Hostname),
            quoted: on(MaskKind::Quoted),
            max_token_bytes: cfg.max_token_bytes,
        }
    }

    /// Splits `message` on whitespace and writes the masked tokens to `out`,
    /// separated by one space (so `out` is the masked line, a key for exact
    /// repeats), their byte ranges in `out` to `spans`. At most `max_tokens`
    /// tokens: the rest of a longer line is folded into a final wildcard.
    pub(crate) fn tokenize(
        &self,
        message: &str,
        max_tokens: usize,
        out: &mut String,
        spans: &mut Vec<(u32, u32)>,
    ) {
        out.clear();
        spans.clear();
        let b = message.as_bytes();
        let n = b.len();
        let mut i = 0;
        while i < n {
            while i < n && is_space(b[i]) {
                i += 1;
            }
            if i >= n {
                break;
            }
            if !spans.is_empty() {
                out.push(' ');
            }
            let start_out = out.len();
            if spans.len() + 1 == max_tokens {
                out.push_str(WILDCARD);
                spans.push((start_out as u32, out.len() as u32));
                return;
            }
            let mut end = i;
            // Bits of any byte of the token, and bits of every byte.
            let (mut any, mut every) = (0u8, u8::MAX);
            while end < n {
                let c = CLASS[b[end] as usize];
                if c & WHITESPACE != 0 {
                    break;
                }
                any |= c;
                every &= c;
                end += 1;
            }
            let (eq, special) = (any & EQUALS != 0, any & SPECIAL != 0);
            if self.quoted && (eq || matches!(b[i], b'"' | b'\'')) {
                if let Some(qend) = quoted_span(b, i, end) {
                    // `key="a b c"` or `"a b c"`: one token, whatever the spaces.
                    let q = qend; // index of the closing quote
                    let open = b[i..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\'')
                        .map_or(i, |p| i + p);
                    out.push_str(&message[i..=open]);
                    out.push_str(WILDCARD);
                    let mut tail = q;
                    while tail < n && !b[tail].is_ascii_whitespace() {
                        tail += 1;
                    }
                    // The closing quote and what is glued to it stay literal.
                    out.push_str(&message[q..tail]);
                    spans.push((start_out as u32, out.len() as u32));
                    i = tail;
                    continue;
                }
            }
            if self.numbers && every & DIGIT != 0 {
                // A plain number, the most common variable: what
                // `mask_token` makes of it, without its passes.
                out.push_str(WILDCARD);
            } else if special {
                self.mask_token(&message[i..end], out);
            } else {
                self.mask_word(&message[i..end], any & HYPHEN != 0, out);
            }
            i = end;
            if self.numbers {
                if let Some(next) = self.fold_unit(message, start_out, i, out) {
                    i = next;
                }
            }
            // A list of variables of one shape (`blk_<*> blk_<*> ...`) is one
            // variable: its length varies from line to line.
            if let Some(&(ps, pe)) = spans.last() {
                let prev = &out[ps as usize..pe as usize];
                if *prev == out[start_out..] && prev.contains(WILDCARD) {
                    // Drop the token and its separator.
                    out.truncate(start_out - 1);
                    continue;
                }
            }
            spans.push((start_out as u32, out.len() as u32));
        }
    }

    /// A number written apart from its time unit (`5 ms`, `<1 sec`,
    /// `(30 seconds)`) is one variable, as `5ms` is: the number's token,
    /// masked at `out[start..]`, and the unit's token that follows `end` in
    /// `message` become one `<*>`, keeping brackets around them and
    /// dropping a comparator (`<`, `>`, `~`, `=`) before the number, so
    /// `lifetime <1 sec` and `lifetime 00:02` mask alike. Returns where the
    /// unit's token ends.
    fn fold_unit(
        &self,
        message: &str,
        start: usize,
        end: usize,
        out: &mut String,
    ) -> Option<usize> {
        let lead = out[start..].strip_suffix(WILDCARD)?;
        // The brackets to keep, at most a few.
        let mut brackets = [0u8; 4];
        let mut kept = 0;
        for c in lead.bytes() {
            match c {
                b'(' | b'[' if kept < brackets.len() => {
                    brackets[kept] = c;
                    kept += 1;
                }
                b'<' | b'>' | b'~' | b'=' => {}
                _ => return None,
            }
        }
        let b = message.as_bytes();
        let mut u = end;
        while u < b.len() && is_space(b[u]) {
            u += 1;
        }
        let mut word_end = u;
        while word_end < b.len() && b[word_end].is_ascii_alphabetic() {
            word_end += 1;
        }
        let mut tail = word_end;
        while tail < b.len() && is_close(b[tail]) {
            tail += 1;
        }
        if word_end == u || (tail < b.len() && !is_space(b[tail])) {
            return None;
        }
        if !is_time_unit(&message[u..word_end]) {
            return None;
        }
        out.truncate(start);
        for &c in &brackets[..kept] {
            out.push(char::from(c));
        }
        out.push_str(WILDCARD);
        out.push_str(&message[word_end..tail]);
        Some(tail)
    }

    /// [`Masker::mask_token`] of a token without any [`SPECIAL`] byte:
    /// only its length and the month and day names can make it a variable.
    fn mask_word(&self, tok: &str, hyphen: bool, out: &mut String) {
        if tok.len() > self.max_token_bytes {
            out.push_str(WILDCARD);
        } else {
            self.push_word(tok, hyphen, out);
        }
    }

    /// A word without digits or [`SPECIAL`] punctuation: a month or day
    /// name is a variable; so are the generated parts of a hyphenated
    /// name (`fluentd-xkcvb`, see [`is_generated_suffix`]), which `hyphen`
    /// says may be present.
    fn push_word(&self, w: &str, hyphen: bool, out: &mut String) {
        let b = w.as_bytes();
        if self.time && b.len() == 3 && b[0].is_ascii_uppercase() && MONTHS_AND_DAYS.contains(&w) {
            out.push_str(WILDCARD);
        } else if hyphen && self.numbers {
            // Without digits, `scan` copies the word and masks only its
            // generated parts, by the rule it applies to any token.
            self.scan(w, out);
        } else {
            out.push_str(w);
        }
    }

    /// Masks one whitespace-free token into `out`.
    fn mask_token(&self, tok: &str, out: &mut String) {
        if tok.len() > self.max_token_bytes {
            out.push_str(WILDCARD);
            return;
        }
        let b = tok.as_bytes();
        let mut s = 0;
        while s < b.len() && is_open(b[s]) {
            s += 1;
        }
        let mut e = b.len();
        // A closing bracket that an opening one inside the token balances
        // belongs to it: `68M->32M(662M),` keeps its `)` with the sizes.
        // `depth` is, per kind of bracket, opening minus closing ones in
        // `b[s..e]`.
        let mut depth = [0i32; 4];
        for &c in &b[s..] {
            if let Some((k, open)) = bracket(c) {
                depth[k] += if open { 1 } else { -1 };
            }
        }
        while e > s && is_close(b[e - 1]) {
            if let Some((k, _)) = bracket(b[e - 1]) {
                // Without this one, the openings before it would outnumber
                // the closings: one of them is its own.
                if depth[k] >= 0 {
                    break;
                }
                depth[k] += 1;
            }
            e -= 1;
        }
        // `[2001:db8::1]:443`: these brackets are the address's own syntax,
        // as the colon of `10.0.0.1:443` is, and the whole is one variable.
        if self.ip && s > 0 && b[s - 1] == b'[' {
            // The core lost its closing punctuation, `]` included: a `]`
            // is left inside it only when a `:port` (a number or a service
            // name, `[::1]:http`) followed it.
            if let Some((addr, port)) = tok[s..e].split_once("]:") {
                if !port.is_empty()
                    && port.bytes().all(|c| c.is_ascii_alphanumeric())
                    && is_ip(addr)
                {
                    out.push_str(&tok[..s - 1]);
                    out.push_str(WILDCARD);
                    out.push_str(&tok[e..]);
                    return;
                }
            }
        }
        out.push_str(&tok[..s]);
        self.mask_core(&tok[s..e], out);
        out.push_str(&tok[e..]);
    }

    fn mask_core(&self, c: &str, out: &mut String) {
        if c.is_empty() {
            return;
        }
        // One pass to learn which shapes are possible at all; most tokens
        // are plain words and leave here.
        let (mut digits, mut dots, mut slashes, mut colons) = (0usize, 0usize, 0usize, 0usize);
        let (mut at, mut eq, mut hyphen) = (false, None, false);
        for (i, &x) in c.as_bytes().iter().enumerate() {
            match x {
                b'0'..=b'9' => digits += 1,
                b'-' => hyphen = true,
                b'.' => dots += 1,
                b'/' | b'\\' => slashes += 1,
                b':' => colons += 1,
                b'@' => at = true,
                b'=' if eq.is_none() => eq = Some(i),
                _ => {}
            }
        }
        if self.numbers && digits == c.len() {
            // A plain number, the most common variable.
            out.push_str(WILDCARD);
            return;
        }
        if digits == 0 && dots == 0 && slashes == 0 && colons == 0 && !at && eq.is_none() {
            self.push_word(c, hyphen, out);
            return;
        }
        let whole = (self.url && colons > 0 && slashes >= 2 && c.contains("://"))
            || (self.email && at && is_email(c));
        if whole {
            out.push_str(WILDCARD);
            return;
        }
        if let Some(eq) = eq {
            // A `/` or `?` before the `=` makes it a path or URL with a query
            // (`/search?q=x`), not a key.
            if eq > 0
                && !c.as_bytes()[..eq]
                    .iter()
                    .any(|&x| matches!(x, b'/' | b'?' | b'\\'))
            {
                // key=value: the key is template text, the value is masked on
                // its own shape.
                out.push_str(&c[..=eq]);
                self.mask_token(&c[eq + 1..], out);
                return;
            }
        }
        let whole = (self.uuid && c.len() == 36 && is_uuid(c))
            || (self.ip && digits > 0 && (dots == 3 || colons >= 2) && is_ip(c))
            || (self.path && slashes > 0 && is_path(c))
            || (self.hostname && dots > 0 && is_hostname(strip_port(c)));
        if whole {
            out.push_str(WILDCARD);
            return;
        }
        if self.numbers && dots > 0 && is_version(c) {
            // `v1.2.3`, `1.2.3-rc1`, `2.0.0+build.5`: one variable, whichever
            // of these forms a release takes.
            out.push_str(WILDCARD);
            return;
        }
        let start = out.len();
        self.scan(c, out);
        // Only wildcards and punctuation left (`<*>-<*>-<*>`, `<*>:<*>`): one
        // variable, whatever its inner shape.
        if only_wildcards_and_punctuation(&out.as_bytes()[start..]) {
            out.truncate(start);
            out.push_str(WILDCARD);
        }
    }

    /// Digit and hex runs inside a token.
    fn scan(&self, c: &str, out: &mut String) {
        let b = c.as_bytes();
        let n = b.len();
        let mut i = 0;
        while i < n {
            let ch = b[i];
            let signed = ch == b'-'
                && i + 1 < n
                && b[i + 1].is_ascii_digit()
                && (i == 0 || !is_word_byte(b[i - 1]));
            if ch.is_ascii_digit() || signed {
                // A number, with its unit or glued suffix (`16K`, `0x1f`,
                // `2.6.5`, `07:07:00`).
                let start = i;
                i += 1;
                loop {
                    while i < n && is_word_byte(b[i]) {
                        i += 1;
                    }
                    if i + 1 < n && matches!(b[i], b'.' | b':') && b[i + 1].is_ascii_digit() {
                        i += 1;
                        continue;
                    }
                    break;
                }
                if self.numbers {
                    out.push_str(WILDCARD);
                } else {
                    out.push_str(&c[start..i]);
                }
            } else if is_word_byte(ch) {
                let start = i;
                let mut digit_runs = 0;
                let mut all_hex = true;
                let mut prev_digit = false;
                while i < n && is_word_byte(b[i]) {
                    let d = b[i].is_ascii_digit();
                    if d && !prev_digit {
                        digit_runs += 1;
                    }
                    prev_digit = d;
                    all_hex &= b[i].is_ascii_hexdigit();
                    i += 1;
                }
                let run = &c[start..i];
                if self.numbers
                    && start >= 2
                    && b[start - 1] == b'-'
                    && is_word_byte(b[start - 2])
                    && is_generated_suffix(run)
                {
                    // `web-7d9f8b6c5d-xkcvb`, `fluentd-xkcvb`: the random
                    // part of a generated (Kubernetes) name, letters or not.
                    out.push_str(WILDCARD);
                } else if digit_runs == 0 {
                    out.push_str(run);
                } else if self.hex && all_hex {
                    out.push_str(WILDCARD);
                } else if !self.numbers {
                    out.push_str(run);
                } else if digit_runs >= 2 || run.len() >= 16 {
                    // Random-looking identifiers (`a1b2c3`): one variable.
                    out.push_str(WILDCARD);
                } else {
                    // A word with a number glued on (`ssh2`, `tty1`): keep the
                    // word, mask the number.
                    let rb = run.as_bytes();
                    let mut j = 0;
                    while j < rb.len() {
                        if rb[j].is_ascii_digit() {
                            while j < rb.len() && rb[j].is_ascii_digit() {
                                j += 1;
                            }
                            out.push_str(WILDCARD);
                        } else {
                            let k = j;
                            while j < rb.len() && !rb[j].is_ascii_digit() {
                                j += 1;
                            }
                            out.push_str(&run[k..j]);
                        }
                    }
                }
            } else {
                // ASCII punctuation (non-ASCII bytes are word bytes).
                out.push(ch as char);
                i += 1;
            }
        }
    }
}

/// The kind of a bracket byte (`()`, `[]`, `{}`, `<>`) and whether it opens.
fn bracket(c: u8) -> Option<(usize, bool)> {
    match c {
        b'(' => Some((0, true)),
        b')' => Some((0, false)),
        b'[' => Some((1, true)),
        b']' => Some((1, false)),
        b'{' => Some((2, true)),
        b'}' => Some((2, false)),
        b'<' => Some((3, true)),
        b'>' => Some((3, false)),
        _ => None,
    }
}

/// Whether `c` is a release version: an optional `v`, two or more dotted
/// numbers, and an optional pre-release or build suffix after `-` or `+`
/// (`v1.2.3`, `1.2.3-rc1`, `2.0.0+build.5`).
fn is_version(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'v' | b'V')));
    let mut numbers = 0;
    loop {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
        numbers += 1;
        if i < b.len() && b[i] == b'.' {
            i += 1;
        } else {
            break;
        }
    }
    if numbers < 2 {
        return false;
    }
    match b.get(i) {
        None => true,
        Some(b'-' | b'+') => {
            i + 1 < b.len()
                && b[i + 1..]
                    .iter()
                    .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'-'))
        }
        _ => false,
    }
}

/// Whether a word run after a hyphen is the random part of a generated
/// name: Kubernetes appends 5 characters (and a Deployment's pods also a
/// 6 to 10 character hash) drawn from consonants and digits, never vowels,
/// so that they spell no word. Any digit counts here, as masking must not
/// depend on a digit's value (see `shape_of` in the miner).
fn is_generated_suffix(run: &str) -> bool {
    (5..=10).contains(&run.len())
        && run
            .bytes()
            .all(|c| c.is_ascii_digit() || b"bcdfghjklmnpqrstvwxz".contains(&c))
}

/// Whether `w` names a unit of time (any case), as written after a number.
fn is_time_unit(w: &str) -> bool {
    const UNITS: [&str; 23] = [
        "ns",
        "us",
        "ms",
        "msec",
        "msecs",
        "millis",
        "millisecond",
        "milliseconds",
        "s",
        "sec",
        "secs",
        "second",
        "seconds",
        "min",
        "mins",
        "minute",
        "minutes",
        "hr",
        "hrs",
        "hour",
        "hours",
        "day",
        "days",
    ];
    UNITS.iter().any(|u| u.eq_ignore_ascii_case(w))
}

/// Whether `m` holds more than one wildcard, or one with punctuation, and
/// no letter outside its wildcards.
fn only_wildcards_and_punctuation(m: &[u8]) -> bool {
    let w = WILDCARD.as_bytes();
    if m.len() <= w.len() {
        return false;
    }
    let (mut i, mut wild) = (0, false);
    while i < m.len() {
        if m[i..].starts_with(w) {
            wild = true;
            i += w.len();
        } else if m[i].is_ascii_alphabetic() || m[i] >= 0x80 {
            return false;
        } else {
            i += 1;
        }
    }
    wild
}

/// If the token at `b[start..end]` opens a quote (at its start or after
/// `key=`), the index of the closing quote, which may lie beyond `end`.
fn quoted_span(b: &[u8], start: usize, end: usize) -> Option<usize> {
    let mut open = start;
    if !matches!(b[open], b'"' | b'\'') {
        let eq = b[start..end].iter().position(|&c| c == b'=')?;
        open = start + eq + 1;
        if open >= end || !matches!(b[open], b'"' | b'\'') {
            return None;
        }
    }
    let q = b[open];
    let limit = (open + 1 + MAX_QUOTED_BYTES).min(b.len());
    let mut j = open + 1;
    let mut words = 1;
    while j < limit {
        if b[j].is_ascii_whitespace() && !b[j - 1].is_ascii_whitespace() {
            words += 1;
        }
        if b[j] == q && (j + 1 >= b.len() || !is_word_byte(b[j + 1])) {
            // A short multi-word span is structure (`"GET /x HTTP/1.1"`),
            // tokenized normally; one word or prose is one variable.
            let fold = j > open + 1 && (words == 1 || words >= QUOTED_PROSE_WORDS);
            return fold.then_some(j);
        }
        j += 1;
    }
    None
}

fn is_email(c: &str) -> bool {
    let Some(at) = c.find('@') else {
        return false;
    };
    let (local, domain) = (&c[..at], &c[at + 1..]);
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b))
}

fn is_uuid(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &x)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                x == b'-'
            } else {
                x.is_ascii_hexdigit()
            }
        })
}

fn is_ipv4(c: &str) -> bool {
    let mut parts = 0;
    for p in c.split('.') {
        parts += 1;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    parts == 4
}

fn is_ip(c: &str) -> bool {
    // IPv4, optionally with `:port` or `/prefix`.
    let host = match c.rfind([':', '/']) {
        Some(p) if c[..p].contains('.') && !c[..p].contains(':') => {
            let port = &c[p + 1..];
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            &c[..p]
        }
        _ => c,
    };
    if is_ipv4(host) {
        return true;
    }
    // IPv6 (and hex:colon shapes such as MAC addresses).
    let colons = c.bytes().filter(|&b| b == b':').count();
    colons >= 2
        && c.bytes().any(|b| b.is_ascii_hexdigit())
        && c.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

fn is_path(c: &str) -> bool {
    let b = c.as_bytes();
    if b.len() >= 2 && b[0] == b'/' && b[1] != b'/' {
        return true;
    }
    if c.starts_with("./") || c.starts_with("../") || c.starts_with("~/") {
        return true;
    }
    if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' {
        return true;
    }
    b.iter().filter(|&&x| x == b'/').count() >= 2 && !c.contains("//")
}

/// `host:port` -> `host`.
fn strip_port(c: &str) -> &str {
    match c.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => c,
    }
}

fn is_hostname(c: &str) -> bool {
    let mut labels = 0;
    let mut last = "";
    for l in c.split('.') {
        if l.is_empty() || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return false;
        }
        labels += 1;
        last = l;
    }
    if labels < 2 || !last.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    GENERIC_TLDS.contains(&last) || (labels >= 3 && last.len() == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(line: &str) -> String {
        let m = Masker::new(&TemplateConfig::default());
        let mut out = String::new();
        let mut spans = Vec::new();
        m.tokenize(line, 64, &mut out, &mut spans);
        spans
            .iter()
            .map(|&(a, b)| &out[a as usize..b as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn masks_variables_by_shape() {
        let cases = [
            (
                "PacketResponder 1 for block blk_38865049064139660 terminating",
                "PacketResponder <*> for block blk_<*> terminating",
            ),
            ("blk_-6952295868487656571", "blk_<*>"),
            (
                "dial tcp [::1]:6379: connect: connection refused",
                "dial tcp <*>: connect: connection refused",
            ),
            (
                "upstream ([2001:db8::7]:8080) and [fe80::1] and ([10.0.0.1]:80)",
                "upstream (<*>) and [<*>] and (<*>)",
            ),
            ("[db8::1]: [x]:80", "[<*>]: [x]:<*>"),
            (
                "Receiving block src: /10.251.30.6:33145 dest:",
                "Receiving block src: <*> dest:",
            ),
            ("10.251.30.85:50010:Got exception", "<*>:Got exception"),
            (
                "Failed password for root from 5.36.59.76 port 42393 ssh2",
                "Failed password for root from <*> port <*> ssh<*>",
            ),
            (
                "rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om  user=root",
                "rhost=<*> user=root",
            ),
            (
                "session opened for user cyrus by (uid=0)",
                "session opened for user cyrus by (uid=<*>)",
            ),
            ("at Sat Jul  9 22:53:19 2005", "at <*>"),
            (
                "Linux version 2.6.5-1.358 (bhcompile@bugs.build.redhat.com)",
                "Linux version <*> (<*>)",
            ),
            (
                "BIOS-e820: 00000000000f0000 - 0000000000100000 (reserved)",
                "BIOS-<*>: <*> - <*> (reserved)",
            ),
            ("Memory: 125312k/129720k available", "Memory: <*> available"),
            ("mod_jk child init 1 -2", "mod_jk child init <*>"),
            (
                "id 123e4567-e89b-12d3-a456-426614174000 at http://x.y/z?a=1",
                "id <*> at <*>",
            ),
            (
                "Component \"alt0\" is in state",
                "Component \"<*>\" is in state",
            ),
            (
                "error=\"the disk is full\" code=5",
                "error=\"<*>\" code=<*>",
            ),
            (
                "\"GET /v2/servers HTTP/1.1\" status: 200",
                "\"GET <*> HTTP/<*>\" status: <*>",
            ),
            (
                "removing device node '/udev/vcsa2'",
                "removing device node '<*>'",
            ),
            (
                "chrome.exe - proxy.cse.cuhk.edu.hk:5070 close",
                "chrome.exe - <*> close",
            ),
            ("took 250ms, 1.5s", "took <*>, <*>"),
            // A number apart from its time unit is one variable too.
            ("took 250 ms, 1.5 s", "took <*>, <*>"),
            ("lifetime <1 sec", "lifetime <*>"),
            ("lifetime 00:02", "lifetime <*>"),
            (
                "timed out after 900 Seconds at noon",
                "timed out after <*> at noon",
            ),
            ("(after 30 seconds) [5 ms]", "(after <*>) [<*>]"),
            ("1 min 30 sec", "<*>"),
            // Only time units, only after a number, only whole tokens.
            ("sent 1190 bytes", "sent <*> bytes"),
            ("wait seconds", "wait seconds"),
            ("retry 3 sessions", "retry <*> sessions"),
            ("code=5 sec", "code=<*> sec"),
            ("5 ms-ish", "<*> ms-ish"),
            ("GET /search?q=jacket 200", "GET <*>"),
            ("next=/login?user=x", "next=<*>"),
            // Brackets balanced inside a token stay with it.
            ("Full GC 68M->32M(662M), 0.01 secs", "Full GC <*>, <*>"),
            ("getBlock(42) (uid=0)", "getBlock(<*>) (uid=<*>)"),
            ("(f(x)) (68M->32M(662M))", "(f(x)) (<*>)"),
            ("connect [::1]:http failed", "connect <*> failed"),
            // Versions, whatever their form.
            (
                "v1.2.3 a 1.2.4-rc1 b 2.0.0+build.5 c V3.1",
                "<*> a <*> b <*> c <*>",
            ),
            ("v2 ssh2 1.2-beta", "v<*> ssh<*> <*>"),
            ("1.2.3:x v1.x", "<*>:x v<*>.x"),
            // The random parts of generated names, with digits or not.
            (
                "web-7d9f8b6c5d-xkcvb a web-bcdfghjk-q8zpt b fluentd-xkcvb c (web-bcdfghjk-xkcvb),",
                "web-<*>-<*> a web-<*>-<*> b fluentd-<*> c (web-<*>-<*>),",
            ),
            (
                "kube-proxy node-exporter x-ray -xkcvb web-xkcvbnmlkjh web-Xkcvb",
                "kube-proxy node-exporter x-ray -xkcvb web-xkcvbnmlkjh web-Xkcvb",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(mask(input), want, "input: {input}");
        }
    }

    #[test]
    fn the_byte_classes_agree_with_the_std_predicates() {
        for b in 0..=255u8 {
            assert_eq!(is_space(b), b.is_ascii_whitespace(), "byte {b}");
            assert_eq!(CLASS[b as usize] & EQUALS != 0, b == b'=', "byte {b}");
            assert_eq!(
                CLASS[b as usize] & DIGIT != 0,
                b.is_ascii_digit(),
                "byte {b}"
            );
            if b.is_ascii_digit() || b"@=/".contains(&b) {
                assert_ne!(CLASS[b as usize] & SPECIAL, 0, "byte {b}");
            }
            if b.is_ascii_alphabetic() || b >= 0x80 || b == b'_' {
                assert_eq!(CLASS[b as usize], 0, "byte {b}");
            }
            assert_eq!(CLASS[b as usize] & HYPHEN != 0, b == b'-', "byte {b}");
        }
    }

    #[test]
    fn a_number_token_masks_as_mask_token_masks_it() {
        for cfg in [
            TemplateConfig::default(),
            TemplateConfig {
                max_token_bytes: 4,
                ..TemplateConfig::default()
            },
        ] {
            let m = Masker::new(&cfg);
            for tok in ["0", "7", "302", "18446744073709551616"] {
                let mut direct = String::new();
                m.mask_token(tok, &mut direct);
                let (mut out, mut spans) = (String::new(), Vec::new());
                m.tokenize(tok, 64, &mut out, &mut spans);
                assert_eq!(out, direct, "token {tok}");
            }
        }
    }

    #[test]
    fn folds_long_lines() {
        let m = Masker::new(&TemplateConfig::default());
        let mut out = String::new();
        let mut spans = Vec::new();
        m.tokenize("a b c d e f", 3, &mut out, &mut spans);
        assert_eq!(spans.len(), 3);
        assert!(out.ends_with(WILDCARD));
    }
}
