//! The web page of the interview room: static files compiled into the binary,
//! so the example runs with no npm, no build step and no files beside it.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
// Browsers refuse to run an ES module served with a non-JavaScript type.
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page: its URL path, content type and content.
const FILES: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../static/index.html")),
    ("/app.css", CSS, include_str!("../static/app.css")),
    ("/app.js", JS, include_str!("../static/app.js")),
    ("/room.js", JS, include_str!("../static/room.js")),
    ("/socket.js", JS, include_str!("../static/socket.js")),
    ("/editor.js", JS, include_str!("../static/editor.js")),
    ("/highlight.js", JS, include_str!("../static/highlight.js")),
    ("/chat.js", JS, include_str!("../static/chat.js")),
    ("/presence.js", JS, include_str!("../static/presence.js")),
    ("/history.js", JS, include_str!("../static/history.js")),
    ("/languages.js", JS, include_str!("../static/languages.js")),
    ("/dom.js", JS, include_str!("../static/dom.js")),
    ("/collab-ot.mjs", JS, collab_core::BROWSER_OT_MODULE),
];

/// The page's routes: `/` and the modules, styles and OT client it loads.
pub fn routes() -> Router {
    FILES
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, content_type),
                            // The files change with the binary; `no-cache`
                            // makes the browser ask again (cheaply) after an
                            // upgrade instead of mixing old and new modules.
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        body,
                    )
                        .into_response()
                }),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::FILES;

    /// Every module the page imports (`... from "./x.js"`) is served, so a
    /// new module cannot be forgotten here.
    #[test]
    fn every_imported_module_is_served() {
        let served: Vec<&str> = FILES.iter().map(|f| f.0).collect();
        let mut imports = 0;
        for (path, _, body) in FILES {
            for piece in body.split(" from \"").skip(1) {
                let target = piece.split('"').next().unwrap_or_default();
                let target = target.trim_start_matches('.');
                assert!(
                    served.contains(&target),
                    "{path} imports {target}, which is not served"
                );
                imports += 1;
            }
        }
        assert!(imports > 10, "found only {imports} imports");
    }
}
