//! The ESP-NOW side of the appliance seam: what a central's appliance shares with the link
//! task beside it ([`CentralPort`]), and what a battery appliance is to the peripheral runtime
//! ([`PeripheralApp`], driving the link through [`LinkCtl`]). The runtimes themselves live in
//! `hearth_runtime::link`.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::signal::Signal;
use hearth_core::Millis;
use hearth_netnow::link::Entropy;
use hearth_netnow::peripheral::{Peripheral, PeripheralEvent};

/// Most frames a central keeps for its profile before dropping new ones.
pub const INBOX_CAPACITY: usize = 32;
/// Most back-data payloads queued for sending.
pub const BACKDATA_CAPACITY: usize = 4;

/// Data a central accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sender (v3: its authenticated id; v2: the radio source address).
    pub from: [u8; 6],
    /// Signal strength, dBm.
    pub rssi: i8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Counters of what the link did, for diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames accepted (data at a central).
    pub accepted: u32,
    /// Frames dropped (any reason).
    pub dropped: u32,
    /// Frames sent.
    pub sent: u32,
    /// Store writes that failed.
    pub persist_failures: u32,
    /// Frames not sent because what they depend on could not be stored (fail closed).
    pub refused: u32,
}

/// What the central task and its profile share: received data in, back-data out, log lines.
pub struct CentralPort {
    inbox: RefCell<VecDeque<Received>>,
    backdata: RefCell<VecDeque<Vec<u8>>>,
    log: RefCell<VecDeque<String>>,
    wake: Signal<NoopRawMutex, ()>,
    stats: Cell<LinkStats>,
}

impl Default for CentralPort {
    fn default() -> Self {
        Self::new()
    }
}

impl CentralPort {
    /// An empty port.
    pub fn new() -> Self {
        CentralPort {
            inbox: RefCell::new(VecDeque::new()),
            backdata: RefCell::new(VecDeque::new()),
            log: RefCell::new(VecDeque::new()),
            wake: Signal::new(),
            stats: Cell::new(LinkStats::default()),
        }
    }

    /// The next accepted data, oldest first.
    pub fn take(&self) -> Option<Received> {
        self.inbox.borrow_mut().pop_front()
    }

    /// Queue back-data for all peripherals; false if the queue is full.
    pub fn send_backdata(&self, payload: Vec<u8>) -> bool {
        let mut q = self.backdata.borrow_mut();
        if q.len() >= BACKDATA_CAPACITY {
            return false;
        }
        q.push_back(payload);
        drop(q);
        self.wake.signal(());
        true
    }

    /// The next log line of the link.
    pub fn take_log(&self) -> Option<String> {
        self.log.borrow_mut().pop_front()
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        self.stats.get()
    }

    /// Wait until back-data is queued (for the link runtime).
    pub async fn woken(&self) {
        self.wake.wait().await
    }

    /// The oldest back-data queued, to send (for the link runtime).
    pub fn next_backdata(&self) -> Option<Vec<u8>> {
        self.backdata.borrow_mut().pop_front()
    }

    /// Hand accepted data to the appliance; dropped when [`INBOX_CAPACITY`] frames wait
    /// already (for the link runtime, which counted it as accepted).
    pub fn deliver(&self, data: Received) {
        let mut inbox = self.inbox.borrow_mut();
        if inbox.len() < INBOX_CAPACITY {
            inbox.push_back(data);
        }
    }

    /// Queue a log line of the link; the newest beyond 16 waiting are dropped (for the link
    /// runtime).
    pub fn push_log(&self, line: String) {
        let mut l = self.log.borrow_mut();
        if l.len() < 16 {
            l.push_back(line);
        }
    }

    /// Update the counters (for the link runtime).
    pub fn count(&self, f: impl FnOnce(&mut LinkStats)) {
        let mut s = self.stats.get();
        f(&mut s);
        self.stats.set(s);
    }
}

/// What a battery appliance wants after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAction {
    /// Keep running.
    Continue,
    /// Deep-sleep this many ms (the device restarts afterwards).
    Sleep(Millis),
}

/// The link as a peripheral appliance sees it.
pub struct LinkCtl<'a, R: Entropy> {
    peripheral: &'a mut Peripheral<R>,
    now: Millis,
}

impl<'a, R: Entropy> LinkCtl<'a, R> {
    /// The link at `now`, for the peripheral runtime to hand its appliance.
    pub fn new(peripheral: &'a mut Peripheral<R>, now: Millis) -> Self {
        LinkCtl { peripheral, now }
    }

    /// Queue a report; retried until confirmed ([`PeripheralEvent::Confirmed`]).
    pub fn send(&mut self, payload: &[u8]) -> Result<(), hearth_netnow::peripheral::SendError> {
        self.peripheral.send(payload, self.now)
    }

    /// Paired and the time is known.
    pub fn is_ready(&self) -> bool {
        self.peripheral.is_ready()
    }

    /// A report is waiting for its confirm.
    pub fn report_pending(&self) -> bool {
        self.peripheral.report_pending()
    }

    /// Forget the pairing and scan again.
    pub fn repair(&mut self) {
        self.peripheral.repair(self.now)
    }
}

/// A battery appliance on the ESP-NOW link (no Wi-Fi, no MQTT).
#[allow(async_fn_in_trait)]
pub trait PeripheralApp {
    /// When [`work`](Self::work) is next due.
    fn next_work(&self) -> Millis;
    /// Do the due work (sensor reads, queue a report).
    async fn work<R: Entropy>(&mut self, now: Millis, link: &mut LinkCtl<'_, R>) -> AppAction;
    /// Something happened on the link.
    fn event<R: Entropy>(
        &mut self,
        event: &PeripheralEvent,
        now: Millis,
        link: &mut LinkCtl<'_, R>,
    ) -> AppAction;
}
