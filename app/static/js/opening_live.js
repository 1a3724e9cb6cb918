/* Fairbid: the bid opening, live, over server-sent events (app/events.py).
 *
 * Markup: #opening-live with data-events-url, data-over ("true" once the ceremony is
 * completed or failed: then nothing is requested), data-record-url and the translated
 * texts (data-*-text; {unlocked}, {threshold}, {sha} are filled in here); inside it the
 * <progress id="opening-progress">, .opening-count, .opening-message and .opening-shares;
 * the lines go into #opening-lines (tbody) of #opening-lines-section, whose
 * .opening-record shows the published record.
 *
 * Events: state (the whole state, first on every connection), started, unlocked, reset,
 * progress, line, record, opened, failed, unavailable. The page stops listening once the
 * ceremony is over (or the stream is refused or unavailable); until then the browser
 * reconnects after each stream ends and gets the state again. Without JavaScript the
 * Refresh link is the fallback. No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var root = document.getElementById("opening-live");
  if (!root || typeof EventSource === "undefined") {
    return;
  }
  if (root.getAttribute("data-over") === "true") {
    return; // the ceremony is over: the page already shows everything
  }
  var bar = document.getElementById("opening-progress");
  var count = root.querySelector(".opening-count");
  var message = root.querySelector(".opening-message");
  var shares = root.querySelector(".opening-shares");
  var section = document.getElementById("opening-lines-section");
  var tbody = document.getElementById("opening-lines");
  var recordBox = section ? section.querySelector(".opening-record") : null;
  var over = false;
  var source = new EventSource(root.getAttribute("data-events-url"));

  function text(name) {
    return root.getAttribute("data-" + name + "-text") || "";
  }

  function say(value) {
    message.textContent = value;
  }

  function show(done, total) {
    if (typeof total === "number" && total > 0) {
      bar.max = total;
    }
    if (typeof done === "number") {
      bar.value = done;
      count.textContent = done + " / " + bar.max;
    }
  }

  function showShares(unlocked, threshold) {
    if (!shares || typeof threshold !== "number") {
      return;
    }
    shares.textContent = text("shares")
      .replace("{unlocked}", String(unlocked || 0))
      .replace("{threshold}", String(threshold));
    shares.hidden = false;
  }

  function hideShares() {
    if (shares) {
      shares.hidden = true;
    }
  }

  function parsed(name) {
    try {
      return JSON.parse(root.getAttribute("data-" + name) || "{}") || {};
    } catch (e) {
      return {};
    }
  }

  // The commercial fields as the server-rendered lines show them: the template's labels
  // (data-fields: key -> {label, type}), choices by their labels, money and numbers by
  // the page's language (app/opening/fields.py does the same on the server).
  var fieldSpecs = parsed("fields");
  var choiceLabels = parsed("choices");
  var statusLabels = parsed("statuses");
  var lang = document.documentElement.lang || undefined;

  function formatted(value, type) {
    if (value === null || value === undefined) {
      return "";
    }
    if (type === "choice") {
      return choiceLabels[value] || String(value);
    }
    if (type === "money" || type === "integer" || type === "decimal") {
      var amount = Number(value);
      if (String(value).trim() === "" || !isFinite(amount)) {
        return String(value);
      }
      try {
        var options = type === "money"
          ? { style: "currency", currency: root.getAttribute("data-currency") || "CNY" }
          : { maximumFractionDigits: 20 };
        return new Intl.NumberFormat(lang, options).format(amount);
      } catch (e) {
        return String(value);
      }
    }
    return String(value);
  }

  function cell(row, value) {
    var td = document.createElement("td");
    td.textContent = value;
    row.appendChild(td);
    return td;
  }

  function addLine(line) {
    if (!tbody || typeof line.bid !== "number") {
      return;
    }
    if (tbody.querySelector('tr[data-bid="' + line.bid + '"]')) {
      return; // already on the page (server-rendered or sent before a reconnection)
    }
    var row = document.createElement("tr");
    row.setAttribute("data-bid", String(line.bid));
    cell(row, String(line.bid));
    cell(row, line.company || "");
    cell(row, (statusLabels[line.status] || line.status || "") + (line.reason ? " (" + line.reason + ")" : ""));
    cell(row, line.price ? formatted(line.price, "money") : "");
    var fields = line.fields || {};
    var order = Object.keys(fieldSpecs);
    cell(
      row,
      Object.keys(fields)
        .sort(function (a, b) {
          var i = order.indexOf(a), j = order.indexOf(b);
          i = i < 0 ? order.length : i;
          j = j < 0 ? order.length : j;
          return i - j || (a < b ? -1 : a > b ? 1 : 0);
        })
        .map(function (key) {
          var spec = fieldSpecs[key] || {};
          return (spec.label || key) + ": " + formatted(fields[key], spec.type);
        })
        .join("; ")
    );
    var code = document.createElement("code");
    code.textContent = String(line.envelope_sha256 || "").slice(0, 16) + "…";
    cell(row, "").appendChild(code);
    tbody.appendChild(row);
    section.hidden = false;
  }

  function showRecord(sha) {
    if (!recordBox || !sha) {
      return;
    }
    var link = document.createElement("a");
    link.href = root.getAttribute("data-record-url");
    link.textContent = text("record");
    recordBox.textContent = "";
    recordBox.appendChild(link);
    recordBox.appendChild(document.createTextNode(" · " + text("sha").replace("{sha}", sha)));
    section.hidden = false;
  }

  function finish() {
    over = true;
    source.close();
  }

  function data(event) {
    try {
      return JSON.parse(event.data) || {};
    } catch (e) {
      return {};
    }
  }

  source.addEventListener("state", function (event) {
    var state = data(event);
    show(state.done, state.total);
    if (state.ceremony === "unlocking") {
      say(text("waiting"));
      showShares(state.unlocked, state.threshold);
    } else if (state.ceremony === "opening") {
      say(text("opening"));
      hideShares();
    }
    (state.lines || []).forEach(addLine);
    showRecord(state.record_sha256);
    if (state.ceremony === "completed") {
      hideShares();
      say(text("opened"));
      finish();
    } else if (state.ceremony === "failed") {
      hideShares();
      say(text("failed"));
      finish();
    }
  });
  source.addEventListener("started", function (event) {
    var started = data(event);
    show(0, started.total);
    say(text("waiting"));
    showShares(0, started.threshold);
  });
  source.addEventListener("unlocked", function (event) {
    var unlocked = data(event);
    showShares(unlocked.unlocked, unlocked.threshold);
    if (unlocked.unlocked >= unlocked.threshold) {
      say(text("opening"));
    }
  });
  source.addEventListener("reset", function () {
    say(text("waiting"));
  });
  source.addEventListener("progress", function (event) {
    var progress = data(event);
    hideShares();
    say(text("opening"));
    show(progress.done, progress.total);
  });
  source.addEventListener("line", function (event) {
    addLine(data(event));
  });
  source.addEventListener("record", function (event) {
    showRecord(data(event).sha256);
  });
  source.addEventListener("opened", function (event) {
    var opened = data(event);
    show(opened.done, opened.total);
    hideShares();
    say(text("opened"));
    finish();
  });
  source.addEventListener("failed", function () {
    hideShares();
    say(text("failed"));
    finish();
  });
  source.addEventListener("unavailable", function () {
    say(text("stopped"));
    finish();
  });
  source.onerror = function () {
    // CONNECTING: the stream ended and the browser reconnects (normal). CLOSED: refused
    // (429, 404) or not an event stream: the browser gives up; say so.
    if (!over && source.readyState === EventSource.CLOSED) {
      say(text("stopped"));
      over = true;
    }
  };
})();
