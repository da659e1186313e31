//! Time as the chip models see it: a shared clock that is either virtual (moves only when told
//! to, for deterministic tests) or follows a time source supplied by the runtime, plus a delay
//! that advances the virtual clock instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A cloneable clock handle; every clone reads the same time.
#[derive(Clone)]
pub struct SimClock(Arc<Source>);

enum Source {
    /// Virtual nanoseconds since the clock was made.
    Manual(AtomicU64),
    /// A runtime's own monotonic clock, in microseconds.
    External(Box<dyn Fn() -> u64 + Send + Sync>),
}

impl SimClock {
    /// A virtual clock starting at 0 that moves only through [`advance_ns`](Self::advance_ns),
    /// [`advance_to_us`](Self::advance_to_us) or a [`SimDelay`].
    pub fn manual() -> Self {
        SimClock(Arc::new(Source::Manual(AtomicU64::new(0))))
    }

    /// A clock that reads `now_us` (monotonic microseconds), e.g. the simulator's
    /// `embassy_time::Instant::now().as_micros()`. Advancing it does nothing: the drivers' own
    /// delays let time pass.
    pub fn external(now_us: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        SimClock(Arc::new(Source::External(Box::new(now_us))))
    }

    /// Current time in microseconds.
    pub fn now_us(&self) -> u64 {
        match &*self.0 {
            Source::Manual(ns) => ns.load(Ordering::SeqCst) / 1_000,
            Source::External(now_us) => now_us(),
        }
    }

    /// Whether this clock is virtual (and so can be advanced).
    pub fn is_manual(&self) -> bool {
        matches!(&*self.0, Source::Manual(_))
    }

    /// Moves a virtual clock forward by `ns`; no effect on an external clock.
    pub fn advance_ns(&self, ns: u64) {
        if let Source::Manual(now) = &*self.0 {
            now.fetch_add(ns, Ordering::SeqCst);
        }
    }

    /// Moves a virtual clock forward to `us` if it is behind (never backwards); no effect on an
    /// external clock. Lets a runtime keep a virtual clock in step with its own time.
    pub fn advance_to_us(&self, us: u64) {
        if let Source::Manual(now) = &*self.0 {
            now.fetch_max(us.saturating_mul(1_000), Ordering::SeqCst);
        }
    }

    /// A delay that advances this clock.
    pub fn delay(&self) -> SimDelay {
        SimDelay(self.clone())
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::manual()
    }
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_manual() {
            "manual"
        } else {
            "external"
        };
        f.debug_struct("SimClock")
            .field("kind", &kind)
            .field("now_us", &self.now_us())
            .finish()
    }
}

/// `DelayNs` (async and blocking) that completes at once after advancing a virtual clock by the
/// requested time. On an external clock it does not wait at all, so give drivers the runtime's
/// real delay there.
#[derive(Debug, Clone)]
pub struct SimDelay(SimClock);

impl embedded_hal_async::delay::DelayNs for SimDelay {
    async fn delay_ns(&mut self, ns: u32) {
        self.0.advance_ns(u64::from(ns));
    }
}

impl embedded_hal::delay::DelayNs for SimDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.0.advance_ns(u64::from(ns));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = SimClock::manual();
        let other = clock.clone();
        assert_eq!(clock.now_us(), 0);
        clock.advance_ns(1_500);
        assert_eq!(other.now_us(), 1);
        embedded_hal::delay::DelayNs::delay_ms(&mut other.delay(), 7);
        assert_eq!(clock.now_us(), 7_001);
        clock.advance_to_us(5);
        assert_eq!(clock.now_us(), 7_001, "never backwards");
        clock.advance_to_us(10_000);
        assert_eq!(clock.now_us(), 10_000);
    }

    #[test]
    fn external_clock_follows_its_source() {
        let source = Arc::new(AtomicU64::new(42));
        let read = Arc::clone(&source);
        let clock = SimClock::external(move || read.load(Ordering::SeqCst));
        assert!(!clock.is_manual());
        assert_eq!(clock.now_us(), 42);
        clock.advance_ns(1_000_000);
        assert_eq!(clock.now_us(), 42);
        source.store(99, Ordering::SeqCst);
        assert_eq!(clock.now_us(), 99);
    }
}
