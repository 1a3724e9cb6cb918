/* Fairbid: the supervisors' dashboard, live over server-sent events.
 *
 * Markup: #live-state with data-live (1 when Redis is up), data-events-url,
 * data-summary-url, data-poll-seconds and the translated data-live-text /
 * data-offline-text; totals in [data-total], stage counts in [data-stage], envelope counts
 * in [data-envelopes=<tender id>], lists in ul[data-list=<key>] (items: link, title,
 * centre). Each `summary` event (or, when the stream is not live, each poll of
 * summary.json) carries the whole snapshot, which replaces what the page shows. Text only
 * (textContent): nothing received is parsed as HTML. No inline script (CSP).
 */
(function () {
  "use strict";

  var state = document.getElementById("live-state");
  if (!state) {
    return;
  }
  var pollSeconds = parseInt(state.getAttribute("data-poll-seconds"), 10) || 15;
  var polling = null;
  var source = null;

  function setText(node, text) {
    if (node && node.textContent !== String(text)) {
      node.textContent = String(text);
    }
  }

  function say(live) {
    state.setAttribute("data-live", live ? "1" : "0");
    state.className = "notice " + (live ? "success" : "warning");
    state.firstChild.textContent =
      state.getAttribute(live ? "data-live-text" : "data-offline-text") + " ";
  }

  var details = {
    deadlines_today: function (row) { return new Date(row.deadline).toLocaleString(); },
    openings_today: function (row) { return new Date(row.opening_at).toLocaleString(); },
    evaluations_waiting: function (row) { return row.waiting_label; },
    objections_open: function (row) { return String(row.objections); },
    alerts: function (row) { return row.alert_title; }
  };

  function fillList(list, rows, key) {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    if (!rows.length) {
      var empty = document.createElement("li");
      empty.textContent = list.getAttribute("data-empty");
      list.appendChild(empty);
      return;
    }
    rows.forEach(function (row) {
      var li = document.createElement("li");
      li.setAttribute("data-id", row.id);
      var link = document.createElement("a");
      link.href = row.url;
      link.textContent = row.reference;
      li.appendChild(link);
      var text = " " + row.title + " · " + row.centre;
      var detail = details[key] ? details[key](row) : "";
      if (detail) {
        text += " · " + detail;
      }
      li.appendChild(document.createTextNode(text));
      list.appendChild(li);
    });
  }

  function show(data) {
    if (!data || !data.totals) {
      return;
    }
    Object.keys(data.totals).forEach(function (key) {
      setText(document.querySelector('[data-total="' + key + '"]'), data.totals[key]);
    });
    Object.keys(data.stages).forEach(function (key) {
      setText(document.querySelector('[data-stage="' + key + '"]'), data.stages[key]);
    });
    var known = {};
    data.envelopes.forEach(function (row) {
      known[row.id] = true;
      setText(document.querySelector('[data-envelopes="' + row.id + '"]'), row.envelopes);
      setText(document.querySelector('[data-status="' + row.id + '"]'), row.status_label);
    });
    document.querySelectorAll("ul[data-list]").forEach(function (list) {
      var key = list.getAttribute("data-list");
      if (data[key]) {
        fillList(list, data[key], key);
      }
    });
    var stamp = document.getElementById("generated-at");
    if (stamp) {
      stamp.setAttribute("datetime", data.generated_at);
      stamp.textContent = new Date(data.generated_at).toLocaleString();
    }
    // A tender that started or stopped taking bids changes the table's rows: reload once.
    var rows = document.querySelectorAll("[data-envelopes]");
    if (rows.length !== data.envelopes.length) {
      window.location.reload();
    } else {
      rows.forEach(function (cell) {
        if (!known[cell.getAttribute("data-envelopes")]) {
          window.location.reload();
        }
      });
    }
  }

  function poll() {
    fetch(state.getAttribute("data-summary-url"), {
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(show)
      .catch(function () {});
  }

  function fallBack() {
    if (source) {
      source.close();
      source = null;
    }
    say(false);
    if (!polling) {
      polling = window.setInterval(poll, pollSeconds * 1000);
    }
  }

  function connect() {
    if (typeof EventSource === "undefined") {
      fallBack();
      return;
    }
    source = new EventSource(state.getAttribute("data-events-url"));
    source.addEventListener("summary", function (event) {
      if (polling) {
        window.clearInterval(polling);
        polling = null;
      }
      say(true);
      state.setAttribute("data-stream", "open");
      try {
        show(JSON.parse(event.data));
      } catch (e) {}
    });
    source.addEventListener("unavailable", fallBack);
    source.onerror = function () {
      // The stream ends on purpose after a while and the browser reconnects; a failing
      // reconnection (readyState CLOSED) means the server is not live.
      if (source && source.readyState === EventSource.CLOSED) {
        fallBack();
      }
    };
  }

  if (state.getAttribute("data-live") === "1") {
    connect();
  } else {
    fallBack();
  }
})();
