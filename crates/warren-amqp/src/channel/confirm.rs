//! Publisher confirms: every publish on a channel in confirm mode gets the
//! next sequence number; it is acked once every queue it was routed to has
//! taken it (at once when it was routed nowhere), nacked if any refused it.
//! Consecutive acks are coalesced into one `multiple` ack.

use std::collections::BTreeMap;

use bytes::BytesMut;
use warren_codec::{AMQPClass, spec::basic};

use super::{Channel, Ctx};
use crate::error::{AmqpError, code};

#[derive(Debug)]
struct Pending {
    remaining: usize,
    nack: bool,
}

/// Confirm-mode state of a channel.
#[derive(Debug)]
pub struct Confirms {
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
}

impl Confirms {
    fn new() -> Self {
        Confirms {
            next_seq: 1,
            pending: BTreeMap::new(),
        }
    }

    /// A publish routed to `targets` queues: returns its sequence number.
    pub fn register(&mut self, targets: usize) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.insert(
            seq,
            Pending {
                remaining: targets,
                nack: false,
            },
        );
        seq
    }

    /// One target queue answered for `seq`.
    pub fn on_queue_answer(&mut self, seq: u64, ok: bool) {
        if let Some(p) = self.pending.get_mut(&seq) {
            p.remaining = p.remaining.saturating_sub(1);
            p.nack |= !ok;
        }
    }

    /// Sends acks/nacks for the finished prefix of outstanding publishes.
    pub fn flush(&mut self, channel: u16, out: &mut BytesMut) {
        let mut last_ack = None;
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().remaining > 0 {
                break;
            }
            let (seq, p) = entry.remove_entry();
            if p.nack {
                if let Some(tag) = last_ack.take() {
                    send_ack(channel, tag, out);
                }
                let nack = basic::Nack {
                    delivery_tag: seq,
                    multiple: false,
                    requeue: false,
                };
                warren_codec::encode_method(
                    channel,
                    &AMQPClass::Basic(basic::AMQPMethod::Nack(nack)),
                    out,
                );
            } else {
                last_ack = Some(seq);
            }
        }
        if let Some(tag) = last_ack {
            send_ack(channel, tag, out);
        }
    }

    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }
}

fn send_ack(channel: u16, tag: u64, out: &mut BytesMut) {
    let ack = basic::Ack {
        delivery_tag: tag,
        multiple: true,
    };
    warren_codec::encode_method(channel, &AMQPClass::Basic(basic::AMQPMethod::Ack(ack)), out);
}

impl Channel {
    pub(super) fn confirm_select(
        &mut self,
        ctx: &mut Ctx<'_>,
        nowait: bool,
    ) -> Result<(), AmqpError> {
        if self.tx.is_some() {
            return Err(AmqpError::new(
                code::PRECONDITION_FAILED,
                "cannot switch from tx to confirm mode",
            ));
        }
        if self.confirms.is_none() {
            self.confirms = Some(Confirms::new());
        }
        if !nowait {
            ctx.send(
                self.id,
                AMQPClass::Confirm(warren_codec::spec::confirm::AMQPMethod::SelectOk(
                    warren_codec::spec::confirm::SelectOk {},
                )),
            );
        }
        Ok(())
    }

    /// A queue answered for a confirmed publish.
    pub fn on_confirm(&mut self, ctx: &mut Ctx<'_>, seq: u64, ok: bool) {
        if let Some(c) = self.confirms.as_mut() {
            c.on_queue_answer(seq, ok);
            c.flush(self.id, ctx.out);
        }
    }
}
