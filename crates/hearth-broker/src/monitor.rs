//! `subscribe_all`: an in-process rumqttd link subscribed to `#`, pumped by a
//! thread into a std channel of [`Message`]s.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::local::{LinkError, LinkRx, LinkTx};
use rumqttd::Notification;

use crate::broker::LinkFactory;
use crate::error::BrokerError;

/// How long `subscribe_all` waits for the router to confirm the subscription.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle feed thread checks whether the broker stopped.
const STOP_POLL: Duration = Duration::from_millis(250);

/// One message routed by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name it was published to.
    pub topic: String,
    /// Payload bytes as published.
    pub payload: Vec<u8>,
    /// `true` for retained messages replayed when the feed opened; live
    /// messages are `false` even if they were published with retain.
    pub retain: bool,
}

/// Opens a link, subscribes it to `#`, waits for the SUBACK and hands the link
/// to a feed thread.
pub(crate) fn open(
    links: &LinkFactory,
    stopped: Arc<AtomicBool>,
) -> Result<mpsc::Receiver<Message>, BrokerError> {
    static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
    let client_id = format!(
        "hearth-broker-monitor-{}",
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    );

    let (mut link_tx, mut link_rx) = links(&client_id)?;
    link_tx.subscribe("#").map_err(BrokerError::link)?;

    let (tx, rx) = mpsc::channel();
    // Wait for the SUBACK so that everything published after `subscribe_all`
    // returns is seen. The router sends acks before any forwarded data.
    let deadline = Instant::now() + SUBACK_TIMEOUT;
    loop {
        match link_rx.recv_deadline(deadline) {
            Ok(Some(Notification::DeviceAck(_))) => break,
            Ok(Some(other)) => {
                // Not expected before the SUBACK; kept rather than lost.
                deliver(&tx, &link_rx, other).map_err(|()| BrokerError::Link {
                    reason: "router link closed during subscribe".into(),
                })?;
            }
            Ok(None) => {}
            Err(LinkError::RecvTimeout(flume::RecvTimeoutError::Timeout)) => {
                return Err(BrokerError::Link {
                    reason: format!("no SUBACK for `#` within {SUBACK_TIMEOUT:?}"),
                })
            }
            Err(e) => return Err(BrokerError::link(e)),
        }
    }

    thread::Builder::new()
        .name(client_id)
        .spawn(move || pump(link_tx, link_rx, tx, &stopped))
        .map_err(|e| BrokerError::Link {
            reason: format!("cannot spawn the feed thread: {e}"),
        })?;
    Ok(rx)
}

/// Moves router notifications into the channel until the broker stops, the
/// receiver is gone, or the router link breaks.
fn pump(_link_tx: LinkTx, mut link_rx: LinkRx, tx: mpsc::Sender<Message>, stopped: &AtomicBool) {
    while !stopped.load(Ordering::SeqCst) {
        match link_rx.recv_deadline(Instant::now() + STOP_POLL) {
            Ok(Some(notification)) => {
                if deliver(&tx, &link_rx, notification).is_err() {
                    return;
                }
            }
            Ok(None) | Err(LinkError::RecvTimeout(flume::RecvTimeoutError::Timeout)) => {}
            Err(_) => return,
        }
    }
}

/// Handles one notification; `Err` means the feed should end.
fn deliver(
    tx: &mpsc::Sender<Message>,
    link_rx: &LinkRx,
    notification: Notification,
) -> Result<(), ()> {
    match notification {
        Notification::Forward(forward) => {
            let publish = forward.publish;
            tx.send(Message {
                topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                payload: publish.payload.to_vec(),
                retain: publish.retain,
            })
            .map_err(|_| ())
        }
        // The router paused this link because its buffer filled up; ask it to
        // resume now that the buffer has been drained.
        Notification::Unschedule => link_rx.ready().map_err(|_| ()),
        _ => Ok(()),
    }
}
