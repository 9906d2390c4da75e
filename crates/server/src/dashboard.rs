//! The dashboard at `/dashboard`: a single-page app (plain HTML, CSS and JavaScript in
//! `crates/server/dashboard/`, compiled into the binary, no build step and no CDN) that talks to
//! the same API v2 as every client, with the caller's credentials.
//!
//! The pages themselves carry no data, so they are served without credentials (the app asks for a
//! token or a user name and password when the API answers 401/403); everything it shows comes from
//! authenticated API calls. A strict Content-Security-Policy keeps the page from loading or
//! sending anything anywhere but this server.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{ApiError, ErrorName};
use crate::AppState;

/// The files of the app: (name, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../dashboard/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../dashboard/favicon.svg"),
    ),
];

/// Nothing but this server: scripts, styles, images and API calls alike; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes (merged into the app before the auth layer, which lets them through).
pub fn routes() -> Router<AppState> {
    Router::new()
        // Relative, so it also holds behind a proxy that serves Ochre under a path prefix.
        .route(
            "/dashboard",
            get(|| async { Redirect::permanent("dashboard/") }),
        )
        .route("/dashboard/", get(|| async { asset("index.html") }))
        .route(
            "/dashboard/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

/// Whether `path` is one of the dashboard's static files (served without credentials): exactly
/// those, so no other path can ever pass for one.
pub fn is_dashboard(path: &str) -> bool {
    match path.strip_prefix("/dashboard") {
        Some("" | "/") => true,
        Some(rest) => rest
            .strip_prefix('/')
            .is_some_and(|name| ASSETS.iter().any(|(n, _, _)| *n == name)),
        None => false,
    }
}

fn asset(name: &str) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorName::NotFound,
            format!("the dashboard has no file '{name}'"),
        )
        .into_response();
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Small files that change with the binary: revalidate rather than go stale after an upgrade.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dashboards_own_files_are_public() {
        for p in [
            "/dashboard",
            "/dashboard/",
            "/dashboard/app.js",
            "/dashboard/style.css",
        ] {
            assert!(is_dashboard(p), "{p}");
        }
        for p in [
            "/dashboard/../api/v2/tenants",
            "/dashboard/%2e%2e/metrics",
            "/dashboard/app.js/x",
            "/dashboardx",
            "/dashboard//app.js",
            "/api/v2/dashboard/",
        ] {
            assert!(!is_dashboard(p), "{p}");
        }
    }

    #[test]
    fn every_file_the_page_names_is_served() {
        let index = ASSETS[0].2;
        for (name, _, _) in &ASSETS[1..] {
            assert!(index.contains(name), "index.html does not use {name}");
        }
        // Nothing from elsewhere: no absolute URLs in what the page loads.
        for (name, _, body) in ASSETS {
            for scheme in ["http://", "https://", "//cdn"] {
                assert!(
                    !body.contains(&format!("src=\"{scheme}"))
                        && !body.contains(&format!("href=\"{scheme}")),
                    "{name} loads something from elsewhere"
                );
            }
        }
    }
}
