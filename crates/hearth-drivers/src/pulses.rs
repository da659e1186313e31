//! The edge between an appliance and a hardware pulse counter (a flow meter's reed or Hall
//! output counted by the ESP32's PCNT peripheral, or by a simulated meter on the host).
//!
//! [`PulseCounter`] is what both sides implement: the firmware over a PCNT unit, the simulator
//! over `hearth_simchips::flow`. Counting happens in hardware; the appliance only reads and
//! clears the count periodically and sets the input glitch filter once.
//!
//! # The glitch filter and its hardware limit
//!
//! The PCNT filter ignores pulses shorter than a threshold given in APB clock cycles. The
//! threshold register (`PCNT_FILTER_THRES_Un`) is 10 bits wide, so the longest filter is 1023
//! cycles; at the 80 MHz APB clock that is 12 787 ns ([`PCNT_FILTER_MAX_NS`]). The reference
//! asked MicroPython for a filter of a quarter pulse period at the maximum flow (1 736 000 ns for
//! 30 L/min at 4.8 pulses per second per L/min), over a hundred times what the hardware can do.
//! [`pcnt_filter`] clamps such a request to the hardware maximum and says so, and every
//! implementation reports the filter actually applied, so the appliance can log the difference.
//! (A 12.8 µs filter still removes contact-bounce spikes and radio pickup; it cannot reject
//! slower glitches. The ESP32-C3 has no PCNT at all: a firmware for it counts with a GPIO edge
//! interrupt and applies the same clamp to stay equivalent.)

/// The APB clock the PCNT filter counts, in Hz.
pub const PCNT_APB_HZ: u32 = 80_000_000;
/// The largest value of the 10-bit PCNT filter threshold, in APB cycles.
pub const PCNT_FILTER_MAX_CYCLES: u32 = 1023;
/// The longest glitch filter the PCNT supports: 1023 cycles at 80 MHz, in whole ns (12 787).
pub const PCNT_FILTER_MAX_NS: u32 =
    (PCNT_FILTER_MAX_CYCLES as u64 * 1_000_000_000 / PCNT_APB_HZ as u64) as u32;

/// A glitch-filter request and what the hardware can do of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterSetting {
    /// The filter asked for, in ns.
    pub requested_ns: u32,
    /// The filter applied, in ns (rounded down to whole APB cycles).
    pub applied_ns: u32,
    /// The threshold register value (APB cycles), 0..=1023.
    pub cycles: u16,
}

impl FilterSetting {
    /// Whether the request exceeded the hardware and was clamped.
    pub fn clamped(&self) -> bool {
        self.requested_ns > PCNT_FILTER_MAX_NS
    }
}

/// The PCNT filter for a request of `requested_ns`: whole APB cycles, at most
/// [`PCNT_FILTER_MAX_CYCLES`].
pub fn pcnt_filter(requested_ns: u32) -> FilterSetting {
    let cycles = (u64::from(requested_ns) * u64::from(PCNT_APB_HZ) / 1_000_000_000)
        .min(u64::from(PCNT_FILTER_MAX_CYCLES));
    FilterSetting {
        requested_ns,
        applied_ns: (cycles * 1_000_000_000 / u64::from(PCNT_APB_HZ)) as u32,
        cycles: cycles as u16,
    }
}

/// A hardware pulse counter counting one input's rising edges.
pub trait PulseCounter {
    /// Why a read failed (`core::convert::Infallible` for counters that cannot fail).
    type Error: core::fmt::Debug;

    /// The pulses counted since the previous call (or since start), clearing the count. The
    /// hardware keeps counting meanwhile; an implementation whose counter can overflow between
    /// two reads (the PCNT's is 16 bits) saturates rather than wraps.
    fn take(&mut self) -> Result<u32, Self::Error>;

    /// Asks for a glitch filter ignoring pulses shorter than `ns` and returns what was applied
    /// (see [`pcnt_filter`] for the ESP32 limit).
    fn set_glitch_filter_ns(&mut self, ns: u32) -> FilterSetting;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hardware_limit_is_1023_cycles_at_80_mhz() {
        assert_eq!(PCNT_FILTER_MAX_NS, 12_787);
        let max = pcnt_filter(u32::MAX);
        assert_eq!((max.cycles, max.applied_ns), (1023, 12_787));
        assert!(max.clamped());
    }

    #[test]
    fn the_reference_request_is_clamped() {
        // maxflow 30 × flowpulserate 4.8 = 144 pulses/s → 1736 µs → 1 736 000 ns.
        let f = pcnt_filter(1_736_000);
        assert!(f.clamped());
        assert_eq!(f.applied_ns, PCNT_FILTER_MAX_NS);
        assert_eq!(f.requested_ns, 1_736_000);
    }

    #[test]
    fn small_requests_round_down_to_whole_cycles() {
        let f = pcnt_filter(1_000);
        assert_eq!((f.cycles, f.applied_ns), (80, 1_000));
        assert!(!f.clamped());
        let f = pcnt_filter(1_010);
        assert_eq!((f.cycles, f.applied_ns), (80, 1_000));
        assert_eq!(pcnt_filter(0).cycles, 0);
        assert_eq!(pcnt_filter(12_787).cycles, 1022);
    }
}
