//! The device's store, shared between the runtime and the tasks beside it (the ESP-NOW
//! central persists peer counters while the MQTT loop runs). An async mutex: a task waiting
//! for the store yields instead of failing, and no borrow is ever held across a yield by
//! accident.

use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use embedded_storage_async::nor_flash::NorFlash;
use hearth_storage::KvStore;

/// The store behind an async mutex, for tasks of one executor.
pub type SharedStore<F> = Mutex<NoopRawMutex, KvStore<F>>;

/// Share `store` between the runtime and its tasks.
pub fn shared<F: NorFlash>(store: KvStore<F>) -> SharedStore<F> {
    Mutex::new(store)
}
