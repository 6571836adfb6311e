//! Counts every AWS call by service, operation and outcome, from an SDK interceptor on every
//! client. The counts answer "did this apply make any mutating call?" and feed metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// `(service, operation, succeeded)` → number of calls.
pub type CallCounts = BTreeMap<(String, String, bool), u64>;

#[derive(Debug, Clone, Default)]
pub struct CallLog {
    counts: Arc<Mutex<CallCounts>>,
}

impl CallLog {
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

/// Whether an operation only reads. Everything else counts as a write.
pub fn is_read_only(operation: &str) -> bool {
    ["Get", "Describe", "List", "Head", "BatchGet"].iter().any(|p| operation.starts_with(p))
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "slipway-call-log"
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
        }
        Ok(())
    }
}
