/* 本人記入 kiosk: after a while without use, erase the form here and on the server, and start over.
   Also puts the cursor on the name of a family member just added. No personal data is kept here. */
(function () {
  "use strict";
  var body = document.body;
  var idle = parseInt(body.getAttribute("data-idle") || "0", 10);
  var lang = body.getAttribute("data-lang") || "ja";
  var target = document.getElementById("focus-target");
  if (target) {
    var f = document.getElementById(target.getAttribute("data-id"));
    if (f) { f.focus(); f.scrollIntoView({ block: "center" }); }
  }
  /* Enter (or a phone's "next" key) moves to the next field instead of submitting the form */
  var form0 = document.getElementById("self-form");
  if (form0) {
    form0.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" || e.isComposing || !e.target.matches("input[type=text], input[type=tel]")) { return; }
      e.preventDefault();
      var fields = Array.prototype.filter.call(form0.querySelectorAll("input[type=text], input[type=tel], select, input[type=checkbox]"),
        function (el) { return el.offsetParent !== null; });
      var next = fields[fields.indexOf(e.target) + 1];
      if (next) { next.focus(); }
    });
  }
  if (!idle) { return; }
  var timer = null;
  var typed = function (form) {
    if (!form) { return true; } // the "sent" page: back to an empty form for the next person
    return Array.prototype.some.call(form.querySelectorAll("input, select"), function (i) {
      if (i.type === "hidden") { return false; }
      if (i.type === "checkbox" || i.type === "radio") { return i.checked; }
      return i.tagName === "SELECT" ? i.selectedIndex > 0 : i.value !== "";
    }) || form.querySelectorAll("fieldset.person").length > 1;
  };
  var erase = function () {
    var form = document.getElementById("self-form");
    if (!typed(form)) { touch(); return; }
    if (form) {
      Array.prototype.forEach.call(form.querySelectorAll("input[type=text], input[type=tel]"), function (i) { i.value = ""; });
      Array.prototype.forEach.call(form.querySelectorAll("input[type=checkbox], input[type=radio]"), function (i) { i.checked = false; });
      Array.prototype.forEach.call(form.querySelectorAll("select"), function (s) { s.selectedIndex = 0; });
    }
    var go = function () { window.location.replace("/self?lang=" + encodeURIComponent(lang) + (form ? "&timeout=1" : "")); };
    fetch("/self/reset", { method: "POST", credentials: "same-origin", keepalive: true,
                           headers: { "X-CSRF-Token": body.getAttribute("data-csrf") || "" } }).then(go, go);
  };
  var touch = function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(erase, idle * 1000);
  };
  ["input", "change", "keydown", "pointerdown", "touchstart", "scroll"].forEach(function (ev) {
    document.addEventListener(ev, touch, { passive: true, capture: true });
  });
  touch();
})();
