//! The broker's shared state: live sessions and their subscriptions, the
//! retained store and the `subscribe_all` feeds, behind one mutex. Routing a
//! message only queues it (never waits on a socket), so the lock is held
//! briefly.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::codec::{MessageProps, Publish, SubOptions, Will};
use crate::link::Link;
use crate::monitor::Message;
use crate::topic;

/// Locks a mutex; a panic elsewhere while holding it leaves data that is
/// still consistent enough to shut down with, so poisoning is ignored.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An application message as received (or a will), shared by every queue it
/// is delivered to.
#[derive(Debug)]
pub(crate) struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    pub props: MessageProps,
    pub received: Instant,
}

impl Publication {
    pub(crate) fn from_publish(p: Publish) -> Self {
        Self {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            props: p.props,
            received: Instant::now(),
        }
    }

    pub(crate) fn from_will(w: Will) -> Self {
        Self {
            topic: w.topic,
            payload: w.payload,
            qos: w.qos,
            retain: w.retain,
            props: w.props,
            // Restarted when the will is published.
            received: Instant::now(),
        }
    }

    /// `None` once the Message Expiry Interval has passed; else the interval
    /// left to forward (`Some(None)` when the message has none).
    pub(crate) fn remaining_expiry(&self) -> Option<Option<u32>> {
        match self.props.expiry {
            None => Some(None),
            Some(secs) => {
                let waited = self.received.elapsed().as_secs();
                let waited = u32::try_from(waited).unwrap_or(u32::MAX);
                (waited < secs).then(|| Some(secs - waited))
            }
        }
    }
}

/// A message on its way to one client.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub publication: Arc<Publication>,
    pub qos: u8,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
}

/// One subscription of a session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscription {
    pub options: SubOptions,
    pub id: Option<u32>,
}

/// A connected client (sessions end with their connection).
pub(crate) struct Session {
    /// Which connection holds the client id now.
    pub conn: u64,
    pub link: Arc<Link>,
    pub subscriptions: HashMap<String, Subscription>,
    pub will: Option<Publication>,
}

#[derive(Default)]
pub(crate) struct State {
    pub stopped: bool,
    /// By client id.
    pub sessions: HashMap<String, Session>,
    /// Every open connection, with or without a session, by connection id.
    pub links: HashMap<u64, Arc<Link>>,
    retained: BTreeMap<String, Arc<Publication>>,
    feeds: Vec<mpsc::Sender<Message>>,
    next_assigned: u64,
}

/// What the broker's threads share.
#[derive(Default)]
pub(crate) struct Shared {
    pub state: Mutex<State>,
    /// Set first when stopping: the acceptor polls it.
    pub stopping: AtomicBool,
    /// Connection threads, joined at shutdown.
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    pub next_conn: AtomicU64,
}

impl State {
    /// Whether connection `conn` still holds `client_id` (it loses it on takeover).
    pub(crate) fn owns(&self, client_id: &str, conn: u64) -> bool {
        self.sessions.get(client_id).is_some_and(|s| s.conn == conn)
    }

    /// A client id for a CONNECT that gave none.
    pub(crate) fn assign_client_id(&mut self) -> String {
        loop {
            self.next_assigned += 1;
            let id = format!("hearth-broker-{}", self.next_assigned);
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Routes a message: updates the retained store, queues it for every
    /// matching session and sends it to every feed.
    ///
    /// A client whose subscriptions overlap gets one copy, at the highest QoS
    /// any matching subscription grants (capped by the publish QoS), with
    /// every matching subscription identifier; retain is kept if any of them
    /// asked for Retain As Published. Subscriptions with No Local do not count
    /// for the publishing client.
    pub(crate) fn route(&mut self, publication: Publication, from: Option<&str>) {
        if self.stopped {
            return;
        }
        let publication = Arc::new(publication);
        if publication.retain {
            if publication.payload.is_empty() {
                self.retained.remove(&publication.topic);
            } else {
                self.retained
                    .insert(publication.topic.clone(), Arc::clone(&publication));
            }
        }
        for (client_id, session) in &self.sessions {
            let own = from == Some(client_id.as_str());
            let mut best: Option<Delivery> = None;
            for (filter, sub) in &session.subscriptions {
                if (own && sub.options.no_local) || !topic::matches(filter, &publication.topic) {
                    continue;
                }
                let d = best.get_or_insert_with(|| Delivery {
                    publication: Arc::clone(&publication),
                    qos: 0,
                    retain: false,
                    subscription_ids: Vec::new(),
                });
                d.qos = d.qos.max(sub.options.qos.min(publication.qos));
                d.retain |= sub.options.retain_as_published && publication.retain;
                d.subscription_ids.extend(sub.id);
            }
            if let Some(d) = best {
                session.link.deliver(d);
            }
        }
        self.feeds.retain(|feed| {
            feed.send(Message {
                topic: publication.topic.clone(),
                payload: publication.payload.clone(),
                retain: false,
            })
            .is_ok()
        });
    }

    /// The retained messages whose topic `filter` matches (expired ones are
    /// removed on the way).
    pub(crate) fn retained_matching(&mut self, filter: &str) -> Vec<Arc<Publication>> {
        self.retained.retain(|_, p| p.remaining_expiry().is_some());
        self.retained
            .values()
            .filter(|p| topic::matches(filter, &p.topic))
            .cloned()
            .collect()
    }

    /// A new feed: the retained store first (`retain = true`), then every
    /// message routed from now on.
    pub(crate) fn open_feed(&mut self) -> mpsc::Receiver<Message> {
        let (tx, rx) = mpsc::channel();
        self.retained.retain(|_, p| p.remaining_expiry().is_some());
        for p in self.retained.values() {
            let _ = tx.send(Message {
                topic: p.topic.clone(),
                payload: p.payload.clone(),
                retain: true,
            });
        }
        if !self.stopped {
            self.feeds.push(tx);
        }
        rx
    }

    /// Ends every feed (their receivers see the channel disconnect).
    pub(crate) fn close_feeds(&mut self) {
        self.feeds.clear();
    }
}
