//! # actionq-agent — the executor that runs on each server
//!
//! The queue decides what may run; this agent runs it. It claims its
//! server's oldest approved action from `actionq.server` (with its agent
//! token in `X-Agent-Token`) by long-poll (the server holds the claim until
//! an action is approved; one that answers at once is polled at an
//! interval), fails over between the server URLs it is given, retries after
//! jittered delays while none answers, runs a claim only if the server's signature
//! verifies with the pinned key and the agent's own whitelist file builds
//! exactly the claim's command from its type and parameters (README "What
//! the agent trusts"), runs `argv` directly (no shell) with the
//! action's `env` over a fixed minimal environment, stdin on `/dev/null`, in a
//! process group of its own, heartbeats at a third of the lease, kills the
//! group at the action type's timeout (exit code 124), keeps at most the
//! queue's cap of output while reading it, and reports the result, retrying
//! with backoff while the lease lasts. It never runs an action twice: a claim
//! is run at most once, and an action whose result cannot be reported fails
//! by lease expiry on the server, never by a second run.
//!
//! Layout: [`config`] (the TOML file, the token file and the files it
//! trusts), [`client`] (the
//! HTTP calls, failing over between server URLs), [`backoff`] (jittered
//! retry delays), [`exec`] (running one command), [`agent`] (the loop),
//! [`log`] (JSON lines on stderr).
#![warn(missing_docs)]

pub mod agent;
pub mod backoff;
pub mod client;
pub mod config;
pub mod exec;
pub mod live;
pub mod log;
