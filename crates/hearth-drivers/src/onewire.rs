//! The Maxim/Dallas 1-Wire bus: the [`OneWireBus`] edge trait (reset with presence detect,
//! read and write time slots), the ROM layer on top of it (CRC-8/MAXIM, the ROM search that
//! finds every device on the bus, Match ROM / Skip ROM) and [`BitBang`], an implementation of
//! the edge on one open-drain GPIO with microsecond delays.
//!
//! # The edge
//!
//! [`OneWireBus`] is the seam between the protocol and the wire. On the chip it is [`BitBang`]
//! over an open-drain pin (or a UART/RMT based master, if one is ever written); in the host
//! simulator it is `hearth_simchips::onewire::OneWireSimBus`, a model of the devices at the
//! time-slot level (wired-AND of everything that drives the line), so the ROM search and the
//! DS18x20 driver run unchanged against it.
//!
//! # Protocol facts used here (Maxim AN126, AN187, the DS18B20 datasheet)
//!
//! * Reset: the master holds the line low for at least 480 µs and releases it; present devices
//!   answer with a presence pulse (line low) 15–60 µs later, lasting 60–240 µs.
//! * Every bit is one time slot of at least 60 µs started by the master pulling the line low.
//!   Write 1: release within 15 µs. Write 0: hold low for the whole slot. Read: pull low ≥ 1 µs,
//!   release and sample before 15 µs from the start; a device sending 0 holds the line low.
//! * Bytes go least significant bit first.
//! * A ROM is 8 bytes: family code, 48-bit serial number (LSB first), CRC-8 of the first seven.
//! * ROM commands after a reset: Search ROM `F0h`, Read ROM `33h`, Match ROM `55h` + 64 bits,
//!   Skip ROM `CCh`.

use core::fmt;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{InputPin, OutputPin};

/// ROM command: search the ROMs of all devices.
pub const SEARCH_ROM: u8 = 0xF0;
/// ROM command: read the ROM of the only device on the bus.
pub const READ_ROM: u8 = 0x33;
/// ROM command: address one device by its 64-bit ROM.
pub const MATCH_ROM: u8 = 0x55;
/// ROM command: address every device at once.
pub const SKIP_ROM: u8 = 0xCC;

/// At most this many search passes are made by [`search_all`], however the bus answers, so a
/// noisy bus cannot keep the caller busy forever.
pub const MAX_SEARCH_PASSES: usize = 64;

/// The 64-bit ROM code of a 1-Wire device, as read from the bus (family code first).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rom(pub [u8; 8]);

impl Rom {
    /// The family code (first byte), e.g. `0x28` for a DS18B20.
    pub const fn family(&self) -> u8 {
        self.0[0]
    }

    /// Whether the last byte is the CRC-8 of the first seven.
    pub fn crc_ok(&self) -> bool {
        crc8(&self.0[..7]) == self.0[7]
    }
}

/// Lowercase hex of the eight bytes in bus order, 16 characters (e.g. `28ff641e0a16037c`).
impl fmt::Display for Rom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Rom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rom({self})")
    }
}

/// The Dallas/Maxim CRC-8 (polynomial x⁸ + x⁵ + x⁴ + 1, reflected, initial value 0) of
/// `data`. The CRC of a block followed by its own CRC byte is 0.
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &byte in data {
        let mut b = byte;
        for _ in 0..8 {
            let mix = (crc ^ b) & 1;
            crc >>= 1;
            if mix != 0 {
                crc ^= 0x8C;
            }
            b >>= 1;
        }
    }
    crc
}

/// The edge every 1-Wire master implements: the three primitive operations of the bus. The
/// byte operations have default implementations (least significant bit first).
///
/// Implementations must never hang: a line that does not behave is an error or a plain
/// reading (a bus with nobody on it reads 1s and has no presence).
#[allow(async_fn_in_trait)]
pub trait OneWireBus {
    /// What the master itself can fail with (a pin error, a shorted line).
    type Error: fmt::Debug;

    /// A reset pulse; returns whether at least one device answered with a presence pulse.
    async fn reset(&mut self) -> Result<bool, Self::Error>;

    /// One write time slot.
    async fn write_bit(&mut self, bit: bool) -> Result<(), Self::Error>;

    /// One read time slot: `true` when the line stayed high (nobody pulled it low).
    async fn read_bit(&mut self) -> Result<bool, Self::Error>;

    /// Eight write slots, least significant bit first.
    async fn write_byte(&mut self, byte: u8) -> Result<(), Self::Error> {
        for i in 0..8 {
            self.write_bit((byte >> i) & 1 != 0).await?;
        }
        Ok(())
    }

    /// Eight read slots, least significant bit first.
    async fn read_byte(&mut self) -> Result<u8, Self::Error> {
        let mut byte = 0u8;
        for i in 0..8 {
            if self.read_bit().await? {
                byte |= 1 << i;
            }
        }
        Ok(byte)
    }
}

impl<B: OneWireBus + ?Sized> OneWireBus for &mut B {
    type Error = B::Error;

    async fn reset(&mut self) -> Result<bool, Self::Error> {
        (**self).reset().await
    }

    async fn write_bit(&mut self, bit: bool) -> Result<(), Self::Error> {
        (**self).write_bit(bit).await
    }

    async fn read_bit(&mut self) -> Result<bool, Self::Error> {
        (**self).read_bit().await
    }

    async fn write_byte(&mut self, byte: u8) -> Result<(), Self::Error> {
        (**self).write_byte(byte).await
    }

    async fn read_byte(&mut self) -> Result<u8, Self::Error> {
        (**self).read_byte().await
    }
}

/// What can go wrong on a 1-Wire transaction. `E` is the master's own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The master failed (pin error, shorted line).
    Bus(E),
    /// Nobody answered the reset with a presence pulse.
    NoPresence,
    /// A search pass read `1` for both a bit and its complement: no device followed the
    /// search (the devices vanished mid-search, or the line reads all ones).
    NoResponse,
    /// A block (ROM or scratchpad) failed its CRC-8.
    Crc,
    /// The data passed its CRC but no healthy device sends it (all zeros, a value out of the
    /// device's range).
    InvalidData,
}

impl<E> Error<E> {
    /// Whether this is a failure of the bus (nobody there, the master failing) rather than of
    /// the data a device sent.
    pub fn is_bus(&self) -> bool {
        matches!(self, Error::Bus(_) | Error::NoPresence | Error::NoResponse)
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bus(e) => write!(f, "1-Wire master error: {e:?}"),
            Error::NoPresence => f.write_str("no presence pulse after the reset"),
            Error::NoResponse => f.write_str("no device answered"),
            Error::Crc => f.write_str("CRC-8 mismatch"),
            Error::InvalidData => f.write_str("implausible data"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// Reset and require a presence pulse.
pub async fn reset<B: OneWireBus>(bus: &mut B) -> Result<(), Error<B::Error>> {
    if bus.reset().await.map_err(Error::Bus)? {
        Ok(())
    } else {
        Err(Error::NoPresence)
    }
}

/// Reset, then address one device: Match ROM with `rom`, or Skip ROM (every device) for
/// `None`. The next byte written is the function command.
pub async fn select<B: OneWireBus>(bus: &mut B, rom: Option<&Rom>) -> Result<(), Error<B::Error>> {
    reset(bus).await?;
    match rom {
        Some(rom) => {
            bus.write_byte(MATCH_ROM).await.map_err(Error::Bus)?;
            for b in rom.0 {
                bus.write_byte(b).await.map_err(Error::Bus)?;
            }
        }
        None => bus.write_byte(SKIP_ROM).await.map_err(Error::Bus)?,
    }
    Ok(())
}

/// Read the ROM of the only device on the bus (Read ROM). With several devices the answers
/// collide and the CRC check fails.
pub async fn read_rom<B: OneWireBus>(bus: &mut B) -> Result<Rom, Error<B::Error>> {
    reset(bus).await?;
    bus.write_byte(READ_ROM).await.map_err(Error::Bus)?;
    let mut rom = Rom::default();
    for b in rom.0.iter_mut() {
        *b = bus.read_byte().await.map_err(Error::Bus)?;
    }
    check_rom(rom)
}

fn check_rom<E>(rom: Rom) -> Result<Rom, Error<E>> {
    if rom.0 == [0xFF; 8] {
        Err(Error::NoResponse)
    } else if rom.0 == [0; 8] {
        Err(Error::InvalidData)
    } else if rom.crc_ok() {
        Ok(rom)
    } else {
        Err(Error::Crc)
    }
}

/// The ROM search (Search ROM `F0h`), one device per pass: at every bit position the devices
/// still taking part send their bit and its complement; `0 1` or `1 0` means they agree, `0 0`
/// is a discrepancy, where the pass takes the `0` branch unless that was explored before; the
/// master writes the branch taken and the devices with the other bit drop out. The last
/// discrepancy where `0` was taken is where the next pass turns to `1`.
#[derive(Debug, Clone, Default)]
pub struct Search {
    rom: [u8; 8],
    /// 1-based bit position of the discrepancy the next pass resolves with 1; 0 = none.
    last_discrepancy: u8,
    done: bool,
}

impl Search {
    /// A search starting at the first device.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the previous pass found the last device.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next device: `Ok(None)` when all were found (or nobody answered the reset). A ROM
    /// with a bad CRC gives [`Error::Crc`], after which the search can go on with the other
    /// branches; [`Error::NoResponse`] and bus errors end it.
    pub async fn next<B: OneWireBus>(
        &mut self,
        bus: &mut B,
    ) -> Result<Option<Rom>, Error<B::Error>> {
        if self.done {
            return Ok(None);
        }
        if !bus.reset().await.map_err(Error::Bus)? {
            self.done = true;
            return Ok(None);
        }
        bus.write_byte(SEARCH_ROM).await.map_err(Error::Bus)?;
        let mut last_zero = 0u8;
        for position in 1..=64u8 {
            let index = usize::from((position - 1) / 8);
            let mask = 1u8 << ((position - 1) % 8);
            let bit = bus.read_bit().await.map_err(Error::Bus)?;
            let complement = bus.read_bit().await.map_err(Error::Bus)?;
            let take_one = match (bit, complement) {
                (true, true) => {
                    self.done = true;
                    return Err(Error::NoResponse);
                }
                (b, c) if b != c => b,
                _ => {
                    let one = match position.cmp(&self.last_discrepancy) {
                        core::cmp::Ordering::Less => self.rom[index] & mask != 0,
                        core::cmp::Ordering::Equal => true,
                        core::cmp::Ordering::Greater => false,
                    };
                    if !one {
                        last_zero = position;
                    }
                    one
                }
            };
            if take_one {
                self.rom[index] |= mask;
            } else {
                self.rom[index] &= !mask;
            }
            bus.write_bit(take_one).await.map_err(Error::Bus)?;
        }
        self.last_discrepancy = last_zero;
        self.done = last_zero == 0;
        check_rom(Rom(self.rom)).map(Some)
    }
}

/// What [`search_all`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SearchReport {
    /// How many ROMs were stored at the start of the slice.
    pub found: usize,
    /// ROMs skipped because their CRC failed.
    pub crc_errors: usize,
    /// More devices answered than the slice could hold.
    pub overflow: bool,
}

/// Search the whole bus, storing each valid ROM (in search order, which is ascending by the
/// ROM read least significant bit first) at the start of `roms`. ROMs with a bad CRC are
/// skipped and counted. An empty bus (no presence) is an empty report, not an error; a pass
/// that nobody follows or a bus error fails the search.
pub async fn search_all<B: OneWireBus>(
    bus: &mut B,
    roms: &mut [Rom],
) -> Result<SearchReport, Error<B::Error>> {
    let mut search = Search::new();
    let mut report = SearchReport::default();
    for _ in 0..MAX_SEARCH_PASSES {
        match search.next(bus).await {
            Ok(Some(rom)) => {
                if roms[..report.found].contains(&rom) {
                    continue;
                }
                match roms.get_mut(report.found) {
                    Some(slot) => {
                        *slot = rom;
                        report.found += 1;
                    }
                    None => {
                        report.overflow = true;
                        return Ok(report);
                    }
                }
            }
            Ok(None) => return Ok(report),
            Err(Error::Crc) => report.crc_errors += 1,
            Err(e) => return Err(e),
        }
        if search.is_done() {
            return Ok(report);
        }
    }
    Ok(report)
}

/// Standard-speed slot timings in µs (Maxim AN126, "standard" column).
mod timing {
    /// Write 1: low time.
    pub const A: u32 = 6;
    /// Write 1: rest of the slot.
    pub const B: u32 = 64;
    /// Write 0: low time.
    pub const C: u32 = 60;
    /// Write 0: recovery.
    pub const D: u32 = 10;
    /// Read: from release to sampling.
    pub const E: u32 = 9;
    /// Read: rest of the slot.
    pub const F: u32 = 55;
    /// Reset: low time.
    pub const H: u32 = 480;
    /// Reset: from release to sampling the presence pulse.
    pub const I: u32 = 70;
    /// Reset: rest of the presence window.
    pub const J: u32 = 410;
}

/// What [`BitBang`] can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitBangError<E> {
    /// Driving or reading the pin failed.
    Pin(E),
    /// The line stayed low when released (shorted to ground, or a missing pull-up).
    Shorted,
}

/// A 1-Wire master bit-banged on one open-drain GPIO with an external pull-up (4.7 kΩ at 3.3 V).
/// `set_low` pulls the line low, `set_high` releases it; the pin must read the line level
/// while released (an open-drain output with its input enabled, e.g. esp-hal's `Flex` set to
/// open drain with input enabled).
///
/// The slot timings need microsecond accuracy (a read is sampled 15 µs after the slot starts at
/// the latest), so the delay is the blocking `embedded_hal::delay::DelayNs` (a busy wait): an
/// awaited timer would let the executor run something else in the middle of a slot. A whole
/// slot is ≈ 70 µs, a reset ≈ 960 µs, reading one DS18B20 ≈ 11 ms. Interrupts that take longer
/// than a few µs in the middle of a read slot can corrupt a bit; the CRC checks catch that.
#[derive(Debug)]
pub struct BitBang<P, D> {
    pin: P,
    delay: D,
}

impl<P, D> BitBang<P, D>
where
    P: OutputPin + InputPin,
    D: DelayNs,
{
    /// Wraps the pin and the delay; the line is released at the first operation.
    pub fn new(pin: P, delay: D) -> Self {
        Self { pin, delay }
    }

    /// Gives the pin and the delay back.
    pub fn release(self) -> (P, D) {
        (self.pin, self.delay)
    }

    fn low(&mut self) -> Result<(), BitBangError<P::Error>> {
        OutputPin::set_low(&mut self.pin).map_err(BitBangError::Pin)
    }

    fn free(&mut self) -> Result<(), BitBangError<P::Error>> {
        OutputPin::set_high(&mut self.pin).map_err(BitBangError::Pin)
    }

    fn sample(&mut self) -> Result<bool, BitBangError<P::Error>> {
        InputPin::is_high(&mut self.pin).map_err(BitBangError::Pin)
    }
}

impl<P, D> OneWireBus for BitBang<P, D>
where
    P: OutputPin + InputPin,
    D: DelayNs,
{
    type Error = BitBangError<P::Error>;

    async fn reset(&mut self) -> Result<bool, Self::Error> {
        self.free()?;
        self.delay.delay_us(timing::D);
        if !self.sample()? {
            return Err(BitBangError::Shorted);
        }
        self.low()?;
        self.delay.delay_us(timing::H);
        self.free()?;
        self.delay.delay_us(timing::I);
        let presence = !self.sample()?;
        self.delay.delay_us(timing::J);
        // Every presence pulse has ended by now: a line still low is stuck.
        if !self.sample()? {
            return Err(BitBangError::Shorted);
        }
        Ok(presence)
    }

    async fn write_bit(&mut self, bit: bool) -> Result<(), Self::Error> {
        let (low, rest) = if bit {
            (timing::A, timing::B)
        } else {
            (timing::C, timing::D)
        };
        self.low()?;
        self.delay.delay_us(low);
        self.free()?;
        self.delay.delay_us(rest);
        Ok(())
    }

    async fn read_bit(&mut self) -> Result<bool, Self::Error> {
        self.low()?;
        self.delay.delay_us(timing::A);
        self.free()?;
        self.delay.delay_us(timing::E);
        let bit = self.sample()?;
        self.delay.delay_us(timing::F);
        Ok(bit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::future::Future;
    use std::pin::pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};
    use std::vec::Vec;

    use embedded_hal::digital::ErrorType;

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..1_000 {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
        panic!("future still pending");
    }

    #[test]
    fn crc8_known_vectors() {
        // Maxim AN27: family 02h, serial 0000_0001_B81C, CRC A2h.
        let rom = Rom([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xA2]);
        assert_eq!(crc8(&rom.0[..7]), 0xA2);
        assert!(rom.crc_ok());
        assert_eq!(crc8(&rom.0), 0, "a block followed by its CRC sums to 0");
        // CRC-8/MAXIM check value of "123456789".
        assert_eq!(crc8(b"123456789"), 0xA1);
        assert_eq!(crc8(&[]), 0);
        let mut bad = rom;
        bad.0[3] ^= 0x10;
        assert!(!bad.crc_ok());
    }

    #[test]
    fn rom_formats_as_lowercase_hex_in_bus_order() {
        let rom = Rom([0x28, 0xFF, 0x64, 0x1E, 0x0A, 0x16, 0x03, 0x7C]);
        assert_eq!(format!("{rom}"), "28ff641e0a16037c");
        assert_eq!(rom.family(), 0x28);
    }

    /// Devices at the slot level: each takes part in searches and answers reads (wired-AND).
    #[derive(Default)]
    struct Slots {
        roms: Vec<[u8; 8]>,
        /// Per device: still following the current search, its current bit position, slot in
        /// the position (0 = bit, 1 = complement, 2 = master's choice).
        active: Vec<bool>,
        position: usize,
        slot: u8,
        searching: bool,
        command: Vec<bool>,
        resets: usize,
        /// Read slots answer these instead while not empty.
        forced: VecDeque<bool>,
    }

    impl Slots {
        fn bit(rom: &[u8; 8], position: usize) -> bool {
            rom[position / 8] & (1 << (position % 8)) != 0
        }
    }

    impl OneWireBus for Slots {
        type Error = ();

        async fn reset(&mut self) -> Result<bool, ()> {
            self.resets += 1;
            self.active = vec![true; self.roms.len()];
            self.position = 0;
            self.slot = 0;
            self.searching = false;
            self.command.clear();
            Ok(!self.roms.is_empty())
        }

        async fn write_bit(&mut self, bit: bool) -> Result<(), ()> {
            if self.searching {
                for (i, rom) in self.roms.iter().enumerate() {
                    if Self::bit(rom, self.position) != bit {
                        self.active[i] = false;
                    }
                }
                self.position += 1;
                self.slot = 0;
            } else {
                self.command.push(bit);
                if self.command.len() == 8 {
                    let byte = self
                        .command
                        .iter()
                        .enumerate()
                        .fold(0u8, |b, (i, &x)| b | (u8::from(x) << i));
                    self.searching = byte == SEARCH_ROM;
                }
            }
            Ok(())
        }

        async fn read_bit(&mut self) -> Result<bool, ()> {
            if let Some(b) = self.forced.pop_front() {
                return Ok(b);
            }
            let want_complement = self.slot == 1;
            self.slot += 1;
            let mut line = true;
            for (i, rom) in self.roms.iter().enumerate() {
                if self.active[i] {
                    line &= Self::bit(rom, self.position) != want_complement;
                }
            }
            Ok(line)
        }
    }

    fn with_crc(mut rom: [u8; 8]) -> [u8; 8] {
        rom[7] = crc8(&rom[..7]);
        rom
    }

    #[test]
    fn search_finds_every_device_in_ascending_bit_order() {
        let roms = [
            with_crc([0x28, 0x01, 0, 0, 0, 0, 0, 0]),
            with_crc([0x28, 0x02, 0, 0, 0, 0, 0, 0]),
            with_crc([0x10, 0xAA, 0x55, 0x12, 0x34, 0x56, 0x78, 0]),
            with_crc([0x28, 0x01, 0, 0, 0, 0, 0x80, 0]),
            with_crc([0x28, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0]),
        ];
        let mut bus = Slots {
            roms: roms.to_vec(),
            ..Slots::default()
        };
        let mut out = [Rom::default(); 8];
        let report = block_on(search_all(&mut bus, &mut out)).unwrap();
        assert_eq!(report.found, 5);
        assert_eq!(report.crc_errors, 0);
        assert!(!report.overflow);
        assert_eq!(bus.resets, 5, "one pass per device");
        let mut found: Vec<[u8; 8]> = out[..5].iter().map(|r| r.0).collect();
        // Search order: ascending when the ROM is read as a 64-bit number LSB first.
        let key = |r: &[u8; 8]| u64::from_le_bytes(*r).reverse_bits();
        assert!(
            found.windows(2).all(|w| key(&w[0]) < key(&w[1])),
            "{found:?}"
        );
        found.sort();
        let mut expected = roms.to_vec();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn search_of_one_device_and_of_an_empty_bus() {
        let rom = with_crc([0x28, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0]);
        let mut bus = Slots {
            roms: vec![rom],
            ..Slots::default()
        };
        let mut out = [Rom::default(); 2];
        let report = block_on(search_all(&mut bus, &mut out)).unwrap();
        assert_eq!((report.found, out[0].0), (1, rom));

        let mut empty = Slots::default();
        let report = block_on(search_all(&mut empty, &mut out)).unwrap();
        assert_eq!(report.found, 0);
    }

    #[test]
    fn search_overflow_and_bad_crc_and_no_response() {
        let good = with_crc([0x28, 1, 2, 3, 4, 5, 6, 0]);
        let mut bad = with_crc([0x28, 9, 9, 9, 9, 9, 9, 0]);
        bad[7] ^= 1;
        let mut bus = Slots {
            roms: vec![good, bad],
            ..Slots::default()
        };
        let mut out = [Rom::default(); 4];
        let report = block_on(search_all(&mut bus, &mut out)).unwrap();
        assert_eq!(report.found, 1);
        assert_eq!(report.crc_errors, 1);
        assert_eq!(out[0].0, good);

        let roms: Vec<[u8; 8]> = (0..3u8)
            .map(|i| with_crc([0x28, i, 0, 0, 0, 0, 0, 0]))
            .collect();
        let mut bus = Slots {
            roms,
            ..Slots::default()
        };
        let mut small = [Rom::default(); 2];
        let report = block_on(search_all(&mut bus, &mut small)).unwrap();
        assert_eq!((report.found, report.overflow), (2, true));

        // Presence but every read slot high: nobody follows the search.
        let mut bus = Slots {
            roms: vec![good],
            forced: [true; 2].into_iter().collect(),
            ..Slots::default()
        };
        assert_eq!(
            block_on(search_all(&mut bus, &mut out)),
            Err(Error::NoResponse)
        );
    }

    #[test]
    fn select_writes_match_rom_then_the_rom_lsb_first() {
        let rom = Rom(with_crc([0x28, 0xA5, 0, 0, 0, 0, 0, 0]));
        let mut bus = Slots {
            roms: vec![rom.0],
            ..Slots::default()
        };
        block_on(select(&mut bus, Some(&rom))).unwrap();
        let bits: Vec<bool> = bus.command.clone();
        assert_eq!(bits.len(), 72);
        let byte = |n: usize| {
            bits[n * 8..n * 8 + 8]
                .iter()
                .enumerate()
                .fold(0u8, |b, (i, &x)| b | (u8::from(x) << i))
        };
        assert_eq!(byte(0), MATCH_ROM);
        for (i, b) in rom.0.iter().enumerate() {
            assert_eq!(byte(i + 1), *b);
        }
        block_on(select(&mut bus, None)).unwrap();
        let skip: Vec<bool> = (0..8).map(|i| SKIP_ROM & (1 << i) != 0).collect();
        assert_eq!(bus.command, skip);

        let mut empty = Slots::default();
        assert_eq!(block_on(select(&mut empty, None)), Err(Error::NoPresence));
    }

    #[test]
    fn read_rom_checks_the_crc() {
        let rom = with_crc([0x10, 1, 2, 3, 4, 5, 6, 0]);
        let bits = |r: [u8; 8]| -> VecDeque<bool> {
            (0..64).map(|i| r[i / 8] & (1 << (i % 8)) != 0).collect()
        };
        let mut bus = Slots {
            roms: vec![rom],
            forced: bits(rom),
            ..Slots::default()
        };
        assert_eq!(block_on(read_rom(&mut bus)), Ok(Rom(rom)));
        let mut broken = rom;
        broken[2] ^= 4;
        bus.forced = bits(broken);
        assert_eq!(block_on(read_rom(&mut bus)), Err(Error::Crc));
        bus.forced = bits([0xFF; 8]);
        assert_eq!(block_on(read_rom(&mut bus)), Err(Error::NoResponse));
        bus.forced = bits([0; 8]);
        assert_eq!(block_on(read_rom(&mut bus)), Err(Error::InvalidData));
    }

    // --- The bit-bang master against a scripted open-drain pin. ---

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ev {
        Low,
        Release,
        Sample(bool),
        Us(u32),
    }

    #[derive(Default)]
    struct Wire {
        /// Levels the samples return (high when empty).
        levels: VecDeque<bool>,
        log: Vec<Ev>,
        fails: bool,
    }

    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Wire>>);
    struct Pin(Shared);
    struct Delay(Shared);

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct PinFault;

    impl embedded_hal::digital::Error for PinFault {
        fn kind(&self) -> embedded_hal::digital::ErrorKind {
            embedded_hal::digital::ErrorKind::Other
        }
    }

    impl ErrorType for Pin {
        type Error = PinFault;
    }

    impl OutputPin for Pin {
        fn set_low(&mut self) -> Result<(), PinFault> {
            let mut w = self.0 .0.borrow_mut();
            if w.fails {
                return Err(PinFault);
            }
            w.log.push(Ev::Low);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), PinFault> {
            let mut w = self.0 .0.borrow_mut();
            if w.fails {
                return Err(PinFault);
            }
            w.log.push(Ev::Release);
            Ok(())
        }
    }

    impl InputPin for Pin {
        fn is_high(&mut self) -> Result<bool, PinFault> {
            let mut w = self.0 .0.borrow_mut();
            if w.fails {
                return Err(PinFault);
            }
            let level = w.levels.pop_front().unwrap_or(true);
            w.log.push(Ev::Sample(level));
            Ok(level)
        }
        fn is_low(&mut self) -> Result<bool, PinFault> {
            self.is_high().map(|h| !h)
        }
    }

    impl DelayNs for Delay {
        fn delay_ns(&mut self, ns: u32) {
            self.0 .0.borrow_mut().log.push(Ev::Us(ns / 1_000));
        }
    }

    fn master(levels: &[bool]) -> (BitBang<Pin, Delay>, Shared) {
        let shared = Shared::default();
        shared.0.borrow_mut().levels = levels.iter().copied().collect();
        (
            BitBang::new(Pin(shared.clone()), Delay(shared.clone())),
            shared,
        )
    }

    #[test]
    fn reset_detects_presence_with_the_standard_timings() {
        // Idle high, presence low at 70 µs, high again at the end.
        let (mut m, shared) = master(&[true, false, true]);
        assert_eq!(block_on(m.reset()), Ok(true));
        assert_eq!(
            shared.0.borrow().log,
            [
                Ev::Release,
                Ev::Us(10),
                Ev::Sample(true),
                Ev::Low,
                Ev::Us(480),
                Ev::Release,
                Ev::Us(70),
                Ev::Sample(false),
                Ev::Us(410),
                Ev::Sample(true),
            ]
        );
        let (mut m, _) = master(&[true, true, true]);
        assert_eq!(block_on(m.reset()), Ok(false), "no presence pulse");
    }

    #[test]
    fn a_line_stuck_low_is_reported_as_shorted() {
        let (mut m, shared) = master(&[false]);
        assert_eq!(block_on(m.reset()), Err(BitBangError::Shorted));
        assert!(!shared.0.borrow().log.contains(&Ev::Low), "not driven");
        let (mut m, _) = master(&[true, false, false]);
        assert_eq!(block_on(m.reset()), Err(BitBangError::Shorted));
    }

    #[test]
    fn write_slots_hold_the_line_for_the_bit() {
        let (mut m, shared) = master(&[]);
        block_on(m.write_bit(true)).unwrap();
        block_on(m.write_bit(false)).unwrap();
        assert_eq!(
            shared.0.borrow().log,
            [
                Ev::Low,
                Ev::Us(6),
                Ev::Release,
                Ev::Us(64),
                Ev::Low,
                Ev::Us(60),
                Ev::Release,
                Ev::Us(10),
            ]
        );
    }

    #[test]
    fn read_slots_sample_15_us_after_the_start_and_bytes_go_lsb_first() {
        let (mut m, shared) = master(&[false]);
        assert_eq!(block_on(m.read_bit()), Ok(false));
        assert_eq!(
            shared.0.borrow().log,
            [
                Ev::Low,
                Ev::Us(6),
                Ev::Release,
                Ev::Us(9),
                Ev::Sample(false),
                Ev::Us(55)
            ]
        );
        // 0xB4 = 1011_0100, sent LSB first: 0 0 1 0 1 1 0 1.
        let (mut m, _) = master(&[false, false, true, false, true, true, false, true]);
        assert_eq!(block_on(m.read_byte()), Ok(0xB4));

        let (mut m, shared) = master(&[]);
        block_on(m.write_byte(0xCC)).unwrap();
        let lows: Vec<u32> = shared
            .0
            .borrow()
            .log
            .windows(2)
            .filter_map(|w| match w {
                [Ev::Low, Ev::Us(t)] => Some(*t),
                _ => None,
            })
            .collect();
        // 0xCC = 1100_1100, LSB first: 0 0 1 1 0 0 1 1.
        assert_eq!(lows, [60, 60, 6, 6, 60, 60, 6, 6]);
    }

    #[test]
    fn pin_errors_are_reported() {
        let (mut m, shared) = master(&[]);
        shared.0.borrow_mut().fails = true;
        assert_eq!(block_on(m.reset()), Err(BitBangError::Pin(PinFault)));
        assert_eq!(block_on(m.read_bit()), Err(BitBangError::Pin(PinFault)));
        assert_eq!(
            block_on(m.write_bit(true)),
            Err(BitBangError::Pin(PinFault))
        );
        assert_eq!(
            block_on(reset(&mut m)),
            Err(Error::Bus(BitBangError::Pin(PinFault)))
        );
        let (_pin, _delay) = m.release();
    }
}
