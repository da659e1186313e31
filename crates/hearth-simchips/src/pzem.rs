//! Model of a Peacefair PZEM-004T v3.0 energy meter as its UART link sees it, so the real
//! Modbus driver of `hearth-drivers` runs unchanged: [`PzemUart`] implements the
//! `embedded-io-async` `Read`, `Write` and `ReadReady` traits over in-memory buffers, and
//! [`PzemModel`] is the handle a test or the simulator keeps to set the mains and inject faults.
//!
//! What is modelled, on the [`SimClock`]:
//! * Modbus-RTU slave at address 1 (settable) that also answers the general address 0xF8.
//!   Requests with a bad CRC or for another address are ignored, as on a real bus.
//! * Read input registers (0x04) 0x0000..=0x0009 (any sub-range): voltage, current, power,
//!   energy, frequency, power factor, alarm, with the meter's resolutions (32-bit values low
//!   register first). Read holding registers (0x03) 0x0001 (power alarm threshold, W) and
//!   0x0002 (slave address); write single register (0x06) to both; reset energy (0x42).
//!   Anything else gets the Modbus exception the meter would send (illegal function / address /
//!   data).
//! * Timing: the answer appears in the receive buffer [`REPLY_LATENCY_US`] plus its transfer
//!   time at 9600 baud after the request; until then `read_ready` is false.
//! * The mains ([`Mains`]): voltage (with optional seeded noise), current, power factor,
//!   frequency; active power = V × I × pf. The energy counter integrates the power over
//!   simulated time (Wh, the meter shows whole Wh).
//! * Below [`MIN_VOLTAGE`] the meter, which is powered from the measured side, is off and
//!   silent.
//! * Faults ([`crate::ChipFault`] words): `absent` (no answer), `garbage` (answers with a bad
//!   CRC), `readfails` (answers every request with exception 4, slave device failure), `ok`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::SimClock;
use crate::fault::ChipFault;
use crate::prng::SplitMix64;

/// The meter's factory address.
pub const DEFAULT_ADDRESS: u8 = 0x01;
/// The address every meter answers.
pub const GENERAL_ADDRESS: u8 = 0xF8;
/// Time from the end of a request to the first byte of the answer.
pub const REPLY_LATENCY_US: u64 = 20_000;
/// One byte (start, 8 data, stop bit) at 9600 baud.
pub const BYTE_TIME_US: u64 = 1_042;
/// The meter is powered from the measured mains and works from 80 V.
pub const MIN_VOLTAGE: f64 = 80.0;
/// The default power alarm threshold, W.
pub const DEFAULT_ALARM_W: u16 = 23_000;
/// The receive buffer holds at most this many bytes (later ones are lost, as on overflow).
const RX_CAPACITY: usize = 256;

/// The physical inputs of the meter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mains {
    /// RMS voltage, V.
    pub voltage: f64,
    /// RMS current, A.
    pub current: f64,
    /// Power factor, 0..=1.
    pub power_factor: f64,
    /// Frequency, Hz.
    pub frequency: f64,
    /// Half-width of the uniform noise added to each voltage reading, V (0 = exact).
    pub voltage_noise: f64,
}

impl Default for Mains {
    /// European mains with a modest load: 230 V, 1.5 A, pf 0.95, 50 Hz, no noise.
    fn default() -> Self {
        Mains {
            voltage: 230.0,
            current: 1.5,
            power_factor: 0.95,
            frequency: 50.0,
            voltage_noise: 0.0,
        }
    }
}

impl Mains {
    /// Active power, W.
    pub fn power_w(&self) -> f64 {
        (self.voltage * self.current * self.power_factor).max(0.0)
    }
}

struct Chip {
    clock: SimClock,
    rng: SplitMix64,
    mains: Mains,
    fault: ChipFault,
    address: u8,
    alarm_w: u16,
    energy_wh: f64,
    /// Time up to which the energy has been integrated, µs.
    integrated_to: u64,
    /// Request bytes not yet forming a frame.
    request: Vec<u8>,
    /// Answer bytes with the time they become readable.
    rx: VecDeque<(u64, u8)>,
    requests: u64,
}

impl Chip {
    fn integrate(&mut self) {
        let now = self.clock.now_us();
        let dt = now.saturating_sub(self.integrated_to);
        self.integrated_to = self.integrated_to.max(now);
        if self.mains.voltage >= MIN_VOLTAGE {
            self.energy_wh += self.mains.power_w() * dt as f64 / 3.6e9;
        }
    }

    fn powered(&self) -> bool {
        self.mains.voltage >= MIN_VOLTAGE
    }

    fn input_registers(&mut self) -> [u16; 10] {
        self.integrate();
        let m = self.mains;
        let noise = if m.voltage_noise > 0.0 {
            self.rng.range(-m.voltage_noise, m.voltage_noise)
        } else {
            0.0
        };
        let v = ((m.voltage + noise) * 10.0).round().clamp(0.0, 65_535.0) as u16;
        let scaled = |x: f64| x.round().clamp(0.0, u32::MAX as f64) as u32;
        let a = scaled(m.current * 1000.0);
        let power = m.power_w();
        let w = scaled(power * 10.0);
        let wh = scaled(self.energy_wh.floor());
        let hz = (m.frequency * 10.0).round().clamp(0.0, 65_535.0) as u16;
        let pf = (m.power_factor * 100.0).round().clamp(0.0, 100.0) as u16;
        let alarm = if power > f64::from(self.alarm_w) {
            0xFFFF
        } else {
            0
        };
        let lo = |x: u32| x as u16;
        let hi = |x: u32| (x >> 16) as u16;
        [v, lo(a), hi(a), lo(w), hi(w), lo(wh), hi(wh), hz, pf, alarm]
    }

    /// Takes written bytes; answers each complete frame.
    fn receive(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.request.push(b);
            let want = if self.request.len() >= 2 && self.request[1] == 0x42 {
                4
            } else {
                8
            };
            if self.request.len() >= want {
                let frame = std::mem::take(&mut self.request);
                self.handle(&frame);
            }
        }
    }

    fn handle(&mut self, frame: &[u8]) {
        let n = frame.len() - 2;
        if crc16(&frame[..n]).to_le_bytes() != [frame[n], frame[n + 1]] {
            return;
        }
        let to = frame[0];
        if to != self.address && to != GENERAL_ADDRESS {
            return;
        }
        if self.fault == ChipFault::Absent || !self.powered() {
            return;
        }
        self.requests += 1;
        let function = frame[1];
        let mut reply = if self.fault == ChipFault::ReadFails {
            vec![self.address, function | 0x80, 0x04]
        } else {
            self.answer(frame)
        };
        let [cl, ch] = crc16(&reply).to_le_bytes();
        reply.extend([cl, ch]);
        if self.fault == ChipFault::Garbage {
            let i = (self.rng.next_u64() % reply.len() as u64) as usize;
            let flip = (self.rng.next_u64() % 255) as u8 + 1;
            reply[i] ^= flip;
        }
        let start = self.clock.now_us() + REPLY_LATENCY_US;
        for (k, b) in reply.into_iter().enumerate() {
            if self.rx.len() < RX_CAPACITY {
                self.rx
                    .push_back((start + (k as u64 + 1) * BYTE_TIME_US, b));
            }
        }
    }

    /// The reply to a valid request, without its CRC.
    fn answer(&mut self, frame: &[u8]) -> Vec<u8> {
        let me = self.address;
        let function = frame[1];
        let exception = |code: u8| vec![me, function | 0x80, code];
        if function == 0x42 {
            self.integrate();
            self.energy_wh = 0.0;
            return vec![me, 0x42];
        }
        let register = u16::from_be_bytes([frame[2], frame[3]]);
        let value = u16::from_be_bytes([frame[4], frame[5]]);
        match function {
            0x03 | 0x04 => {
                let (first, regs): (u16, Vec<u16>) = if function == 0x04 {
                    (0, self.input_registers().to_vec())
                } else {
                    (1, vec![self.alarm_w, u16::from(me)])
                };
                let count = usize::from(value);
                let start = usize::from(register.wrapping_sub(first));
                if count == 0 || register < first || start + count > regs.len() {
                    return exception(0x02);
                }
                let mut r = vec![me, function, (count * 2) as u8];
                for reg in &regs[start..start + count] {
                    r.extend(reg.to_be_bytes());
                }
                r
            }
            0x06 => match register {
                0x0001 => {
                    self.alarm_w = value;
                    frame[..6].to_vec()
                }
                0x0002 if (1..=0xF7).contains(&value) => {
                    self.address = value as u8;
                    let mut r = frame[..6].to_vec();
                    r[0] = self.address;
                    r
                }
                0x0002 => exception(0x03),
                _ => exception(0x02),
            },
            _ => exception(0x01),
        }
    }
}

/// CRC-16/MODBUS (kept here rather than borrowed from the driver, so the model checks the
/// driver instead of agreeing with it by construction).
fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF_u16, |mut crc, &b| {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
        crc
    })
}

/// The handle to a simulated PZEM-004T: set the mains, read the truth, inject faults.
#[derive(Clone)]
pub struct PzemModel(Arc<Mutex<Chip>>);

impl std::fmt::Debug for PzemModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.chip();
        f.debug_struct("PzemModel")
            .field("mains", &c.mains)
            .field("fault", &c.fault)
            .field("address", &c.address)
            .finish()
    }
}

impl PzemModel {
    /// A healthy meter at [`DEFAULT_ADDRESS`] on [`Mains::default`], energy counter at 0,
    /// voltage noise drawn from `seed`.
    pub fn new(clock: SimClock, seed: u64) -> Self {
        let now = clock.now_us();
        PzemModel(Arc::new(Mutex::new(Chip {
            clock,
            rng: SplitMix64::new(seed),
            mains: Mains::default(),
            fault: ChipFault::None,
            address: DEFAULT_ADDRESS,
            alarm_w: DEFAULT_ALARM_W,
            energy_wh: 0.0,
            integrated_to: now,
            request: Vec::new(),
            rx: VecDeque::new(),
            requests: 0,
        })))
    }

    fn chip(&self) -> MutexGuard<'_, Chip> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Mains)) {
        let mut c = self.chip();
        // Energy so far accrued at the old power.
        c.integrate();
        f(&mut c.mains);
    }

    /// The UART end the driver talks to (all clones share the one link).
    pub fn uart(&self) -> PzemUart {
        PzemUart(self.clone())
    }

    /// Sets all mains inputs.
    pub fn set_mains(&self, mains: Mains) {
        self.update(|m| *m = mains);
    }

    /// The mains inputs.
    pub fn mains(&self) -> Mains {
        self.chip().mains
    }

    /// Sets the RMS voltage, V (below [`MIN_VOLTAGE`] the meter is off).
    pub fn set_voltage(&self, volts: f64) {
        self.update(|m| m.voltage = volts);
    }

    /// Sets the RMS current, A.
    pub fn set_current(&self, amps: f64) {
        self.update(|m| m.current = amps);
    }

    /// Sets the power factor (0..=1).
    pub fn set_power_factor(&self, pf: f64) {
        self.update(|m| m.power_factor = pf);
    }

    /// Sets the frequency, Hz.
    pub fn set_frequency(&self, hz: f64) {
        self.update(|m| m.frequency = hz);
    }

    /// Sets the half-width of the voltage noise, V.
    pub fn set_voltage_noise(&self, volts: f64) {
        self.update(|m| m.voltage_noise = volts);
    }

    /// The exact energy counter, Wh (the meter reports its whole part).
    pub fn energy_wh(&self) -> f64 {
        let mut c = self.chip();
        c.integrate();
        c.energy_wh
    }

    /// Sets the energy counter, Wh.
    pub fn set_energy_wh(&self, wh: f64) {
        let mut c = self.chip();
        c.integrate();
        c.energy_wh = wh.max(0.0);
    }

    /// The meter's slave address.
    pub fn address(&self) -> u8 {
        self.chip().address
    }

    /// Sets the meter's slave address (1..=0xF7; other values are ignored).
    pub fn set_address(&self, address: u8) {
        if (1..=0xF7).contains(&address) {
            self.chip().address = address;
        }
    }

    /// Injects a fault (`ok`, `absent`, `readfails`, `garbage`).
    pub fn set_fault(&self, fault: ChipFault) {
        self.chip().fault = fault;
    }

    /// The injected fault.
    pub fn fault(&self) -> ChipFault {
        self.chip().fault
    }

    /// How many valid requests for this meter it has handled (not counting ignored ones).
    pub fn requests(&self) -> u64 {
        self.chip().requests
    }
}

/// The host's UART connected to the simulated meter.
#[derive(Debug, Clone)]
pub struct PzemUart(PzemModel);

impl PzemUart {
    fn readable(&self) -> usize {
        let c = self.0.chip();
        let now = c.clock.now_us();
        c.rx.iter().take_while(|(t, _)| *t <= now).count()
    }
}

impl embedded_io_async::ErrorType for PzemUart {
    type Error = Infallible;
}

impl embedded_io_async::ReadReady for PzemUart {
    fn read_ready(&mut self) -> Result<bool, Infallible> {
        Ok(self.readable() > 0)
    }
}

impl embedded_io_async::Read for PzemUart {
    /// Returns the bytes that have arrived; with none, waits (yielding to the executor) until
    /// the clock reaches the next one, like a UART. A silent meter makes it wait for ever: use
    /// `read_ready` first, or a timeout.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        std::future::poll_fn(|cx| {
            let mut c = self.0.chip();
            let now = c.clock.now_us();
            let mut n = 0;
            while n < buf.len() {
                match c.rx.front() {
                    Some(&(t, b)) if t <= now => {
                        buf[n] = b;
                        n += 1;
                        c.rx.pop_front();
                    }
                    _ => break,
                }
            }
            if n > 0 {
                std::task::Poll::Ready(Ok(n))
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await
    }
}

impl embedded_io_async::Write for PzemUart {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.0.chip().receive(buf);
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_integrates_power_over_time() {
        let clock = SimClock::manual();
        let m = PzemModel::new(clock.clone(), 1);
        m.set_mains(Mains {
            voltage: 200.0,
            current: 5.0,
            power_factor: 1.0,
            ..Mains::default()
        });
        clock.advance_ns(3_600_000_000_000); // 1 h at 1000 W
        assert!((m.energy_wh() - 1000.0).abs() < 1e-6);
        m.set_current(0.0);
        clock.advance_ns(3_600_000_000_000);
        assert!((m.energy_wh() - 1000.0).abs() < 1e-6);
        m.set_voltage(0.0);
        m.set_current(10.0);
        clock.advance_ns(3_600_000_000_000);
        assert!((m.energy_wh() - 1000.0).abs() < 1e-6, "off below 80 V");
    }

    #[test]
    fn own_crc_matches_the_check_value() {
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }
}
