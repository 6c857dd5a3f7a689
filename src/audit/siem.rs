//! SIEM formats for audit entries: JSON lines, and RFC 5424 syslog carrying a CEF message.
//! Pure: entry bytes in, message bytes out; no I/O (`audit::ship` delivers them).
//!
//! * **JSON lines**: the stored entry, byte for byte, one per line. serde_json never writes
//!   a raw CR or LF inside a value, and [`render`] refuses an entry that holds one, so a
//!   line is always exactly one entry (and `audit verify --file` can check the export).
//! * **Syslog + CEF** (`proto/audit-siem-v1.md` is the normative mapping):
//!
//!   ```text
//!   <PRI>1 TIME HOST sallyport - ACTION [sallyport@32473 seq="N" hash="H" instance="I"] CEF:0|Sallyport|sallyport|VERSION|ACTION|NAME|SEV|EXTENSIONS
//!   ```
//!
//! **Escaping, so that no field can inject structure.** Every value first goes through
//! [`sanitize`]: control characters (C0, DEL, C1) and U+2028/U+2029 become U+FFFD, and it
//! is cut to a per-field cap on a character boundary. Then, per place:
//! CEF header fields escape `\` and `|` (a line break there was already replaced);
//! CEF extension values escape `\` and `=`, and write CR and LF as `\r` and `\n`;
//! syslog STRUCTURED-DATA values escape `"`, `\` and `]`; the header fields HOSTNAME and
//! MSG-ID keep printable US-ASCII only (others become `_`, empty becomes `-`).
//! Over TCP, messages are framed by octet counting (RFC 6587 §3.4.1), [`frame`]; in a file,
//! one message per line (no message holds a raw LF).
//!
//! Not here: reading the store, sockets, files, the delivery cursor (`audit::ship`).

use serde::Deserialize;

/// Syslog facility 13, "log audit" (RFC 5424 §6.2.1).
const FACILITY: u8 = 13;
/// The SD-ID of our structured data: `sallyport` at 32473, the private enterprise number
/// RFC 5612 reserves for documentation (to be replaced by a registered PEN).
pub const SD_ID: &str = "sallyport@32473";

/// Caps, in characters, on a value before escaping (ArcSight's documented field lengths
/// where it has one).
const CAP_HEADER_SHORT: usize = 63;
const CAP_SIGNATURE: usize = 1023;
const CAP_NAME: usize = 512;
const CAP_EXT: usize = 1023;
const CAP_DETAILS: usize = 4000;
const CAP_SD: usize = 1023;
const CAP_HOSTNAME: usize = 255;
const CAP_MSGID: usize = 32;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The stored entry as one line of JSON.
    JsonLines,
    /// RFC 5424 syslog whose MSG is a CEF:0 event.
    SyslogCef,
}

impl Format {
    /// The name used on the command line and in the delivery cursor.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::JsonLines => "jsonl",
            Format::SyslogCef => "syslog-cef",
        }
    }

    /// Parses `jsonl` or `syslog-cef`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jsonl" => Some(Format::JsonLines),
            "syslog-cef" => Some(Format::SyslogCef),
            _ => None,
        }
    }
}

/// How messages are separated on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each message followed by LF (files; JSON lines over TCP).
    Lines,
    /// `LEN SP MSG`, RFC 6587 §3.4.1 (syslog over TCP or TLS).
    OctetCounting,
}

/// Why an entry cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum SiemError {
    /// The stored bytes are not an audit entry.
    #[error("audit entry is not valid JSON of the entry format: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The stored bytes contain a raw line break, which would split a JSON line.
    #[error("audit entry contains a raw line break")]
    LineBreak,
}

/// The fields of a stored entry that the formats use. Unknown fields are ignored: the
/// entry format may grow, and JSON lines carries it whole.
#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    /// Sequence number.
    pub seq: u64,
    /// RFC 3339 time.
    pub time: String,
    /// The instance that wrote it.
    pub instance: String,
    /// `noun.verb`.
    pub action: String,
    /// `success`, `failure`, `denied`.
    pub outcome: String,
    /// Who acted (`{"kind": …}`).
    pub actor: serde_json::Value,
    /// Request id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// Client address.
    #[serde(default)]
    pub client_addr: Option<String>,
    /// The proxy that spoke for the client.
    #[serde(default)]
    pub peer_addr: Option<String>,
    /// The id acted on.
    #[serde(default)]
    pub subject: Option<String>,
    /// Event fields.
    #[serde(default)]
    pub details: serde_json::Value,
    /// The entry's hash, hex.
    pub hash: String,
}

impl Entry {
    /// Parses a stored entry.
    pub fn parse(bytes: &[u8]) -> Result<Self, SiemError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// Renders one stored entry (`bytes`, already parsed as `entry`) as a message without
/// framing. `version` is the product version for the CEF header.
pub fn render(
    format: Format,
    bytes: &[u8],
    entry: &Entry,
    version: &str,
) -> Result<Vec<u8>, SiemError> {
    match format {
        Format::JsonLines => {
            if bytes.iter().any(|&b| b == b'\n' || b == b'\r') {
                return Err(SiemError::LineBreak);
            }
            Ok(bytes.to_vec())
        }
        Format::SyslogCef => Ok(syslog_cef(entry, version).into_bytes()),
    }
}

/// Appends `msg` to `out` with `framing`.
pub fn frame(framing: Framing, msg: &[u8], out: &mut Vec<u8>) {
    match framing {
        Framing::Lines => {
            out.extend_from_slice(msg);
            out.push(b'\n');
        }
        Framing::OctetCounting => {
            out.extend_from_slice(msg.len().to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(msg);
        }
    }
}

/// The sequence number a rendered line carries (without its LF), or `None` when the line
/// is not one of ours. Used to find the last entry an output file really holds.
pub fn seq_of_line(format: Format, line: &[u8]) -> Option<u64> {
    match format {
        Format::JsonLines => {
            #[derive(Deserialize)]
            struct Seq {
                seq: u64,
            }
            serde_json::from_slice::<Seq>(line).ok().map(|s| s.seq)
        }
        Format::SyslogCef => {
            // The six header fields never contain a space (sanitised), so the seventh
            // space-separated token starts our SD element.
            let text = std::str::from_utf8(line).ok()?;
            let sd = text.splitn(7, ' ').nth(6)?;
            let rest = sd.strip_prefix(&format!("[{SD_ID} seq=\""))?;
            let end = rest.find('"')?;
            rest[..end].parse().ok()
        }
    }
}

/// The CEF severity (0–10) and syslog severity for an outcome.
fn severities(outcome: &str) -> (u8, u8) {
    match outcome {
        "success" => (3, 6), // CEF low; syslog informational
        "failure" => (6, 5), // CEF medium; syslog notice
        _ => (8, 4),         // denied or unknown: CEF high; syslog warning
    }
}

fn syslog_cef(e: &Entry, version: &str) -> String {
    let (cef_sev, syslog_sev) = severities(&e.outcome);
    let pri = u16::from(FACILITY) * 8 + u16::from(syslog_sev);
    let time = if is_syslog_time(&e.time) {
        e.time.as_str()
    } else {
        "-"
    };
    let mut out = format!(
        "<{pri}>1 {time} {} sallyport - {} ",
        ascii_field(&e.instance, CAP_HOSTNAME),
        ascii_field(&e.action, CAP_MSGID),
    );
    out.push('[');
    out.push_str(SD_ID);
    sd_param(&mut out, "seq", &e.seq.to_string());
    sd_param(&mut out, "hash", &e.hash);
    sd_param(&mut out, "instance", &e.instance);
    out.push_str("] ");
    out.push_str(&cef(e, version, cef_sev));
    out
}

/// The CEF:0 event for `e`.
fn cef(e: &Entry, version: &str, severity: u8) -> String {
    let mut out = String::from("CEF:0|");
    for (value, cap) in [
        ("Sallyport", CAP_HEADER_SHORT),
        ("sallyport", CAP_HEADER_SHORT),
        (version, CAP_HEADER_SHORT),
        (e.action.as_str(), CAP_SIGNATURE),
        (format!("{} {}", e.action, e.outcome).as_str(), CAP_NAME),
    ] {
        escape_header(&sanitize(value, cap), &mut out);
        out.push('|');
    }
    out.push_str(&severity.to_string());
    out.push('|');

    let mut ext = Extensions(&mut out, true);
    if let Some(ms) = unix_millis(&e.time) {
        ext.add("rt", &ms.to_string(), CAP_EXT);
    }
    ext.add("act", &e.action, CAP_HEADER_SHORT);
    ext.add("outcome", &e.outcome, CAP_HEADER_SHORT);
    let kind = e.actor.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    let principal = ["name", "user"]
        .iter()
        .find_map(|k| e.actor.get(*k).and_then(|v| v.as_str()));
    if let Some(p) = principal {
        ext.add("suser", p, CAP_EXT);
    }
    if let Some(addr) = e.client_addr.as_deref().filter(|a| is_ip(a)) {
        ext.add("src", addr, CAP_EXT);
    }
    if let Some(addr) = e.peer_addr.as_deref().filter(|a| is_ip(a)) {
        ext.add("dvc", addr, CAP_EXT);
    }
    ext.add("dvchost", &e.instance, 100);
    ext.add("cn1", &e.seq.to_string(), CAP_EXT);
    ext.add("cn1Label", "seq", CAP_EXT);
    ext.add("cs1", &e.hash, CAP_EXT);
    ext.add("cs1Label", "entryHash", CAP_EXT);
    if let Some(r) = &e.request_id {
        ext.add("cs2", r, CAP_EXT);
        ext.add("cs2Label", "requestId", CAP_EXT);
    }
    if let Some(s) = &e.subject {
        ext.add("cs3", s, CAP_EXT);
        ext.add("cs3Label", "subject", CAP_EXT);
    }
    if let Some(g) = e.actor.get("grant").and_then(|v| v.as_str()) {
        ext.add("cs4", g, CAP_EXT);
        ext.add("cs4Label", "grant", CAP_EXT);
    }
    ext.add("cs5", kind, CAP_EXT);
    ext.add("cs5Label", "actorKind", CAP_EXT);
    if !e.details.is_null() {
        ext.add("cs6", &e.details.to_string(), CAP_DETAILS);
        ext.add("cs6Label", "details", CAP_EXT);
    }
    out
}

/// Writes `key=value` pairs, space-separated, escaping values.
struct Extensions<'a>(&'a mut String, bool);

impl Extensions<'_> {
    fn add(&mut self, key: &str, value: &str, cap: usize) {
        if !self.1 {
            self.0.push(' ');
        }
        self.1 = false;
        self.0.push_str(key);
        self.0.push('=');
        escape_extension(&sanitize_keep_breaks(value, cap), self.0);
    }
}

/// Replaces control characters (and U+2028/U+2029) with U+FFFD and cuts `s` to `cap`
/// characters: what every field goes through before it is escaped.
pub fn sanitize(s: &str, cap: usize) -> String {
    s.chars()
        .take(cap)
        .map(|c| if is_unsafe(c) { '\u{FFFD}' } else { c })
        .collect()
}

/// [`sanitize`] that keeps CR and LF, for CEF extension values (which escape them).
pub fn sanitize_keep_breaks(s: &str, cap: usize) -> String {
    s.chars()
        .take(cap)
        .map(|c| {
            if is_unsafe(c) && c != '\r' && c != '\n' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// CEF header field: `\` → `\\`, `|` → `\|`.
pub fn escape_header(s: &str, out: &mut String) {
    for c in s.chars() {
        if c == '\\' || c == '|' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// CEF extension value: `\` → `\\`, `=` → `\=`, CR → `\r`, LF → `\n`.
pub fn escape_extension(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// RFC 5424 PARAM-VALUE: `"`, `\` and `]` escaped with `\`.
pub fn escape_sd_value(s: &str, out: &mut String) {
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
}

fn sd_param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    escape_sd_value(&sanitize(value, CAP_SD), out);
    out.push('"');
}

/// An RFC 5424 header field: printable US-ASCII (33–126) only, at most `cap`, `-` if empty.
fn ascii_field(s: &str, cap: usize) -> String {
    let v: String = s
        .chars()
        .take(cap)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// Whether `s` is an RFC 3339 time that is also a valid RFC 5424 TIMESTAMP (no spaces,
/// at most 6 fraction digits; ours have 3).
fn is_syslog_time(s: &str) -> bool {
    let fraction = s
        .split_once('.')
        .map_or(0, |(_, f)| f.bytes().take_while(u8::is_ascii_digit).count());
    s.len() <= 32
        && fraction <= 6
        && s.bytes().all(|b| b.is_ascii_graphic())
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

fn unix_millis(s: &str) -> Option<i128> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() / 1_000_000)
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests;
