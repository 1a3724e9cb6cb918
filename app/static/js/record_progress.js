/* Fairbid: progress of an evaluation record being made, polled from its status JSON.
 *
 * Markup: #record-status with data-status-url, data-done ("true" stops polling) and the
 * translated data-ready-text / data-failed-text, containing <progress id="record-progress">,
 * .record-step and .record-status-text. Without JavaScript the page's Refresh link is the
 * fallback. No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var root = document.getElementById("record-status");
  if (!root || root.getAttribute("data-done") === "true" || !window.fetch) {
    return;
  }
  var bar = document.getElementById("record-progress");
  var step = root.querySelector(".record-step");
  var text = root.querySelector(".record-status-text");
  var url = root.getAttribute("data-status-url");

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (state) {
        if (!state) {
          return;
        }
        if (bar && typeof state.progress === "number") {
          bar.value = state.progress;
        }
        if (step && state.step) {
          step.textContent = state.step;
        }
        if (state.done) {
          if (text) {
            text.textContent = root.getAttribute(
              state.status === "failed" ? "data-failed-text" : "data-ready-text"
            );
          }
          return;
        }
        window.setTimeout(poll, 2000);
      })
      .catch(function () {
        window.setTimeout(poll, 5000);
      });
  }

  window.setTimeout(poll, 1000);
})();
