/* Fairbid: live countdown to a bid deadline, in the viewer's time zone.
 *
 * Markup: an element with data-deadline and data-server-now (ISO 8601 instants), plus
 * data-closed-text and data-local-label (translated by the server), containing
 * .countdown-remaining and .countdown-local. The server's clock is the authority: the
 * offset between it and the viewer's clock is measured once, when the page arrives, and
 * every tick uses the viewer's clock shifted by that offset, so a wrong clock on the
 * viewer's computer does not move the deadline. No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var SECOND = 1000;
  var MINUTE = 60 * SECOND;
  var HOUR = 60 * MINUTE;
  var DAY = 24 * HOUR;

  /* The viewer's clock when the server's response arrived: the closest local moment to
   * when data-server-now was written (falls back to now). */
  function clientTimeOfResponse() {
    try {
      var entries = performance.getEntriesByType("navigation");
      if (entries.length && entries[0].responseStart > 0) {
        return performance.timeOrigin + entries[0].responseStart;
      }
    } catch (e) { /* older browsers: use now */ }
    return Date.now();
  }

  /* Milliseconds between the server's clock and the viewer's (add to Date.now()). */
  function clockOffset(serverNowMs, clientAtServerNowMs) {
    return serverNowMs - clientAtServerNowMs;
  }

  /* {days, hours, minutes, seconds} left until the deadline (all 0 once passed). */
  function remaining(deadlineMs, nowMs) {
    var left = Math.max(0, deadlineMs - nowMs);
    return {
      total: left,
      days: Math.floor(left / DAY),
      hours: Math.floor((left % DAY) / HOUR),
      minutes: Math.floor((left % HOUR) / MINUTE),
      seconds: Math.floor((left % MINUTE) / SECOND)
    };
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatRemaining(parts, lang) {
    var clock = pad(parts.hours) + ":" + pad(parts.minutes) + ":" + pad(parts.seconds);
    if (!parts.days) { return clock; }
    var days;
    try {
      days = new Intl.NumberFormat(lang, { style: "unit", unit: "day", unitDisplay: "long" })
        .format(parts.days);
    } catch (e) {
      days = parts.days + " d";
    }
    return days + " " + clock;
  }

  function formatLocal(deadlineMs, lang) {
    try {
      return new Intl.DateTimeFormat(lang, { dateStyle: "full", timeStyle: "long" })
        .format(new Date(deadlineMs));
    } catch (e) {
      return new Date(deadlineMs).toString();
    }
  }

  function start(element) {
    var deadline = Date.parse(element.getAttribute("data-deadline"));
    var serverNow = Date.parse(element.getAttribute("data-server-now"));
    if (isNaN(deadline) || isNaN(serverNow)) { return; }
    var lang = document.documentElement.lang || undefined;
    var offset = clockOffset(serverNow, clientTimeOfResponse());
    var out = element.querySelector(".countdown-remaining");
    var local = element.querySelector(".countdown-local");
    if (local) {
      local.textContent = (element.getAttribute("data-local-label") || "") + " " +
        formatLocal(deadline, lang);
    }
    function tick() {
      var parts = remaining(deadline, Date.now() + offset);
      if (parts.total <= 0) {
        out.textContent = element.getAttribute("data-closed-text") || "";
        element.classList.add("closed");
        return;
      }
      out.textContent = formatRemaining(parts, lang);
      // Wake on the next whole second of the server's clock.
      setTimeout(tick, SECOND - ((Date.now() + offset) % SECOND) + 5);
    }
    if (out) { tick(); }
  }

  var api = { clockOffset: clockOffset, remaining: remaining, formatRemaining: formatRemaining };
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;  // for tests under Node
    return;
  }
  function startAll() {
    var elements = document.querySelectorAll("[data-deadline][data-server-now]");
    for (var i = 0; i < elements.length; i++) { start(elements[i]); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", startAll);
  } else {
    startAll();
  }
})();
