// Live preview of a tender template while it is edited: the YAML is posted (debounced) to
// the preview endpoint, which answers with an HTML fragment (the rendered tender document
// or the list of errors). No inline script or style anywhere: the page's CSP forbids them.
(function () {
  "use strict";

  var DELAY_MS = 600;

  function init() {
    var form = document.getElementById("template-form");
    var target = document.getElementById("template-preview");
    if (!form || !target) {
      return;
    }
    var textarea = form.querySelector("textarea[name='yaml_text']");
    var csrf = form.querySelector("input[name='csrf_token']");
    var url = form.getAttribute("data-preview-url");
    var failure = form.getAttribute("data-preview-error") || "Preview unavailable.";
    var timer = null;
    var latest = 0;
    var controller = null;

    function show(html) {
      // The fragment comes from our own server, rendered with autoescaping; template
      // bodies are Markdown with raw HTML disabled.
      target.innerHTML = html;
      target.setAttribute("aria-busy", "false");
    }

    function showFailure() {
      var p = document.createElement("p");
      p.className = "notice warning";
      p.textContent = failure;
      target.replaceChildren(p);
      target.setAttribute("aria-busy", "false");
    }

    function refresh() {
      var ticket = ++latest;
      if (controller) {
        controller.abort();
      }
      controller = typeof AbortController === "function" ? new AbortController() : null;
      var body = new FormData();
      body.append("yaml_text", textarea.value);
      var headers = { "X-Requested-With": "fetch" };
      if (csrf) {
        body.append("csrf_token", csrf.value);
        headers["X-CSRFToken"] = csrf.value;
      }
      target.setAttribute("aria-busy", "true");
      fetch(url, {
        method: "POST",
        body: body,
        headers: headers,
        credentials: "same-origin",
        signal: controller ? controller.signal : undefined,
      })
        .then(function (response) {
          // 200: the document; 422: the template's errors; both are fragments to show.
          if (response.status !== 200 && response.status !== 422 && response.status !== 400) {
            throw new Error("preview failed: " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          if (ticket === latest) {
            show(html);
          }
        })
        .catch(function (error) {
          if (error && error.name === "AbortError") {
            return;
          }
          if (ticket === latest) {
            showFailure();
          }
        });
    }

    function schedule() {
      if (timer) {
        clearTimeout(timer);
      }
      timer = setTimeout(refresh, DELAY_MS);
    }

    textarea.addEventListener("input", schedule);
    refresh();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
