//! hearth-platform: the platform seam. Small traits for what a device needs from its hardware,
//! one implementation per world (esp-hal in `firmware/src/board.rs`, the simulator in
//! `hearth-sim`), the clock, the device's shared key-value store ([`store`]) and the TLS
//! settings the network is handed. Code asks for the traits it uses, not for the whole board.
//! It knows nothing of MQTT, appliances or the runtime: those sit above it and take these
//! traits.
//!
//! | trait | what it is | chip | simulator |
//! |---|---|---|---|
//! | [`Network`] | link up/down, TCP (and TLS) streams | Wi-Fi station, embassy-net | host TCP |
//! | [`Radio`] | ESP-NOW frames | esp-radio | the shared simulated air |
//! | [`Clock`], [`now_ms`] | ms since boot | embassy-time on esp-rtos | embassy-time's std driver |
//! | [`Identity`] | chip, image contents, id, version | eFuse base MAC | the device's state directory |
//! | [`Entropy`] | seeds | hardware RNG | OS-keyed hashing |
//! | [`Console`] | log lines, status LED, re-pair button | serial console, LED task | stdout, control socket |
//! | [`Reset`] | reset, reset cause, last panic, deep sleep | reset reason register, RTC memory, RTC timer | process exit, the board process |
//! | [`Watchdog`] | feeding under the loop-liveness policy | TIMG1 MWDT and RWDT, fed by a task | a thread that resets the process |
//! | [`FirmwareStore`] | update slots, the next boot's config | flash partitions | files in the state directory |
//!
//! [`Board`] is all of them but the network and the radio, for the runtime's main.

//!
//! ```
//! use hearth_platform::{Clock, Entropy};
//!
//! // A test clock and a fixed seed: what a unit test hands code that asks for these traits.
//! struct Fixed(u64);
//! impl Clock for Fixed {
//!     fn now(&self) -> u64 { self.0 }
//! }
//! impl Entropy for Fixed {
//!     fn seed(&mut self) -> u64 { self.0 ^ 0x5eed }
//! }
//! fn deadline(clock: &impl Clock, after: u64) -> u64 { clock.now() + after }
//! assert_eq!(deadline(&Fixed(1_000), 250), 1_250);
//! ```

#![no_std]

extern crate alloc;

pub mod store;

use alloc::string::String;
use alloc::vec::Vec;

use hearth_core::reboot::HardwareReset;
use hearth_core::Millis;

/// How the broker connection is secured: what the platform's TLS client needs.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The name the server's certificate must be valid for: the host of `mqttbroker` (a DNS
    /// name, or an IP address without brackets).
    pub server_name: String,
    /// DER of the one CA certificate trusted for this broker (`mqttca`). With it the chain,
    /// the validity period and the host name are verified.
    pub ca: Option<Vec<u8>>,
    /// SHA-256 of the server certificate's SubjectPublicKeyInfo (`mqttpin`). Without a CA the
    /// pinned key is the trust anchor (the host name is still checked, the validity period
    /// is not: the pin is the decision to trust that key); with a CA, both must pass.
    pub pin: Option<[u8; 32]>,
    /// The device's certificate (`mqttclientcert`), DER.
    pub client_cert: Option<Vec<u8>>,
    /// The device's private key (`mqttclientkey`), DER. A secret: never shown.
    pub client_key: Option<Vec<u8>>,
}

impl core::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("pin", &self.pin.is_some())
            .field("client_cert", &self.client_cert.as_ref().map(Vec::len))
            .field(
                "client_key",
                &self.client_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a connection to the broker could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The link is down.
    LinkDown,
    /// The host name did not resolve.
    Dns,
    /// The peer refused or the connection failed.
    Connect,
    /// The TCP connection opened but the TLS handshake failed. Never followed by a plain
    /// connection: the attempt fails, and the MQTT failure policy decides what next.
    Tls(TlsError),
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::LinkDown => f.write_str("link down"),
            Self::Dns => f.write_str("host name did not resolve"),
            Self::Connect => f.write_str("connection refused or failed"),
            Self::Tls(e) => write!(f, "tls: {e}"),
        }
    }
}

/// Why a TLS handshake with the broker failed, in the terms a user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsError {
    /// The server's certificate does not chain to the configured `mqttca`.
    UnknownCa,
    /// The server's certificate (or one in its chain) has expired.
    Expired,
    /// The server's certificate is not valid yet (or the device's clock is wrong).
    NotYetValid,
    /// The server's certificate is not issued for the host name in `mqttbroker`.
    WrongHost,
    /// The server's public key is not the one `mqttpin` names.
    PinMismatch,
    /// The server's certificate is malformed, revoked, or not usable for a server.
    BadCertificate,
    /// The server ended the handshake with an alert, e.g. because it requires a client
    /// certificate that was not given or that it does not trust.
    Refused,
    /// The handshake failed for another reason (no common protocol version or cipher suite,
    /// the peer does not speak TLS, the connection dropped).
    Handshake,
    /// The configured certificate or key cannot be used (e.g. an unsupported key type).
    BadConfig,
    /// This platform cannot make TLS connections.
    Unsupported,
}

impl TlsError {
    /// The message for a connection to `host`, e.g. `certificate not valid for host "x"`.
    pub fn explain(self, host: &str) -> alloc::string::String {
        match self {
            Self::WrongHost => alloc::format!("certificate not valid for host \"{host}\""),
            other => alloc::format!("{other}"),
        }
    }
}

impl core::fmt::Display for TlsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::UnknownCa => "unknown CA: the server's certificate is not signed by mqttca",
            Self::Expired => "certificate expired",
            Self::NotYetValid => "certificate not yet valid (or the clock is wrong)",
            Self::WrongHost => "certificate not valid for the broker's host name",
            Self::PinMismatch => "server key does not match the pin (mqttpin)",
            Self::BadCertificate => "bad server certificate",
            Self::Refused => {
                "the server refused the handshake (client certificate missing or not accepted?)"
            }
            Self::Handshake => "handshake failed",
            Self::BadConfig => "the configured certificate or key cannot be used",
            Self::Unsupported => "TLS not yet supported on this firmware",
        })
    }
}

/// What the device is doing, for a status LED (or anything else the board shows it with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Booting: start-up delay, opening the store.
    Booting,
    /// No network link; associating or waiting to retry.
    NoNetwork,
    /// Link up, no broker session.
    NoBroker,
    /// Connected to the broker: all is well.
    Online,
}

/// The network interface (Wi-Fi station or Ethernet on the chip; a simulated link on the host).
#[allow(async_fn_in_trait)]
pub trait Network {
    /// A connected TCP stream.
    type Socket: embedded_io_async::Read + embedded_io_async::Write;

    /// Start associating with the configured network; returns promptly, without waiting for
    /// the link (the loop awaits it outside any may-block window).
    async fn up(&mut self);
    /// Take the interface down; open streams fail from now on. Returns promptly.
    async fn down(&mut self);
    /// Does the link report being up (associated and addressed)?
    fn link_up(&mut self) -> bool;
    /// The interface's IPv4 address while it has one (for displays, logs and diagnostics).
    fn address(&mut self) -> Option<core::net::Ipv4Addr> {
        None
    }
    /// Is it a radio link (Wi-Fi), whose signal strength [`Network::rssi`] reports? A wired
    /// interface says `false` and has no signal entity.
    fn is_wireless(&self) -> bool {
        false
    }
    /// The received signal strength of the access point, dBm, while associated.
    fn rssi(&mut self) -> Option<i8> {
        None
    }
    /// Does the local network answer at all (the gateway or the DNS server)? Asked after
    /// several broker connection attempts got no answer at all, before the link is dropped and
    /// re-associated: a `true` keeps the link. The caller bounds the time; a platform that
    /// cannot check says `false`, which re-associates as if the link were stuck.
    async fn probe(&mut self) -> bool {
        false
    }
    /// Send one UDP datagram to `host:port` (a DNS name, resolved as for [`Network::connect`],
    /// or an IPv4 address, which needs no DNS) and return the length of the first datagram
    /// that comes back from it into `answer`. The caller bounds the time. A platform without
    /// UDP says [`NetError::Connect`], the default.
    async fn exchange_udp(
        &mut self,
        _host: &str,
        _port: u16,
        _request: &[u8],
        _answer: &mut [u8],
    ) -> Result<usize, NetError> {
        Err(NetError::Connect)
    }
    /// The wall clock is set (SNTP): the Unix time in ms now. TLS then checks both ends of a
    /// certificate's validity against it (never earlier than what the device knew before).
    /// The default ignores it.
    fn wall_clock(&mut self, _unix_ms: u64) {}
    /// Open a TCP stream to `host:port` (name resolution included) and, with `tls`, run the
    /// TLS handshake over it, verifying the server as `tls` says; the stream returned then
    /// carries the decrypted bytes. A failed handshake is [`NetError::Tls`], never a plain
    /// connection. The caller bounds the time. A read that returns 0 bytes on the stream must
    /// be reported as an error (the peer closed), never as `Ok(0)`, so the session ends
    /// instead of spinning.
    async fn connect(
        &mut self,
        host: &str,
        port: u16,
        tls: Option<&TlsSettings>,
    ) -> Result<Self::Socket, NetError>;
}

/// The flash of a board without update slots: it cannot be made, so `FirmwareStore::slots` of
/// such a board can only say `None`.
#[derive(Debug)]
pub enum NoSlots {}

impl embedded_storage_async::nor_flash::ErrorType for NoSlots {
    type Error = embedded_storage_async::nor_flash::NorFlashErrorKind;
}

impl embedded_storage_async::nor_flash::ReadNorFlash for NoSlots {
    const READ_SIZE: usize = 1;
    async fn read(&mut self, _: u32, _: &mut [u8]) -> Result<(), Self::Error> {
        match *self {}
    }
    fn capacity(&self) -> usize {
        match *self {}
    }
}

impl embedded_storage_async::nor_flash::NorFlash for NoSlots {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 1;
    async fn erase(&mut self, _: u32, _: u32) -> Result<(), Self::Error> {
        match *self {}
    }
    async fn write(&mut self, _: u32, _: &[u8]) -> Result<(), Self::Error> {
        match *self {}
    }
}

/// Milliseconds since boot, from embassy-time's driver: the hardware timer on the chip, the
/// host's monotonic clock in the simulator. Everything that reads the time reads it here or
/// through a [`Clock`].
pub fn now_ms() -> Millis {
    embassy_time::Instant::now().as_millis()
}

/// A source of "now", in ms since boot. Appliances that must read the time outside the calls
/// that carry it (a relay timing a command's pulse) take one, so their tests can drive time.
pub trait Clock {
    /// Now, in ms since boot.
    fn now(&self) -> Millis;
}

/// The system clock: [`now_ms`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        now_ms()
    }
}

/// Who the device is: its chip, what its image holds, its stable id, its version, and what its
/// heap has left.
pub trait Identity {
    /// The chip name update images must be built for (`esp32c3`, `esp32c6`, `sim`).
    fn chip(&self) -> &str;
    /// The chip whose boot rules (`hearth_device::chips`) a pushed config must pass:
    /// [`Identity::chip`] unless the board says otherwise (the simulator can stand in for a
    /// chip in a test). A name the chip rules do not know has no chip rules.
    fn config_chip(&self) -> alloc::string::String {
        self.chip().into()
    }
    /// The appliances this image contains of those a `lean` image may leave out
    /// (`hearth_appliances::FULL_IMAGE` when it has them all).
    fn image_appliances(&self) -> &'static [&'static str];
    /// A stable identity, e.g. the base MAC address.
    fn unique_id(&self) -> [u8; 6];
    /// A firmware version string for `getversion`.
    fn version(&self) -> &str;
    /// The heap: free now and the least it has been free since boot. `None` where there is
    /// no device heap to report (the simulator runs on the host's allocator).
    fn heap(&self) -> Option<HeapStats> {
        None
    }
}

/// What the heap has left ([`Identity::heap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Free bytes now.
    pub free: u32,
    /// The fewest free bytes since boot.
    pub min_free: u32,
}

/// Randomness for timing jitter and counter epochs (the chip's RNG; the host's OS).
pub trait Entropy {
    /// A seed for timing jitter.
    fn seed(&mut self) -> u64;
}

/// What the device tells the person next to it: console lines, a status LED, and the one
/// request a button can make.
pub trait Console {
    /// Report a line about the device's own progress outside MQTT (console on the chip, the
    /// simulator's log on the host).
    fn console(&mut self, line: &str);
    /// The device's status changed. The chip shows it on a LED; the default does nothing.
    fn status(&mut self, _status: DeviceStatus) {}
    /// The wall clock is set (SNTP), reading `unix_ms` now: log lines carry the time of day
    /// from then on. The default ignores it.
    fn wall_clock(&mut self, _unix_ms: u64) {}
    /// Someone asked the device to show itself (Home Assistant's identify button): blink the
    /// status LED fast for `ms`, then go back to the status. Returns whether anything shows
    /// it (a board without a LED says `false`, the default).
    fn identify(&mut self, _ms: Millis) -> bool {
        false
    }
    /// Has the user asked an ESP-NOW peripheral to forget its pairing (a button on the chip,
    /// `hearth sim ctl … repair` in the simulator)? Reading clears the request.
    fn take_repair_request(&mut self) -> bool {
        false
    }
}

/// Resets and why the last one happened.
pub trait Reset: Console {
    /// What the hardware says about the last reset.
    fn hardware_reset(&self) -> HardwareReset;
    /// The panic message that ended the previous run, if it ended in one.
    fn last_panic(&mut self) -> Option<alloc::string::String> {
        None
    }
    /// Reset now. The runtime has stored the reason already.
    fn reset(&mut self) -> !;
    /// Deep-sleep for `ms`, then boot again with [`HardwareReset::DeepSleepWake`] (RAM is lost;
    /// only flash and RTC memory survive). A board without deep sleep resets instead, which a
    /// battery appliance survives too (it just spends the sleep awake).
    fn deep_sleep(&mut self, ms: Millis) -> ! {
        self.console(&alloc::format!(
            "deep sleep of {ms} ms not supported: resetting"
        ));
        self.reset()
    }
}

/// The hardware watchdog, fed under the loop-liveness policy
/// (`hearth_core::supervisor::LoopWatchdog`).
pub trait Watchdog {
    /// The loop is alive at `now`.
    fn heartbeat(&mut self, now: Millis);
    /// An operation that may hold the loop is starting.
    fn may_block(&mut self, now: Millis);
    /// That operation is over.
    fn may_block_exit(&mut self, now: Millis);
}

/// The firmware's own flash: the two app slots with otadata, and the config the next boot
/// reads.
#[allow(async_fn_in_trait)]
pub trait FirmwareStore {
    /// The flash holding the update slots ([`NoSlots`] for a board without them).
    type Slots: embedded_storage_async::nor_flash::NorFlash;
    /// Why the config could not be stored or restored.
    type ConfigError: core::fmt::Display;
    /// The firmware's two app slots and otadata, when the board has them.
    fn slots(&mut self) -> Option<&mut hearth_ota::Slots<Self::Slots>>;
    /// Store `text` as the config used from the next boot, atomically: after a power cut the
    /// board has either the old config or the new one, whole.
    async fn store_config(&mut self, text: &str) -> Result<(), Self::ConfigError>;
    /// Put back the config that was in force before the last
    /// [`FirmwareStore::store_config`], for the next boot, atomically; the pushed one is
    /// dropped. A board that cannot keep the previous copy refuses, and so cannot give a pushed
    /// config a trial.
    async fn restore_config(&mut self) -> Result<(), Self::ConfigError>;
}

/// The whole board, as the runtime takes it: every platform trait but the network and the
/// radio, which the runtime owns separately. Implemented for any type that has them all; code
/// that needs only one (the watchdog, the console) asks for that one.
pub trait Board: Identity + Entropy + Console + Reset + Watchdog + FirmwareStore {}

impl<T: Identity + Entropy + Console + Reset + Watchdog + FirmwareStore> Board for T {}

/// Length of an ESP-NOW (v1) frame's largest payload.
pub const RADIO_MAX_FRAME: usize = 250;
/// The broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// A frame received by a [`Radio`].
#[derive(Clone, Debug)]
pub struct RadioFrame {
    /// The sender's MAC address (as the radio reports it; not authenticated).
    pub from: [u8; 6],
    /// The destination: this radio's MAC, or [`BROADCAST`].
    pub to: [u8; 6],
    /// Received signal strength, dBm.
    pub rssi: i8,
    /// The channel it was received on.
    pub channel: u8,
    len: u8,
    data: [u8; RADIO_MAX_FRAME],
}

impl RadioFrame {
    /// A frame of `bytes`; `None` if longer than [`RADIO_MAX_FRAME`].
    pub fn new(from: [u8; 6], to: [u8; 6], rssi: i8, channel: u8, bytes: &[u8]) -> Option<Self> {
        let len = u8::try_from(bytes.len())
            .ok()
            .filter(|&l| usize::from(l) <= RADIO_MAX_FRAME)?;
        let mut data = [0; RADIO_MAX_FRAME];
        data[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            from,
            to,
            rssi,
            channel,
            len,
            data,
        })
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// Why the radio could not do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RadioError {
    /// The channel is outside 1..=13 (or what the region allows).
    BadChannel(u8),
    /// The frame is longer than [`RADIO_MAX_FRAME`].
    TooLong,
    /// The driver refused the operation (out of peers, not started, ...).
    Driver,
}

impl core::fmt::Display for RadioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadChannel(c) => write!(f, "channel {c} is not 1..=13"),
            Self::TooLong => write!(f, "frame longer than {RADIO_MAX_FRAME} bytes"),
            Self::Driver => f.write_str("radio driver error"),
        }
    }
}

/// The ESP-NOW radio (esp-radio's ESP-NOW on the chip; the shared simulated air on the host).
/// Connectionless: frames go to a MAC address or to [`BROADCAST`] on the current channel.
#[allow(async_fn_in_trait)]
pub trait Radio {
    /// This radio's own MAC address, the source address of what it sends.
    fn mac(&self) -> [u8; 6];
    /// Tune to `channel` (1..=13). Frames on other channels are not received.
    async fn set_channel(&mut self, channel: u8) -> Result<(), RadioError>;
    /// Send `frame` to `to`. For a unicast with `ack`, wait (briefly, a few ms, the driver's own
    /// retries included) for the link-level acknowledgement and return whether it came. Without
    /// `ack`, and for broadcasts, return `Ok(true)` once the frame is on the air.
    async fn send(&mut self, to: [u8; 6], frame: &[u8], ack: bool) -> Result<bool, RadioError>;
    /// Wait for the next frame addressed to this radio or broadcast, on the current channel.
    /// Must be cancel-safe: dropping the future loses no frame that was already queued.
    async fn receive(&mut self) -> RadioFrame;
}
