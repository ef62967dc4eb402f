// A toolkit: not every helper is used by every set of tests.
#![allow(dead_code)]
//! Headless Chromium for the web pages (Debian's `chromium`; `.ci/run` installs it). Each browser has a
//! fresh profile and the flags this machine needs (no sandbox as root, no background networking).

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::dom::{
    GetDocumentParams, GetOuterHtmlParams, ScrollIntoViewIfNeededParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetScriptExecutionDisabledParams;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use tokio::task::JoinHandle;

pub struct TestBrowser {
    pub browser: Browser,
    handler: JoinHandle<()>,
    profile: PathBuf,
}

/// A phone-sized viewport (the resident site is phone-first).
pub const PHONE: (u32, u32) = (390, 844);
/// A desktop / tablet viewport for the admin UI.
pub const DESKTOP: (u32, u32) = (1280, 900);

pub async fn launch((width, height): (u32, u32)) -> TestBrowser {
    let profile = std::env::temp_dir().join(format!("yoyaku-chromium-{}", uuid::Uuid::new_v4()));
    let executable = std::env::var("CHROME").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .user_data_dir(&profile)
        .viewport(Viewport {
            width,
            height,
            device_scale_factor: Some(1.0),
            emulating_mobile: width < 600,
            is_landscape: false,
            has_touch: width < 600,
        })
        .window_size(width, height)
        .args([
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--lang=ja",
        ])
        .launch_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(30))
        .build()
        .expect("browser config");
    let (browser, mut events) = Browser::launch(config)
        .await
        .expect("launch chromium (apt-get install chromium fonts-noto-cjk, or run .ci/run)");
    let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
    TestBrowser {
        browser,
        handler,
        profile,
    }
}

impl TestBrowser {
    pub async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page(url).await.expect("open page");
        page.wait_for_navigation().await.expect("load page");
        page
    }

    /// A page with JavaScript switched off before anything loads (old phones, locked-down browsers).
    pub async fn open_without_js(&self, url: &str) -> Page {
        let page = self
            .browser
            .new_page("about:blank")
            .await
            .expect("blank page");
        page.execute(SetScriptExecutionDisabledParams::new(true))
            .await
            .expect("disable JavaScript");
        page.goto(url).await.expect("goto");
        page.wait_for_navigation().await.expect("load page");
        page
    }

    /// A new page on the admin login form, logged in as `email` (see [`log_in_staff`]).
    pub async fn staff_page(&self, base: &str, email: &str, password: &str) -> Page {
        let page = self.open(&format!("{base}/admin/login")).await;
        submit_staff_login(&page, email, password).await;
        page
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The visible text of the page.
pub async fn text(page: &Page) -> String {
    page.evaluate("document.body.innerText")
        .await
        .expect("evaluate")
        .into_value::<String>()
        .expect("string")
}

/// Types into the field matching `selector` (clearing it first).
pub async fn fill(page: &Page, selector: &str, value: &str) {
    let el = page
        .find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
    el.click().await.expect("focus");
    page.evaluate(format!(
        "document.querySelector({}).value = ''",
        serde_json::to_string(selector).expect("json")
    ))
    .await
    .ok();
    el.type_str(value).await.expect("type");
}

/// Clicks the element matching `selector` and waits for the resulting navigation.
pub async fn click_and_wait(page: &Page, selector: &str) {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .expect("click");
    page.wait_for_navigation().await.expect("navigation");
}

/// Polls until the page text contains `needle` (for pages that update themselves).
pub async fn wait_for_text(page: &Page, needle: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if text(page).await.contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Sets a field's value directly (date/time inputs and selects, whose typing is locale-dependent).
pub async fn set_value(page: &Page, selector: &str, value: &str) {
    page.evaluate(format!(
        "document.querySelector({}).value = {}",
        serde_json::to_string(selector).expect("json"),
        serde_json::to_string(value).expect("json")
    ))
    .await
    .unwrap_or_else(|e| panic!("{selector}: {e}"));
}

/// Puts a file into the `<input type=file>` matching `selector`, as if the user had chosen it.
pub async fn choose_file(page: &Page, selector: &str, path: &std::path::Path) {
    use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
    let el = page
        .find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
    page.execute(SetFileInputFilesParams {
        files: vec![path.to_string_lossy().into_owned()],
        node_id: None,
        backend_node_id: Some(el.backend_node_id),
        object_id: None,
    })
    .await
    .expect("set file");
}

/// The `href` of the element matching `selector`.
pub async fn href(page: &Page, selector: &str) -> String {
    page.evaluate(format!(
        "document.querySelector({}).href",
        serde_json::to_string(selector).expect("json")
    ))
    .await
    .expect("evaluate")
    .into_value::<String>()
    .expect("href")
}

/// The visible text, or "" while the page is between documents (during a navigation).
pub async fn text_now(page: &Page) -> String {
    match page
        .evaluate("document.body ? document.body.innerText : ''")
        .await
    {
        Ok(v) => v.into_value::<String>().unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Goes to `url` and waits for it to load.
pub async fn goto(page: &Page, url: impl Into<String>) {
    page.goto(url).await.expect("goto");
    page.wait_for_navigation().await.expect("load");
}

/// Waits (up to 10 s) until the visible text contains `needle`; panics with what the page shows.
pub async fn wait_text(page: &Page, needle: &str) {
    if !shows_within_10s(page, needle).await {
        panic!("expected {needle:?} in {}", text_now(page).await);
    }
}

async fn shows_within_10s(page: &Page, needle: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if text_now(page).await.contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Clicks a submit button (or link) and waits until the next page shows `expect`.
pub async fn submit(page: &Page, selector: &str, expect: &str) {
    click_and_wait(page, selector).await;
    if !shows_within_10s(page, expect).await {
        panic!(
            "after {selector}: expected {expect:?} in {}",
            text_now(page).await
        );
    }
}

// ---- staff: the admin UI's login form ------------------------------------------------------------

/// Logs staff in through the admin UI's login form on `page` (going to `/admin/login` first) and
/// waits until the page after the redirect shows the session's "Log out" button.
pub async fn log_in_staff(page: &Page, base: &str, email: &str, password: &str) {
    goto(page, format!("{base}/admin/login")).await;
    submit_staff_login(page, email, password).await;
}

/// Fills in and submits the login form the page shows (waiting until the redirect has landed: a
/// navigation started before it ends is aborted by the browser).
async fn submit_staff_login(page: &Page, email: &str, password: &str) {
    fill(page, "input[name=email]", email).await;
    fill(page, "input[name=password]", password).await;
    submit(page, "#login", "Log out").await;
}

// ---- residents: the resident site, phone-first, also without JavaScript ---------------------------
// These helpers use only the DevTools DOM and Input domains, which work with page scripts off.

/// The path of the demo city's login page as the QR code on resident `n`'s ticket opens it.
pub fn demo_login_path(n: u32) -> String {
    format!(
        "/t/demo/login?ticket={}",
        platform::demo::demo_resident(n).ticket_no
    )
}

/// The page's HTML through the DevTools DOM domain, which (unlike `evaluate`) works with page
/// scripts switched off. None while a navigation replaces the document.
pub async fn page_html(page: &Page) -> Option<String> {
    let read = async {
        let doc = page.execute(GetDocumentParams::default()).await.ok()?;
        let html = page
            .execute(
                GetOuterHtmlParams::builder()
                    .node_id(doc.result.root.node_id)
                    .build(),
            )
            .await
            .ok()?;
        Some(html.result.outer_html)
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}

/// The page's HTML, or "" while a navigation replaces the document.
pub async fn html_now(page: &Page) -> String {
    page_html(page).await.unwrap_or_default()
}

/// Waits until the resident page `name` (its `data-page`) has loaded to its footer.
pub async fn wait_for_page(page: &Page, name: &str) {
    let marker = format!("data-page=\"{name}\"");
    for _ in 0..150 {
        if page_html(page)
            .await
            .is_some_and(|h| h.contains(&marker) && h.contains("</footer>"))
        {
            tokio::time::sleep(Duration::from_millis(150)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "page {name} did not load; showing: {:?}",
        page_html(page).await
    );
}

/// Taps an element with real input events, through the DevTools DOM and Input domains only:
/// chromiumoxide's `Element::click` scrolls with JavaScript, which never answers when scripts are off.
pub async fn tap(page: &Page, selector: &str) {
    let el = page
        .find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
    page.execute(
        ScrollIntoViewIfNeededParams::builder()
            .backend_node_id(el.backend_node_id)
            .build(),
    )
    .await
    .expect("scroll into view");
    let point = el.clickable_point().await.expect("clickable point");
    page.click(point).await.expect("click");
}

/// Types into an empty field (no JavaScript needed).
pub async fn type_into(page: &Page, selector: &str, value: &str) {
    tap(page, selector).await;
    page.find_element(selector)
        .await
        .expect("field")
        .type_str(value)
        .await
        .expect("type");
}

/// Taps `selector` and waits for the resident page `next`.
pub async fn go(page: &Page, selector: &str, next: &str) {
    tokio::time::timeout(Duration::from_secs(20), tap(page, selector))
        .await
        .unwrap_or_else(|_| panic!("clicking {selector} took over 20 s"));
    wait_for_page(page, next).await;
}

/// Clicks a language link on the login page and waits for the page to speak it.
pub async fn switch_language(page: &Page, tag: &str, phrase: &str) {
    wait_for_page(page, "login").await;
    tap(page, &format!("footer a[lang='{tag}']")).await;
    for _ in 0..100 {
        if page_html(page).await.is_some_and(|t| t.contains(phrase)) {
            wait_for_page(page, "login").await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("language {tag} did not apply: {:?}", page_html(page).await);
}

/// Logs a resident in on the login page `page` shows (ticket number already filled in by the QR
/// link): types `birth_date`, asks for the SMS code, types the code `code` comes back with once it
/// has been asked for, and waits for "my bookings".
pub async fn log_in_resident(
    page: &Page,
    birth_date: chrono::NaiveDate,
    code: impl AsyncFnOnce() -> String,
) {
    type_into(page, "#birth_date", &birth_date.to_string()).await;
    go(page, "#send-code", "code").await;
    let code = code().await;
    type_into(page, "#code", &code).await;
    go(page, "#log-in", "bookings").await;
}
