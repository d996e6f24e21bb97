//! What travels through an actor's mailbox, and the answers that go back.

use tokio::sync::oneshot;

use crate::aggregate::Aggregate;

use super::{Committed, DispatchError, DispatchOptions};

/// A command's options, boxed: most commands have none, and `None` keeps the message small.
pub(crate) type Options = Option<Box<DispatchOptions>>;

/// A message to an actor.
pub(crate) enum Msg<A: Aggregate> {
    /// A command to decide and commit.
    Command {
        command: A::Command,
        options: Options,
        reply: oneshot::Sender<Reply<A>>,
    },
    /// A request for a copy of the committed state; `None` asks the caller to retry.
    State {
        reply: oneshot::Sender<Option<Result<A, DispatchError<A::Error>>>>,
    },
    /// The kernel is shutting down: stop after what is already queued.
    Stop,
    /// The sweeper saw the actor idle: stop, unless something arrived since.
    Passivate,
    /// Drop the state held in memory (a subject was forgotten): the next use rehydrates it
    /// from the store.
    Reload,
}

/// The answer to a command.
pub(crate) enum Reply<A: Aggregate> {
    Done(Result<Committed, DispatchError<A::Error>>),
    /// The actor stopped before handling the command: send it again to a fresh actor.
    Retry(A::Command, Options),
}

/// One command of a batch, while the batch is being decided and committed.
pub(crate) struct Job<A: Aggregate> {
    pub(crate) command: A::Command,
    pub(crate) options: Options,
    pub(crate) reply: oneshot::Sender<Reply<A>>,
}

/// How a stopping actor answers the messages it will not handle.
#[derive(Clone, Copy)]
pub(crate) enum Exit {
    /// Hand them back: a fresh actor will handle them.
    Retry,
    /// The kernel is shutting down.
    Shutdown,
}

impl<A: Aggregate> Msg<A> {
    /// Answers a message the actor will not handle (a dispatcher that gave up is ignored).
    pub(crate) fn refuse(self, exit: Exit) {
        match (self, exit) {
            (Msg::Command { reply, .. }, Exit::Shutdown) => {
                let _ = reply.send(Reply::Done(Err(DispatchError::Shutdown)));
            }
            (
                Msg::Command {
                    command,
                    options,
                    reply,
                },
                Exit::Retry,
            ) => {
                let _ = reply.send(Reply::Retry(command, options));
            }
            (Msg::State { reply }, Exit::Shutdown) => {
                let _ = reply.send(Some(Err(DispatchError::Shutdown)));
            }
            (Msg::State { reply }, Exit::Retry) => {
                let _ = reply.send(None);
            }
            (Msg::Stop | Msg::Passivate | Msg::Reload, _) => {}
        }
    }
}

impl<A: Aggregate> Job<A> {
    /// The command id the caller gave (the idempotency key), if any.
    pub(crate) fn command_id(&self) -> Option<&str> {
        self.options
            .as_deref()
            .and_then(|o| o.envelope.command_id())
    }

    /// Answers the command with `result`.
    pub(crate) fn answer(self, result: Result<Committed, DispatchError<A::Error>>) {
        let _ = self.reply.send(Reply::Done(result));
    }

    /// Hands the command back to its dispatcher, for a fresh actor.
    pub(crate) fn retry(self) {
        let _ = self.reply.send(Reply::Retry(self.command, self.options));
    }
}
