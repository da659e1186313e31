//! TLS for the broker connection: embedded-tls 0.19 (TLS 1.3, TLS_AES_128_GCM_SHA256, P-256
//! key exchange) over the TCP connection. The handshake and the server's verification are
//! `hearth_device::tls_client` (tested on the host against a rustls server): the one CA of
//! `mqttca`, the host name, the `mqttpin`, the handshake signature; ECDSA P-256.
//!
//! - The session (its record buffers and its state) is static and leased to one connection at
//!   a time ([`TlsStream`]); it returns when the connection is dropped, so reconnecting never
//!   allocates, and the socket the runtime moves around is a pointer, not 1.3 KB of state.
//! - Time: the firmware has no wall clock, so certificates are checked against a lower bound
//!   of the time (`Clock::AtLeast`): the later of the build time and the highest owner-signed
//!   issue time the device had accepted when it booted (`hearth_device::tls::trusted_now`). A
//!   certificate that expired before that is refused; one that expired later, and the "not
//!   before" dates, are not checked. Every handshake logs the bound.
//! - Randomness (the ephemeral key share and the ClientHello random): the chip's RNG, which is
//!   a true RNG while the Wi-Fi radio runs or the ADC entropy source is on (the Ethernet path
//!   switches it on for good before the network starts); TLS only runs with the network up.

use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embedded_tls::TlsConnection;
use hearth_device::tls::{Clock, Rejection};
use hearth_device::tls_client::{handshake, Suite};
use hearth_platform::{TlsError, TlsSettings};

use super::Guarded;

/// The receive record buffer: one whole TLS 1.3 record (2^14 bytes of data + 256 of
/// expansion); the record header is read separately. No maximum fragment length is
/// negotiated, so any broker works.
const RECORD_READ: usize = 16_640;
/// The send record buffer: the runtime's packets are small; longer writes go out as several
/// records.
const RECORD_WRITE: usize = 4096;

/// The firmware's build time (seconds since 1970): the lower bound of the time for the
/// certificates' expiry (`build.rs`).
const BUILD_TIME: u64 = match u64::from_str_radix(env!("HEARTH_BUILD_TIME"), 10) {
    Ok(t) => t,
    Err(_) => panic!("HEARTH_BUILD_TIME is not a number"),
};

/// The lower bound of the time for certificate expiry (seconds since 1970): the build time
/// until [`set_trusted_time`] raises it.
static TRUSTED_TIME: Mutex<CriticalSectionRawMutex, Cell<u64>> = Mutex::new(Cell::new(BUILD_TIME));

/// Sets the lower bound of the time from the stored `OTA_LAST_ISSUED` (u64 LE milliseconds;
/// `None` or any other length: the build time alone).
pub fn set_trusted_time(last_issued: Option<&[u8]>) {
    let now = hearth_device::tls::trusted_now(BUILD_TIME, last_issued);
    TRUSTED_TIME.lock(|t| t.set(now));
}

/// The wall clock once SNTP set it: Unix ms at a monotonic ms.
static WALL_CLOCK: Mutex<CriticalSectionRawMutex, Cell<Option<(u64, u64)>>> =
    Mutex::new(Cell::new(None));

/// The wall clock reads `unix_ms` now (SNTP): both ends of a certificate's validity are
/// checked against it from then on, unless it reads earlier than the trusted lower bound.
pub fn set_wall_clock(unix_ms: u64) {
    let now = embassy_time::Instant::now().as_millis();
    WALL_CLOCK.lock(|c| c.set(Some((unix_ms, now))));
}

/// The time to check certificates against: the wall clock when it is set and not before the
/// trusted lower bound (SNTP is unauthenticated: it may make the device refuse more, never
/// accept a certificate that expired before what it knew), else the lower bound alone.
fn clock() -> Clock {
    let floor = TRUSTED_TIME.lock(Cell::get);
    let wall = WALL_CLOCK.lock(Cell::get).map(|(unix_ms, at)| {
        (unix_ms + embassy_time::Instant::now().as_millis()).saturating_sub(at) / 1000
    });
    match wall {
        Some(now) if now >= floor => Clock::Now(now),
        _ => Clock::AtLeast(floor),
    }
}

/// The TLS session over the broker's TCP connection.
type Session = TlsConnection<'static, Guarded, Suite>;

/// An open TLS session: the lease of the static session slot. Dropping it drops the session
/// (and with it the TCP connection) and frees the slot.
pub struct TlsStream {
    session: &'static mut Session,
}

impl TlsStream {
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_tls::TlsError> {
        self.session.read(buf).await
    }

    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, embedded_tls::TlsError> {
        self.session.write(buf).await
    }

    pub async fn flush(&mut self) -> Result<(), embedded_tls::TlsError> {
        self.session.flush().await
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // SAFETY: `self.session` was initialised by `TlsStream::start` and is dropped exactly
        // once, here; the slot is marked free only afterwards.
        unsafe { core::ptr::drop_in_place(core::ptr::from_mut(self.session)) };
        SLOT.taken.lock(|t| t.set(false));
    }
}

impl TlsStream {
    /// A new session over `socket` in the static slot, or `None` while another holds it.
    fn start(socket: Guarded) -> Option<Self> {
        let free = SLOT.taken.lock(|t| !t.replace(true));
        if !free {
            return None;
        }
        // SAFETY: the flag was clear, so nothing else refers to the slot's cells; everything
        // handed out here lives in this `TlsStream`, whose `Drop` ends their use before the
        // flag is cleared again.
        let (read, write, session) = unsafe {
            (
                &mut *SLOT.read.get(),
                &mut *SLOT.write.get(),
                &mut *SLOT.session.get(),
            )
        };
        let session = session.write(TlsConnection::new(socket, read, write));
        Some(Self { session })
    }
}

/// Runs the TLS handshake over `socket` (already connected to `host`) and verifies the
/// server as `tls` says. Every failure is logged with its reason.
pub async fn open(
    socket: Guarded,
    host: &str,
    tls: &TlsSettings,
    rng: esp_hal::rng::Rng,
) -> Result<TlsStream, TlsError> {
    let Some(stream) = TlsStream::start(socket) else {
        // One broker connection at a time; the runtime drops the old one before reconnecting.
        log::warn!("tls: {host}: the TLS session is still in use by another connection");
        return Err(TlsError::Handshake);
    };
    let clock = clock();
    match clock {
        Clock::Now(now) => {
            log::info!("tls: {host}: certificates checked at {now} s (the wall clock)")
        }
        Clock::AtLeast(now) => log::info!(
            "tls: {host}: no wall clock; certificate expiry is checked against {now} s (the later \
             of the build time and the last owner-signed issue time)"
        ),
    }
    match handshake(stream.session, tls, clock, ChipRng(rng)).await {
        Ok(()) => Ok(stream),
        Err(rejection) => Err(fail(host, rejection)),
    }
}

fn fail(host: &str, rejection: Rejection) -> TlsError {
    log::warn!(
        "tls: {host}: {} ({})",
        rejection.error.explain(host),
        rejection.reason
    );
    rejection.error
}

/// The static session: its record buffers, its state, and whether a connection holds it.
struct Slot {
    read: UnsafeCell<[u8; RECORD_READ]>,
    write: UnsafeCell<[u8; RECORD_WRITE]>,
    session: UnsafeCell<MaybeUninit<Session>>,
    taken: Mutex<CriticalSectionRawMutex, Cell<bool>>,
}

// SAFETY: the cells are only reached through `TlsStream::start`, which hands them out to one
// holder at a time (the flag is flipped inside a critical section).
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    read: UnsafeCell::new([0; RECORD_READ]),
    write: UnsafeCell::new([0; RECORD_WRITE]),
    session: UnsafeCell::new(MaybeUninit::uninit()),
    taken: Mutex::new(Cell::new(false)),
};

/// The chip's RNG for embedded-tls (rand_core 0.6).
struct ChipRng(esp_hal::rng::Rng);

impl rand_core::RngCore for ChipRng {
    fn next_u32(&mut self) -> u32 {
        self.0.random()
    }

    fn next_u64(&mut self) -> u64 {
        (u64::from(self.0.random()) << 32) | u64::from(self.0.random())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.read(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.read(dest);
        Ok(())
    }
}

/// A true RNG while the radio or the ADC entropy source runs (see the module's notes).
impl rand_core::CryptoRng for ChipRng {}
