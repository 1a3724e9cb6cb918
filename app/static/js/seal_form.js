/* Fairbid: seal a bid in this browser, then upload only the envelope.
 *
 * form#seal-form on the bid page (templates/bids/_seal_form.html) carries the tender's raw
 * X25519 public key (hex), the envelope's tender and bidder ids and the upload endpoints in
 * data- attributes; its inputs are generated from the tender template's commercial fields
 * (data-field, data-type, data-min, data-max, data-required) and have no `name`, and the
 * form has no action: nothing typed here is ever posted. On submit:
 *
 *   1. the fields are checked against the template (money: digits with at most two
 *      decimals; integer / decimal / date / choice / text with their bounds; numbers at most
 *      24 characters, a price above 0, no control characters: bidding/commercial.py);
 *   2. FairbidSeal.encodeCommercial(fields) gives the commercial part (money and decimals as
 *      decimal strings, integers as JSON numbers) and FairbidSeal.sealEnvelope() seals it
 *      with the technical file and the qualification files (the published bundle, loaded
 *      with Subresource Integrity), with a progress bar;
 *   3. FairbidUpload.upload() sends the envelope in resumable chunks, with a second progress
 *      bar; pressing the button again after a failed upload resumes the same envelope;
 *   4. the receipt (sequence, envelope SHA-256, time of receipt) is shown and the list of
 *      bids is reloaded from the server.
 *
 * No inline script or style (CSP script-src 'self'; style-src 'self').
 */
(function () {
  "use strict";

  var MONEY = /^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$/;
  var INTEGER = /^-?(0|[1-9][0-9]*)$/;
  var DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;
  var DATE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/;
  /* The same rules as bidding/commercial.py (the opening checks them again): numbers at
   * most 24 characters (the scoring file's limit), no control or bidi-override characters. */
  var MAX_NUMBER_LENGTH = 24;
  var CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

  function format(template, values) {
    return (template || "").replace(/\{(\w+)\}/g, function (_, name) {
      return values[name] === undefined ? "" : values[name];
    });
  }

  /* Compare two decimal strings exactly (no floating point): -1, 0 or 1. */
  function compareDecimal(a, b) {
    function parts(text) {
      text = String(text).trim();
      var negative = text.charAt(0) === "-";
      if (negative || text.charAt(0) === "+") { text = text.slice(1); }
      var dot = text.indexOf(".");
      var whole = (dot < 0 ? text : text.slice(0, dot)).replace(/^0+/, "");
      var fraction = (dot < 0 ? "" : text.slice(dot + 1)).replace(/0+$/, "");
      if (!whole && !fraction) { negative = false; }
      return { negative: negative, whole: whole, fraction: fraction };
    }
    function magnitude(x, y) {
      if (x.whole.length !== y.whole.length) { return x.whole.length < y.whole.length ? -1 : 1; }
      if (x.whole !== y.whole) { return x.whole < y.whole ? -1 : 1; }
      var width = Math.max(x.fraction.length, y.fraction.length);
      var fx = x.fraction + "0".repeat(width - x.fraction.length);
      var fy = y.fraction + "0".repeat(width - y.fraction.length);
      return fx === fy ? 0 : (fx < fy ? -1 : 1);
    }
    var x = parts(a);
    var y = parts(b);
    if (x.negative !== y.negative) { return x.negative ? -1 : 1; }
    var m = magnitude(x, y);
    return x.negative ? -m : m;
  }

  /* The commercial fields as typed, checked; {fields, errors}. */
  function collect(form) {
    var fields = {};
    var errors = [];
    var inputs = form.querySelectorAll("[data-field]");
    Array.prototype.forEach.call(inputs, function (input) {
      var key = input.getAttribute("data-field");
      var type = input.getAttribute("data-type");
      var label = input.getAttribute("data-label") || key;
      var required = input.hasAttribute("data-required");
      var value = type === "text" ? input.value : input.value.trim();
      var problem = null;
      var say = function (name, extra) {
        problem = format(form.getAttribute("data-msg-" + name),
          Object.assign({ field: label }, extra || {}));
      };
      input.removeAttribute("aria-invalid");
      if (value === "" || (type === "text" && !value.trim())) {
        if (required) { say("required"); }
      } else if ((type === "money" || type === "decimal") && value.length > MAX_NUMBER_LENGTH) {
        say("number-too-long", { max: String(MAX_NUMBER_LENGTH) });
      } else if (type === "money" && !MONEY.test(value)) {
        say("money");
      } else if (type === "integer" && (!INTEGER.test(value) || !Number.isSafeInteger(Number(value)))) {
        say("integer");
      } else if (type === "decimal" && !DECIMAL.test(value)) {
        say("decimal");
      } else if (type === "date" && (!DATE.test(value) || isNaN(Date.parse(value + "T00:00:00Z")))) {
        say("date");
      } else if (type === "choice" && !Array.prototype.some.call(input.options, function (option) {
        return option.value !== "" && option.value === value;
      })) {
        say("choice");
      } else if ((type === "text" || type === "choice") && CONTROL.test(value)) {
        say("control");
      } else if (type === "text" && input.hasAttribute("data-max-length") &&
                 Array.from(value).length > parseInt(input.getAttribute("data-max-length"), 10)) {
        say("too-long", { max: input.getAttribute("data-max-length") });
      } else if (key === "price" && compareDecimal(value, "0") <= 0) {
        say("positive");
      } else if (type === "money" || type === "integer" || type === "decimal") {
        var min = input.getAttribute("data-min");
        var max = input.getAttribute("data-max");
        if (min !== null && compareDecimal(value, min) < 0) { say("min", { min: min }); }
        else if (max !== null && compareDecimal(value, max) > 0) { say("max", { max: max }); }
      }
      if (problem) {
        errors.push({ input: input, message: problem });
        input.setAttribute("aria-invalid", "true");
        return;
      }
      if (value === "" || (type === "text" && !value.trim())) { return; }
      fields[key] = type === "integer" ? Number(value) : value;
    });
    return { fields: fields, errors: errors };
  }

  /* commercial, then technical (if chosen), then qualification-1..N in the template's
   * order when any is chosen (an empty part stands for a document not attached here, so
   * each number keeps naming the same document). */
  function partsOf(form, commercial) {
    var parts = [{ name: "commercial", data: commercial }];
    var technical = form.querySelector("#seal-technical");
    if (technical && technical.files && technical.files[0]) {
      parts.push({ name: "technical", data: technical.files[0] });
    }
    var qualifications = Array.prototype.map.call(
      form.querySelectorAll("input[data-qualification]"),
      function (input) { return input.files && input.files[0] ? input.files[0] : null; }
    );
    if (qualifications.some(function (file) { return file; })) {
      qualifications.forEach(function (file, index) {
        parts.push({ name: "qualification-" + (index + 1), data: file || new Blob([]) });
      });
    }
    return parts;
  }

  /* The tender's raw X25519 public key, from its hex form in data-tender-key. */
  function hexBytes(hex) {
    hex = (hex || "").trim();
    if (!/^([0-9a-fA-F]{2})+$/.test(hex)) { throw new TypeError("the tender public key is not hexadecimal"); }
    var bytes = new Uint8Array(hex.length / 2);
    for (var i = 0; i < bytes.length; i += 1) {
      bytes[i] = parseInt(hex.substr(i * 2, 2), 16);
    }
    return bytes;
  }

  function percent(done, total) {
    return total ? Math.min(100, Math.floor((done * 100) / total)) : 100;
  }

  function enhance(form) {
    var sealBar = form.querySelector("#seal-progress");
    var uploadBar = form.querySelector("#seal-upload-progress");
    var status = form.querySelector("#seal-status");
    var errorList = form.querySelector("#seal-errors");
    var button = form.querySelector("#seal-submit");
    var receiptBox = document.getElementById("seal-receipt");
    var pending = null;  // the envelope sealed from the current inputs, not yet received
    var busy = false;

    function showErrors(messages) {
      errorList.textContent = "";
      messages.forEach(function (message) {
        var item = document.createElement("li");
        item.textContent = message;
        errorList.appendChild(item);
      });
    }

    /* Each field's own error next to it, linked with aria-describedby. */
    function showFieldErrors(errors) {
      Array.prototype.forEach.call(form.querySelectorAll("small.field-error"), function (old) {
        var input = document.getElementById(old.getAttribute("data-for"));
        if (input) {
          var ids = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
            return id && id !== old.id;
          });
          if (ids.length) { input.setAttribute("aria-describedby", ids.join(" ")); }
          else { input.removeAttribute("aria-describedby"); }
        }
        old.remove();
      });
      errors.forEach(function (error) {
        var input = error.input;
        var note = document.createElement("small");
        note.className = "error field-error";
        note.id = input.id + "-error";
        note.setAttribute("data-for", input.id);
        note.textContent = error.message;
        input.insertAdjacentElement("afterend", note);
        var described = input.getAttribute("aria-describedby");
        input.setAttribute("aria-describedby", described ? described + " " + note.id : note.id);
      });
    }

    /* After a bid is received the form is locked until the bidder chooses to replace it. */
    var fieldsets = form.querySelectorAll("fieldset");
    function lock(locked) {
      Array.prototype.forEach.call(fieldsets, function (set) { set.disabled = locked; });
      button.hidden = locked;
    }
    var replaceButton = document.getElementById("seal-replace");
    if (replaceButton) {
      replaceButton.addEventListener("click", function () {
        lock(false);
        receiptBox.hidden = true;
        var first = form.querySelector("[data-field]");
        if (first) { first.focus(); }
      });
    }

    function localTime(iso) {
      try {
        return new Intl.DateTimeFormat(form.getAttribute("data-locale") || undefined, {
          dateStyle: "long", timeStyle: "long",
          timeZone: form.getAttribute("data-timezone") || undefined
        }).format(new Date(iso));
      } catch (error) {
        return iso;
      }
    }

    // Any change to the inputs means the next press seals afresh.
    var changedWhileBusy = false;
    var discard = function () {
      if (busy) { changedWhileBusy = true; } else { pending = null; }
    };
    form.addEventListener("input", discard);
    form.addEventListener("change", discard);

    function sealed(fields) {
      if (pending) { return Promise.resolve(pending); }
      var parts;
      var key;
      try {
        parts = partsOf(form, window.FairbidSeal.encodeCommercial(fields));
        key = hexBytes(form.getAttribute("data-tender-key"));
      } catch (error) {
        return Promise.reject(error);
      }
      sealBar.value = 0;
      // A tender divided into lots: the header binds the chosen lot.
      var lotChoice = document.getElementById("seal-lot");
      return window.FairbidSeal.sealEnvelope({
        tenderPublicKey: key,
        tender: form.getAttribute("data-envelope-tender"),
        bidder: form.getAttribute("data-bidder"),
        lot: lotChoice ? lotChoice.value : null,
        parts: parts,
        onProgress: function (done, total) {
          sealBar.value = percent(done, total);
          status.textContent = format(form.getAttribute("data-msg-sealing"),
            { percent: percent(done, total) + "%" });
        }
      }).then(function (blob) {
        sealBar.value = 100;
        // A named File lets upload.js remember the session, so a retry resumes.
        var name = "bid-" + Date.now() + "-" + Math.random().toString(36).slice(2) + ".env";
        pending = new File([blob], name, { type: "application/octet-stream" });
        return pending;
      });
    }

    function refreshBids() {
      return fetch(window.location.href, { credentials: "same-origin" }).then(function (response) {
        return response.text();
      }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("bids");
        var current = document.getElementById("bids");
        if (fresh && current) { current.replaceWith(document.importNode(fresh, true)); }
        // "Bid received — download the receipt", your bid no. N for this tender.
        var notice = doc.getElementById("bid-received");
        var shown = document.getElementById("bid-received");
        var seal = document.getElementById("seal");
        if (notice && shown) { shown.replaceWith(document.importNode(notice, true)); }
        else if (notice && seal) { seal.before(document.importNode(notice, true)); }
      }).catch(function () { /* the receipt is shown; the list updates on the next visit */ });
    }

    function showReceipt(response) {
      var receipt = response && response.receipt ? response.receipt : (response || {});
      receiptBox.setAttribute("data-sequence", receipt.sequence);
      document.getElementById("seal-receipt-download").setAttribute("href",
        form.getAttribute("data-receipt-url").replace("{id}", String(receipt.sequence)));
      document.getElementById("seal-receipt-sha256").textContent = receipt.envelope_sha256;
      var time = document.getElementById("seal-receipt-received");
      time.textContent = localTime(receipt.received_at);
      time.setAttribute("datetime", receipt.received_at);
      receiptBox.hidden = false;
      lock(true);
      status.textContent = format(form.getAttribute("data-msg-done"), { sequence: receipt.sequence });
      var link = document.getElementById("seal-receipt-download");
      if (link) { link.focus(); }
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();  // never a normal post: the plaintext stays here
      if (busy) { return; }
      showErrors([]);
      var checked = collect(form);
      showFieldErrors(checked.errors);
      if (checked.errors.length) {
        showErrors(checked.errors.map(function (error) { return error.message; }));
        checked.errors[0].input.focus();
        return;
      }
      if (!window.FairbidSeal || !window.FairbidUpload) {
        showErrors([form.getAttribute("data-msg-failed")]);
        return;
      }
      busy = true;
      changedWhileBusy = false;
      button.disabled = true;
      receiptBox.hidden = true;
      sealed(checked.fields).then(function (envelope) {
        var max = parseInt(form.getAttribute("data-max-size"), 10);
        if (max && envelope.size > max) {
          pending = null;
          throw new Error(form.getAttribute("data-msg-too-large"));
        }
        uploadBar.value = 0;
        return window.FairbidUpload.upload(envelope, {
          tenderId: form.getAttribute("data-tender-id"),
          startUrl: form.getAttribute("data-start-url"),
          csrfToken: form.getAttribute("data-csrf-token"),
          chunkSize: parseInt(form.getAttribute("data-chunk-size"), 10) || undefined,
          onProgress: function (done, total) {
            uploadBar.value = percent(done, total);
            status.textContent = format(form.getAttribute("data-msg-uploading"),
              { percent: percent(done, total) + "%" });
          },
          onRetry: function () { status.textContent = form.getAttribute("data-msg-retrying"); }
        });
      }).then(function (receipt) {
        pending = null;
        uploadBar.value = 100;
        showReceipt(receipt);
        return refreshBids();
      }).catch(function (error) {
        var Refused = window.FairbidUpload && window.FairbidUpload.UploadError;
        var refused = Refused && error instanceof Refused && error.status < 500;
        if (refused) { pending = null; }  // e.g. after the deadline: resuming will not help
        status.textContent = "";
        showErrors([(error && error.message ? error.message : String(error)) +
          (refused || !pending ? "" : " " + form.getAttribute("data-msg-failed"))]);
      }).then(function () {
        if (changedWhileBusy) { pending = null; }
        changedWhileBusy = false;
        busy = false;
        button.disabled = false;
      });
    });
  }

  function start() {
    var form = document.getElementById("seal-form");
    if (form) { enhance(form); }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
