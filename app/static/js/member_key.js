/* Fairbid: a panel member's own signing key, made and kept in this browser.
 *
 * Enrolment (#signing-key-enrol, on /records/signing-key): WebCrypto generates a
 * NON-extractable ECDSA P-256 key pair; the private key never leaves the browser and is kept
 * in IndexedDB (structured clone of the CryptoKey, still non-extractable). The page asks the
 * server for a one-time nonce, signs "fairbid signing-key enrolment v1\naccount=ID\nnonce=N
 * \nspki=BASE64" with the key (proof of possession) and sends the public key (SPKI), the
 * nonce, the signature and the authenticator code; the server issues a certificate from the
 * platform CA and revokes the member's earlier ones.
 *
 * Countersigning (#countersign, on the record page): the code goes to the server, which
 * prepares the PDF revision and answers the CMS signed attributes (base64 DER); the key signs
 * them (ECDSA with SHA-256; WebCrypto returns raw r||s, which the server turns into DER) and
 * the value goes back to finish the PDF.
 *
 * Markup: data-* attributes carry the URLs, the account id, the CSRF token and translated
 * messages; .member-key-message shows errors. No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var DB_NAME = "fairbid-signing-keys";
  var STORE = "keys";
  var CONTEXT = "fairbid signing-key enrolment v1";
  var ALGORITHM = { name: "ECDSA", namedCurve: "P-256" };
  var SIGNING = { name: "ECDSA", hash: { name: "SHA-256" } };

  function openDb() {
    return new Promise(function (resolve, reject) {
      var request = window.indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = function () {
        request.result.createObjectStore(STORE);
      };
      request.onsuccess = function () {
        resolve(request.result);
      };
      request.onerror = function () {
        reject(request.error);
      };
    });
  }

  function storeOp(mode, action) {
    return openDb().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode);
        var request = action(tx.objectStore(STORE));
        tx.oncomplete = function () {
          db.close();
          resolve(request.result);
        };
        tx.onerror = tx.onabort = function () {
          db.close();
          reject(tx.error || request.error);
        };
      });
    });
  }

  function loadKey(account) {
    return storeOp("readonly", function (store) {
      return store.get("account-" + account);
    });
  }

  function saveKey(account, entry) {
    return storeOp("readwrite", function (store) {
      return store.put(entry, "account-" + account);
    });
  }

  function toBase64(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i += 1) {
      text += String.fromCharCode(bytes[i]);
    }
    return window.btoa(text);
  }

  function fromBase64(text) {
    var raw = window.atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i += 1) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function postJson(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrf,
      },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          return {};
        })
        .then(function (data) {
          if (!response.ok) {
            var error = new Error(data.message || "HTTP " + response.status);
            error.server = true;
            throw error;
          }
          return data;
        });
    });
  }

  function showMessage(root, text) {
    var box = root.querySelector(".member-key-message");
    if (box) {
      box.textContent = text;
      box.hidden = false;
    }
  }

  function failure(root, error) {
    var text = error && error.server ? error.message : root.getAttribute("data-failed-text");
    if (error && !error.server && window.console) {
      window.console.warn("signing key:", error);
    }
    showMessage(root, text);
  }

  function supported() {
    return !!(window.crypto && window.crypto.subtle && window.indexedDB && window.fetch);
  }

  /* One submission at a time: `steps(code, account, csrf)` returns the promise of the
   * work; the page reloads when it is done, or says why it failed. */
  function whenSubmitted(root, steps) {
    var form = root.querySelector("form");
    var account = root.getAttribute("data-account");
    var csrf = root.getAttribute("data-csrf-token");
    var busy = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) {
        return;
      }
      if (!supported()) {
        showMessage(root, root.getAttribute("data-unsupported-text"));
        return;
      }
      busy = true;
      var code = form.querySelector("input[name='code']").value;
      steps(code, account, csrf)
        .then(function () {
          window.location.reload();
        })
        .catch(function (error) {
          busy = false;
          failure(root, error);
        });
    });
  }

  function enrol(root) {
    whenSubmitted(root, function (code, account, csrf) {
      var keys;
      var spki;
      return window.crypto.subtle
        .generateKey(ALGORITHM, false, ["sign", "verify"])
        .then(function (pair) {
          keys = pair;
          return window.crypto.subtle.exportKey("spki", pair.publicKey);
        })
        .then(function (exported) {
          spki = toBase64(exported);
          return postJson(root.getAttribute("data-nonce-url"), csrf, {});
        })
        .then(function (challenge) {
          var message = CONTEXT + "\naccount=" + account + "\nnonce=" + challenge.nonce +
            "\nspki=" + spki;
          return window.crypto.subtle
            .sign(SIGNING, keys.privateKey, new TextEncoder().encode(message))
            .then(function (proof) {
              return postJson(root.getAttribute("data-enrol-url"), csrf, {
                code: code,
                nonce: challenge.nonce,
                public_key: spki,
                proof: toBase64(proof),
              });
            });
        })
        .then(function (issued) {
          return saveKey(account, {
            privateKey: keys.privateKey,
            publicKey: keys.publicKey,
            spki: spki,
            serial: issued.serial,
          });
        });
    });
  }

  function countersign(root) {
    whenSubmitted(root, function (code, account, csrf) {
      var entry;
      return loadKey(account)
        .then(function (found) {
          if (!found || !found.privateKey) {
            var missing = new Error(root.getAttribute("data-no-key-text"));
            missing.server = true;
            throw missing;
          }
          entry = found;
          return postJson(root.getAttribute("data-prepare-url"), csrf, { code: code });
        })
        .then(function (prepared) {
          return window.crypto.subtle
            .sign(SIGNING, entry.privateKey, fromBase64(prepared.signed_attrs))
            .then(function (signature) {
              return postJson(prepared.finish_url, csrf, {
                request: prepared.request,
                signature: toBase64(signature),
              });
            });
        });
    });
  }

  var enrolRoot = document.getElementById("signing-key-enrol");
  if (enrolRoot) {
    enrol(enrolRoot);
  }
  var signRoot = document.getElementById("countersign");
  if (signRoot) {
    countersign(signRoot);
  }
})();
