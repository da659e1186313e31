//! The `weather` appliance: an HDC1080 (temperature, humidity) and a BME280 (pressure) on I2C,
//! published as `Temperature`, `Humidity`, `Pressure` and a `Malfunction` bitmap, with the
//! reference's timings. Unlike the reference, a chip that failed to initialise is retried on
//! every read cycle, so a re-seated sensor recovers without a reboot.

use alloc::format;
use alloc::string::String;
use hearth_core::decimal::Decimals;

use embedded_hal_async::delay::DelayNs;
use embedded_hal_async::i2c::I2c;
use hearth_core::discovery::Entity;
use hearth_core::publish::{Fixed, PubId, PubSpec, Publications};
use hearth_core::{Millis, MINUTE, SECOND};
use hearth_drivers::bme280::{Address, Bme280};
use hearth_drivers::hdc1080::Hdc1080;

/// Malfunction bit: the HDC1080 did not initialise.
pub const MF_HDC_INIT: u32 = 1;
/// Malfunction bit: the BME280 did not initialise.
pub const MF_BME_INIT: u32 = 2;
/// Malfunction bit: the last humidity read failed.
pub const MF_HUMIDITY: u32 = 4;
/// Malfunction bit: the last temperature read failed.
pub const MF_TEMPERATURE: u32 = 8;
/// Malfunction bit: the last pressure read failed.
pub const MF_PRESSURE: u32 = 16;

const FIRST_READ_AFTER: Millis = 15 * SECOND;
const READ_EVERY: Millis = 5 * SECOND;
const EVAL_EVERY: Millis = MINUTE;
const FORCE_EVERY: Millis = 30 * MINUTE;

#[derive(Debug, Clone, Copy, Default)]
struct Ids {
    temperature: Option<PubId>,
    humidity: Option<PubId>,
    pressure: Option<PubId>,
    malfunction: Option<PubId>,
}

/// The weather station over two I2C handles on the same bus (one per chip) and a delay.
pub struct Weather<H, B, D> {
    hdc: Hdc1080<H>,
    bme: Bme280<B>,
    delay: D,
    hdc_ok: bool,
    bme_ok: bool,
    temperature: Option<f32>,
    humidity: Option<f32>,
    pressure_hpa: Option<f32>,
    malfunction: u32,
    next_read: Millis,
    ids: Ids,
}

impl<H: I2c, B: I2c, D: DelayNs> Weather<H, B, D> {
    /// A station whose first read happens 15 s after `now`.
    pub fn new(hdc_bus: H, bme_bus: B, delay: D, now: Millis) -> Self {
        Self {
            hdc: Hdc1080::new(hdc_bus),
            bme: Bme280::new(bme_bus, Address::Primary),
            delay,
            hdc_ok: false,
            bme_ok: false,
            temperature: None,
            humidity: None,
            pressure_hpa: None,
            malfunction: 0,
            next_read: now + FIRST_READ_AFTER,
            ids: Ids::default(),
        }
    }

    /// The malfunction bitmap.
    pub fn malfunction(&self) -> u32 {
        self.malfunction
    }

    async fn ensure_init(&mut self) {
        if !self.hdc_ok {
            self.hdc_ok = self.hdc.init(&mut self.delay).await.is_ok();
            set_bit(&mut self.malfunction, MF_HDC_INIT, !self.hdc_ok);
        }
        if !self.bme_ok {
            self.bme_ok = self.bme.init(&mut self.delay).await.is_ok();
            set_bit(&mut self.malfunction, MF_BME_INIT, !self.bme_ok);
        }
    }

    async fn read(&mut self) {
        self.ensure_init().await;
        if self.hdc_ok {
            match self.hdc.read_humidity(&mut self.delay).await {
                Ok(h) => {
                    self.humidity = Some(h);
                    set_bit(&mut self.malfunction, MF_HUMIDITY, false);
                }
                Err(_) => set_bit(&mut self.malfunction, MF_HUMIDITY, true),
            }
            match self.hdc.read_temperature(&mut self.delay).await {
                Ok(t) => {
                    self.temperature = Some(t);
                    set_bit(&mut self.malfunction, MF_TEMPERATURE, false);
                }
                Err(_) => set_bit(&mut self.malfunction, MF_TEMPERATURE, true),
            }
            // A chip that stops answering both reads is probably gone: re-initialise next time.
            if self.malfunction & (MF_HUMIDITY | MF_TEMPERATURE) == MF_HUMIDITY | MF_TEMPERATURE {
                self.hdc_ok = false;
            }
        }
        if self.bme_ok {
            match self.bme.measure(&mut self.delay).await {
                Ok(m) => {
                    self.pressure_hpa = Some(m.pressure_pa / 100.0);
                    set_bit(&mut self.malfunction, MF_PRESSURE, false);
                }
                Err(_) => {
                    self.pressure_hpa = None;
                    self.bme_ok = false;
                    set_bit(&mut self.malfunction, MF_PRESSURE, true);
                }
            }
        }
    }
}

fn set_bit(map: &mut u32, bit: u32, on: bool) {
    if on {
        *map |= bit;
    } else {
        *map &= !bit;
    }
}

impl<H: I2c, B: I2c, D: DelayNs> hearth_profile::Profile for Weather<H, B, D> {
    fn name(&self) -> &'static str {
        "weather"
    }

    fn register(&mut self, pubs: &mut Publications, now: Millis) {
        // Values are retained, so Home Assistant shows them at once after a restart.
        let spec = |item| PubSpec::periodic(item, EVAL_EVERY, FORCE_EVERY).retained();
        self.ids = Ids {
            temperature: Some(pubs.register(spec("Temperature"), now)),
            humidity: Some(pubs.register(spec("Humidity"), now)),
            pressure: Some(pubs.register(spec("Pressure"), now)),
            malfunction: Some(pubs.register(spec("Malfunction"), now)),
        };
    }

    fn next_work(&self) -> Millis {
        self.next_read
    }

    fn entities(&self) -> alloc::vec::Vec<Entity> {
        let m = Some("measurement");
        alloc::vec![
            Entity::sensor(
                "Temperature",
                "Temperature",
                Some("temperature"),
                Some("°C"),
                m
            ),
            Entity::sensor("Humidity", "Humidity", Some("humidity"), Some("%"), m),
            Entity::sensor(
                "Pressure",
                "Pressure",
                Some("atmospheric_pressure"),
                Some("hPa"),
                m
            ),
            Entity::diagnostic("Malfunction", "Malfunction"),
        ]
    }

    async fn work(&mut self, now: Millis, pubs: &mut Publications) {
        if now < self.next_read {
            return;
        }
        self.next_read = now + READ_EVERY;
        let before = (
            self.temperature.is_some(),
            self.humidity.is_some(),
            self.pressure_hpa.is_some(),
            self.malfunction,
        );
        self.read().await;
        // A value that just appeared or a changed malfunction map is published now rather than
        // at the next evaluation period (the reference waited up to a minute).
        let ids = self.ids;
        let after = (
            self.temperature.is_some(),
            self.humidity.is_some(),
            self.pressure_hpa.is_some(),
            self.malfunction,
        );
        for (was, is, id) in [
            (before.0, after.0, ids.temperature),
            (before.1, after.1, ids.humidity),
            (before.2, after.2, ids.pressure),
        ] {
            if is && !was {
                if let Some(id) = id {
                    pubs.expedite(id, now);
                }
            }
        }
        if before.3 != after.3 {
            if let Some(id) = ids.malfunction {
                pubs.expedite(id, now);
            }
        }
    }

    fn evaluate(&mut self, id: PubId, _now: Millis) -> Option<String> {
        let ids = self.ids;
        if Some(id) == ids.temperature {
            self.temperature.map(|t| format!("{}", Fixed(t, 1)))
        } else if Some(id) == ids.humidity {
            self.humidity.map(|h| format!("{}", Decimals(h, 1)))
        } else if Some(id) == ids.pressure {
            self.pressure_hpa.map(|p| format!("{}", Decimals(p, 1)))
        } else if Some(id) == ids.malfunction {
            Some(format!("{}", self.malfunction))
        } else {
            None
        }
    }
}
