//! slipway: a GitOps controller that keeps AWS container delivery pipelines exactly as a Git
//! repository describes them. This crate is the application: the Git and directory sources, the
//! engine that runs the one-way flow, the controller loop, HTTP, metrics and the CLI. What slipway
//! decides is in `slipway-core`; how it talks to AWS is in `slipway-aws` (ARCHITECTURE.md).
//!
//! Data flows one way: `manifest` (load, validate) → `compile` → `observe` → `plan` →
//! [`engine::apply`] → [`report`] and the controller's status.

pub mod cli;
pub(crate) mod controller;
pub mod engine;
pub(crate) mod feed;
pub mod http;
pub(crate) mod metrics;
pub(crate) mod replica;
pub mod report;
pub mod source;
pub(crate) mod triggers;
pub mod webhook;
