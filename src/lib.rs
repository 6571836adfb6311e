//! slipway: a GitOps controller that keeps AWS container delivery pipelines exactly as a Git
//! repository describes them.
//!
//! Data flows one way: [`manifest`] (load, validate) → [`desired`] (compile) → [`observe`] →
//! [`plan`] → [`engine::apply`] → [`report`]. Only loading, observing and applying do I/O.

pub mod artifact;
pub mod aws;
pub mod cli;
pub mod controller;
pub mod deploy;
pub mod desired;
pub mod diff;
pub mod engine;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod report;
pub mod resource;
pub mod source;
pub mod webhook;
