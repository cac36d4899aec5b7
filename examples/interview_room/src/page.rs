//! The web page of the interview room: static files compiled into the binary,
//! so the example runs with no npm, no build step and no files beside it.
//! Both the axum and the warp app serve them from [`FILES`].

/// One file of the page.
#[derive(Debug)]
pub struct StaticFile {
    /// The URL path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its content.
    pub body: &'static str,
}

/// The `Cache-Control` of every file. The files change with the binary;
/// `no-cache` makes the browser ask again (cheaply) after an upgrade instead
/// of mixing old and new modules.
pub const CACHE_CONTROL: &str = "no-cache";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
// Browsers refuse to run an ES module served with a non-JavaScript type.
const JS: &str = "text/javascript; charset=utf-8";

const fn file(path: &'static str, content_type: &'static str, body: &'static str) -> StaticFile {
    StaticFile {
        path,
        content_type,
        body,
    }
}

/// Every file of the page: `/` and the modules, styles and OT client it loads.
pub const FILES: &[StaticFile] = &[
    file("/", HTML, include_str!("../static/index.html")),
    file("/app.css", CSS, include_str!("../static/app.css")),
    file("/app.js", JS, include_str!("../static/app.js")),
    file("/room.js", JS, include_str!("../static/room.js")),
    file("/socket.js", JS, include_str!("../static/socket.js")),
    file("/editor.js", JS, include_str!("../static/editor.js")),
    file("/highlight.js", JS, include_str!("../static/highlight.js")),
    file("/chat.js", JS, include_str!("../static/chat.js")),
    file("/presence.js", JS, include_str!("../static/presence.js")),
    file("/history.js", JS, include_str!("../static/history.js")),
    file("/languages.js", JS, include_str!("../static/languages.js")),
    file("/dom.js", JS, include_str!("../static/dom.js")),
    file("/collab-ot.mjs", JS, collab_core::BROWSER_OT_MODULE),
];

/// The file served at `path`, if any.
pub fn find(path: &str) -> Option<&'static StaticFile> {
    FILES.iter().find(|f| f.path == path)
}

/// Where Prometheus reads the server's metrics.
pub const METRICS_PATH: &str = "/metrics";

/// The Prometheus text exposition format.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4";

#[cfg(test)]
mod tests {
    use super::{find, FILES};

    /// Every module the page imports (`... from "./x.js"`) is served, so a
    /// new module cannot be forgotten here.
    #[test]
    fn every_imported_module_is_served() {
        let mut imports = 0;
        for file in FILES {
            for piece in file.body.split(" from \"").skip(1) {
                let target = piece.split('"').next().unwrap_or_default();
                let target = target.trim_start_matches('.');
                assert!(
                    find(target).is_some(),
                    "{} imports {target}, which is not served",
                    file.path
                );
                imports += 1;
            }
        }
        assert!(imports > 10, "found only {imports} imports");
    }
}
