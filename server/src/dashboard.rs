//! The web dashboard: the files `dashboard/` builds (`dashboard/dist`, committed), embedded in
//! the binary so the gateway serves it at `/` without Node on the machine.
//!
//! It is the fallback of the gateway's router: gRPC, grpc-web and `/metrics` keep their routes,
//! and every other request comes here.
//!
//! - A call in a gRPC content type (`application/grpc…`) reaching the fallback names a service
//!   the gateway does not have: it gets `UNIMPLEMENTED` as a gRPC status, never the page, so
//!   clients see the right code.
//! - `GET`/`HEAD` of a built file serves it, the gzip copy when the browser accepts gzip.
//!   Files under `/assets/` carry a content hash in their name and are cached for a year;
//!   an unknown `/assets/…` path is 404 (not the page, which a browser would run as a script).
//! - Any other `GET` is the single-page app's route (`/databases`, `/db/x/console`): `index.html`.
//! - Every answer carries the security headers of [`SECURITY_HEADERS`]: a Content-Security-Policy
//!   without inline scripts or styles, `nosniff`, no referrer, no framing.
//!
//! ```
//! use axum::http::StatusCode;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let req = axum::http::Request::get("/databases").body(axum::body::Body::empty()).unwrap();
//! let res = dbforge_server::dashboard::serve(req).await;
//! assert_eq!(res.status(), StatusCode::OK); // the app's index.html
//! # });
//! ```

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::Response,
};
use include_dir::{Dir, File, include_dir};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../dashboard/dist");

/// The Content-Security-Policy of every dashboard answer. Scripts and styles come from the
/// gateway only, no inline script or `style` attribute markup ('unsafe-inline' is absent).
/// CodeMirror styles itself with constructable stylesheets and the charts and the virtual
/// table position elements through the CSSOM, which `style-src 'self'` allows. `img-src` allows
/// `data:`/`blob:` for the chart's PNG export; `connect-src 'self'` is the grpc-web calls.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Headers on every dashboard answer (the page, its files, and the 404s).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Serves one request that no other route took; see the module docs.
pub async fn serve(req: Request) -> Response {
    let headers = req.headers();
    if is_grpc(headers) {
        return unimplemented_service(headers, req.uri().path());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let path = req.uri().path().trim_start_matches('/');
    let gzip = accepts_gzip(headers);
    let head = req.method() == Method::HEAD;
    let found = if path.is_empty() || path.ends_with(".gz") {
        None
    } else {
        DIST.get_file(path)
    };
    match found {
        Some(file) => file_response(file, gzip, head, path.starts_with("assets/")),
        None if path.starts_with("assets/") => plain(StatusCode::NOT_FOUND, "no such file\n"),
        None => match DIST.get_file("index.html") {
            Some(index) => file_response(index, gzip, head, false),
            None => plain(
                StatusCode::NOT_FOUND,
                "the dashboard was built without files\n",
            ),
        },
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// A gRPC (or grpc-web) call to a service this gateway does not serve: status 12 in the
/// headers, as a trailers-only response, in the caller's own content type.
fn unimplemented_service(headers: &HeaderMap, path: &str) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/grpc"));
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let message = format!("unknown service {service}");
    let mut res = Response::new(Body::empty());
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert("grpc-status", HeaderValue::from_static("12"));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&message)) {
        h.insert("grpc-message", v);
    }
    res
}

/// grpc-message is percent-encoded outside printable ASCII (and `%` itself).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn file_response(
    file: &'static File<'static>,
    gzip: bool,
    head: bool,
    immutable: bool,
) -> Response {
    let path = file.path().to_string_lossy();
    let compressed = gzip.then(|| DIST.get_file(format!("{path}.gz"))).flatten();
    let body = compressed.unwrap_or(file).contents();
    let mut res = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if compressed.is_some() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    secure(res)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut res = Response::new(Body::from(text));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(res)
}

fn secure(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        serve(req.body(Body::empty()).expect("request")).await
    }

    async fn body(res: Response) -> Vec<u8> {
        use http_body_util::BodyExt;
        res.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn routes_of_the_app_get_its_page_with_the_security_headers() {
        for path in ["/", "/databases", "/db/x%20y/console", "/admin/keys"] {
            let res = get(path, &[]).await;
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
            assert_eq!(res.headers()["content-security-policy"], CSP);
            assert_eq!(res.headers()["x-content-type-options"], "nosniff");
            assert_eq!(res.headers()["referrer-policy"], "no-referrer");
            assert_eq!(res.headers()["cache-control"], "no-cache");
            let html = String::from_utf8(body(res).await).expect("utf-8");
            assert!(html.contains("<div id=\"app\">"), "{html}");
            assert!(!html.contains("<script>"), "no inline script: {html}");
        }
    }

    #[tokio::test]
    async fn assets_are_served_gzipped_when_accepted_and_unknown_ones_are_404() {
        let index = String::from_utf8(body(get("/", &[]).await).await).expect("utf-8");
        let script = index
            .split("src=\"/")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("index.html loads a script");
        let plain = get(&format!("/{script}"), &[]).await;
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(
            plain.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(
            plain.headers()["cache-control"]
                .to_str()
                .expect("ascii")
                .contains("immutable")
        );
        assert!(plain.headers().get("content-encoding").is_none());
        let plain_len = body(plain).await.len();
        let zipped = get(
            &format!("/{script}"),
            &[("accept-encoding", "br, gzip;q=0.9")],
        )
        .await;
        assert_eq!(zipped.headers()["content-encoding"], "gzip");
        assert!(body(zipped).await.len() < plain_len);
        let refused = get(&format!("/{script}"), &[("accept-encoding", "gzip;q=0")]).await;
        assert!(refused.headers().get("content-encoding").is_none());

        let missing = get("/assets/nope.js", &[]).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
    }

    #[tokio::test]
    async fn grpc_calls_that_reach_the_fallback_are_unimplemented() {
        for ct in ["application/grpc", "application/grpc-web+proto"] {
            let req = Request::post("/no.such.Service/Call")
                .header("content-type", ct)
                .body(Body::empty())
                .expect("request");
            let res = serve(req).await;
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.headers()["grpc-status"], "12");
            assert_eq!(res.headers()["content-type"], ct);
            assert_eq!(
                res.headers()["grpc-message"],
                "unknown service no.such.Service"
            );
        }
    }

    #[tokio::test]
    async fn other_methods_are_refused() {
        let req = Request::post("/databases")
            .body(Body::empty())
            .expect("request");
        let res = serve(req).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }
}
