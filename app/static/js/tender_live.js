/* Fairbid: the public tender page follows the clock without a reload.
 *
 * Markup: #tender-status with data-status-url (the page's status.json) and
 * data-poll-seconds; a hidden #sealing-record section with #sealing-text, #sealing-root and
 * #sealing-download. Every few seconds the script asks the server for the status (its label
 * comes translated in the page's language) and, once the sealing record is made, shows its
 * Merkle root; it stops when the server says nothing more will change on its own
 * (`final`). A failed request is retried at the next interval; without JavaScript the page
 * is right after a reload. No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var status = document.getElementById("tender-status");
  if (!status || !status.getAttribute("data-status-url") || typeof fetch === "undefined") {
    return;
  }
  var url = status.getAttribute("data-status-url");
  var seconds = parseFloat(status.getAttribute("data-poll-seconds")) || 5;
  var delay = Math.max(1, seconds) * 1000;
  var LONGEST = 10 * 60 * 1000;
  /* The server's clock is the authority: keep the offset to the viewer's clock. */
  var deadline = Date.parse(status.getAttribute("data-deadline") || "");
  var offset = (Date.parse(status.getAttribute("data-server-now") || "") - Date.now()) || 0;
  var open = status.getAttribute("data-status") === "published";

  /* Far from the deadline nothing changes on its own: ask rarely (an addendum may move
   * the deadline; each answer brings it), then every few seconds around and after it. */
  function nextDelay() {
    if (!open || isNaN(deadline)) {
      return delay;
    }
    var left = deadline - (Date.now() + offset);
    return left > 2 * delay ? Math.min(left - delay, LONGEST) : delay;
  }

  function show(state) {
    if (state.label && status.textContent !== state.label) {
      status.textContent = state.label;
    }
    status.setAttribute("data-status", state.status || "");
    open = state.status === "published";
    if (state.deadline && state.server_now) {
      deadline = Date.parse(state.deadline);
      offset = Date.parse(state.server_now) - Date.now();
    }
    if (state.status && !state.bidding_open) {
      var countdown = document.getElementById("countdown");
      var remaining = countdown && countdown.querySelector(".countdown-remaining");
      if (remaining && countdown.getAttribute("data-closed-text")) {
        remaining.textContent = countdown.getAttribute("data-closed-text");
      }
    }
    var sealing = state.sealing;
    var section = document.getElementById("sealing-record");
    if (sealing && section) {
      document.getElementById("sealing-text").textContent = sealing.text;
      document.getElementById("sealing-root").textContent = sealing.root;
      document.getElementById("sealing-download").setAttribute("href", sealing.url);
      section.hidden = false;
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 404) {
          return { final: true }; /* no longer public: nothing more to follow */
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (state) {
        show(state);
        if (!state.final) {
          window.setTimeout(poll, nextDelay());
        }
      })
      .catch(function () {
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, nextDelay());
})();
