//! The real OOK decoder of `hearth-drivers` reading the simulated receiver: exact decodes of
//! both encoders, ±20 % timing jitter, noise between frames and heavy interference, truncated
//! transmissions, an absent module, and one press per button press.

mod common;

use common::Rng;
use hearth_drivers::ook::{PulseSource, Receiver};
use hearth_simchips::{Encoder, OokFault, OokModel, SimClock, Transmitter};

/// A receiver module, the decoder and the clock.
struct Bench {
    clock: SimClock,
    model: OokModel,
    rx: hearth_simchips::OokRx,
    decoder: Receiver,
}

impl Bench {
    fn new(seed: u64) -> Self {
        let clock = SimClock::manual();
        let model = OokModel::new(clock.clone(), seed);
        let rx = model.receiver();
        Bench {
            clock,
            model,
            rx,
            decoder: Receiver::new(),
        }
    }

    /// Lets time run to `until_us` in 20 ms steps (the appliance's poll period), decoding.
    fn run_until(&mut self, until_us: u64) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = self.clock.now_us();
        while t < until_us {
            t = (t + 20_000).min(until_us);
            self.clock.advance_to_us(t);
            while let Ok(Some(p)) = self.rx.try_pulse() {
                if let Some(code) = self.decoder.feed(p) {
                    out.push(code.to_string());
                }
            }
        }
        out
    }

    /// Presses and lets the transmission and 300 ms of idle line pass.
    fn press(
        &mut self,
        encoder: Encoder,
        address: u32,
        button: u8,
        tx: Transmitter,
    ) -> Vec<String> {
        let end = self.model.press_with(encoder, address, button, tx);
        self.run_until(end + 300_000)
    }
}

fn exact(encoder: Encoder) -> Transmitter {
    Transmitter {
        jitter: 0.0,
        ..Transmitter::typical(encoder)
    }
}

#[test]
fn exact_trains_of_both_encoders_decode_to_one_press_each() {
    let mut b = Bench::new(1);
    b.run_until(1_000_000);
    assert_eq!(
        b.press(Encoder::Ev1527, 0xA1B2C, 5, exact(Encoder::Ev1527)),
        ["EV1527:10597061"]
    );
    let s = b.decoder.stats();
    // 6 frames sent, the last one closed by the idle line.
    assert_eq!((s.good, s.bad, s.presses), (6, 0, 1));
    let ht = Encoder::Ht6p20.payload(0x2A9955, 2);
    assert_eq!(
        b.press(Encoder::Ht6p20, 0x2A9955, 2, exact(Encoder::Ht6p20)),
        [ht.as_str()]
    );
    let s = b.decoder.stats();
    // 6 frames sent, the first pilot merged with the idle line.
    assert_eq!((s.good, s.bad, s.presses), (12, 0, 2));
}

#[test]
fn a_press_right_after_start_is_not_dropped() {
    let mut b = Bench::new(2);
    let got = b.press(Encoder::Ev1527, 0x00001, 1, exact(Encoder::Ev1527));
    assert_eq!(got, ["EV1527:17"]);
}

#[test]
fn jitter_of_20_percent_decodes_every_press_exactly() {
    let mut b = Bench::new(3);
    let mut rng = Rng::new(77);
    b.run_until(500_000);
    for i in 0..60 {
        let encoder = if i % 2 == 0 {
            Encoder::Ev1527
        } else {
            Encoder::Ht6p20
        };
        let address = rng.next_u64() as u32;
        let button = (rng.next_u64() & 0xF) as u8;
        let unit = match encoder {
            Encoder::Ev1527 => 280 + (rng.next_u64() % 150) as u32,
            Encoder::Ht6p20 => 330 + (rng.next_u64() % 150) as u32,
        };
        let tx = Transmitter {
            unit_us: unit,
            jitter: 0.2,
            repeats: 8,
            ..Transmitter::typical(encoder)
        };
        let got = b.press(encoder, address, button, tx);
        assert_eq!(
            got,
            [encoder.payload(address, button)],
            "press {i}, unit {unit}"
        );
    }
    assert_eq!(b.decoder.stats().presses, 60);
}

#[test]
fn noise_between_frames_is_rejected_and_frames_still_decode() {
    let mut b = Bench::new(4);
    b.run_until(2_000_000);
    for (i, encoder) in [Encoder::Ev1527, Encoder::Ht6p20].into_iter().enumerate() {
        let tx = Transmitter {
            frame_gap_us: 60_000,
            jitter: 0.1,
            repeats: 6,
            ..Transmitter::typical(encoder)
        };
        // Frames 60 ms apart with noise between them are still one press.
        let got = b.press(encoder, 0x5A5A5 + i as u32, 3, tx);
        assert_eq!(got, [encoder.payload(0x5A5A5 + i as u32, 3)]);
    }
    // A minute of quiet line with its blips: nothing decoded.
    let before = b.decoder.stats();
    b.run_until(b.clock.now_us() + 60_000_000);
    let after = b.decoder.stats();
    assert_eq!(after.good, before.good);
    assert!(after.start > before.start, "the idle blips open frames");
}

#[test]
fn heavy_noise_never_yields_a_wrong_code() {
    let mut b = Bench::new(5);
    b.model.set_fault(OokFault::Noise);
    assert!(
        b.run_until(120_000_000).is_empty(),
        "2 minutes of interference"
    );
    let noise = b.decoder.stats();
    assert!(noise.start + noise.restart > 100, "{noise:?}");
    let mut decoded = 0;
    for i in 0..20u32 {
        let tx = Transmitter {
            repeats: 10,
            ..Transmitter::typical(Encoder::Ev1527)
        };
        let got = b.press(Encoder::Ev1527, 0x1000 + i, 9, tx);
        for code in &got {
            assert_eq!(code, &Encoder::Ev1527.payload(0x1000 + i, 9));
        }
        decoded += got.len();
    }
    // Glitches cost frames, but a 10-frame press usually still gets through.
    assert!(decoded >= 10, "{decoded} of 20 presses");
}

#[test]
fn truncated_frames_are_rejected() {
    let mut b = Bench::new(6);
    b.run_until(1_000_000);
    // One EV1527 frame and the start of a second: the first is closed by the second's sync.
    let tx = Transmitter {
        repeats: 2,
        truncate_levels: Some(50 + 20),
        ..exact(Encoder::Ev1527)
    };
    assert_eq!(
        b.press(Encoder::Ev1527, 0xFFFFF, 0xF, tx),
        ["EV1527:16777215"]
    );
    let s = b.decoder.stats();
    assert_eq!((s.good, s.bad), (1, 0));
    assert!(s.nok >= 1, "the cut frame: {s:?}");
    // HT6P20 frames cut in the middle, or just before their last level.
    for keep in [30, 2 + 28 * 2 - 1] {
        let tx = Transmitter {
            repeats: 1,
            truncate_levels: Some(keep),
            ..exact(Encoder::Ht6p20)
        };
        assert!(b.press(Encoder::Ht6p20, 0x3FFF, 1, tx).is_empty(), "{keep}");
    }
    assert_eq!(b.decoder.stats().good, 1);
}

#[test]
fn absent_receiver_delivers_nothing_and_recovers() {
    let mut b = Bench::new(7);
    b.model.set_fault(OokFault::Absent);
    assert!(b
        .press(Encoder::Ev1527, 1, 1, exact(Encoder::Ev1527))
        .is_empty());
    b.run_until(10_000_000);
    assert_eq!(b.decoder.now_us(), 0, "not a single edge");
    b.model.set_fault(OokFault::None);
    assert_eq!(
        b.press(Encoder::Ev1527, 1, 1, exact(Encoder::Ev1527)),
        ["EV1527:17"]
    );
    // The decoder's clock follows the line (up to the level in progress).
    assert!(b.decoder.now_us() > 10_000_000);
}

#[test]
fn holding_one_button_is_one_press_and_another_button_is_a_new_one() {
    let mut b = Bench::new(8);
    b.run_until(1_000_000);
    let hold = Transmitter {
        repeats: 60, // ~2.7 s held
        ..Transmitter::typical(Encoder::Ev1527)
    };
    b.model.press_with(Encoder::Ev1527, 0x777, 1, hold);
    let end = b.model.press_with(
        Encoder::Ev1527,
        0x777,
        2,
        Transmitter::typical(Encoder::Ev1527),
    );
    let got = b.run_until(end + 300_000);
    assert_eq!(
        got,
        [
            Encoder::Ev1527.payload(0x777, 1),
            Encoder::Ev1527.payload(0x777, 2)
        ]
    );
}
