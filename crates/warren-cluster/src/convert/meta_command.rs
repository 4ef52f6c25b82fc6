//! meta::MetaCommand <-> log::MetaCommand.

use warren_core::meta::{BindingDef, ExchangeDef, MetaCommand, Permission, QueueDef, User};
use warren_rpc::log as pb;
use warren_rpc::log::meta_command::{self as mc, Command as C};

use super::{DecodeError, FromProto, IntoProto, required};

impl IntoProto<pb::MetaCommand> for MetaCommand {
    fn into_proto(self) -> pb::MetaCommand {
        let c = match self {
            MetaCommand::AddVhost { name } => C::AddVhost(mc::AddVhost { name }),
            MetaCommand::DeleteVhost { name } => C::DeleteVhost(mc::DeleteVhost { name }),
            MetaCommand::PutUser { user } => C::PutUser(mc::PutUser {
                user: Some(user.into_proto()),
            }),
            MetaCommand::DeleteUser { name } => C::DeleteUser(mc::DeleteUser { name }),
            MetaCommand::SetPermissions {
                user,
                vhost,
                permission,
            } => C::SetPermissions(mc::SetPermissions {
                user,
                vhost,
                permission: Some(permission.into_proto()),
            }),
            MetaCommand::DeclareExchange { vhost, def } => {
                C::DeclareExchange(mc::DeclareExchange {
                    vhost,
                    def: Some(def.into_proto()),
                })
            }
            MetaCommand::DeleteExchange {
                vhost,
                name,
                if_unused,
            } => C::DeleteExchange(mc::DeleteExchange {
                vhost,
                name,
                if_unused,
            }),
            MetaCommand::DeclareQueue { vhost, def } => C::DeclareQueue(mc::DeclareQueue {
                vhost,
                def: Some(def.into_proto()),
            }),
            MetaCommand::DeleteQueue { vhost, name } => {
                C::DeleteQueue(mc::DeleteQueue { vhost, name })
            }
            MetaCommand::Bind { vhost, binding } => C::Bind(mc::Bind {
                vhost,
                binding: Some(binding.into_proto()),
            }),
            MetaCommand::Unbind { vhost, binding } => C::Unbind(mc::Unbind {
                vhost,
                binding: Some(binding.into_proto()),
            }),
            MetaCommand::DeleteExclusiveOf { connection } => {
                C::DeleteExclusiveOf(mc::DeleteExclusiveOf { connection })
            }
        };
        pb::MetaCommand { command: Some(c) }
    }
}

impl FromProto<pb::MetaCommand> for MetaCommand {
    fn from_proto(p: pb::MetaCommand) -> Result<Self, DecodeError> {
        Ok(match required(p.command, "meta_command.command")? {
            C::AddVhost(c) => MetaCommand::AddVhost { name: c.name },
            C::DeleteVhost(c) => MetaCommand::DeleteVhost { name: c.name },
            C::PutUser(c) => MetaCommand::PutUser {
                user: User::from_proto(required(c.user, "put_user.user")?)?,
            },
            C::DeleteUser(c) => MetaCommand::DeleteUser { name: c.name },
            C::SetPermissions(c) => MetaCommand::SetPermissions {
                user: c.user,
                vhost: c.vhost,
                permission: Permission::from_proto(required(
                    c.permission,
                    "set_permissions.permission",
                )?)?,
            },
            C::DeclareExchange(c) => MetaCommand::DeclareExchange {
                vhost: c.vhost,
                def: ExchangeDef::from_proto(required(c.def, "declare_exchange.def")?)?,
            },
            C::DeleteExchange(c) => MetaCommand::DeleteExchange {
                vhost: c.vhost,
                name: c.name,
                if_unused: c.if_unused,
            },
            C::DeclareQueue(c) => MetaCommand::DeclareQueue {
                vhost: c.vhost,
                def: QueueDef::from_proto(required(c.def, "declare_queue.def")?)?,
            },
            C::DeleteQueue(c) => MetaCommand::DeleteQueue {
                vhost: c.vhost,
                name: c.name,
            },
            C::Bind(c) => MetaCommand::Bind {
                vhost: c.vhost,
                binding: BindingDef::from_proto(required(c.binding, "bind.binding")?)?,
            },
            C::Unbind(c) => MetaCommand::Unbind {
                vhost: c.vhost,
                binding: BindingDef::from_proto(required(c.binding, "unbind.binding")?)?,
            },
            C::DeleteExclusiveOf(c) => MetaCommand::DeleteExclusiveOf {
                connection: c.connection,
            },
        })
    }
}
