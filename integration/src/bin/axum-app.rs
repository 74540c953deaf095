//! A weaver app served by axum: `axum::serve` takes the `weaver::Listener`
//! directly (weaver's `axum` feature).
//!
//! `GET /shout?s=x` answers `X!` (and the pid of the Main replica that
//! served it, after a space), through a Shouter component.

use axum::Router;
use axum::http::Uri;
use axum::routing::get;
use weaver::{Context, Listener, Ref};

/// Upper-cases strings.
#[weaver::component]
pub(crate) trait Shouter {
    /// `s` in capitals, with an exclamation mark.
    async fn shout(&self, ctx: &Context, s: String) -> weaver::Result<String>;
}

#[weaver::implements(Shouter)]
struct ShouterImpl;

impl Shouter for ShouterImpl {
    async fn shout(&self, _ctx: &Context, s: String) -> weaver::Result<String> {
        Ok(format!("{}!", s.to_uppercase()))
    }
}

#[weaver::main]
struct App {
    shouter: Ref<dyn Shouter>,
    http: Listener,
}

#[tokio::main]
async fn main() -> weaver::Result<()> {
    weaver::run(|app: &'static App, _ctx| async move {
        let router = Router::new().route(
            "/shout",
            get(move |uri: Uri| async move {
                let s = uri
                    .query()
                    .and_then(|q| q.strip_prefix("s="))
                    .unwrap_or("")
                    .to_string();
                match app.shouter.shout(&Context::new(), s).await {
                    Ok(loud) => format!("{loud} {}", std::process::id()),
                    Err(e) => format!("error: {e:?}"),
                }
            }),
        );
        axum::serve(&app.http, router).await?;
        Ok(())
    })
    .await
}
