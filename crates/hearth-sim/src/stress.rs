//! `hearth sim ctl DIR storage-stress on|off`: the simulated device keeps writing its store, so
//! a test can cut the power at random moments and check that no acknowledged write is lost.
//!
//! This is the simulator's own task beside the device, not part of the runtime: the firmware
//! carries no code for it. Each boot reads the last record (`stress-boot N ok`, or
//! `stress-boot corrupt: …`) and, while stress is on, writes record after record, each
//! acknowledged on the console (`stress-ack N`) once the store has read it back.

use std::sync::atomic::{AtomicBool, Ordering};

use embedded_storage_async::nor_flash::NorFlash;
use hearth_platform::store::SharedStore;
use hearth_storage::keys;

/// The record for sequence number `n`: the number and a check word, so a torn or stale value
/// never passes for a record.
fn record(n: u64) -> [u8; 32] {
    let mut rec = [0u8; 32];
    rec[..8].copy_from_slice(&n.to_le_bytes());
    let check = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x4845_4152_5448_2121;
    rec[8..16].copy_from_slice(&check.to_le_bytes());
    for (i, b) in rec[16..].iter_mut().enumerate() {
        *b = (n as u8).wrapping_add(i as u8);
    }
    rec
}

/// The sequence number of a record [`record`] wrote; `None` for anything else.
fn parse(bytes: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    (bytes == record(n).as_slice()).then_some(n)
}

async fn read<F: NorFlash>(store: &SharedStore<F>) -> Result<Option<u64>, String> {
    let mut buf = [0u8; 64];
    match store.lock().await.get_bytes(keys::STRESS, &mut buf).await {
        Ok(Some(n)) => parse(&buf[..n])
            .map(Some)
            .ok_or_else(|| String::from("record does not verify")),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("{e}")),
    }
}

/// Report the record found at boot, then write while `on` says so; never returns.
pub async fn run<F: NorFlash>(
    store: &SharedStore<F>,
    on: &AtomicBool,
    changed: &crate::latch::Latch<()>,
    console: fn(&str),
) -> ! {
    let mut n = match read(store).await {
        Ok(Some(n)) => {
            console(&format!("stress-boot {n} ok"));
            n
        }
        Ok(None) => 0,
        Err(e) => {
            console(&format!("stress-boot corrupt: {e}"));
            0
        }
    };
    loop {
        if !on.load(Ordering::SeqCst) {
            // Idle until the board switches stress on (a thousand idle devices of a fleet
            // must not spin).
            changed.wait().await;
            continue;
        }
        n += 1;
        let result = store.lock().await.set_bytes(keys::STRESS, &record(n)).await;
        match result {
            Ok(()) => console(&format!("stress-ack {n}")),
            Err(e) => console(&format!("stress-write failed: {e}")),
        }
        // The host flash never waits: give the device's loop its turn between writes.
        embassy_futures::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_verify_and_nothing_else_does() {
        for n in [0, 1, 255, 256, u64::MAX] {
            assert_eq!(parse(&record(n)), Some(n));
        }
        let mut torn = record(7);
        torn[20] ^= 1;
        assert_eq!(parse(&torn), None);
        assert_eq!(parse(&record(7)[..31]), None);
        assert_eq!(parse(&[]), None);
    }
}
