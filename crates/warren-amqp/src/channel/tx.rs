//! tx.select / commit / rollback: publishes and settlements are held until
//! commit, then take effect in order; rollback discards them.

use std::sync::Arc;

use warren_codec::{AMQPClass, spec::tx};
use warren_core::message::Message;
use warren_core::value::Table;

use super::{Channel, Ctx};
use crate::error::{AmqpError, code};

/// A settlement held by a transaction.
#[derive(Debug, Clone, Copy)]
pub enum TxSettle {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
        requeue: bool,
    },
}

/// Transaction state of a channel.
#[derive(Default)]
pub struct Tx {
    pub publishes: Vec<(Arc<Message>, Option<Table>, bool)>,
    pub settles: Vec<TxSettle>,
}

impl Channel {
    pub(super) fn tx_select(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpError> {
        if self.confirms.is_some() {
            return Err(AmqpError::new(
                code::PRECONDITION_FAILED,
                "cannot switch from confirm to tx mode",
            ));
        }
        if self.tx.is_none() {
            self.tx = Some(Tx::default());
        }
        ctx.send(
            self.id,
            AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})),
        );
        Ok(())
    }

    pub(super) async fn tx_commit(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpError> {
        let Some(t) = self.tx.as_mut() else {
            return Err(AmqpError::new(
                code::PRECONDITION_FAILED,
                "channel is not transactional",
            ));
        };
        let publishes = std::mem::take(&mut t.publishes);
        let settles = std::mem::take(&mut t.settles);
        for (msg, headers, mandatory) in publishes {
            self.route(ctx, msg, headers.as_ref(), mandatory).await?;
        }
        for s in settles {
            match s {
                TxSettle::Ack { tag, multiple } => self.apply_ack(ctx, tag, multiple).await?,
                TxSettle::Nack {
                    tag,
                    multiple,
                    requeue,
                } => self.apply_nack(ctx, tag, multiple, requeue).await?,
            }
        }
        ctx.send(
            self.id,
            AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})),
        );
        Ok(())
    }

    pub(super) fn tx_rollback(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AmqpError> {
        let Some(t) = self.tx.as_mut() else {
            return Err(AmqpError::new(
                code::PRECONDITION_FAILED,
                "channel is not transactional",
            ));
        };
        t.publishes.clear();
        t.settles.clear();
        ctx.send(
            self.id,
            AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})),
        );
        Ok(())
    }
}
