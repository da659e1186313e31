//! The platform edges the runtime needs: a network that can be brought up and opens TCP
//! streams, and a board that resets, reports why it last reset, feeds the hardware watchdog
//! under the loop-liveness policy, and supplies entropy. One implementation per world.

use hearth_core::reboot::HardwareReset;
use hearth_core::Millis;

/// Why a TCP connection could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The link is down.
    LinkDown,
    /// The host name did not resolve.
    Dns,
    /// The peer refused or the connection failed.
    Connect,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::LinkDown => "link down",
            Self::Dns => "host name did not resolve",
            Self::Connect => "connection refused or failed",
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
    /// Open a TCP stream to `host:port` (name resolution included). The caller bounds the time.
    /// A read that returns 0 bytes on the stream must be reported as an error (the peer closed),
    /// never as `Ok(0)`, so the session ends instead of spinning.
    async fn connect(&mut self, host: &str, port: u16) -> Result<Self::Socket, NetError>;
}

/// The board: reset, reset cause, watchdog feeding, identity, entropy.
#[allow(async_fn_in_trait)]
pub trait Board {
    /// What the hardware says about the last reset.
    fn hardware_reset(&self) -> HardwareReset;
    /// Reset now. The runtime has stored the reason already.
    fn reset(&mut self) -> !;
    /// The loop is alive at `now` (see `hearth_core::supervisor::LoopWatchdog`).
    fn heartbeat(&mut self, now: Millis);
    /// An operation that may hold the loop is starting.
    fn may_block(&mut self, now: Millis);
    /// That operation is over.
    fn may_block_exit(&mut self, now: Millis);
    /// A seed for timing jitter.
    fn seed(&mut self) -> u64;
    /// A stable identity, e.g. the base MAC address.
    fn unique_id(&self) -> [u8; 6];
    /// A firmware version string for `getversion`.
    fn version(&self) -> &str;
    /// Called once per loop iteration; the simulator injects loop faults here. The chip does
    /// nothing.
    async fn housekeeping(&mut self, _now: Millis) {}
    /// The device's status changed. The chip shows it on a LED; the default does nothing.
    fn status(&mut self, _status: DeviceStatus) {}
    /// Should the runtime exercise the store continuously (the simulator's power-cut test)?
    fn storage_stress(&self) -> bool {
        false
    }
    /// Report a line about the device's own progress outside MQTT (console on the chip, the
    /// simulator's log on the host).
    fn console(&mut self, line: &str);
}
