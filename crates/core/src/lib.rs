//! slipway's pure layer: everything slipway decides, with no AWS SDK, no async runtime, no Git.
//!
//! Data flows one way through it: [`manifest`] (load, validate) → [`compile`] → (the AWS
//! adapters observe) → [`plan`] → (the adapters apply) → [`status`]; [`delivery`] decides what to
//! deploy and how a deployment ended; [`reconcile`] is the contract between one reconcile and the
//! loop that schedules the next. Only [`manifest`] touches the file system (it reads the config
//! repository and the files its manifests reference); everything else is computation on values.

#[macro_use]
mod label;

pub mod artifact;
pub mod change;
pub mod compile;
pub mod delivery;
pub mod diff;
pub mod error;
pub mod inventory;
pub mod lease;
pub mod manifest;
pub mod plan;
pub mod prune;
pub mod quota;
pub mod reconcile;
pub mod resource;
pub mod status;
pub mod time;
pub mod trigger;
