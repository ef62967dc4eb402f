// A toolkit: not every helper is used by every set of tests.
#![allow(dead_code)]
//! Headless Chromium for the web pages (Debian's `chromium`; `.ci/run` installs it). Each browser has a
//! fresh profile and the flags this machine needs (no sandbox as root, no background networking).

use std::path::PathBuf;
use std::time::Duration;

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
