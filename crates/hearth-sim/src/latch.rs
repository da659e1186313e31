//! A one-value latch between threads and tasks: `set` from anywhere (a control thread, the
//! fleet's watchdog), `wait` in a task, which ends with the value. It needs no executor of its
//! own, so the simulator's devices and their boards share it.

use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};

/// Holds at most one value until a task takes it.
#[derive(Debug, Default)]
pub struct Latch<T> {
    inner: Mutex<(Option<T>, Option<Waker>)>,
}

impl<T> Latch<T> {
    /// An empty latch.
    pub const fn new() -> Self {
        Self {
            inner: Mutex::new((None, None)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Option<T>, Option<Waker>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Put `value` in (replacing one not yet taken) and wake the waiting task.
    pub fn set(&self, value: T) {
        let waker = {
            let mut g = self.lock();
            g.0 = Some(value);
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Take the value, if one is in.
    pub fn take(&self) -> Option<T> {
        self.lock().0.take()
    }

    /// Wait for a value and take it.
    pub async fn wait(&self) -> T {
        poll_fn(|cx| {
            let mut g = self.lock();
            match g.0.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    g.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_set_from_another_thread_ends_the_wait() {
        let latch = std::sync::Arc::new(Latch::new());
        let l = latch.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            l.set(7u8);
        });
        assert_eq!(embassy_futures::block_on(latch.wait()), 7);
        t.join().unwrap();
        assert_eq!(latch.take(), None);
        latch.set(1);
        latch.set(2);
        assert_eq!(latch.take(), Some(2));
    }
}
