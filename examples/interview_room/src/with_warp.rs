//! The app over warp: the page, `POST /api/v1/run`, `GET /metrics` and
//! `collab_warp::routes`.

use std::future::Future;

use collab_server::http::api::Api;
use collab_server::Hub;
use collab_warp::HttpConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::StatusCode;
use warp::path::FullPath;
use warp::reply::Reply;
use warp::Filter;

use crate::page;
use crate::run::{Answer, Runner};

/// Serves the app on `listener` until `shutdown` completes. warp has no hook
/// per accepted socket: TCP_NODELAY comes from the listener, whose accepted
/// sockets inherit it on Linux.
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    runner: Runner,
    metrics: PrometheusHandle,
    http: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let files = warp::get()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("accept-encoding"))
        .and_then(|path: FullPath, accept: Option<String>| async move {
            page::find(path.as_str())
                .map(|file| {
                    let (body, headers) = page::response(file, accept.as_deref());
                    let mut response = body.into_response();
                    for (name, value) in headers {
                        response.headers_mut().insert(
                            HeaderName::from_static(name),
                            HeaderValue::from_static(value),
                        );
                    }
                    response
                })
                .ok_or_else(warp::reject::not_found)
        })
        .boxed();
    let languages_runner = runner.clone();
    let languages = warp::path!("api" / "v1" / "run")
        .and(warp::get())
        .map(move || {
            let Answer { status, body } = languages_runner.languages();
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            warp::reply::with_status(
                warp::reply::with_header(body, "content-type", "application/json"),
                status,
            )
            .into_response()
        })
        .boxed();
    let run_api = Api::new(hub.clone(), http.clone());
    let run = warp::path!("api" / "v1" / "run")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::stream())
        .then(move |authorization: Option<String>, body| {
            let api = run_api.clone();
            let runner = runner.clone();
            async move {
                let body = collab_warp::request_body(body);
                let Answer { status, body } =
                    runner.answer(&api, authorization.as_deref(), body).await;
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                warp::reply::with_status(
                    warp::reply::with_header(body, "content-type", "application/json"),
                    status,
                )
                .into_response()
            }
        })
        .boxed();
    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            warp::reply::with_header(metrics.render(), "content-type", page::METRICS_TYPE)
                .into_response()
        })
        .boxed();
    let app = collab_warp::routes(hub, http.clone())
        .or(files)
        .unify()
        .or(languages)
        .unify()
        .or(run)
        .unify()
        .or(metrics)
        .unify();
    // TCP_NODELAY, header timeouts, connection caps, and the client's
    // address for the per-address limits.
    collab_warp::serve(listener, app, http, shutdown).await;
}
