//! What `subscribe_all` feeds carry.

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
