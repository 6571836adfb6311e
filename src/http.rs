//! The controller's HTTP endpoints: `/healthz` (the process lives), `/readyz` (the first fetch
//! and reconcile pass are done), `/status` (JSON), `/metrics` (Prometheus), and the GitLab and
//! GitHub webhook receivers.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use tracing::{info, warn};

use crate::controller::Shared;
use crate::metrics::Metrics;
use crate::webhook::{self, Verdict};

/// Webhook bodies larger than this are refused (push events are a few KiB).
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

#[derive(Clone, Default)]
pub(crate) struct WebhookSecrets {
    pub gitlab_token: Option<crate::source::git::Secret>,
    pub github_secret: Option<crate::source::git::Secret>,
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    secrets: WebhookSecrets,
}

pub(crate) fn router(shared: Arc<Shared>, metrics: Arc<Metrics>, secrets: WebhookSecrets) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(render_metrics))
        .route("/webhooks/gitlab", post(gitlab))
        .route("/webhooks/github", post(github))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY))
        .with_state(AppState { shared, metrics, secrets })
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.shared.status.read().await.ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the first fetch and reconcile pass are not done\n").into_response()
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn status(State(state): State<AppState>) -> Response {
    Json(state.shared.status.read().await.clone()).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(state: &AppState, source: &'static str, verdict: Verdict) -> Response {
    match verdict {
        Verdict::Push => {
            info!(source, "webhook: push received; fetching now");
            state.shared.refresh.notify_one();
            (StatusCode::ACCEPTED, "fetching\n").into_response()
        }
        Verdict::Ignored => (StatusCode::OK, "ignored: not a push event\n").into_response(),
        Verdict::Unauthorized => {
            warn!(source, "webhook: rejected a call with a missing or wrong secret");
            (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response()
        }
    }
}

async fn gitlab(State(state): State<AppState>, headers: HeaderMap, _body: Bytes) -> Response {
    let Some(secret) = &state.secrets.gitlab_token else {
        return (StatusCode::NOT_FOUND, "GitLab webhook not configured (set SLIPWAY_GITLAB_WEBHOOK_TOKEN)\n").into_response();
    };
    let verdict = webhook::gitlab(secret.expose(), header(&headers, "x-gitlab-token"), header(&headers, "x-gitlab-event"));
    answer(&state, "gitlab", verdict)
}

async fn github(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &state.secrets.github_secret else {
        return (StatusCode::NOT_FOUND, "GitHub webhook not configured (set SLIPWAY_GITHUB_WEBHOOK_SECRET)\n").into_response();
    };
    let verdict = webhook::github(secret.expose(), header(&headers, "x-hub-signature-256"), header(&headers, "x-github-event"), &body);
    answer(&state, "github", verdict)
}
