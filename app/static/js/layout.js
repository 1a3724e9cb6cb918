// Tables that are wider than the screen scroll inside their `.table-wrap` box. Such a box
// becomes a keyboard stop (tabindex=0) named after its table, so keyboard users can scroll
// it too; a box that fits is left out of the tab order. No inline script: CSP.
(function () {
  "use strict";
  var fallback = document.body.getAttribute("data-table-label") || "Table";

  function nameOf(wrap) {
    var table = wrap.querySelector("table");
    var caption = table && table.querySelector("caption");
    if (caption && caption.textContent.trim()) return caption.textContent.trim();
    var node = wrap.previousElementSibling;
    while (node) {
      if (/^H[1-6]$/.test(node.tagName)) return node.textContent.trim();
      node = node.previousElementSibling;
    }
    var section = wrap.closest("section, article");
    var heading = section && section.querySelector("h1, h2, h3, h4");
    return heading ? heading.textContent.trim() : fallback;
  }

  // The name of the labelled section (a region landmark) holding the box, if any.
  function regionName(wrap) {
    var parent = wrap.parentElement;
    var section = parent && parent.closest("section[aria-labelledby], section[aria-label]");
    if (!section) return "";
    var label = section.getAttribute("aria-label");
    if (label) return label.trim();
    var ids = (section.getAttribute("aria-labelledby") || "").split(/\s+/);
    return ids
      .map(function (id) {
        var node = id && document.getElementById(id);
        return node ? node.textContent.trim() : "";
      })
      .join(" ")
      .trim();
  }

  function update() {
    var wraps = document.querySelectorAll(".table-wrap");
    var used = {};
    for (var i = 0; i < wraps.length; i++) {
      var wrap = wraps[i];
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        // Regions need distinct names: a repeated heading gets a number.
        var name = nameOf(wrap);
        // Landmarks need distinct names too: a box inside a section already named so
        // (a region itself) is "<name> (Table)".
        if (name === regionName(wrap)) name = name + " (" + fallback + ")";
        used[name] = (used[name] || 0) + 1;
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", used[name] > 1 ? name + " (" + used[name] + ")" : name);
      } else if (wrap.getAttribute("tabindex") === "0") {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
        wrap.removeAttribute("aria-label");
      }
    }
  }

  update();
  var timer = null;
  window.addEventListener("resize", function () {
    clearTimeout(timer);
    timer = setTimeout(update, 150);
  });
})();
