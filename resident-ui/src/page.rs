//! The page frame: big type and touch targets, one column, no JavaScript, a language switch at the
//! foot of every page (plain links, so it works everywhere).

use maud::{DOCTYPE, Markup, PreEscaped, html};
use platform::i18n::Lang;
use tenants::Tenant;

use crate::text::{T, t};

pub struct Ctx<'a> {
    pub tenant: &'a Tenant,
    pub lang: Lang,
    /// The current page below `/t/{tenant}/`, for the language switch to come back to.
    pub path: &'a str,
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:18px/1.6 system-ui,-apple-system,'Hiragino Sans','Noto Sans CJK JP',sans-serif;color:#111;background:#fff}\
header{background:#0b4f8a;color:#fff;padding:.75rem 1rem}header a{color:#fff}\
main{padding:1rem;max-width:40rem;margin:0 auto}\
h1{font-size:1.5rem;margin:.5rem 0 1rem}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input:not([type=radio]){display:block;width:100%;font-size:1.25rem;padding:.75rem;border:2px solid #555;border-radius:.4rem;min-height:3rem}\
button,.button{display:block;width:100%;margin:1.25rem 0;padding:.9rem;font-size:1.2rem;font-weight:700;text-align:center;\
border:0;border-radius:.5rem;background:#0b4f8a;color:#fff;text-decoration:none;min-height:3.25rem}\
.button.secondary{background:#e8eef5;color:#0b4f8a;border:2px solid #0b4f8a;display:inline-block;width:auto;margin:.25rem .5rem .25rem 0;padding:.6rem 1rem}\
button.danger{background:#a40000}button.link{background:none;color:#0b4f8a;text-decoration:underline;font-weight:400}\
.error{background:#fde8e8;border-left:6px solid #a40000;padding:.75rem;font-weight:600}\
.notice{background:#e6f4ea;border-left:6px solid #1e7b34;padding:.75rem}\
ul.choices,ul.cards{list-style:none;padding:0}\
.choice{display:block;padding:1rem;margin:.5rem 0;border:2px solid #0b4f8a;border-radius:.5rem;text-decoration:none;color:#111;min-height:3rem}\
.choice.disabled{border-color:#999;color:#555;background:#f2f2f2}\
.cards li{border:1px solid #999;border-radius:.5rem;padding:.75rem;margin:.75rem 0}.cards li.cancelled{color:#555;background:#f2f2f2}\
.cards p{margin:.2rem 0}.small{font-size:.95rem;color:#333}\
.mark{font-weight:700;white-space:nowrap}.mark.FREE{color:#1e5f2e}.mark.FEW_LEFT{color:#8a4b00}.mark.FULL{color:#555}\
.radio{font-weight:400;display:flex;align-items:center;gap:.5rem;min-height:3rem}.radio input{width:1.5rem;height:1.5rem}\
dl.summary dt{font-weight:700;margin-top:.5rem}dl.summary dd{margin:0 0 .25rem}\
fieldset{border:1px solid #999;border-radius:.5rem}details{margin:1rem 0}summary{min-height:3rem;padding:.5rem 0;font-weight:600}\
footer{padding:1rem;border-top:1px solid #ccc;text-align:center}footer a{display:inline-block;padding:.75rem;min-width:3rem}\
";

pub fn layout(ctx: &Ctx<'_>, title: &str, body: Markup) -> Markup {
    let lang = ctx.lang;
    let slug = &ctx.tenant.slug;
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (ctx.tenant.name) " " (t(lang, T::SiteTitle)) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header { a href=(format!("/t/{slug}/bookings")) { (ctx.tenant.name) " " (t(lang, T::SiteTitle)) } }
                main data-page=(page_name(ctx.path)) {
                    h1 { (title) }
                    (body)
                }
                footer {
                    nav aria-label=(t(lang, T::Language)) {
                        @for l in Lang::ALL {
                            @if l == lang {
                                strong lang=(l.tag()) { (l.native_name()) }
                            } @else {
                                a lang=(l.tag()) hreflang=(l.tag()) href=(format!("/t/{slug}/lang/{}?back={}", l.tag(), encode(ctx.path))) { (l.native_name()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Percent-encodes what would break a query value.
fn encode(raw: &str) -> String {
    raw.chars()
        .map(|c| match c {
            '%' => "%25".to_owned(),
            '?' => "%3F".to_owned(),
            '&' => "%26".to_owned(),
            '=' => "%3D".to_owned(),
            '#' => "%23".to_owned(),
            '+' => "%2B".to_owned(),
            ' ' => "%20".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A stable name per page (`venues`, `days`, `times`, …) on `<main data-page>`, for tests and styles.
fn page_name(path: &str) -> &str {
    let path = path.split('?').next().unwrap_or("");
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["venues", _] => "days",
        ["venues", _, _] => "times",
        [first, ..] => first,
        [] => "",
    }
}

pub fn not_found(lang: Lang) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1"; title { "404" } }
            body { main { h1 { (t(lang, T::NotFound)) } } }
        }
    }
}

/// A page that only says why the request was refused (a suspended city): no data of the city.
pub fn refusal(lang: Lang, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1"; title { (message) } }
            body { main data-page="refused" { p class="error" role="alert" { (message) } } }
        }
    }
}
