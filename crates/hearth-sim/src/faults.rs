//! Loop faults as a wrapper around the platform, the way smoltcp wraps a device in a fault
//! injector: [`LoopFaults`] is a board that passes every call to the board inside, and, at
//! the heartbeat the event loop sends each turn, first strikes the fault the board process
//! asked for (`hearth sim ctl DIR block MS`: the loop hangs and proves no liveness; `slow
//! MS`: an operation holds the loop inside a may-block window). The runtime and the platform
//! traits know nothing of it, and the firmware has no such code.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hearth_core::reboot::HardwareReset;
use hearth_core::Millis;
use hearth_platform::{Console, DeviceStatus, Entropy, FirmwareStore, Identity, Reset, Watchdog};

/// One fault of the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopFault {
    /// The loop hangs for this many ms: a hung task, no heartbeat, no may-block window.
    Block(Millis),
    /// An operation of this many ms, announced as may-block.
    Slow(Millis),
}

/// The faults waiting for the next heartbeat, shared with whoever receives them.
pub type FaultQueue = Arc<Mutex<VecDeque<LoopFault>>>;

/// See the module documentation.
pub struct LoopFaults<B> {
    inner: B,
    queue: FaultQueue,
}

impl<B> LoopFaults<B> {
    /// `inner`, with the faults put in `queue` striking its loop.
    pub fn new(inner: B, queue: FaultQueue) -> Self {
        LoopFaults { inner, queue }
    }

    /// The board inside.
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: Console + Watchdog> Watchdog for LoopFaults<B> {
    fn heartbeat(&mut self, now: Millis) {
        self.inner.heartbeat(now);
        let next = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        match next {
            Some(LoopFault::Block(ms)) => {
                self.inner
                    .console(&format!("fault: event loop blocked for {ms} ms"));
                // The executor's thread stops: nothing proves liveness.
                std::thread::sleep(Duration::from_millis(ms));
                self.inner.console("fault: event loop resumed");
            }
            Some(LoopFault::Slow(ms)) => {
                self.inner.console(&format!(
                    "slow operation of {ms} ms inside the may-block window"
                ));
                self.inner.may_block(now);
                std::thread::sleep(Duration::from_millis(ms));
                self.inner.may_block_exit(hearth_platform::now_ms());
                self.inner.console("slow operation done");
            }
            None => {}
        }
    }

    fn may_block(&mut self, now: Millis) {
        self.inner.may_block(now);
    }

    fn may_block_exit(&mut self, now: Millis) {
        self.inner.may_block_exit(now);
    }
}

impl<B: Identity> Identity for LoopFaults<B> {
    fn chip(&self) -> &str {
        self.inner.chip()
    }

    fn config_chip(&self) -> String {
        self.inner.config_chip()
    }

    fn image_appliances(&self) -> &'static [&'static str] {
        self.inner.image_appliances()
    }

    fn unique_id(&self) -> [u8; 6] {
        self.inner.unique_id()
    }

    fn heap(&self) -> Option<hearth_platform::HeapStats> {
        self.inner.heap()
    }

    fn version(&self) -> &str {
        self.inner.version()
    }
}

impl<B: Entropy> Entropy for LoopFaults<B> {
    fn seed(&mut self) -> u64 {
        self.inner.seed()
    }
}

impl<B: Console> Console for LoopFaults<B> {
    fn console(&mut self, line: &str) {
        self.inner.console(line);
    }

    fn status(&mut self, status: DeviceStatus) {
        self.inner.status(status);
    }

    fn take_repair_request(&mut self) -> bool {
        self.inner.take_repair_request()
    }

    fn identify(&mut self, ms: hearth_core::Millis) -> bool {
        self.inner.identify(ms)
    }

    fn wall_clock(&mut self, unix_ms: u64) {
        self.inner.wall_clock(unix_ms);
    }
}

impl<B: Reset> Reset for LoopFaults<B> {
    fn hardware_reset(&self) -> HardwareReset {
        self.inner.hardware_reset()
    }

    fn last_panic(&mut self) -> Option<String> {
        self.inner.last_panic()
    }

    fn reset(&mut self) -> ! {
        self.inner.reset()
    }

    fn deep_sleep(&mut self, ms: Millis) -> ! {
        self.inner.deep_sleep(ms)
    }
}

impl<B: FirmwareStore> FirmwareStore for LoopFaults<B> {
    type Slots = B::Slots;
    type ConfigError = B::ConfigError;

    fn slots(&mut self) -> Option<&mut hearth_ota::Slots<B::Slots>> {
        self.inner.slots()
    }

    async fn store_config(&mut self, text: &str) -> Result<(), B::ConfigError> {
        self.inner.store_config(text).await
    }

    async fn restore_config(&mut self) -> Result<(), B::ConfigError> {
        self.inner.restore_config().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A board that only records what it is asked.
    #[derive(Default)]
    struct Recorder(Vec<String>);

    impl Console for Recorder {
        fn console(&mut self, line: &str) {
            self.0.push(line.to_string());
        }
    }

    impl Watchdog for Recorder {
        fn heartbeat(&mut self, now: Millis) {
            self.0.push(format!("heartbeat {now}"));
        }
        fn may_block(&mut self, now: Millis) {
            self.0.push(format!("may_block {now}"));
        }
        fn may_block_exit(&mut self, _now: Millis) {
            self.0.push("may_block_exit".into());
        }
    }

    #[test]
    fn a_queued_fault_strikes_once_at_the_next_heartbeat_and_passes_the_rest_through() {
        let queue = FaultQueue::default();
        let mut board = LoopFaults::new(Recorder::default(), queue.clone());
        board.heartbeat(1);
        board.may_block(2);
        board.may_block_exit(3);
        assert_eq!(
            board.inner().0,
            ["heartbeat 1", "may_block 2", "may_block_exit"]
        );

        queue.lock().unwrap().push_back(LoopFault::Slow(20));
        queue.lock().unwrap().push_back(LoopFault::Block(30));
        let start = std::time::Instant::now();
        board.heartbeat(10);
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(
            board.inner().0[3..],
            [
                "heartbeat 10",
                "slow operation of 20 ms inside the may-block window",
                "may_block 10",
                "may_block_exit",
                "slow operation done",
            ]
        );
        // The block only at the heartbeat after: one fault per turn, in order.
        board.heartbeat(11);
        assert_eq!(
            board.inner().0[8..],
            [
                "heartbeat 11",
                "fault: event loop blocked for 30 ms",
                "fault: event loop resumed",
            ]
        );
        board.heartbeat(12);
        assert_eq!(board.inner().0[11..], ["heartbeat 12"]);
    }
}
