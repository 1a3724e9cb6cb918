/* Fairbid: resumable upload of a sealed envelope, in chunks, with progress.
 *
 * window.FairbidUpload.upload(blob, {tenderId, onProgress}) -> Promise<receipt>
 *
 *   POST /bids/tenders/<id>/uploads {size}        -> {id, url, offset, chunk_size}
 *   PUT  <url>  Content-Range: bytes a-b/size    -> {offset, complete, receipt?}
 *   GET  <url>                                   -> {offset, complete, receipt?}
 *
 * A chunk that fails (network error, server restart) is retried with a growing pause after
 * asking the server where the upload stands; a 409 carries the offset to continue from. The
 * session of a file chosen in the form is remembered (sessionStorage) so pressing the button
 * again after a failure, or reloading the page, resumes instead of starting over. The CSRF
 * token travels in X-CSRFToken. The server only ever receives the sealed envelope.
 *
 * The form#envelope-upload on the bid page is enhanced with it; without JavaScript the same
 * form posts the file in one multipart request. No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var MAX_ATTEMPTS = 8;

  function csrfToken(options) {
    if (options && options.csrfToken) { return options.csrfToken; }
    var holder = document.querySelector("[data-csrf-token]");
    if (holder) { return holder.getAttribute("data-csrf-token"); }
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function UploadError(message, status, body) {
    this.name = "UploadError";
    this.message = message;
    this.status = status;
    this.body = body || {};
  }
  UploadError.prototype = Object.create(Error.prototype);

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function request(method, url, token, body, headers) {
    var init = {
      method: method,
      credentials: "same-origin",
      headers: Object.assign({ "X-CSRFToken": token, "Accept": "application/json" }, headers || {}),
      body: body
    };
    return fetch(url, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (response.ok) { return json; }
        throw new UploadError(json.message || response.statusText, response.status, json);
      });
    });
  }

  function storageKey(blob, tenderId) {
    if (!blob.name) { return null; }  // a freshly sealed Blob: nothing to resume across pages
    return "fairbid-upload:" + tenderId + ":" + blob.name + ":" + blob.size + ":" + blob.lastModified;
  }

  function remember(key, session) {
    if (!key) { return; }
    try { sessionStorage.setItem(key, JSON.stringify(session)); } catch (e) { /* private mode */ }
  }

  function recall(key) {
    if (!key) { return null; }
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) { return null; }
  }

  function forget(key) {
    if (!key) { return; }
    try { sessionStorage.removeItem(key); } catch (e) { /* ignore */ }
  }

  /* An open session for this blob: a remembered one that still exists, or a new one. */
  function openSession(blob, options, token, key) {
    var saved = recall(key);
    var start = function () {
      var url = options.startUrl || "/bids/tenders/" + options.tenderId + "/uploads";
      return request("POST", url, token, JSON.stringify({ size: blob.size }),
        { "Content-Type": "application/json" }).then(function (session) {
        remember(key, { url: session.url, size: session.size });
        return session;
      });
    };
    if (!saved || saved.size !== blob.size) { return start(); }
    return request("GET", saved.url, token).then(function (status) {
      return status;
    }, function () {
      forget(key);
      return start();
    });
  }

  function upload(blob, options) {
    options = options || {};
    var token = csrfToken(options);
    var onProgress = options.onProgress || function () {};
    var key = storageKey(blob, options.tenderId);
    return openSession(blob, options, token, key).then(function (session) {
      var chunkSize = options.chunkSize || session.chunk_size || 1048576;
      var offset = session.offset || 0;
      var failures = 0;
      onProgress(offset, blob.size);
      if (session.complete) {
        forget(key);
        return session.receipt;
      }

      function where() {
        return request("GET", session.url, token).then(function (status) {
          return status;
        });
      }

      function step() {
        var end = Math.min(offset + chunkSize, blob.size);
        var headers = {
          "Content-Type": "application/octet-stream",
          "Content-Range": "bytes " + offset + "-" + (end - 1) + "/" + blob.size
        };
        return request("PUT", session.url, token, blob.slice(offset, end), headers).then(
          function (result) {
            failures = 0;
            offset = result.offset;
            onProgress(offset, blob.size);
            if (result.complete) { forget(key); return result.receipt; }
            return step();
          },
          function (error) {
            if (error instanceof UploadError && error.status === 409 &&
                typeof error.body.offset === "number") {
              offset = error.body.offset;  // the server has more (or less) than we thought
              if (offset >= blob.size) {
                return where().then(function (status) {
                  if (status.complete) { forget(key); return status.receipt; }
                  throw error;
                });
              }
              return step();
            }
            if (error instanceof UploadError && error.status !== 503 && error.status < 500) {
              if (error.status === 410 || error.status === 404) { forget(key); }
              throw error;  // refused: retrying would not help
            }
            failures += 1;
            if (failures >= MAX_ATTEMPTS) { throw error; }
            if (options.onRetry) { options.onRetry(failures, error); }
            return sleep(Math.min(30000, 500 * Math.pow(2, failures))).then(where).then(
              function (status) {
                if (status.complete) { forget(key); return status.receipt; }
                offset = status.offset;
                return step();
              },
              function () { return step(); }
            );
          }
        );
      }
      return step();
    });
  }

  window.FairbidUpload = { upload: upload, UploadError: UploadError };

  function format(template, values) {
    return (template || "").replace(/\{(\w+)\}/g, function (_, name) {
      return values[name] === undefined ? "" : values[name];
    });
  }

  function enhance(form) {
    var input = form.querySelector("input[type=file]");
    var progress = form.querySelector("progress");
    var status = form.querySelector("[role=status]");
    var button = form.querySelector("button[type=submit]");
    if (!input || !window.fetch || !window.Promise) { return; }
    form.addEventListener("submit", function (event) {
      var file = input.files && input.files[0];
      if (!file) { return; }  // the server explains what is missing
      event.preventDefault();
      button.disabled = true;
      progress.hidden = false;
      upload(file, {
        tenderId: form.getAttribute("data-tender-id"),
        startUrl: form.getAttribute("data-start-url"),
        csrfToken: form.getAttribute("data-csrf-token"),
        chunkSize: parseInt(form.getAttribute("data-chunk-size"), 10) || undefined,
        onProgress: function (done, total) {
          var percent = total ? Math.floor((done * 100) / total) : 100;
          progress.value = percent;
          status.textContent = format(form.getAttribute("data-msg-uploading"),
            { percent: percent + "%" });
        },
        onRetry: function () { status.textContent = form.getAttribute("data-msg-retrying"); }
      }).then(function (receipt) {
        var sequence = receipt && receipt.receipt ? receipt.receipt.sequence : "";
        status.textContent = format(form.getAttribute("data-msg-done"), { sequence: sequence });
        window.location.reload();
      }, function (error) {
        button.disabled = false;
        var retryable = !(error instanceof UploadError) || error.status >= 500;
        status.textContent = (error.message || "") +
          (retryable ? " " + form.getAttribute("data-msg-failed") : "");
      });
    });
  }

  function start() {
    var form = document.getElementById("envelope-upload");
    if (form) { enhance(form); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
