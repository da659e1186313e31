//! The publication model of the reference (evaluation period, forced period, publish on change,
//! latest-value-per-topic queue kept while disconnected, `Refresh`), plus a bounded log queue
//! that does not lose lines the way the reference's single-slot `Log` did.
//!
//! The runtime asks [`Publications::due`] which item to evaluate, computes the value, hands it to
//! [`Publications::offer`], and drains [`Publications::pop`] while connected.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::Millis;

/// How one published item behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSpec {
    /// The item name, the last part of `stat/<name>/<item>`.
    pub item: String,
    /// Evaluate every this many ms (first evaluation immediately); 0 = only on demand.
    pub eval_every: Millis,
    /// Publish even if unchanged this long after the last publication request; 0 = never.
    pub force_every: Millis,
    /// Publish with the retain flag.
    pub retain: bool,
}

impl PubSpec {
    /// An item evaluated every `eval_every` and forced every `force_every`, not retained.
    pub fn periodic(item: &str, eval_every: Millis, force_every: Millis) -> Self {
        Self {
            item: item.into(),
            eval_every,
            force_every,
            retain: false,
        }
    }

    /// An item published only when the application says so.
    pub fn on_demand(item: &str) -> Self {
        Self::periodic(item, 0, 0)
    }

    /// The same item, published with the retain flag (it holds a value: a subscriber arriving
    /// later, such as a restarted Home Assistant, gets the last one at once).
    pub fn retained(self) -> Self {
        Self {
            retain: true,
            ..self
        }
    }
}

/// Handle of a registered item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PubId(usize);

/// A message ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Which item (None for a log line).
    pub id: Option<PubId>,
    /// The item name.
    pub item: String,
    /// The payload.
    pub payload: String,
    /// The retain flag.
    pub retain: bool,
}

#[derive(Debug, Clone)]
struct Slot {
    spec: PubSpec,
    last: Option<String>,
    next_eval: Option<Millis>,
    next_force: Option<Millis>,
    queued: bool,
}

/// The item name of the log.
pub const LOG_ITEM: &str = "Log";

/// All published items of a device and the queue of what still has to go out.
#[derive(Debug, Clone)]
pub struct Publications {
    slots: Vec<Slot>,
    queue: VecDeque<PubId>,
    log: VecDeque<String>,
    log_capacity: usize,
    log_dropped: u32,
}

impl Publications {
    /// An empty set keeping at most `log_capacity` unsent log lines.
    pub fn new(log_capacity: usize) -> Self {
        Self {
            slots: Vec::new(),
            queue: VecDeque::new(),
            log: VecDeque::new(),
            log_capacity: log_capacity.max(1),
            log_dropped: 0,
        }
    }

    /// Register an item; a periodic one is first evaluated at `now`.
    pub fn register(&mut self, spec: PubSpec, now: Millis) -> PubId {
        let next_eval = (spec.eval_every > 0).then_some(now);
        let next_force = (spec.force_every > 0).then_some(now + spec.force_every);
        self.slots.push(Slot {
            spec,
            last: None,
            next_eval,
            next_force,
            queued: false,
        });
        PubId(self.slots.len() - 1)
    }

    /// The item name of `id`.
    pub fn item(&self, id: PubId) -> &str {
        &self.slots[id.0].spec.item
    }

    /// The last stored value of `id`.
    pub fn last(&self, id: PubId) -> Option<&str> {
        self.slots[id.0].last.as_deref()
    }

    /// The earliest item whose evaluation (or forced evaluation) is due at `now`, with
    /// `true` when it is a forced one.
    pub fn due(&self, now: Millis) -> Option<(PubId, bool)> {
        // A forced evaluation also counts as the regular one, so it goes first.
        let earliest = |force: bool| {
            self.slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let when = if force { s.next_force } else { s.next_eval };
                    when.filter(|t| *t <= now).map(|t| (t, PubId(i)))
                })
                .min()
                .map(|(_, id)| (id, force))
        };
        earliest(true).or_else(|| earliest(false))
    }

    /// When the next evaluation falls due.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.slots
            .iter()
            .flat_map(|s| [s.next_eval, s.next_force])
            .flatten()
            .min()
    }

    /// The result of evaluating `id` at `now`. It is queued when forced or changed (`None` is
    /// stored but never sent; the next value after it counts as a change). Returns whether it
    /// was queued.
    pub fn offer(&mut self, id: PubId, now: Millis, value: Option<String>, force: bool) -> bool {
        let slot = &mut self.slots[id.0];
        if slot.spec.eval_every > 0 {
            slot.next_eval = Some(now + slot.spec.eval_every);
        }
        if force && slot.spec.force_every > 0 {
            slot.next_force = Some(now + slot.spec.force_every);
        }
        if !force && value == slot.last {
            return false;
        }
        let publish = value.is_some();
        slot.last = value;
        if publish {
            if slot.spec.force_every > 0 {
                slot.next_force = Some(now + slot.spec.force_every);
            }
            self.enqueue(id);
        }
        publish
    }

    /// Evaluate `id` at the next opportunity instead of waiting for its period (e.g. right
    /// after a sensor produced its first reading).
    pub fn expedite(&mut self, id: PubId, now: Millis) {
        let slot = &mut self.slots[id.0];
        if slot.next_eval.is_none_or(|t| t > now) {
            slot.next_eval = Some(now);
        }
    }

    /// Queue every item that has a value (the `Refresh` command).
    pub fn refresh(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].last.is_some() {
                self.enqueue(PubId(i));
            }
        }
    }

    /// Append a line to the log; when the queue is full the oldest line is dropped and counted.
    pub fn log(&mut self, line: impl Into<String>) {
        if self.log.len() >= self.log_capacity {
            self.log.pop_front();
            self.log_dropped = self.log_dropped.saturating_add(1);
        }
        self.log.push_back(line.into());
    }

    /// Is anything waiting to be sent?
    pub fn pending(&self) -> bool {
        !self.log.is_empty() || !self.queue.is_empty() || self.log_dropped > 0
    }

    /// Take the next message to send (log lines first, then items in request order, each item
    /// with its latest value).
    pub fn pop(&mut self) -> Option<Outgoing> {
        if self.log_dropped > 0 {
            let n = core::mem::take(&mut self.log_dropped);
            return Some(Outgoing {
                id: None,
                item: LOG_ITEM.into(),
                payload: alloc::format!("({n} log lines dropped while offline)"),
                retain: false,
            });
        }
        if let Some(line) = self.log.pop_front() {
            return Some(Outgoing {
                id: None,
                item: LOG_ITEM.into(),
                payload: line,
                retain: false,
            });
        }
        while let Some(id) = self.queue.pop_front() {
            let slot = &mut self.slots[id.0];
            slot.queued = false;
            if let Some(payload) = slot.last.clone() {
                return Some(Outgoing {
                    id: Some(id),
                    item: slot.spec.item.clone(),
                    payload,
                    retain: slot.spec.retain,
                });
            }
        }
        None
    }

    /// Sending `msg` failed: put it back at the head of its queue so nothing is lost.
    pub fn unpop(&mut self, msg: Outgoing) {
        match msg.id {
            Some(id) => {
                let slot = &mut self.slots[id.0];
                if !slot.queued {
                    slot.queued = true;
                    self.queue.push_front(id);
                }
            }
            None => self.log.push_front(msg.payload),
        }
    }

    fn enqueue(&mut self, id: PubId) {
        let slot = &mut self.slots[id.0];
        if !slot.queued {
            slot.queued = true;
            self.queue.push_back(id);
        }
    }
}

/// A reading written with a fixed number of decimals, never as a negative zero.
///
/// `format!("{:.2}", -0.001)` gives `-0.00`, which dashboards show as a negative weight or
/// temperature; `Fixed(-0.001, 2)` gives `0.00`. Non-finite values print as Rust prints them;
/// at most [`crate::decimal::MAX_PLACES`] decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed(pub f32, pub usize);

impl core::fmt::Display for Fixed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let places = u8::try_from(self.1).unwrap_or(u8::MAX);
        crate::decimal::write_decimals(f, self.0, places, false)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn fixed_never_prints_a_negative_zero() {
        use alloc::format;
        assert_eq!(format!("{}", Fixed(-0.001, 2)), "0.00");
        assert_eq!(format!("{}", Fixed(-0.004_9, 2)), "0.00");
        assert_eq!(format!("{}", Fixed(-0.006, 2)), "-0.01");
        assert_eq!(format!("{}", Fixed(-0.04, 1)), "0.0");
        assert_eq!(format!("{}", Fixed(-0.06, 1)), "-0.1");
        assert_eq!(format!("{}", Fixed(-0.0, 1)), "0.0");
        assert_eq!(format!("{}", Fixed(-0.0, 9)), "0.000000000");
        assert_eq!(format!("{}", Fixed(-0.4, 0)), "0");
        assert_eq!(format!("{}", Fixed(21.345, 1)), "21.3");
        assert_eq!(format!("{}", Fixed(-12.5, 2)), "-12.50");
        assert_eq!(format!("{}", Fixed(f32::NAN, 1)), "NaN");
    }
    use super::*;
    use alloc::string::ToString;

    fn drain(p: &mut Publications) -> Vec<(String, String)> {
        core::iter::from_fn(|| p.pop())
            .map(|o| (o.item, o.payload))
            .collect()
    }

    #[test]
    fn first_evaluation_is_immediate_then_periodic() {
        let mut p = Publications::new(8);
        let up = p.register(PubSpec::periodic("Uptime", 60_000, 1_800_000), 0);
        assert_eq!(p.due(0), Some((up, false)));
        assert!(p.offer(up, 0, Some("0".into()), false));
        assert_eq!(p.due(59_999), None);
        assert_eq!(p.next_deadline(), Some(60_000));
        assert_eq!(p.due(60_000), Some((up, false)));
    }

    #[test]
    fn unchanged_values_are_not_queued_but_forced_ones_are() {
        let mut p = Publications::new(8);
        let t = p.register(PubSpec::periodic("Temperature", 60_000, 1_800_000), 0);
        assert!(p.offer(t, 0, Some("21.0".into()), false));
        assert_eq!(drain(&mut p).len(), 1);
        assert!(!p.offer(t, 60_000, Some("21.0".into()), false));
        assert!(drain(&mut p).is_empty());
        // Forced 30 min after the last publication request.
        assert_eq!(p.due(1_800_000), Some((t, true)));
        assert!(p.offer(t, 1_800_000, Some("21.0".into()), true));
        assert_eq!(
            drain(&mut p),
            [("Temperature".to_string(), "21.0".to_string())]
        );
    }

    #[test]
    fn a_change_rearms_the_force_timer() {
        let mut p = Publications::new(8);
        let t = p.register(PubSpec::periodic("T", 60_000, 1_800_000), 0);
        p.offer(t, 0, Some("1".into()), false);
        p.offer(t, 600_000, Some("2".into()), false);
        assert_eq!(
            p.due(1_800_000).map(|d| d.1),
            Some(false),
            "only the eval is due"
        );
        assert!(p.due(2_399_999).is_some_and(|d| !d.1));
        let mut q = p.clone();
        // Evaluate without change until the force time.
        let mut now = 660_000;
        while now < 2_400_000 {
            q.offer(t, now, Some("2".into()), false);
            now += 60_000;
        }
        assert_eq!(q.due(2_400_000), Some((t, true)));
    }

    #[test]
    fn queue_keeps_only_the_latest_value_per_topic_while_offline() {
        let mut p = Publications::new(8);
        let t = p.register(PubSpec::periodic("T", 1_000, 0), 0);
        let h = p.register(PubSpec::periodic("H", 1_000, 0), 0);
        p.offer(t, 0, Some("1".into()), false);
        p.offer(h, 0, Some("50".into()), false);
        p.offer(t, 1_000, Some("2".into()), false);
        p.offer(t, 2_000, Some("3".into()), false);
        assert_eq!(
            drain(&mut p),
            [
                ("T".to_string(), "3".to_string()),
                ("H".to_string(), "50".to_string())
            ]
        );
    }

    #[test]
    fn none_is_stored_not_sent_and_next_value_is_a_change() {
        let mut p = Publications::new(8);
        let t = p.register(PubSpec::periodic("P", 1_000, 0), 0);
        p.offer(t, 0, Some("1000.0".into()), false);
        drain(&mut p);
        assert!(!p.offer(t, 1_000, None, false));
        assert!(drain(&mut p).is_empty());
        assert!(
            p.offer(t, 2_000, Some("1000.0".into()), false),
            "same text after None is new"
        );
    }

    #[test]
    fn expedite_brings_the_evaluation_forward() {
        let mut p = Publications::new(8);
        let t = p.register(PubSpec::periodic("T", 60_000, 0), 0);
        p.offer(t, 0, None, false);
        assert_eq!(p.due(15_000), None);
        p.expedite(t, 15_000);
        assert_eq!(p.due(15_000), Some((t, false)));
        assert!(p.offer(t, 15_000, Some("20.0".into()), false));
        assert_eq!(
            p.next_deadline(),
            Some(75_000),
            "the period restarts from the evaluation"
        );
    }

    #[test]
    fn refresh_requeues_every_item_with_a_value() {
        let mut p = Publications::new(8);
        let a = p.register(PubSpec::on_demand("A"), 0);
        let _b = p.register(PubSpec::on_demand("B"), 0);
        let c = p.register(PubSpec::on_demand("C"), 0);
        p.offer(a, 0, Some("x".into()), true);
        p.offer(c, 0, Some("z".into()), true);
        drain(&mut p);
        p.refresh();
        assert_eq!(
            drain(&mut p),
            [
                ("A".to_string(), "x".to_string()),
                ("C".to_string(), "z".to_string())
            ]
        );
    }

    #[test]
    fn failed_sends_are_put_back_in_order() {
        let mut p = Publications::new(8);
        let a = p.register(PubSpec::on_demand("A"), 0);
        let b = p.register(PubSpec::on_demand("B"), 0);
        p.offer(a, 0, Some("1".into()), true);
        p.offer(b, 0, Some("2".into()), true);
        let first = p.pop().unwrap();
        p.unpop(first);
        assert_eq!(
            drain(&mut p),
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "2".to_string())
            ]
        );
        p.log("hello");
        let line = p.pop().unwrap();
        p.unpop(line);
        assert_eq!(drain(&mut p), [("Log".to_string(), "hello".to_string())]);
    }

    #[test]
    fn log_keeps_every_line_up_to_capacity_and_reports_drops() {
        let mut p = Publications::new(3);
        for i in 0..5 {
            p.log(alloc::format!("line {i}"));
        }
        let out = drain(&mut p);
        assert_eq!(out[0].1, "(2 log lines dropped while offline)");
        assert_eq!(
            out[1..].iter().map(|o| o.1.as_str()).collect::<Vec<_>>(),
            ["line 2", "line 3", "line 4"]
        );
    }
}
