// Live intake list (docs/intake.md): re-reads the rows of the day's list every two seconds and
// swaps them in when another tablet changed something. Served by the app itself (no CDN); without
// JavaScript the page refreshes itself through a <noscript> meta refresh instead.
(function () {
  "use strict";
  var rows = document.getElementById("intake-rows");
  if (!rows || !window.fetch) { return; }
  var src = rows.getAttribute("data-src");
  var last = null;
  var busy = false;
  function refresh() {
    // never pull the rug from under someone who is pressing a button in the list
    if (busy || rows.contains(document.activeElement) && document.activeElement !== document.body) { return; }
    busy = true;
    fetch(src, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (res) { return res.ok ? res.text() : null; })
      .then(function (html) {
        if (html !== null && html !== last) {
          last = html;
          rows.innerHTML = html;
        }
      })
      .catch(function () { /* offline for a moment: try again at the next tick */ })
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, 2000);
})();
