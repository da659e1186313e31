//! The time driver for embassy-time of Hearth's host builds (the simulator, `hearth sim
//! --fleet`, and the host tests): the monotonic clock of the host, and a timer queue that stays
//! cheap with thousands of tasks. Linking this crate is installing it.
//!
//! embassy-time's own `std` driver reads its clock under the same lock its alarm thread holds
//! while it walks every task's timer (one list, O(tasks) per alarm). With 1,000 simulated
//! devices that thread and the lock took most of a core (perf: futex wakes and
//! `Queue::next_expiration`). Here the clock is lock-free and the timers are a binary heap:
//! O(log n) per timer, one entry kept per waker (its earliest time, as embassy's queues keep),
//! so a future polled again and again with the same deadline does not pile up entries.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard, Once, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// A waker's identity: its data pointer and vtable (one per task for embassy's tasks).
type Key = (usize, usize);

fn key(waker: &Waker) -> Key {
    (waker.data() as usize, waker.vtable() as *const _ as usize)
}

#[derive(Default)]
struct Queue {
    /// Deadlines, earliest first; an entry whose key now has another deadline is stale.
    heap: BinaryHeap<Reverse<(u64, Key)>>,
    /// Each waiting waker with its earliest deadline.
    wakers: HashMap<Key, (u64, Waker)>,
    /// When the alarm thread wakes unless told (0 while it is awake and will look anyway).
    sleeping_until: u64,
}

/// The driver.
pub struct SimTime {
    zero: OnceLock<Instant>,
    queue: Mutex<Option<Queue>>,
    alarm: Condvar,
    started: Once,
}

impl SimTime {
    fn lock(&self) -> MutexGuard<'_, Option<Queue>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_us(&self) -> u64 {
        self.zero.get_or_init(Instant::now).elapsed().as_micros() as u64
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SimTime = SimTime {
    zero: OnceLock::new(),
    queue: Mutex::new(None),
    alarm: Condvar::new(),
    started: Once::new(),
});

impl embassy_time_driver::Driver for SimTime {
    fn now(&self) -> u64 {
        self.now_us()
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        self.started.call_once(|| {
            std::thread::Builder::new()
                .name("timers".into())
                .spawn(|| alarms(&DRIVER))
                .expect("the simulator's timer thread starts");
        });
        if at <= self.now_us() {
            waker.wake_by_ref();
            return;
        }
        let mut guard = self.lock();
        let q = guard.get_or_insert_with(Queue::default);
        let k = key(waker);
        match q.wakers.get_mut(&k) {
            // Woken no later than asked: it registers again when woken, if it still waits.
            Some((t, w)) if *t <= at => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                return;
            }
            Some(entry) => *entry = (at, waker.clone()),
            None => {
                q.wakers.insert(k, (at, waker.clone()));
            }
        }
        q.heap.push(Reverse((at, k)));
        if at < q.sleeping_until {
            self.alarm.notify_one();
        }
    }
}

/// The alarm thread: wake every waker whose deadline passed, sleep until the next.
fn alarms(d: &'static SimTime) {
    let mut due = Vec::new();
    loop {
        {
            let mut guard = d.lock();
            loop {
                let now = d.now_us();
                let q = guard.get_or_insert_with(Queue::default);
                while let Some(&Reverse((at, k))) = q.heap.peek() {
                    if at > now {
                        break;
                    }
                    q.heap.pop();
                    if q.wakers.get(&k).is_some_and(|(t, _)| *t == at) {
                        if let Some((_, w)) = q.wakers.remove(&k) {
                            due.push(w);
                        }
                    }
                }
                if !due.is_empty() {
                    break;
                }
                let next = q.heap.peek().map_or(u64::MAX, |r| r.0 .0);
                q.sleeping_until = next;
                let wait = match next {
                    u64::MAX => Duration::from_secs(3600),
                    t => Duration::from_micros(t - now),
                };
                guard = d
                    .alarm
                    .wait_timeout(guard, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                if let Some(q) = guard.as_mut() {
                    q.sleeping_until = 0;
                }
            }
        }
        for w in due.drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use embassy_time::{Duration, Instant, Timer};

    #[test]
    fn timers_end_at_their_time_in_order() {
        let start = Instant::now();
        let order = std::sync::Mutex::new(Vec::new());
        embassy_futures::block_on(embassy_futures::join::join3(
            async {
                Timer::after(Duration::from_millis(60)).await;
                order.lock().unwrap().push(3);
            },
            async {
                Timer::after(Duration::from_millis(20)).await;
                order.lock().unwrap().push(1);
            },
            async {
                Timer::after(Duration::from_millis(40)).await;
                order.lock().unwrap().push(2);
            },
        ));
        let took = start.elapsed();
        assert_eq!(*order.lock().unwrap(), [1, 2, 3]);
        assert!(took >= Duration::from_millis(60), "{took:?}");
    }

    #[test]
    fn a_task_woken_by_its_timer_under_an_executor() {
        // A real executor parks between polls: only the alarm thread can wake it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let executor = Box::leak(Box::new(embassy_executor::Executor::new()));
            executor.run(move |spawner| {
                let task = async move {
                    let t = Instant::now();
                    Timer::after(Duration::from_millis(30)).await;
                    let _ = tx.send(t.elapsed());
                };
                let storage = Box::leak(Box::new(embassy_executor::raw::TaskStorage::new()));
                spawner.spawn(storage.spawn(|| task).expect("a new task storage is free"));
            })
        });
        let took = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the timer woke the task");
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
