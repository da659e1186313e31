//! The physical conditions around the simulated board, shared by every chip model that senses
//! them.

use std::sync::{Arc, Mutex};

/// Temperature, humidity and pressure of the air at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    /// Degrees Celsius.
    pub temperature_c: f32,
    /// Percent relative humidity, 0..=100.
    pub humidity_rh: f32,
    /// Pascal (101 325 Pa = 1013.25 hPa).
    pub pressure_pa: f32,
}

impl Default for Conditions {
    /// A mild indoor day at sea level.
    fn default() -> Self {
        Conditions {
            temperature_c: 20.0,
            humidity_rh: 50.0,
            pressure_pa: 101_325.0,
        }
    }
}

/// A cloneable handle to the current [`Conditions`]: the weather writes it, the chips read it.
#[derive(Debug, Clone, Default)]
pub struct Ambient(Arc<Mutex<Conditions>>);

impl Ambient {
    /// A new, unshared ambient starting at `conditions`.
    pub fn new(conditions: Conditions) -> Self {
        Ambient(Arc::new(Mutex::new(conditions)))
    }

    /// The current conditions.
    pub fn get(&self) -> Conditions {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the current conditions.
    pub fn set(&self, conditions: Conditions) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = conditions;
    }
}
