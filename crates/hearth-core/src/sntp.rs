//! A wall clock from SNTP (RFC 4330), sans-IO: the request, the checks on an answer, the
//! schedule (which server next, when), and the clock it sets.
//!
//! The request carries a random 64-bit nonce as its transmit timestamp; an answer counts only
//! when it echoes the nonce as its originate timestamp (so a stray or forged datagram without
//! it is ignored), says it comes from a synchronised server (mode 4, stratum 1..=15, leap
//! indicator not "unsynchronised"), and gives a time no earlier than the device's floor (the
//! later of [`FLOOR_S`] and the newest owner-signed issue time it has accepted). The clock then
//! reads the server's transmit time plus half the round trip.
//!
//! SNTP is not authenticated: a host on the LAN can answer in the server's place. What the
//! device does with the clock is chosen with that in mind: a time earlier than the floor is
//! refused (no one can make an expired certificate look valid again by winding the clock back
//! past what the device already knew), and the clock is a reason to *refuse* more (a signed
//! message issued far ahead of it, a certificate past its end), never to accept more.
//!
//! ```
//! use hearth_core::sntp::{self, Sntp};
//! let mut s = Sntp::new(vec!["192.168.1.1".into()], 0);
//! assert!(s.due(0));
//! let ask = s.begin(0, 0x1234_5678_9abc_def0);
//! assert_eq!((ask.host.as_str(), ask.port), ("192.168.1.1", sntp::PORT));
//! // A server's answer: 2027-01-01T00:00:00Z.
//! let reply = sntp::reply_for(&ask.packet, 1_798_761_600_000);
//! let clock = s.answered(&reply, 0, 40, 0).unwrap();
//! assert_eq!(clock.unix_ms(40), 1_798_761_600_020);
//! assert!(!s.due(40));
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::{Millis, MINUTE, SECOND};

/// The NTP port.
pub const PORT: u16 = 123;
/// An SNTP packet without extensions.
pub const PACKET_LEN: usize = 48;
/// Seconds from the NTP era's start (1900) to the Unix epoch (1970).
const NTP_TO_UNIX_S: u64 = 2_208_988_800;
/// No time before this is believed: 2026-01-01T00:00:00Z, before any Hearth release.
pub const FLOOR_S: u64 = 1_767_225_600;
/// How long to wait for an answer (the device's loop waits with it: a LAN server answers in
/// milliseconds, the pool in a few hundred).
pub const TIMEOUT: Millis = SECOND;
/// How often a set clock is checked again.
pub const RESYNC: Millis = 60 * MINUTE;
/// The first retry after a failure; it doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Millis = 15 * SECOND;
/// The longest wait between failed attempts.
pub const RETRY_MAX: Millis = 10 * MINUTE;

/// Why an answer was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SntpError {
    /// Shorter than a packet.
    Short(usize),
    /// Not a server's answer (mode), or an unknown version.
    NotAReply,
    /// The server is not synchronised (leap indicator 3, stratum 0 "kiss of death", or 16+).
    Unsynchronised,
    /// The originate timestamp is not this request's nonce.
    NotOurs,
    /// The time is before the device's floor (the clock would go back past what it knew).
    BeforeFloor {
        /// The time it gave, s since 1970.
        given_s: u64,
        /// The floor, s since 1970.
        floor_s: u64,
    },
    /// No answer in time, or the network failed.
    NoAnswer,
}

impl fmt::Display for SntpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short(n) => write!(f, "a {n}-byte answer (an SNTP packet has {PACKET_LEN})"),
            Self::NotAReply => f.write_str("not an SNTP server's answer"),
            Self::Unsynchronised => f.write_str("the server is not synchronised"),
            Self::NotOurs => f.write_str("the answer is not to this request"),
            Self::BeforeFloor { given_s, floor_s } => write!(
                f,
                "the server's time ({given_s} s) is before what the device already knows ({floor_s} s)"
            ),
            Self::NoAnswer => f.write_str("no answer"),
        }
    }
}

/// Unix ms to a 64-bit NTP timestamp (its seconds wrap in 2036, into era 1).
fn to_ntp(unix_ms: u64) -> u64 {
    let s = (unix_ms / 1000 + NTP_TO_UNIX_S) & 0xFFFF_FFFF;
    let frac = ((unix_ms % 1000) << 32) / 1000;
    (s << 32) | frac
}

/// A 64-bit NTP timestamp to Unix ms, as RFC 4330 reads it: seconds with the top bit set are
/// era 0 (1968..2036), without it era 1 (2036..2104).
fn to_unix_ms(ntp: u64) -> Option<u64> {
    let secs = ntp >> 32;
    let secs = if secs & 0x8000_0000 == 0 {
        secs + (1 << 32)
    } else {
        secs
    };
    let s = secs.checked_sub(NTP_TO_UNIX_S)?;
    // To the nearest millisecond.
    let ms = ((ntp & 0xFFFF_FFFF) * 1000 + (1 << 31)) >> 32;
    Some(s * 1000 + ms)
}

fn timestamp(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[at..at + 8]);
    u64::from_be_bytes(b)
}

/// A client request whose transmit timestamp is `nonce`.
pub fn request(nonce: u64) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    // Leap indicator 0, version 4, mode 3 (client).
    p[0] = (4 << 3) | 3;
    p[40..48].copy_from_slice(&nonce.to_be_bytes());
    p
}

/// The time in a server's answer to the request with `nonce`, in Unix ms.
pub fn parse(reply: &[u8], nonce: u64) -> Result<u64, SntpError> {
    if reply.len() < PACKET_LEN {
        return Err(SntpError::Short(reply.len()));
    }
    let (li, vn, mode) = (reply[0] >> 6, (reply[0] >> 3) & 7, reply[0] & 7);
    if mode != 4 || !(3..=4).contains(&vn) {
        return Err(SntpError::NotAReply);
    }
    if li == 3 || !(1..=15).contains(&reply[1]) {
        return Err(SntpError::Unsynchronised);
    }
    if timestamp(reply, 24) != nonce {
        return Err(SntpError::NotOurs);
    }
    to_unix_ms(timestamp(reply, 40)).ok_or(SntpError::Unsynchronised)
}

/// What a synchronised stratum-2 server answers to `request` at `unix_ms` (for tests and the
/// simulator's own server).
pub fn reply_for(request: &[u8], unix_ms: u64) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = (4 << 3) | 4;
    p[1] = 2;
    if request.len() >= PACKET_LEN {
        p[24..32].copy_from_slice(&request[40..48]);
    }
    let t = to_ntp(unix_ms).to_be_bytes();
    p[32..40].copy_from_slice(&t);
    p[40..48].copy_from_slice(&t);
    p
}

/// A wall clock: the Unix time at one instant of the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    unix_ms: u64,
    at: Millis,
}

impl WallClock {
    /// The clock that reads `unix_ms` at monotonic `at`.
    pub fn new(unix_ms: u64, at: Millis) -> Self {
        WallClock { unix_ms, at }
    }

    /// The Unix time in ms at monotonic `now`.
    pub fn unix_ms(&self, now: Millis) -> u64 {
        (self.unix_ms + now).saturating_sub(self.at)
    }
}

/// `unix_s` as `YYYY-MM-DDTHH:MM:SSZ`.
pub struct Utc(pub u64);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0 / 86_400;
        let rem = self.0 % 86_400;
        // Civil date from days since 1970 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// `unix_ms` as the UTC time of day, `HH:MM:SS.mmmZ` (what log lines show once the clock is set).
pub struct TimeOfDay(pub u64);

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = self.0 % 86_400_000;
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03}Z",
            day / 3_600_000,
            day / 60_000 % 60,
            day / 1000 % 60,
            day % 1000
        )
    }
}

/// One question to send: where, and the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The server (a DNS name or an IPv4 address).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The request.
    pub packet: [u8; PACKET_LEN],
}

/// The client: the servers in turn, the schedule, the nonce in flight.
#[derive(Debug, Clone)]
pub struct Sntp {
    servers: Vec<String>,
    next: usize,
    due: Millis,
    retry: Millis,
    nonce: u64,
    clock: Option<WallClock>,
}

/// A server as `host` or `host:port`.
fn split(server: &str) -> (&str, u16) {
    match server.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, port),
            Err(_) => (server, PORT),
        },
        None => (server, PORT),
    }
}

impl Sntp {
    /// A client of `servers` (`host` or `host:port`; none: never due), first due at `now`.
    pub fn new(servers: Vec<String>, now: Millis) -> Self {
        Sntp {
            servers,
            next: 0,
            due: now,
            retry: RETRY_FIRST,
            nonce: 0,
            clock: None,
        }
    }

    /// Is a question due?
    pub fn due(&self, now: Millis) -> bool {
        !self.servers.is_empty() && now >= self.due
    }

    /// When the next question is due (`None`: no servers).
    pub fn next_due(&self) -> Option<Millis> {
        (!self.servers.is_empty()).then_some(self.due)
    }

    /// The clock, once set.
    pub fn clock(&self) -> Option<WallClock> {
        self.clock
    }

    /// The question to the next server, with `nonce` (random); no other question is due until
    /// [`Sntp::answered`] or [`Sntp::failed`].
    pub fn begin(&mut self, now: Millis, nonce: u64) -> Ask {
        let server = &self.servers[self.next % self.servers.len()];
        let (host, port) = split(server);
        self.nonce = nonce;
        self.due = now + TIMEOUT;
        Ask {
            host: host.into(),
            port,
            packet: request(nonce),
        }
    }

    /// The server's name as configured, of the question in flight.
    pub fn server(&self) -> &str {
        &self.servers[self.next % self.servers.len()]
    }

    /// An answer that came back at `received` to the question sent at `sent`; `floor_s` is the
    /// newest time the device already trusts. The new clock, or why not (then as
    /// [`Sntp::failed`]).
    pub fn answered(
        &mut self,
        reply: &[u8],
        sent: Millis,
        received: Millis,
        floor_s: u64,
    ) -> Result<WallClock, SntpError> {
        let result = parse(reply, self.nonce).and_then(|unix_ms| {
            let floor_s = floor_s.max(FLOOR_S);
            if unix_ms / 1000 < floor_s {
                return Err(SntpError::BeforeFloor {
                    given_s: unix_ms / 1000,
                    floor_s,
                });
            }
            let half_trip = received.saturating_sub(sent) / 2;
            Ok(WallClock::new(unix_ms + half_trip, received))
        });
        match &result {
            Ok(clock) => {
                self.clock = Some(*clock);
                self.retry = RETRY_FIRST;
                self.due = received + RESYNC;
            }
            Err(_) => self.failed(received),
        }
        result
    }

    /// No (usable) answer: the next server, after the back-off.
    pub fn failed(&mut self, now: Millis) {
        self.next = (self.next + 1) % self.servers.len().max(1);
        self.due = now + self.retry;
        self.retry = (self.retry * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    const T: u64 = 1_798_761_600_000; // 2027-01-01T00:00:00Z

    #[test]
    fn timestamps_round_trip_and_dates_print() {
        // 2036-02-07 wraps the seconds into era 1.
        for ms in [
            0,
            T,
            T + 123,
            T + 999,
            2_085_978_496_000,
            2_085_978_495_999,
            4_102_444_800_000,
        ] {
            assert_eq!(to_unix_ms(to_ntp(ms)), Some(ms));
        }
        assert_eq!(format!("{}", Utc(T / 1000)), "2027-01-01T00:00:00Z");
        assert_eq!(format!("{}", Utc(1_709_210_096)), "2024-02-29T12:34:56Z");
        assert_eq!(format!("{}", Utc(0)), "1970-01-01T00:00:00Z");
        assert_eq!(format!("{}", TimeOfDay(1_709_210_096_007)), "12:34:56.007Z");
        assert_eq!(format!("{}", TimeOfDay(T + 86_399_999)), "23:59:59.999Z");
    }

    #[test]
    fn only_a_synchronised_answer_to_this_request_counts() {
        let nonce = 0xdead_beef_0bad_f00d;
        let ask = request(nonce);
        let good = reply_for(&ask, T);
        assert_eq!(parse(&good, nonce), Ok(T));
        assert_eq!(parse(&good, nonce ^ 1), Err(SntpError::NotOurs));
        assert_eq!(parse(&good[..47], nonce), Err(SntpError::Short(47)));
        let mut p = good;
        p[0] = (4 << 3) | 3; // a client's packet echoed
        assert_eq!(parse(&p, nonce), Err(SntpError::NotAReply));
        let mut p = good;
        p[1] = 0; // kiss of death
        assert_eq!(parse(&p, nonce), Err(SntpError::Unsynchronised));
        let mut p = good;
        p[0] |= 3 << 6; // leap indicator: unsynchronised
        assert_eq!(parse(&p, nonce), Err(SntpError::Unsynchronised));
        let mut p = good;
        p[0] = (2 << 3) | 4; // version 2
        assert_eq!(parse(&p, nonce), Err(SntpError::NotAReply));
    }

    #[test]
    fn the_schedule_rotates_backs_off_and_resyncs() {
        let mut s = Sntp::new(vec!["a".into(), "b:1123".into()], 1000);
        assert!(!s.due(999) && s.due(1000));
        let ask = s.begin(1000, 7);
        assert_eq!((ask.host.as_str(), ask.port), ("a", PORT));
        // In flight: not due again until the timeout.
        assert!(!s.due(1000 + TIMEOUT - 1));
        s.failed(3000);
        assert_eq!(s.next_due(), Some(3000 + RETRY_FIRST));
        let ask = s.begin(3000 + RETRY_FIRST, 8);
        assert_eq!((ask.host.as_str(), ask.port), ("b", 1123));
        // Before the floor: refused, counted as a failure, the back-off doubled.
        let old = reply_for(&ask.packet, (FLOOR_S - 1) * 1000);
        let t = 3000 + RETRY_FIRST;
        assert!(matches!(
            s.answered(&old, t, t + 10, 0),
            Err(SntpError::BeforeFloor { .. })
        ));
        assert_eq!(s.next_due(), Some(t + 10 + 2 * RETRY_FIRST));
        assert_eq!(s.clock(), None);
        // A floor above the answer (a signed message seen later than it): refused too.
        let ask = s.begin(100_000, 9);
        let r = reply_for(&ask.packet, T);
        assert!(s.answered(&r, 100_000, 100_010, T / 1000 + 1).is_err());
        // Good: set, with half the round trip, and due again in an hour; the back-off resets.
        let ask = s.begin(200_000, 10);
        let r = reply_for(&ask.packet, T);
        let clock = s.answered(&r, 200_000, 200_100, 0).unwrap();
        assert_eq!(clock.unix_ms(200_100), T + 50);
        assert_eq!(clock.unix_ms(260_100), T + 60_050);
        assert_eq!(s.next_due(), Some(200_100 + RESYNC));
        s.failed(300_000);
        assert_eq!(s.next_due(), Some(300_000 + RETRY_FIRST));
        // Backs off to at most RETRY_MAX.
        for i in 0..20 {
            s.failed(i);
        }
        assert_eq!(s.next_due(), Some(19 + RETRY_MAX));
        // No servers: never due.
        assert!(!Sntp::new(vec![], 0).due(u64::MAX));
    }
}
