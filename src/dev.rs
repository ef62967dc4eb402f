//! Development-only pages (not routed in production): `/dev/messages` shows what the development
//! log channel "sent", so the demo's SMS login code can be read without an SMS gateway;
//! `/dev/panic` panics on purpose (the panic catcher's test and a smoke check for operators).

use axum::{Router, extract::State, response::Html, routing::get};
use maud::{DOCTYPE, html};

pub fn router<S>(messages: plugins::LogChannel) -> Router<S> {
    Router::new()
        .route("/dev/messages", get(list))
        .route("/dev/panic", get(panic))
        .with_state(messages)
}

/// A handler that panics, so the panic catcher (`crate::panic`) can be seen to answer 500 with the
/// request id while the server keeps serving. Development only, like this whole router.
async fn panic() -> Html<String> {
    panic!("deliberate panic from /dev/panic")
}

async fn list(State(messages): State<plugins::LogChannel>) -> Html<String> {
    let recent = messages.recent();
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="robots" content="noindex";
                    title { "Messages (development)" }
                    style { "body{font-family:sans-serif;margin:1rem;line-height:1.5}li{margin:.5rem 0;padding:.5rem;border:1px solid #999}" }
                }
                body {
                    h1 { "Messages sent by the development log channel" }
                    p { "Newest first. Shown only outside production." }
                    @if recent.is_empty() { p { "No messages yet." } }
                    ol {
                        @for m in &recent {
                            li class="message" {
                                div { small { (m.at.format("%Y-%m-%d %H:%M:%S UTC")) " · " (format!("{:?}", m.message.to)) } }
                                div class="text" { (m.message.text) }
                            }
                        }
                    }
                }
            }
        }
        .into_string(),
    )
}
