//! `scale_sensor`, the battery load-cell scale (reference ref-profiles §6): an HX711 on two GPIOs,
//! one weighing per wake, one ESP-NOW report, then deep sleep.
//!
//! Per wake: power the HX711 up, wait for it to settle, take samples until the outlier filter
//! accepts a weight ([`super::scale_filter`]: 12 samples, at least 8 within 0.050 kg of their
//! mean, at most 3 retries), power it down, send `stat/<name>/Weight\n<kg>` (or
//! `stat/<name>/Malfunction\n<code>`), and sleep once the central **confirmed** it.
//!
//! Differences from the reference:
//! - The report is retried until confirmed (the reference sent once, unacknowledged, and lost
//!   the hourly reading to one lost packet, §13.12); the 5-minute safety net still ends a wake.
//! - Samples are taken at the chip's own 10 per second after its 400 ms settling time, not one
//!   per second after a 10 s warm-up: a wake lasts about 2 s instead of 22 s of battery.
//! - The weight goes on the air with two decimals (the filter's tolerance is 0.05 kg); the
//!   reference rounded to 0.1 kg and the manager re-printed three.
//! - The topic carries the scale's own `mqttname` instead of the literal `LPScale`, and the sleep
//!   time is the `sleep` key (default 3600 s, the reference's hour).
//! - Waiting for the HX711 is an awaited poll, never a busy loop.

use alloc::format;
use alloc::string::String;

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal_async::delay::DelayNs;
use hearth_config::Config;
use hearth_core::publish::Fixed;
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_drivers::hx711::{Hx711, SETTLING_TIME_MS};
use hearth_netnow::link::Entropy;
use hearth_netnow::peripheral::PeripheralEvent;

use crate::scale_filter::{calibrate, Outcome, ScaleFilter};
use hearth_profile::link::{AppAction, LinkCtl, PeripheralApp};
use hearth_profile::SettingError;

/// Malfunction: the HX711 did not answer at power-up.
pub const MF_ABSENT: u32 = 1;
/// Malfunction: a read failed.
pub const MF_READ: u32 = 4;
/// Malfunction: the readings never settled (see the filter).
pub const MF_UNSTABLE: u32 = 8;

/// Default `sleep`, seconds.
pub const DEFAULT_SLEEP_S: u32 = 3600;
/// The wake ends after this long whatever happened (the reference's safety net).
pub const SAFETY_NET: Millis = 5 * MINUTE;
/// Start weighing this long after boot (at once: the radio pairs and the chip settles meanwhile).
const START_AFTER: Millis = 0;
/// How often the chip is asked whether a conversion is ready (it makes 10 per second).
const POLL_EVERY: Millis = 10;
/// Longest wait for one conversion.
const READ_TIMEOUT_MS: u32 = 500;

/// The scale's settings from `config.txt`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSettings {
    /// `calibration_a`: raw counts per kg (non-zero).
    pub a: f32,
    /// `calibration_b`: the negated raw zero offset.
    pub b: f32,
    /// `sleep`: deep sleep between wakes.
    pub sleep: Millis,
    /// `mqttname`: the name in the report's topic.
    pub name: String,
}

impl ScaleSettings {
    /// The settings of a validated config (`calibration_a`/`calibration_b` are required).
    pub fn from_config(config: &Config) -> Result<Self, SettingError> {
        let get = |k: &str| config.profile_settings.get(k).map(String::as_str);
        let float = |k: &'static str| -> Result<(f32, &str), SettingError> {
            let v = get(k).ok_or(SettingError::Missing {
                key: k,
                takes: Some("a number, from the calibration"),
            })?;
            let x = hearth_core::decimal::parse_f32(v)
                .filter(|x| x.is_finite())
                .ok_or_else(|| SettingError::invalid(k, v, "a number"))?;
            Ok((x, v))
        };
        let (a, written) = float("calibration_a")?;
        if a == 0.0 {
            return Err(SettingError::invalid(
                "calibration_a",
                written,
                "a number other than 0 (counts per kg)",
            ));
        }
        let (b, _) = float("calibration_b")?;
        let sleep_s = match get("sleep") {
            None => DEFAULT_SLEEP_S,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|s| (10..=86_400).contains(s))
                .ok_or_else(|| SettingError::invalid("sleep", v, "10..=86400 seconds"))?,
        };
        Ok(ScaleSettings {
            a,
            b,
            sleep: Millis::from(sleep_s) * SECOND,
            name: config.mqtt.name.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting to start (and for the chip to settle).
    Starting,
    Sampling,
    /// The report is queued (or waiting for the link to take it).
    Reporting(Reading),
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reading {
    Weight(f32),
    Malfunction(u32),
}

/// The scale appliance.
pub struct ScaleSensor<SCK, DOUT, D> {
    hx: Hx711<SCK, DOUT, D>,
    settings: ScaleSettings,
    filter: ScaleFilter,
    phase: Phase,
    boot: Millis,
    next: Millis,
    /// When the wait for the current conversion (or the power-up settling) began.
    waiting_since: Millis,
    /// Waiting for the first conversion after power-up (the longer limit; absent if it never
    /// comes).
    settling: bool,
}

impl<SCK: OutputPin, DOUT: InputPin<Error = SCK::Error>, D: DelayNs> ScaleSensor<SCK, DOUT, D> {
    /// A scale that starts weighing shortly after `now` (boot).
    pub fn new(hx: Hx711<SCK, DOUT, D>, settings: ScaleSettings, now: Millis) -> Self {
        ScaleSensor {
            hx,
            settings,
            filter: ScaleFilter::new(),
            phase: Phase::Starting,
            boot: now,
            next: now + START_AFTER,
            waiting_since: now,
            settling: true,
        }
    }

    fn payload(&self, r: Reading) -> String {
        match r {
            Reading::Weight(kg) => format!("stat/{}/Weight\n{}", self.settings.name, Fixed(kg, 2)),
            Reading::Malfunction(code) => {
                format!("stat/{}/Malfunction\n{code}", self.settings.name)
            }
        }
    }

    async fn finish(&mut self, r: Reading, now: Millis) {
        // A power-down failure does not matter for the reading; the next wake powers it up.
        let _ = self.hx.power_down().await;
        self.phase = Phase::Reporting(r);
        self.next = now;
    }
}

impl<SCK: OutputPin, DOUT: InputPin<Error = SCK::Error>, D: DelayNs> PeripheralApp
    for ScaleSensor<SCK, DOUT, D>
{
    fn next_work(&self) -> Millis {
        match self.phase {
            Phase::Done => self.boot + SAFETY_NET,
            _ => self.next.min(self.boot + SAFETY_NET),
        }
    }

    async fn work<R: Entropy>(&mut self, now: Millis, link: &mut LinkCtl<'_, R>) -> AppAction {
        if now >= self.boot + SAFETY_NET {
            let _ = self.hx.power_down().await;
            return AppAction::Sleep(self.settings.sleep);
        }
        match self.phase {
            Phase::Starting => {
                // A power-down pulse resets the chip (whatever state the last wake left), the
                // power-up starts its conversions after the settling time.
                let _ = self.hx.power_down().await;
                let _ = self.hx.power_up().await;
                self.phase = Phase::Sampling;
                self.waiting_since = now;
                self.settling = true;
                self.next = now + POLL_EVERY;
            }
            Phase::Sampling => {
                // Never wait inside `work`: the link runtime serves the radio between calls, so
                // the wakeup's confirm and the report's go on while the chip converts.
                let limit = if self.settling {
                    Millis::from(SETTLING_TIME_MS + READ_TIMEOUT_MS)
                } else {
                    Millis::from(READ_TIMEOUT_MS)
                };
                match self.hx.is_ready() {
                    Ok(false) if now.saturating_sub(self.waiting_since) < limit => {
                        self.next = now + POLL_EVERY;
                        return AppAction::Continue;
                    }
                    Ok(false) | Err(_) => {
                        let code = if self.settling { MF_ABSENT } else { MF_READ };
                        self.finish(Reading::Malfunction(code), now).await;
                        return AppAction::Continue;
                    }
                    Ok(true) => {}
                }
                let first = core::mem::replace(&mut self.settling, false);
                self.waiting_since = now;
                self.next = now + POLL_EVERY;
                if first {
                    // The first conversion after power-up is clocked out and thrown away, as the
                    // reference's driver did: its gain is whatever a stray SCK edge while
                    // settling selected (25 pulses select channel A, gain 128 for the next).
                    if self.hx.read_raw().await.is_err() {
                        self.finish(Reading::Malfunction(MF_READ), now).await;
                    }
                    return AppAction::Continue;
                }
                match self.hx.read_raw().await {
                    Ok(raw) => match calibrate(raw, self.settings.a, self.settings.b)
                        .map(|kg| self.filter.push(kg))
                    {
                        Some(Outcome::Weight(kg)) => self.finish(Reading::Weight(kg), now).await,
                        Some(Outcome::Malfunction(code)) => {
                            self.finish(Reading::Malfunction(code), now).await
                        }
                        Some(Outcome::NeedMore) => {}
                        None => self.finish(Reading::Malfunction(MF_READ), now).await,
                    },
                    Err(_) => self.finish(Reading::Malfunction(MF_READ), now).await,
                }
            }
            Phase::Reporting(r) => {
                self.next = now + SECOND;
                if link.send(self.payload(r).as_bytes()).is_ok() {
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
        AppAction::Continue
    }

    fn event<R: Entropy>(
        &mut self,
        event: &PeripheralEvent,
        _now: Millis,
        _link: &mut LinkCtl<'_, R>,
    ) -> AppAction {
        match (event, self.phase) {
            (PeripheralEvent::Confirmed, Phase::Done) => AppAction::Sleep(self.settings.sleep),
            _ => AppAction::Continue,
        }
    }
}
