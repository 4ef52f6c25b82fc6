//! Limits and identity of the AMQP frontend.

/// Settings of the AMQP listener. Every limit a client can push against is here.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest frame the server accepts and offers in connection.tune.
    pub frame_max: u32,
    /// Highest channel number a connection may open (connection.tune).
    pub channel_max: u16,
    /// Heartbeat interval offered in connection.tune, seconds (0 disables).
    pub heartbeat_secs: u16,
    /// Largest message body accepted (RabbitMQ's `max_message_size`).
    pub max_message_size: u64,
    /// Users that may only log in from a loopback address (RabbitMQ's `loopback_users`).
    pub loopback_users: Vec<String>,
    /// Time a client has to complete the handshake.
    pub handshake_timeout_secs: u64,
    /// Capacity of each queue's mailbox (publishes beyond it wait: back-pressure).
    pub queue_mailbox: usize,
    /// Message bytes held by queues above which publishers are blocked
    /// (connection.blocked); 0 disables the alarm.
    pub memory_high_watermark: u64,
    /// Unsettled publisher confirms a channel may have outstanding before it stops reading.
    pub max_unconfirmed_per_channel: usize,
    /// This node's id in its cluster (1 on its own): the owner ids of its
    /// channels carry it (`OwnerId::node`).
    pub node_id: u64,
    /// In a cluster: after how long without a consumer, a get or any other
    /// use here, a node that only reads a queue's log (it holds no replica
    /// of it) stops reading it; `None`: never.
    pub release_readers_after: Option<std::time::Duration>,
}

/// The default of [`ServerConfig::release_readers_after`].
pub const DEFAULT_RELEASE_READERS_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat_secs: 60,
            max_message_size: 128 * 1024 * 1024,
            loopback_users: vec!["guest".to_string()],
            handshake_timeout_secs: 10,
            queue_mailbox: 4096,
            memory_high_watermark: default_watermark(),
            max_unconfirmed_per_channel: 1 << 20,
            node_id: 1,
            release_readers_after: Some(DEFAULT_RELEASE_READERS_AFTER),
        }
    }
}

/// 40% of the machine's memory, as RabbitMQ's default `vm_memory_high_watermark`
/// (read from /proc/meminfo; 1 GiB when that cannot be read).
fn default_watermark() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    });
    match total_kib {
        Some(kib) => kib * 1024 / 10 * 4,
        None => 1 << 30,
    }
}
