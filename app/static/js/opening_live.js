/* Fairbid: live progress of a bid opening over server-sent events.
 *
 * Markup: #opening-live with data-events-url and translated data-opened-text /
 * data-failed-text, containing the <progress id="opening-progress">, .opening-count and
 * .opening-message. Without JavaScript (or when the stream fails) the page's Refresh link
 * is the fallback. No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var root = document.getElementById("opening-live");
  if (!root || typeof EventSource === "undefined") {
    return;
  }
  var bar = document.getElementById("opening-progress");
  var count = root.querySelector(".opening-count");
  var message = root.querySelector(".opening-message");
  var source = new EventSource(root.getAttribute("data-events-url"));

  function show(done, total) {
    if (typeof total === "number" && total > 0) {
      bar.max = total;
    }
    if (typeof done === "number") {
      bar.value = done;
      count.textContent = done + " / " + bar.max;
    }
  }

  function data(event) {
    try {
      return JSON.parse(event.data);
    } catch (e) {
      return {};
    }
  }

  source.addEventListener("state", function (event) {
    var state = data(event);
    show(state.done, state.total);
  });
  source.addEventListener("started", function (event) {
    show(0, data(event).total);
  });
  source.addEventListener("progress", function (event) {
    var state = data(event);
    show(state.done, state.total);
  });
  source.addEventListener("opened", function (event) {
    var state = data(event);
    show(state.done, state.total);
    message.textContent = root.getAttribute("data-opened-text");
    source.close();
  });
  source.addEventListener("failed", function () {
    message.textContent = root.getAttribute("data-failed-text");
    source.close();
  });
  source.addEventListener("unavailable", function () {
    source.close();
  });
})();
