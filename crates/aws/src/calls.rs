//! Counts every AWS call by service, operation and outcome, from an SDK interceptor on every
//! client. The counts answer "did this apply make any mutating call?"; every call is also handed
//! to the [`CallObserver`] the application supplies (slipway's metrics implement it), so this
//! crate never imports the layer above it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// When the call started, kept in the call's own config bag.
#[derive(Debug, Clone, Copy)]
struct CallStart(std::time::Instant);

impl Storable for CallStart {
    type Storer = StoreReplace<Self>;
}

/// `(service, operation, succeeded)` → number of calls.
pub(crate) type CallCounts = BTreeMap<(String, String, bool), u64>;

/// Told about every AWS call when it ends. `service` is the SDK's service id in lower case
/// (`ecr`, `codedeploy`); `took` includes the SDK's retries.
pub trait CallObserver: Send + Sync + 'static {
    fn observe(&self, service: &str, operation: &str, succeeded: bool, took: Option<std::time::Duration>);
}

/// An observer that ignores every call (tools and tests that need no metrics).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl CallObserver for Unobserved {
    fn observe(&self, _: &str, _: &str, _: bool, _: Option<std::time::Duration>) {}
}

#[derive(Clone)]
pub struct CallLog {
    counts: Arc<Mutex<CallCounts>>,
    observer: Arc<dyn CallObserver>,
}

impl std::fmt::Debug for CallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLog").field("counts", &self.counts).finish_non_exhaustive()
    }
}

impl CallLog {
    pub fn new(observer: Arc<dyn CallObserver>) -> CallLog {
        CallLog { counts: Arc::default(), observer }
    }

    pub fn snapshot(&self) -> CallCounts {
        self.counts.lock().expect("call log lock").clone()
    }

    /// Calls made since `before`, as `service:Operation` names, one per call.
    pub fn since(&self, before: &CallCounts) -> Vec<String> {
        let mut out = Vec::new();
        for (key, count) in &self.snapshot() {
            let earlier = before.get(key).copied().unwrap_or(0);
            for _ in earlier..*count {
                out.push(format!("{}:{}", key.0, key.1));
            }
        }
        out
    }
}

/// Whether an operation only reads. Everything else counts as a write. A long poll of the change
/// queue (`ReceiveMessage`) reads: it changes nothing slipway manages.
pub fn is_read_only(operation: &str) -> bool {
    ["Get", "Describe", "List", "Head", "BatchGet", "Receive"].iter().any(|p| operation.starts_with(p))
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "slipway-call-log"
    }

    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, cfg: &mut ConfigBag) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(CallStart(std::time::Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let ok = matches!(context.output_or_error(), Some(Ok(_)));
            *self.counts.lock().expect("call log lock").entry((meta.service().to_owned(), meta.name().to_owned(), ok)).or_insert(0) += 1;
            let took = cfg.load::<CallStart>().map(|CallStart(started)| started.elapsed());
            self.observer.observe(&meta.service().to_ascii_lowercase(), meta.name(), ok, took);
        }
        Ok(())
    }
}
