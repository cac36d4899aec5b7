//! The app over axum: the page, `POST /api/v1/run`, `GET /metrics` and
//! `collab_axum::router`.

use std::future::Future;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use collab_axum::HttpConfig;
use collab_server::http::api::Api;
use collab_server::Hub;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::page::{self, StaticFile};
use crate::run::{self, Answer, Runner};

/// Serves the app on `listener` until `shutdown` completes.
///
/// # Errors
/// When the server fails to accept connections.
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    runner: Runner,
    metrics: PrometheusHandle,
    http: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = page::all()
        .fold(Router::new(), |router, file| {
            router.route(
                file.path,
                get(move |headers: HeaderMap| async move { static_file(file, &headers) }),
            )
        })
        .route(run::PATH, post(run_code).get(run_languages))
        .with_state((Api::new(hub.clone(), http.clone()), runner))
        .route(
            page::METRICS_PATH,
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, page::METRICS_TYPE)],
                    metrics.render(),
                )
            }),
        )
        .merge(collab_axum::router(hub, http.clone()));
    // TCP_NODELAY, header timeouts, connection caps, and the client's
    // address for the per-address limits.
    collab_axum::serve(listener, app, http, shutdown).await;
    Ok(())
}

fn static_file(file: &StaticFile, headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let (body, headers) = page::response(file, accept);
    let mut response = body.into_response();
    for (name, value) in headers {
        response.headers_mut().insert(
            header::HeaderName::from_static(name),
            header::HeaderValue::from_static(value),
        );
    }
    response
}

async fn run_languages(State((_, runner)): State<(Api, Runner)>) -> Response {
    let Answer { status, body } = runner.languages();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn run_code(
    State((api, runner)): State<(Api, Runner)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Answer { status, body } = runner.answer(&api, authorization, body).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
