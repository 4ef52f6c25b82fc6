//! Options of `warren perf`. Names and short aliases follow RabbitMQ PerfTest where
//! PerfTest has the option, so commands read the same against either tool.

use clap::{Args, ValueEnum};
use serde::Serialize;

/// The broker RabbitMQ's own tools default to.
pub const DEFAULT_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Every message carries its send time (µs since the Unix epoch, big-endian) in its
/// first 8 bytes, so a message can never be smaller than that.
pub const TIMESTAMP_LEN: u32 = 8;

/// RabbitMQ 3.10's default `max_message_size`; larger bodies are refused by the broker.
const MAX_SIZE: u32 = 128 * 1024 * 1024;

/// `x-queue-type` of the queue perf declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// A classic queue.
    Classic,
    /// A replicated quorum queue (always durable).
    Quorum,
}

impl QueueType {
    /// The value of the `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

/// PerfTest's `-f` message flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFlag {
    /// delivery_mode = 2.
    Persistent,
    /// Ask the broker to return unroutable messages.
    Mandatory,
}

/// The AMQP client that drives producer and consumer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Client {
    /// lapin, an independent client: measures the broker as applications see it.
    Lapin,
    /// perf's own minimal client on warren-codec: far cheaper per message, for
    /// brokers fast enough that lapin becomes the bottleneck.
    Native,
}

/// Options of `warren perf`.
#[derive(Debug, Clone, Args)]
pub struct PerfArgs {
    /// Broker URI. Repeat it to spread connections round-robin over several nodes.
    #[arg(long = "uri", value_name = "URI", default_value = DEFAULT_URI)]
    pub uri: Vec<String>,
    /// URI(s) for producer connections only (default: --uri).
    #[arg(long = "publish-uri", value_name = "URI")]
    pub publish_uri: Vec<String>,
    /// URI(s) for consumer connections only (default: --uri).
    #[arg(long = "consume-uri", value_name = "URI")]
    pub consume_uri: Vec<String>,
    /// URI of the connection that declares and deletes the queue (default:
    /// the first consumer's). In a cluster the queue's leader is the node
    /// it was declared on, so this places it apart from the consumers.
    #[arg(long = "declare-uri", value_name = "URI")]
    pub declare_uri: Option<String>,
    /// Number of producers, one connection each.
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: u32,
    /// Number of consumers, one connection each.
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: u32,
    /// Message body size in bytes (at least 8: the send timestamp).
    #[arg(short = 's', long, default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(i64::from(TIMESTAMP_LEN)..=i64::from(MAX_SIZE)))]
    pub size: u32,
    /// Publisher-confirm window: unconfirmed messages allowed per producer (0: no confirms).
    #[arg(
        short = 'c',
        long = "confirm",
        value_name = "WINDOW",
        default_value_t = 0
    )]
    pub confirm: u32,
    /// Consumer prefetch (basic.qos); 0 leaves it unlimited.
    #[arg(short = 'q', long, default_value_t = 0)]
    pub qos: u16,
    /// Ack with multiple=true every N messages (0 or 1: ack each message).
    #[arg(
        short = 'A',
        long = "multi-ack-every",
        value_name = "N",
        default_value_t = 0
    )]
    pub multi_ack_every: u32,
    /// Fixed publishing rate per producer in msg/s (0: as fast as possible).
    #[arg(short = 'r', long, default_value_t = 0.0)]
    pub rate: f64,
    /// Run time in seconds; without it (and without -C/-D) perf runs until Ctrl-C.
    #[arg(short = 'z', long = "time", value_name = "SECONDS")]
    pub time: Option<u64>,
    /// Messages to publish per producer.
    #[arg(short = 'C', long = "pmessages", value_name = "N")]
    pub pmessages: Option<u64>,
    /// Messages to consume per consumer.
    #[arg(short = 'D', long = "cmessages", value_name = "N")]
    pub cmessages: Option<u64>,
    /// Queue to use; it is declared but kept at the end (default: a fresh queue, deleted at the end).
    #[arg(short = 'u', long)]
    pub queue: Option<String>,
    /// Declare the queue with this x-queue-type (quorum implies --durable).
    #[arg(long = "queue-type", value_enum)]
    pub queue_type: Option<QueueType>,
    /// Declare the queue durable.
    #[arg(long)]
    pub durable: bool,
    /// Message flags, as PerfTest's -f (repeatable).
    #[arg(short = 'f', long = "flag", value_enum, value_name = "FLAG")]
    pub flag: Vec<MessageFlag>,
    /// Same as `-f persistent`.
    #[arg(long)]
    pub persistent: bool,
    /// Same as `-f mandatory`; needs confirms (-c), which is how returns are counted.
    #[arg(long)]
    pub mandatory: bool,
    /// Consume with no_ack=true.
    #[arg(short = 'a', long = "auto-ack")]
    pub auto_ack: bool,
    /// Existing exchange to publish to; perf binds its queue to it (default: the default exchange).
    #[arg(short = 'e', long, default_value = "")]
    pub exchange: String,
    /// Routing key (default: the queue name).
    #[arg(short = 'k', long = "routing-key")]
    pub routing_key: Option<String>,
    /// Seconds consumers keep draining without receiving anything before giving up.
    #[arg(long = "drain-timeout", value_name = "SECONDS", default_value_t = 5)]
    pub drain_timeout: u64,
    /// Print the final summary as one JSON object on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Do not print the per-second progress lines.
    #[arg(long = "no-progress")]
    pub no_progress: bool,
    /// Client engine for every connection perf opens (queue setup, producers, consumers).
    #[arg(long, value_enum, default_value_t = Client::Lapin)]
    pub client: Client,
}

impl PerfArgs {
    /// Rejects combinations that would hang or that the broker would refuse.
    pub fn validate(&self) -> Result<(), String> {
        if self.producers == 0 && self.consumers == 0 {
            return Err("nothing to do: both --producers and --consumers are 0".into());
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(format!("--rate must be >= 0, got {}", self.rate));
        }
        let manual_ack = !self.auto_ack && self.consumers > 0;
        if manual_ack && self.qos > 0 && self.multi_ack_every > u32::from(self.qos) {
            // The broker stops delivering at `qos` unacked messages, so the consumer
            // would never reach the Nth message that triggers the ack.
            return Err(format!(
                "--multi-ack-every {} exceeds --qos {}: consumers would stall",
                self.multi_ack_every, self.qos
            ));
        }
        if self.is_mandatory() && self.confirm == 0 && self.producers > 0 {
            // Without confirms lapin keeps returned messages until someone drains
            // them, and perf would have no way to match them to publishes.
            return Err("-f mandatory needs publisher confirms (-c WINDOW)".into());
        }
        if self.exchange.is_empty() && self.routing_key.is_some() {
            return Err(
                "--routing-key needs --exchange (the default exchange routes by queue name)".into(),
            );
        }
        Ok(())
    }

    /// URI of producer `i`: round-robin over --publish-uri, else --uri.
    pub fn producer_uri(&self, i: usize) -> &str {
        pick(&self.publish_uri, &self.uri, i)
    }

    /// URI of consumer `i`: round-robin over --consume-uri, else --uri.
    pub fn consumer_uri(&self, i: usize) -> &str {
        pick(&self.consume_uri, &self.uri, i)
    }

    /// URI used to declare and delete the queue: --declare-uri, else where
    /// consumers go, since they need it first.
    pub fn admin_uri(&self) -> &str {
        self.declare_uri
            .as_deref()
            .unwrap_or_else(|| self.consumer_uri(0))
    }

    /// Whether messages are published with delivery_mode = 2.
    pub fn is_persistent(&self) -> bool {
        self.persistent || self.flag.contains(&MessageFlag::Persistent)
    }

    /// Whether messages are published with mandatory = true.
    pub fn is_mandatory(&self) -> bool {
        self.mandatory || self.flag.contains(&MessageFlag::Mandatory)
    }

    /// Whether the queue is declared durable; quorum queues can only be durable.
    pub fn is_durable(&self) -> bool {
        self.durable || self.queue_type == Some(QueueType::Quorum)
    }
}

fn pick<'a>(specific: &'a [String], general: &'a [String], i: usize) -> &'a str {
    let list = if specific.is_empty() {
        general
    } else {
        specific
    };
    match list.get(i % list.len().max(1)) {
        Some(uri) => uri,
        None => DEFAULT_URI,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PerfArgs,
    }

    fn parse(argv: &[&str]) -> Result<PerfArgs, clap::Error> {
        let full = std::iter::once("perf").chain(argv.iter().copied());
        Cli::try_parse_from(full).map(|c| c.args)
    }

    #[test]
    fn defaults_match_perftest() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.uri, vec![DEFAULT_URI.to_string()]);
        assert_eq!((a.producers, a.consumers, a.size), (1, 1, 12));
        assert_eq!((a.confirm, a.qos, a.multi_ack_every), (0, 0, 0));
        assert_eq!(a.rate, 0.0);
        assert_eq!((a.time, a.pmessages, a.cmessages), (None, None, None));
        assert!(!a.is_durable() && !a.is_persistent() && !a.is_mandatory());
        assert_eq!(a.exchange, "");
        assert_eq!(a.client, Client::Lapin);
        assert!(a.validate().is_ok());
    }

    #[test]
    fn short_aliases() {
        let a = parse(&[
            "-x2",
            "-y3",
            "-s1024",
            "-c256",
            "-q100",
            "-A10",
            "-r500",
            "-z10",
            "-C1000",
            "-D900",
            "-u",
            "q1",
            "-f",
            "persistent",
            "-f",
            "mandatory",
            "-a",
            "-e",
            "amq.direct",
        ])
        .unwrap();
        assert_eq!((a.producers, a.consumers, a.size), (2, 3, 1024));
        assert_eq!((a.confirm, a.qos, a.multi_ack_every), (256, 100, 10));
        assert_eq!(a.rate, 500.0);
        assert_eq!(
            (a.time, a.pmessages, a.cmessages),
            (Some(10), Some(1000), Some(900))
        );
        assert_eq!(a.queue.as_deref(), Some("q1"));
        assert!(a.is_persistent() && a.is_mandatory() && a.auto_ack);
    }

    #[test]
    fn long_names() {
        let a = parse(&[
            "--producers",
            "1",
            "--confirm",
            "8",
            "--queue-type",
            "quorum",
            "--persistent",
            "--exchange",
            "amq.direct",
            "--routing-key",
            "rk",
            "--json",
            "--no-progress",
            "--auto-ack",
            "--drain-timeout",
            "2",
        ])
        .unwrap();
        assert_eq!(a.queue_type, Some(QueueType::Quorum));
        assert!(a.is_durable(), "quorum implies durable");
        assert!(a.is_persistent() && a.json && a.no_progress && a.auto_ack);
        assert_eq!(
            (a.exchange.as_str(), a.routing_key.as_deref()),
            ("amq.direct", Some("rk"))
        );
        assert_eq!(a.drain_timeout, 2);
        assert_eq!(
            parse(&["--client", "native"]).unwrap().client,
            Client::Native
        );
        assert!(parse(&["--client", "amiquip"]).is_err());
    }

    #[test]
    fn uris_round_robin_and_split() {
        let a = parse(&[
            "--uri",
            "amqp://a",
            "--uri",
            "amqp://b",
            "--publish-uri",
            "amqp://p",
        ])
        .unwrap();
        assert_eq!(a.producer_uri(0), "amqp://p");
        assert_eq!(a.producer_uri(5), "amqp://p");
        assert_eq!(a.consumer_uri(0), "amqp://a");
        assert_eq!(a.consumer_uri(1), "amqp://b");
        assert_eq!(a.consumer_uri(2), "amqp://a");
        assert_eq!(a.admin_uri(), "amqp://a");
        let b = parse(&["--consume-uri", "amqp://c"]).unwrap();
        assert_eq!(b.consumer_uri(3), "amqp://c");
        assert_eq!(b.producer_uri(3), DEFAULT_URI);
        assert_eq!(b.admin_uri(), "amqp://c");
        let d = parse(&["--consume-uri", "amqp://c", "--declare-uri", "amqp://d"]).unwrap();
        assert_eq!(d.admin_uri(), "amqp://d");
        assert_eq!(d.consumer_uri(0), "amqp://c");
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["-s", "7"]).is_err(), "body must hold the timestamp");
        assert!(parse(&["--queue-type", "stream"]).is_err());
        assert!(parse(&["-f", "bogus"]).is_err());
        assert!(parse(&["-x", "-1"]).is_err());
        let stall = parse(&["-q", "10", "-A", "20"]).unwrap();
        assert!(stall.validate().is_err());
        let auto = parse(&["-q", "10", "-A", "20", "--auto-ack"]).unwrap();
        assert!(auto.validate().is_ok(), "no acks, no stall");
        assert!(parse(&["-x0", "-y0"]).unwrap().validate().is_err());
        assert!(parse(&["--rate=-5"]).unwrap().validate().is_err());
        assert!(parse(&["-k", "rk"]).unwrap().validate().is_err());
        assert!(parse(&["--mandatory"]).unwrap().validate().is_err());
        assert!(parse(&["--mandatory", "-c1"]).unwrap().validate().is_ok());
    }
}
