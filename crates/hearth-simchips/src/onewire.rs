//! A 1-Wire bus with DS18B20 / DS18S20 thermometers, modelled at the time-slot level: the bus
//! implements `hearth_drivers::onewire::OneWireBus`, and every reset, write slot and read slot
//! goes to each device's own protocol state machine (ROM command, Match ROM, Search ROM with its
//! bit / complement / direction slots, Read ROM, function command, Convert T, Read Scratchpad).
//! A read slot returns the wired-AND of everything the devices drive, so the real ROM search
//! and the real DS18x20 driver run unchanged against it, collisions included.
//!
//! What is modelled, on the [`SimClock`]:
//! * Each device's 64-bit ROM (family `28h` or `10h`, a serial drawn from the seed or given,
//!   the CRC-8), its temperature (set by the test or the simulator), its scratchpad (T_H, T_L,
//!   configuration, the reserved bytes, COUNT_REMAIN / COUNT_PER_C on the DS18S20, CRC-8).
//! * Convert T: the temperature sensed when it starts is latched into the register when the
//!   conversion time has passed
//!   (DS18B20 750 ms at 12 bits, halved per bit less; DS18S20 750 ms); read slots after
//!   Convert T read 0 while converting and 1 when done. Until its first conversion a device
//!   reads the power-on value, 85 °C.
//! * Faults ([`OneWireFault`]), per device and for the whole bus (the bus fault, when set,
//!   overrides every device's): `absent` (unplugged: no presence, never drives the line; when
//!   it comes back it has lost power and reads 85 °C until its next conversion), `readfails`
//!   (its wire is broken: no presence, reads all ones, but it keeps its state), `garbage` (the
//!   scratchpad comes back with one bit flipped, so the CRC fails), `poweron` (it browns out at
//!   every conversion and keeps reading 85 °C). Separately the line can be shorted
//!   ([`OneWireSimBus::set_shorted`]): every operation fails with [`SimOneWireError::Shorted`].

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use hearth_drivers::onewire::{crc8, OneWireBus, Rom, MATCH_ROM, READ_ROM, SEARCH_ROM, SKIP_ROM};

use crate::clock::SimClock;
use crate::prng::SplitMix64;

/// Convert T.
const CONVERT_T: u8 = 0x44;
/// Read Scratchpad.
const READ_SCRATCHPAD: u8 = 0xBE;
/// Conversion time at 12 bits (DS18B20) and of the DS18S20.
pub const CONVERSION_US: u64 = 750_000;
/// T_H and T_L at delivery (75 °C and 70 °C alarms).
const TH_DEFAULT: u8 = 0x4B;
const TL_DEFAULT: u8 = 0x46;

/// The kind of a simulated thermometer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    /// DS18B20, family `28h`, 9–12 bits (12 at power-up).
    Ds18b20,
    /// DS18S20, family `10h`, 9 bits plus COUNT_REMAIN.
    Ds18s20,
}

impl SensorKind {
    /// The family code.
    pub const fn family(self) -> u8 {
        match self {
            SensorKind::Ds18b20 => 0x28,
            SensorKind::Ds18s20 => 0x10,
        }
    }
}

/// How a simulated 1-Wire device (or the whole bus) misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OneWireFault {
    /// Healthy.
    #[default]
    None,
    /// Unplugged: no presence, never drives the line; comes back powered up afresh (85 °C).
    Absent,
    /// Scratchpad reads come back with one bit flipped: the CRC fails.
    Garbage,
    /// The wire is broken: no presence pulse, all ones; the device keeps its state.
    ReadFails,
    /// Browns out at every conversion: reads the power-on value, 85 °C.
    PowerOn,
}

impl OneWireFault {
    /// The word used for this fault in control commands.
    pub const fn name(self) -> &'static str {
        match self {
            OneWireFault::None => "ok",
            OneWireFault::Absent => "absent",
            OneWireFault::Garbage => "garbage",
            OneWireFault::ReadFails => "readfails",
            OneWireFault::PowerOn => "poweron",
        }
    }
}

impl fmt::Display for OneWireFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const FAULT_WORDS: &str = "ok (or none), absent, garbage, readfails, poweron";

impl FromStr for OneWireFault {
    type Err = String;

    /// Accepts `ok`/`none`, `absent`, `garbage`, `readfails` (also `readfail`, `read-fails`,
    /// `read_fails`), `poweron` (also `power-on`, `power_on`), in any letter case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ok" | "none" => Ok(OneWireFault::None),
            "absent" => Ok(OneWireFault::Absent),
            "garbage" => Ok(OneWireFault::Garbage),
            "readfails" | "readfail" | "read-fails" | "read_fails" => Ok(OneWireFault::ReadFails),
            "poweron" | "power-on" | "power_on" => Ok(OneWireFault::PowerOn),
            _ => Err(format!(
                "unknown 1-Wire fault '{}': expected one of {FAULT_WORDS}",
                s.trim()
            )),
        }
    }
}

/// The error of the simulated master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOneWireError {
    /// The line is shorted to ground.
    Shorted,
}

impl fmt::Display for SimOneWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("1-Wire line shorted")
    }
}

impl std::error::Error for SimOneWireError {}

/// Where a device is in the current transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not addressed: ignores everything until the next reset.
    Idle,
    /// Receiving the ROM command.
    RomCommand { byte: u8, bits: u8 },
    /// Receiving the 64 bits of Match ROM; `matching` while all bits so far were its own.
    Match { position: u8, matching: bool },
    /// Search ROM at bit `position`; `slot` 0 = send the bit, 1 = its complement, 2 = receive
    /// the master's direction.
    Search { position: u8, slot: u8 },
    /// Sending its ROM (Read ROM).
    ReadRom { position: u8 },
    /// Addressed; receiving the function command.
    Function { byte: u8, bits: u8 },
    /// Converting (read slots read 0 until done).
    Converting,
    /// Sending its scratchpad.
    Scratchpad { data: [u8; 9], position: u8 },
}

#[derive(Debug, Clone)]
struct Device {
    rom: Rom,
    kind: SensorKind,
    celsius: f64,
    fault: OneWireFault,
    resolution_bits: u8,
    /// The temperature register.
    register: i16,
    count_remain: u8,
    /// A conversion in progress, with the time it completes.
    converting_until: Option<u64>,
    /// The temperature sensed when the conversion in progress started.
    measured: f64,
    state: State,
    conversions: u64,
}

impl Device {
    fn new(rom: Rom, kind: SensorKind) -> Self {
        let mut d = Device {
            rom,
            kind,
            celsius: 20.0,
            fault: OneWireFault::None,
            resolution_bits: 12,
            register: 0,
            count_remain: 0,
            converting_until: None,
            measured: 20.0,
            state: State::Idle,
            conversions: 0,
        };
        d.power_up();
        d
    }

    /// The register after power-up: 85 °C.
    fn power_up(&mut self) {
        self.converting_until = None;
        self.state = State::Idle;
        self.resolution_bits = 12;
        match self.kind {
            SensorKind::Ds18b20 => self.register = 0x0550,
            SensorKind::Ds18s20 => {
                self.register = 0x00AA;
                self.count_remain = 0x0C;
            }
        }
    }

    fn conversion_us(&self) -> u64 {
        match self.kind {
            SensorKind::Ds18b20 => CONVERSION_US >> (12 - self.resolution_bits.clamp(9, 12)),
            SensorKind::Ds18s20 => CONVERSION_US,
        }
    }

    /// Latches a finished conversion (`fault` is the device's effective fault).
    fn update(&mut self, now: u64, fault: OneWireFault) {
        match self.converting_until {
            Some(done) if now >= done => {
                self.converting_until = None;
                if fault == OneWireFault::PowerOn {
                    self.power_up();
                } else {
                    self.latch();
                }
            }
            _ => {}
        }
    }

    /// Puts the current temperature into the register, as the chip rounds it.
    fn latch(&mut self) {
        self.conversions += 1;
        let t = if self.measured.is_nan() {
            0.0
        } else {
            self.measured.clamp(-55.0, 125.0)
        };
        match self.kind {
            SensorKind::Ds18b20 => {
                let raw = (t * 16.0).round() as i16;
                let undefined = (1i16 << (12 - self.resolution_bits.clamp(9, 12))) - 1;
                self.register = raw & !undefined;
            }
            SensorKind::Ds18s20 => {
                // The register is ½ °C; COUNT_REMAIN carries the 1/16 °C rest so that
                // TEMP_READ − 0.25 + (16 − COUNT_REMAIN)/16 is t rounded to 1/16 °C.
                self.register = (2.0 * t + 0.5).floor() as i16;
                let truncated = (t + 0.25).floor();
                let n = ((t - truncated + 0.25) * 16.0).round().clamp(0.0, 16.0) as u8;
                self.count_remain = 16 - n;
            }
        }
    }

    fn scratchpad(&self) -> [u8; 9] {
        let [lsb, msb] = self.register.to_le_bytes();
        let bytes: [u8; 8] = match self.kind {
            SensorKind::Ds18b20 => {
                let config = ((self.resolution_bits.clamp(9, 12) - 9) << 5) | 0x1F;
                [lsb, msb, TH_DEFAULT, TL_DEFAULT, config, 0xFF, 0x0C, 0x10]
            }
            SensorKind::Ds18s20 => [
                lsb,
                msb,
                TH_DEFAULT,
                TL_DEFAULT,
                0xFF,
                0xFF,
                self.count_remain,
                0x10,
            ],
        };
        let mut sp = [0u8; 9];
        sp[..8].copy_from_slice(&bytes);
        sp[8] = crc8(&bytes);
        sp
    }

    fn rom_bit(&self, position: u8) -> bool {
        bit_of(&self.rom.0, position)
    }

    /// A write slot of `bit` (a read slot is a write of 1 for a receiving device).
    fn write(&mut self, bit: bool, now: u64, rng: &mut SplitMix64, fault: OneWireFault) {
        self.state = match self.state {
            State::Idle => State::Idle,
            State::RomCommand { byte, bits } => {
                let byte = byte | (u8::from(bit) << bits);
                if bits < 7 {
                    State::RomCommand {
                        byte,
                        bits: bits + 1,
                    }
                } else {
                    match byte {
                        SEARCH_ROM => State::Search {
                            position: 0,
                            slot: 0,
                        },
                        READ_ROM => State::ReadRom { position: 0 },
                        MATCH_ROM => State::Match {
                            position: 0,
                            matching: true,
                        },
                        SKIP_ROM => State::Function { byte: 0, bits: 0 },
                        _ => State::Idle,
                    }
                }
            }
            State::Match { position, matching } => {
                let matching = matching && self.rom_bit(position) == bit;
                if position < 63 {
                    State::Match {
                        position: position + 1,
                        matching,
                    }
                } else if matching {
                    State::Function { byte: 0, bits: 0 }
                } else {
                    State::Idle
                }
            }
            State::Search { position, slot: 2 } => {
                if self.rom_bit(position) != bit {
                    State::Idle
                } else if position < 63 {
                    State::Search {
                        position: position + 1,
                        slot: 0,
                    }
                } else {
                    State::Function { byte: 0, bits: 0 }
                }
            }
            // A write where the device sends: the protocol is broken; it gives up.
            State::Search { .. } => State::Idle,
            State::Function { byte, bits } => {
                let byte = byte | (u8::from(bit) << bits);
                if bits < 7 {
                    State::Function {
                        byte,
                        bits: bits + 1,
                    }
                } else {
                    match byte {
                        CONVERT_T => {
                            self.converting_until = Some(now + self.conversion_us());
                            self.measured = self.celsius;
                            State::Converting
                        }
                        READ_SCRATCHPAD => {
                            let mut data = self.scratchpad();
                            if fault == OneWireFault::Garbage {
                                let at = (rng.next_u64() % 72) as u8;
                                data[usize::from(at / 8)] ^= 1 << (at % 8);
                            }
                            State::Scratchpad { data, position: 0 }
                        }
                        _ => State::Idle,
                    }
                }
            }
            // Sending states: the master's slot is consumed like a read slot.
            other @ (State::ReadRom { .. } | State::Converting | State::Scratchpad { .. }) => {
                self.state = other;
                self.read(now, rng, fault);
                self.state
            }
        };
    }

    /// A read slot: what the device lets the line be (`false` = it pulls it low).
    fn read(&mut self, now: u64, rng: &mut SplitMix64, fault: OneWireFault) -> bool {
        match self.state {
            State::Idle => true,
            State::Search { position, slot } if slot < 2 => {
                self.state = State::Search {
                    position,
                    slot: slot + 1,
                };
                self.rom_bit(position) != (slot == 1)
            }
            State::ReadRom { position } => {
                if position >= 64 {
                    return true;
                }
                self.state = State::ReadRom {
                    position: position + 1,
                };
                self.rom_bit(position)
            }
            State::Converting => {
                self.update(now, fault);
                self.converting_until.is_none()
            }
            State::Scratchpad { data, position } => {
                if position >= 72 {
                    return true;
                }
                self.state = State::Scratchpad {
                    data,
                    position: position + 1,
                };
                bit_of(&data, position)
            }
            State::RomCommand { .. }
            | State::Match { .. }
            | State::Search { .. }
            | State::Function { .. } => {
                self.write(true, now, rng, fault);
                true
            }
        }
    }
}

fn bit_of(bytes: &[u8], position: u8) -> bool {
    bytes
        .get(usize::from(position / 8))
        .is_some_and(|b| b & (1 << (position % 8)) != 0)
}

struct Bus {
    clock: SimClock,
    rng: SplitMix64,
    devices: Vec<Device>,
    bus_fault: OneWireFault,
    shorted: bool,
}

impl Bus {
    fn effective(&self, d: &Device) -> OneWireFault {
        if self.bus_fault != OneWireFault::None {
            self.bus_fault
        } else {
            d.fault
        }
    }

    /// The devices driving the line (not absent, wire intact), with their effective fault.
    fn on_line(&mut self) -> impl Iterator<Item = (&mut Device, OneWireFault)> {
        let bus_fault = self.bus_fault;
        self.devices.iter_mut().filter_map(move |d| {
            let f = if bus_fault != OneWireFault::None {
                bus_fault
            } else {
                d.fault
            };
            match f {
                OneWireFault::Absent | OneWireFault::ReadFails => None,
                f => Some((d, f)),
            }
        })
    }

    /// Power-cycles the devices that were absent (`before`, effective faults) and no longer are.
    fn power_cycle_returning(&mut self, before: Vec<OneWireFault>) {
        let bus_fault = self.bus_fault;
        for (d, was) in self.devices.iter_mut().zip(before) {
            let is = if bus_fault != OneWireFault::None {
                bus_fault
            } else {
                d.fault
            };
            if was == OneWireFault::Absent && is != OneWireFault::Absent {
                d.power_up();
            }
        }
    }
}

/// A simulated 1-Wire bus with thermometers. Clones share the bus; the bus itself is the
/// `OneWireBus` the driver uses.
#[derive(Clone)]
pub struct OneWireSimBus(Arc<Mutex<Bus>>);

impl OneWireSimBus {
    /// An empty bus; serial numbers of [`add`](Self::add)ed devices are drawn from `seed`.
    pub fn new(clock: SimClock, seed: u64) -> Self {
        OneWireSimBus(Arc::new(Mutex::new(Bus {
            clock,
            rng: SplitMix64::new(seed),
            devices: Vec::new(),
            bus_fault: OneWireFault::None,
            shorted: false,
        })))
    }

    /// Adds a thermometer of `kind` with a serial number drawn from the seed, just powered up
    /// (85 °C until its first conversion) at 20 °C. Returns its ROM.
    pub fn add(&self, kind: SensorKind) -> Rom {
        let serial = self.bus().rng.next_u64().to_le_bytes();
        let mut s = [0u8; 6];
        s.copy_from_slice(&serial[..6]);
        self.add_serial(kind, s)
    }

    /// Adds a thermometer with the given 48-bit serial (least significant byte first). A ROM
    /// already on the bus is not added twice.
    pub fn add_serial(&self, kind: SensorKind, serial: [u8; 6]) -> Rom {
        let mut rom = [0u8; 8];
        rom[0] = kind.family();
        rom[1..7].copy_from_slice(&serial);
        rom[7] = crc8(&rom[..7]);
        let rom = Rom(rom);
        let mut bus = self.bus();
        if !bus.devices.iter().any(|d| d.rom == rom) {
            bus.devices.push(Device::new(rom, kind));
        }
        rom
    }

    /// Takes a device off the bus for good; returns whether it was there.
    pub fn remove(&self, rom: &Rom) -> bool {
        let mut bus = self.bus();
        let before = bus.devices.len();
        bus.devices.retain(|d| d.rom != *rom);
        bus.devices.len() != before
    }

    /// The ROMs on the bus, in the order they were added.
    pub fn roms(&self) -> Vec<Rom> {
        self.bus().devices.iter().map(|d| d.rom).collect()
    }

    /// Sets the temperature a device senses; its next conversion measures it. Returns whether
    /// the device exists.
    pub fn set_temperature(&self, rom: &Rom, celsius: f64) -> bool {
        self.with_device(rom, |d| d.celsius = celsius)
    }

    /// Sets the temperature every device senses.
    pub fn set_all_temperatures(&self, celsius: f64) {
        for d in &mut self.bus().devices {
            d.celsius = celsius;
        }
    }

    /// The temperature a device senses.
    pub fn temperature(&self, rom: &Rom) -> Option<f64> {
        self.bus()
            .devices
            .iter()
            .find(|d| d.rom == *rom)
            .map(|d| d.celsius)
    }

    /// Sets a DS18B20's resolution, 9..=12 bits (as a Write Scratchpad would). Returns whether
    /// the device exists and is a DS18B20.
    pub fn set_resolution(&self, rom: &Rom, bits: u8) -> bool {
        let mut ok = false;
        self.with_device(rom, |d| {
            if d.kind == SensorKind::Ds18b20 {
                d.resolution_bits = bits.clamp(9, 12);
                ok = true;
            }
        });
        ok
    }

    /// Puts one device into `fault` (`OneWireFault::None` heals it). A device coming back from
    /// `absent` has been power-cycled. Returns whether the device exists.
    pub fn set_fault(&self, rom: &Rom, fault: OneWireFault) -> bool {
        let mut bus = self.bus();
        let before: Vec<OneWireFault> = bus.devices.iter().map(|d| bus.effective(d)).collect();
        let Some(d) = bus.devices.iter_mut().find(|d| d.rom == *rom) else {
            return false;
        };
        d.fault = fault;
        bus.power_cycle_returning(before);
        true
    }

    /// A device's own fault.
    pub fn fault(&self, rom: &Rom) -> Option<OneWireFault> {
        self.bus()
            .devices
            .iter()
            .find(|d| d.rom == *rom)
            .map(|d| d.fault)
    }

    /// Puts the whole bus into `fault`, overriding every device's own (`OneWireFault::None`
    /// returns to the per-device faults).
    pub fn set_bus_fault(&self, fault: OneWireFault) {
        let mut bus = self.bus();
        let before: Vec<OneWireFault> = bus.devices.iter().map(|d| bus.effective(d)).collect();
        bus.bus_fault = fault;
        bus.power_cycle_returning(before);
    }

    /// The bus-wide fault.
    pub fn bus_fault(&self) -> OneWireFault {
        self.bus().bus_fault
    }

    /// Shorts the line to ground (every master operation fails) or removes the short.
    pub fn set_shorted(&self, shorted: bool) {
        self.bus().shorted = shorted;
    }

    /// How many conversions a device has completed (for tests).
    pub fn conversions(&self, rom: &Rom) -> u64 {
        let mut bus = self.bus();
        let now = bus.clock.now_us();
        let Some(i) = bus.devices.iter().position(|d| d.rom == *rom) else {
            return 0;
        };
        let fault = bus.effective(&bus.devices[i]);
        let d = &mut bus.devices[i];
        d.update(now, fault);
        d.conversions
    }

    /// The clock the devices see.
    pub fn clock(&self) -> SimClock {
        self.bus().clock.clone()
    }

    fn with_device(&self, rom: &Rom, f: impl FnOnce(&mut Device)) -> bool {
        match self.bus().devices.iter_mut().find(|d| d.rom == *rom) {
            Some(d) => {
                f(d);
                true
            }
            None => false,
        }
    }

    fn bus(&self) -> MutexGuard<'_, Bus> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for OneWireSimBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bus = self.bus();
        f.debug_struct("OneWireSimBus")
            .field("devices", &bus.devices.len())
            .field("bus_fault", &bus.bus_fault)
            .field("shorted", &bus.shorted)
            .finish()
    }
}

impl OneWireBus for OneWireSimBus {
    type Error = SimOneWireError;

    async fn reset(&mut self) -> Result<bool, SimOneWireError> {
        let mut bus = self.bus();
        if bus.shorted {
            return Err(SimOneWireError::Shorted);
        }
        bus.clock.advance_ns(960_000);
        let now = bus.clock.now_us();
        let mut presence = false;
        for i in 0..bus.devices.len() {
            let fault = bus.effective(&bus.devices[i]);
            let d = &mut bus.devices[i];
            d.update(now, fault);
            d.state = State::Idle;
        }
        for (d, _) in bus.on_line() {
            d.state = State::RomCommand { byte: 0, bits: 0 };
            presence = true;
        }
        Ok(presence)
    }

    async fn write_bit(&mut self, bit: bool) -> Result<(), SimOneWireError> {
        let mut guard = self.bus();
        let bus = &mut *guard;
        if bus.shorted {
            return Err(SimOneWireError::Shorted);
        }
        bus.clock.advance_ns(70_000);
        let now = bus.clock.now_us();
        let mut rng = SplitMix64::new(bus.rng.next_u64());
        for (d, fault) in bus.on_line() {
            d.write(bit, now, &mut rng, fault);
        }
        Ok(())
    }

    async fn read_bit(&mut self) -> Result<bool, SimOneWireError> {
        let mut guard = self.bus();
        let bus = &mut *guard;
        if bus.shorted {
            return Err(SimOneWireError::Shorted);
        }
        bus.clock.advance_ns(70_000);
        let now = bus.clock.now_us();
        let mut rng = SplitMix64::new(bus.rng.next_u64());
        let mut line = true;
        for (d, fault) in bus.on_line() {
            line &= d.read(now, &mut rng, fault);
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_words_round_trip() {
        for f in [
            OneWireFault::None,
            OneWireFault::Absent,
            OneWireFault::Garbage,
            OneWireFault::ReadFails,
            OneWireFault::PowerOn,
        ] {
            assert_eq!(f.to_string().parse::<OneWireFault>(), Ok(f));
        }
        assert_eq!(" Power-On ".parse(), Ok(OneWireFault::PowerOn));
        assert_eq!("NONE".parse(), Ok(OneWireFault::None));
        let e = "broken".parse::<OneWireFault>().unwrap_err();
        assert!(e.contains("'broken'") && e.contains("poweron"), "{e}");
    }

    #[test]
    fn ds18s20_register_encoding_reproduces_sixteenths() {
        let mut d = Device::new(Rom([0x10, 1, 2, 3, 4, 5, 6, 0]), SensorKind::Ds18s20);
        for t in [
            25.0, 25.5625, -0.5, -25.0, 85.0, 21.3, -10.1, 0.74, 124.97, -54.99,
        ] {
            d.measured = t;
            d.latch();
            let read = f64::from(d.register >> 1) - 0.25 + f64::from(16 - d.count_remain) / 16.0;
            assert_eq!(read, (t * 16.0).round() / 16.0, "{t}");
            assert!(d.count_remain <= 16);
        }
    }
}
