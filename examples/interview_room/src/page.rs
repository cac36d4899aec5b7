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
    /// Its content gzipped, for clients that accept it (the vendored files).
    pub gzip: Option<&'static [u8]>,
}

/// The `Cache-Control` of every file. The files change with the binary;
/// `no-cache` makes the browser ask again (cheaply) after an upgrade instead
/// of mixing old and new modules.
pub const CACHE_CONTROL: &str = "no-cache";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
// Browsers refuse to run an ES module served with a non-JavaScript type.
const JS: &str = "text/javascript; charset=utf-8";
// The vendored packages' licenses.
const TEXT: &str = "text/plain; charset=utf-8";

const fn file(path: &'static str, content_type: &'static str, body: &'static str) -> StaticFile {
    StaticFile {
        path,
        content_type,
        body,
        gzip: None,
    }
}

const fn vendored(
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    gzip: &'static [u8],
) -> StaticFile {
    StaticFile {
        path,
        content_type,
        body,
        gzip: Some(gzip),
    }
}

/// What to send for `file` to a client whose `Accept-Encoding` is
/// `accept_encoding`: the body, and `Some("gzip")` when it is the gzip copy.
pub fn encoded(
    file: &StaticFile,
    accept_encoding: Option<&str>,
) -> (&'static [u8], Option<&'static str>) {
    match file.gzip {
        Some(gzip) if accept_encoding.is_some_and(accepts_gzip) => (gzip, Some("gzip")),
        _ => (file.body.as_bytes(), None),
    }
}

/// The body and headers (lower-case names) that answer a request for `file`
/// from a client whose `Accept-Encoding` is `accept_encoding`; both
/// adapters send exactly these.
pub fn response(
    file: &StaticFile,
    accept_encoding: Option<&str>,
) -> (&'static [u8], Vec<(&'static str, &'static str)>) {
    let (body, encoding) = encoded(file, accept_encoding);
    let mut headers = vec![
        ("content-type", file.content_type),
        ("cache-control", cache_control(file)),
    ];
    if file.gzip.is_some() {
        headers.push(("vary", "accept-encoding"));
    }
    if let Some(encoding) = encoding {
        headers.push(("content-encoding", encoding));
    }
    (body, headers)
}

/// Whether an `Accept-Encoding` value accepts gzip (not with `q=0`).
fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// Every file of the page: `/` and the modules, styles and OT client it loads.
pub const FILES: &[StaticFile] = &[
    file("/", HTML, include_str!("../static/index.html")),
    file("/app.css", CSS, include_str!("../static/app.css")),
    file("/app.js", JS, include_str!("../static/app.js")),
    file("/room.js", JS, include_str!("../static/room.js")),
    file("/editor.js", JS, include_str!("../static/editor.js")),
    file("/chat.js", JS, include_str!("../static/chat.js")),
    file("/composer.js", JS, include_str!("../static/composer.js")),
    file("/run.js", JS, include_str!("../static/run.js")),
    file("/notices.js", JS, include_str!("../static/notices.js")),
    file("/header.js", JS, include_str!("../static/header.js")),
    file("/presence.js", JS, include_str!("../static/presence.js")),
    file("/history.js", JS, include_str!("../static/history.js")),
    file("/languages.js", JS, include_str!("../static/languages.js")),
    file("/dom.js", JS, include_str!("../static/dom.js")),
    file("/collab-ot.mjs", JS, collab_core::BROWSER_OT_MODULE),
    file("/collab-client.mjs", JS, collab_core::BROWSER_CLIENT_MODULE),
    file(
        "/collab-connection.mjs",
        JS,
        collab_core::BROWSER_CONNECTION_MODULE,
    ),
    file("/collab-state.mjs", JS, collab_core::BROWSER_STATE_MODULE),
    file(
        "/collab-codemirror.mjs",
        JS,
        collab_core::BROWSER_CODEMIRROR_MODULE,
    ),
];

/// The editor: CodeMirror 6's ES modules and their licenses, unchanged from
/// the npm packages `vendor/package-lock.json` pins (`vendor/revendor.mjs`
/// copies them; a test checks they match). `index.html`'s import map points
/// at them.
pub const VENDORED: &[StaticFile] = include!(concat!(env!("OUT_DIR"), "/vendored.rs"));

/// Every file of the page, the page's own and the vendored ones.
pub fn all() -> impl Iterator<Item = &'static StaticFile> {
    FILES.iter().chain(VENDORED)
}

/// The `Cache-Control` of `file`: the vendored files have their package's
/// version in their path, so a browser may keep them for good; the page's
/// own files change with the binary ([`CACHE_CONTROL`]).
pub fn cache_control(file: &StaticFile) -> &'static str {
    if file.path.starts_with("/vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        CACHE_CONTROL
    }
}

/// The file served at `path`, if any.
pub fn find(path: &str) -> Option<&'static StaticFile> {
    all().find(|f| f.path == path)
}

/// Where Prometheus reads the server's metrics.
pub const METRICS_PATH: &str = "/metrics";

/// The Prometheus text exposition format.
pub const METRICS_TYPE: &str = "text/plain; version=0.0.4";

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::{accepts_gzip, all, encoded, find, FILES, VENDORED};

    #[test]
    fn gzip_copies_are_the_files_compressed() {
        for file in VENDORED {
            let (bytes, encoding) = encoded(file, Some("gzip, deflate, br"));
            assert_eq!(encoding, Some("gzip"), "{}", file.path);
            let mut plain = String::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_string(&mut plain)
                .expect("a gzip stream");
            assert_eq!(plain, file.body, "{}", file.path);
            assert!(
                bytes.len() < file.body.len() || file.body.len() < 200,
                "{}",
                file.path
            );
        }
        // Without Accept-Encoding, or for the page's own files: the text.
        let view = VENDORED
            .iter()
            .find(|f| f.path.contains("@codemirror/view@"))
            .expect("view is vendored");
        assert_eq!(encoded(view, None), (view.body.as_bytes(), None));
        assert_eq!(
            encoded(&FILES[0], Some("gzip")),
            (FILES[0].body.as_bytes(), None)
        );
    }

    #[test]
    fn accept_encoding_is_read_as_browsers_send_it() {
        assert!(accepts_gzip("gzip, deflate, br, zstd"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br, deflate"));
        assert!(!accepts_gzip("identity"));
    }

    /// `index.html`'s import map: bare specifier (or prefix ending in `/`) to URL.
    fn import_map() -> Vec<(String, String)> {
        let html = FILES[0].body;
        let start = html
            .find("<script type=\"importmap\">")
            .expect("index.html has an import map");
        let json = &html[start..];
        let json = &json[json.find('>').unwrap_or(0) + 1..json.find("</script>").unwrap_or(0)];
        let map: serde_json::Value = serde_json::from_str(json).expect("the import map is JSON");
        map["imports"]
            .as_object()
            .expect("the import map has imports")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    }

    /// The URL a module at `from` reaches with `specifier`, as a browser
    /// resolves it with `map`.
    fn resolve(from: &str, specifier: &str, map: &[(String, String)]) -> Option<String> {
        if specifier.starts_with('/') {
            return Some(specifier.to_owned());
        }
        if let Some(rest) = specifier.strip_prefix("./") {
            let dir = &from[..=from.rfind('/')?];
            return Some(format!("{dir}{rest}"));
        }
        if let Some((_, url)) = map.iter().find(|(k, _)| k == specifier) {
            return Some(url.clone());
        }
        map.iter()
            .filter(|(k, _)| k.ends_with('/') && specifier.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(k, url)| format!("{url}{}", &specifier[k.len()..]))
    }

    /// The specifiers a module imports: `from "x"`, `from 'x'` and `import("x")`.
    fn specifiers(body: &str) -> Vec<&str> {
        let mut found = Vec::new();
        for marker in ["from \"", "from '", "import(\"", "import('"] {
            let quote = if marker.ends_with('"') { '"' } else { '\'' };
            for piece in body.split(marker).skip(1) {
                if let Some(end) = piece.find(quote) {
                    found.push(&piece[..end]);
                }
            }
        }
        found
    }

    /// The page's own modules talk to the server only through
    /// `CollabClient`'s methods: no frame of the protocol is written here
    /// (`{ type: "kick", ... }`), and neither the client's generic
    /// `request` nor a private `_request` is called.
    #[test]
    fn the_page_sends_nothing_but_through_the_client() {
        let own = FILES
            .iter()
            .filter(|f| f.content_type.starts_with("text/javascript"))
            .filter(|f| !f.path.contains("collab-"));
        let mut checked = 0;
        for file in own {
            checked += 1;
            for (n, line) in file.body.lines().enumerate() {
                // `type: "kick"`, `type:'kick'`, `"type": "kick"` alike.
                let squeezed: String = line
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .map(|c| if c == '\'' || c == '`' { '"' } else { c })
                    .collect();
                let raw_frame = squeezed
                    .replace("\"type\":", "type:")
                    .split("type:\"")
                    .skip(1)
                    .filter_map(|rest| rest.split('"').next().map(str::to_owned))
                    // Element and input types, not frames.
                    .any(|ty| !["button", "range", "text", "checkbox"].contains(&ty.as_str()));
                assert!(
                    !raw_frame && !line.contains(".request(") && !line.contains("_request("),
                    "{}:{}: talks to the server around CollabClient: {line}",
                    file.path,
                    n + 1
                );
            }
        }
        assert!(checked >= 10, "only {checked} of the page's modules");
    }

    /// Every module the page imports, its own and the vendored editor's,
    /// resolves (through the import map for bare names) to a served file,
    /// so a new module or a missing vendored package cannot go unnoticed.
    #[test]
    fn every_imported_module_is_served() {
        let map = import_map();
        let mut imports = 0;
        for file in all().filter(|f| f.content_type.starts_with("text/javascript")) {
            for specifier in specifiers(file.body) {
                // A word in a vendored file's documentation, not an import.
                if specifier == "module" {
                    continue;
                }
                let target = resolve(file.path, specifier, &map).unwrap_or_else(|| {
                    panic!(
                        "{} imports {specifier}, which the import map does not name",
                        file.path
                    )
                });
                assert!(
                    find(&target).is_some(),
                    "{} imports {specifier} ({target}), which is not served",
                    file.path
                );
                imports += 1;
            }
        }
        assert!(imports > 100, "found only {imports} imports");
        for (name, url) in &map {
            if !url.ends_with('/') {
                assert!(
                    find(url).is_some(),
                    "the import map sends {name} to {url}, which is not served"
                );
            }
        }
    }
}
