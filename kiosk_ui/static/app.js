/* Anpi staff UI script: auto-lock, server-side drafts, 交代 keys, live registry candidates,
   review shortcuts, import progress. Plain JavaScript, no library, nothing loaded from outside. */
(function () {
  "use strict";

  var body = document.body;
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";

  function api(method, url, data, extraHeaders) {
    var headers = { "X-CSRF-Token": CSRF, "Accept": "application/json" };
    var opts = { method: method, headers: headers, credentials: "same-origin" };
    if (extraHeaders) { Object.keys(extraHeaders).forEach(function (k) { headers[k] = extraHeaders[k]; }); }
    if (data !== undefined) { headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(data); }
    return fetch(url, opts).then(function (r) {
      if (r.status === 401) { lockNow("idle"); throw new Error("locked"); }
      return r.json().then(function (j) { if (!r.ok) { var e = new Error(j.detail_ja || j.detail || r.status); e.body = j; throw e; } return j; });
    });
  }

  function debounce(fn, ms) {
    var t = null;
    return function () { var args = arguments, self = this; clearTimeout(t); t = setTimeout(function () { fn.apply(self, args); }, ms); };
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) { Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); }); }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  /* ---------- drafts (kept on the server, per user) ---------- */
  var draftForm = document.querySelector("form[data-draft]");
  function formObject(form) {
    var out = {};
    new FormData(form).forEach(function (v, k) { if (k !== "csrf_token" && typeof v === "string") { out[k] = v; } });
    return out;
  }
  var draftSent = false;  // set when the form is submitted: a late autosave must not bring it back as a draft
  function saveDraft() {
    if (!draftForm || draftSent) { return Promise.resolve(); }
    return api("PUT", "/api/session/drafts/" + draftForm.getAttribute("data-draft"), formObject(draftForm)).catch(function () {});
  }
  var saveDraftSoon = debounce(saveDraft, 800);
  if (draftForm) {
    draftForm.addEventListener("input", saveDraftSoon);
    draftForm.addEventListener("change", saveDraftSoon);
    draftForm.addEventListener("submit", function (e) {
      // after every submit listener (a check may still stop it): a sent form is no draft any more
      setTimeout(function () { if (!e.defaultPrevented) { draftSent = true; } }, 0);
    });
  }

  /* ---------- auto-lock ---------- */
  var lockAfter = parseInt(body.getAttribute("data-auto-lock") || "0", 10);
  var lastActivity = Date.now(), lastPing = Date.now(), locking = false;
  function lockNow(reason) {
    if (locking) { return; }
    locking = true;
    var form = document.getElementById("lock-form");
    var go = function () {
      if (form) {
        form.querySelector('input[name="next"]').value = location.pathname + location.search;
        form.querySelector('input[name="reason"]').value = reason || "idle";
        form.submit();
      } else {
        location.href = "/switch?next=" + encodeURIComponent(location.pathname + location.search);
      }
    };
    var done = false;
    var finish = function () { if (!done) { done = true; go(); } };
    saveDraft().then(finish, finish);
    setTimeout(finish, 1500);
  }
  if (lockAfter > 0) {
    ["keydown", "mousedown", "input", "touchstart", "wheel"].forEach(function (ev) {
      document.addEventListener(ev, function () { lastActivity = Date.now(); }, { passive: true, capture: true });
    });
    setInterval(function () {
      var now = Date.now();
      if (now - lastActivity >= lockAfter * 1000) { lockNow("idle"); return; }
      // typing without any request still counts as activity on the server
      if (lastActivity > lastPing && now - lastPing >= Math.min(60, lockAfter / 3) * 1000) {
        lastPing = now;
        api("GET", "/api/session/ping").catch(function () {});
      }
    }, 1000);
  }

  /* ---------- 交代 screen ---------- */
  var switchForm = document.getElementById("switch-form");
  if (switchForm) {
    var pin = document.getElementById("pin");
    var radios = Array.prototype.slice.call(switchForm.querySelectorAll('input[name="user_id"]'));
    var choose = function (radio) {
      radio.checked = true;
      pin.value = "";
      pin.focus();
    };
    radios.forEach(function (r) { r.closest("label").addEventListener("click", function () { setTimeout(function () { choose(r); }, 0); }); });
    var backToList = function () {
      pin.value = "";
      var on = radios.filter(function (r) { return r.checked; })[0] || radios[0];
      if (on) { on.focus(); }
    };
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.altKey || e.metaKey) { return; }
      if (e.target === pin) {
        if (e.key === "Escape") { e.preventDefault(); backToList(); }
        return;
      }
      if (/^[1-9]$/.test(e.key) && radios[parseInt(e.key, 10) - 1]) { e.preventDefault(); choose(radios[parseInt(e.key, 10) - 1]); return; }
      // Enter on a name chooses it (the PIN comes next); it never submits an empty PIN
      if (e.key === "Enter" && radios.indexOf(e.target) >= 0) { e.preventDefault(); choose(e.target); }
    });
    // the focus starts on the list, so a digit chooses a person and never types into the PIN;
    // only after a wrong PIN (the person already chose) does the page open in the PIN box
    if (document.activeElement !== pin) { backToList(); }
  }

  /* ---------- intake ---------- */
  var intake = document.getElementById("intake-form");
  if (intake) {
    var members = document.getElementById("members");
    var tpl = document.getElementById("member-template");
    var nextIndex = function () {
      var max = -1;
      members.querySelectorAll("fieldset.member").forEach(function (f) { max = Math.max(max, parseInt(f.getAttribute("data-index"), 10)); });
      return max + 1;
    };
    var field = function (i, name) { return document.getElementById("m-" + i + "-" + name); };
    var addr = document.getElementById("address");

    var GRADE_NOTE = { auto: "ほぼ確実", review: "要確認", weak: "可能性低い" };
    var linkTo = function (i, c) {
      field(i, "resident_id").value = c.resident_id;
      var label = (c.name || "") + "（宛名番号 " + c.resident_id + "）";
      field(i, "resident_label").value = label;
      var linked = field(i, "linked");
      linked.querySelector(".linked-label").textContent = label;
      linked.hidden = false;
      document.getElementById("m-" + i + "-cands").textContent = "";
      saveDraftSoon();
      field(i, "sex").focus();
    };
    var showCandidates = function (i, result) {
      var box = document.getElementById("m-" + i + "-cands");
      box.textContent = "";
      var cands = (result && result.candidates) || [];
      if (!cands.length) { box.appendChild(el("p", { "class": "none" }, "台帳に候補はありません")); return; }
      cands.slice(0, 3).forEach(function (c, n) {
        var grade = c.grade || "weak";
        var card = el("div", { "class": "cand cand-" + grade, "data-grade": grade });
        var badge = el("p", { "class": "grade grade-" + grade }, c.grade_ja || GRADE_NOTE[grade]);
        badge.appendChild(el("span", { "class": "prob" }, " " + Math.round((c.probability || 0) * 100) + "%"));
        card.appendChild(badge);
        card.appendChild(el("div", { "class": "cand-head" }, (n + 1) + ". " + (c.name || "") + "（" + (c.name_kana || "") + "）"));
        card.appendChild(el("div", null, "生年月日 " + (c.birth_date || "不詳") + " ／ " + ({ M: "男", F: "女" }[c.sex] || "") + " ／ 宛名番号 " + c.resident_id));
        card.appendChild(el("div", null, c.address || ""));
        var reasons = (c.reason_parts || []).map(function (r) { return r.text; }).join("、");
        card.appendChild(el("div", { "class": "reasons-line" }, "理由: " + reasons));
        (c.registered || []).forEach(function (x) {
          card.appendChild(el("p", { "class": "registered" }, x.where === "here"
            ? "この方はすでにこの避難所に登録されています（" + x.name + "）"
            : "他の避難所（" + x.shelter_name + "）で登録済みです"));
        });
        var weak = grade === "weak";
        var btn = el("button", { type: "button", "class": "btn-small pick" + (weak ? " pick-weak" : ""), "data-resident": c.resident_id },
                     weak ? "可能性低い…この人と照合" : "この人と照合する");
        btn.addEventListener("click", function () {
          if (weak && btn.getAttribute("data-armed") !== "1") {
            // a weak candidate needs a second, explicit press: one stray Enter never links it
            btn.setAttribute("data-armed", "1");
            btn.textContent = "本当にこの人ですか？ もう一度押すと照合します";
            return;
          }
          linkTo(i, c);
        });
        card.appendChild(btn);
        box.appendChild(card);
      });
      var none = el("button", { type: "button", "class": "btn-small no-match-btn", id: "m-" + i + "-no-match" }, "台帳にいない / わからない");
      none.addEventListener("click", function () {
        box.textContent = "";
        box.appendChild(el("p", { "class": "no-match" }, "台帳からは選びません（登録後に自動で照合し、候補があれば照合確認に回ります）"));
        field(i, "sex").focus();
      });
      box.appendChild(none);
    };

    var showDuplicates = function (i, result) {
      var box = document.getElementById("m-" + i + "-dup");
      if (!box) { return; }
      box.textContent = "";
      var d = (result && result.duplicates) || [];
      var away = (result && result.elsewhere) || [];
      if (d.length) {
        var p = el("p", { "class": "alert alert-warn" }, "すでに在所中の方に同じ氏名・生年月日の方がいます: ");
        d.forEach(function (x) { p.appendChild(el("a", { href: "/roster/" + x.id }, x.name + " (" + (x.birth_date || "") + ")")); });
        box.appendChild(p);
      }
      if (away.length) {
        var q = el("p", { "class": "alert alert-warn" }, "他の避難所で登録済みの可能性があります: ");
        q.appendChild(document.createTextNode(away.map(function (x) { return x.shelter_name; }).join("、")));
        box.appendChild(q);
      }
    };

    var lookup = function (i) {
      if (!field(i, "name")) { return; }
      var name = field(i, "name").value.trim(), kana = field(i, "name_kana").value.trim();
      var birth = field(i, "birth_date").value.trim(), sex = field(i, "sex").value;
      if (field(i, "resident_id").value) { return; } // already linked by this staff member
      if (name.length < 2 && kana.length < 2) { document.getElementById("m-" + i + "-cands").textContent = ""; return; }
      var q = "name=" + encodeURIComponent(name) + "&kana=" + encodeURIComponent(kana) + "&birth=" + encodeURIComponent(birth) +
              "&sex=" + encodeURIComponent(sex) + "&address=" + encodeURIComponent(addr ? addr.value.trim() : "") + "&limit=3";
      api("GET", "/api/search?" + q).then(function (r) { showCandidates(i, r); }).catch(function (e) {
        var box = document.getElementById("m-" + i + "-cands");
        box.textContent = "";
        if (e.message !== "locked") { box.appendChild(el("p", { "class": "none" }, "候補を表示できません: " + e.message)); }
      });
      if (birth) {
        api("GET", "/api/evacuees/duplicates?name=" + encodeURIComponent(name || kana) + "&birth=" + encodeURIComponent(birth))
          .then(function (r) { showDuplicates(i, r); }).catch(function () {});
      }
    };
    var lookups = {};
    var lookupSoon = function (i) { if (!lookups[i]) { lookups[i] = debounce(function () { lookup(i); }, 350); } lookups[i](); };

    /* opened from a 本人記入 entry: the registry candidates of every prefilled person at once */
    if (intake.getAttribute("data-lookup-now") === "1") {
      Array.prototype.forEach.call(intake.querySelectorAll("fieldset.member"), function (fs) { lookup(fs.getAttribute("data-index")); });
    }
    intake.addEventListener("input", function (e) {
      var m = /^m-(\d+)-(name|name_kana|birth_date|sex)$/.exec(e.target.id || "");
      if (m) { lookupSoon(m[1]); }
    });
    intake.addEventListener("change", function (e) {
      var m = /^m-(\d+)-sex$/.exec(e.target.id || "");
      if (m) { lookupSoon(m[1]); }
    });
    intake.addEventListener("click", function (e) {
      var t = e.target;
      if (t.classList.contains("unlink")) {
        var i = t.getAttribute("data-index");
        field(i, "resident_id").value = ""; field(i, "resident_label").value = "";
        field(i, "linked").hidden = true;
        saveDraftSoon(); lookup(i); field(i, "name").focus();
      } else if (t.classList.contains("remove-member")) {
        var fs = t.closest("fieldset.member");
        var prev = fs.previousElementSibling;
        fs.parentNode.removeChild(fs);
        saveDraftSoon();
        if (prev) { var n = prev.querySelector("input[type=text]"); if (n) { n.focus(); } }
      }
    });
    document.getElementById("add-member").addEventListener("click", function () { addMember(); });
    /* Enter moves on instead of submitting a half-entered household; submitting is deliberate
       (the button, or Ctrl+Enter). Enter follows the four fields that identify a person. */
    var addMember = function () {
      var i = nextIndex();
      var wrap = document.createElement("div");
      wrap.innerHTML = tpl.innerHTML.replace(/__i__/g, String(i));
      members.appendChild(wrap.querySelector("fieldset"));
      field(i, "name").focus();
      saveDraftSoon();
      return i;
    };
    var KANA_ONLY = /^[\u3041-\u309f\u30a0-\u30ff\u3000\s]+$/;
    var quickNext = function (t) {
      var quick = Array.prototype.slice.call(intake.querySelectorAll("[data-quick]"));
      var role = t.getAttribute("data-role"), m = /^m-(\d+)-/.exec(t.id || "");
      if (role === "name" && m) {
        var row = t.closest("fieldset.member");
        var empty = !t.value.trim() && !field(m[1], "name_kana").value.trim() && !field(m[1], "birth_date").value.trim();
        if (empty && row.previousElementSibling) { document.getElementById("intake-submit").focus(); return; }
        if (KANA_ONLY.test(t.value.trim())) { field(m[1], "birth_date").focus(); return; } // the kana is the name
      }
      var n = quick.indexOf(t);
      if (n >= 0 && n + 1 < quick.length) { quick[n + 1].focus(); return; }
      if (n >= 0) { addMember(); return; }
      var all = Array.prototype.slice.call(intake.querySelectorAll("input:not([type=hidden]), select, button, summary"))
        .filter(function (x) { return x.offsetParent !== null; });
      var k = all.indexOf(t);
      if (k >= 0 && k + 1 < all.length) { all[k + 1].focus(); }
    };
    intake.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" || e.isComposing || e.keyCode === 229) { return; }
      var t = e.target;
      if (e.ctrlKey || e.metaKey) { e.preventDefault(); if (checkAll()) { intake.requestSubmit(); } return; }
      if (t.tagName === "BUTTON" || t.tagName === "SUMMARY" || t.tagName === "A") { return; }
      if (t.tagName === "INPUT" || t.tagName === "SELECT") { e.preventDefault(); checkField(t); quickNext(t); }
    });
    // 性別 by one key as well (1/m = 男, 2/f = 女), which also moves on
    intake.addEventListener("keydown", function (e) {
      if (e.target.getAttribute("data-role") !== "sex" || e.ctrlKey || e.altKey) { return; }
      var v = { "1": "男", "m": "男", "2": "女", "f": "女" }[e.key.toLowerCase()];
      if (v) {  // chosen by one key, so on to the next person like Enter would
        e.preventDefault(); e.target.value = v; e.target.dispatchEvent(new Event("change", { bubbles: true }));
        quickNext(e.target);
      }
    });

    /* checks as a field is left; the server repeats them on submit and has the last word */
    var fieldMessage = function (input, text, ok) {
      var id = input.id + "-error", p = document.getElementById(id);
      var wrap = input.closest(".field");
      if (!text) {
        if (p) { p.parentNode.removeChild(p); }
        input.removeAttribute("aria-invalid");
        if (wrap) { wrap.classList.remove("has-error"); }
        return;
      }
      if (!p) { p = el("p", { id: id }); wrap.appendChild(p); }
      p.className = ok ? "field-ok" : "field-error";
      p.setAttribute("role", ok ? "status" : "alert");
      p.textContent = text;
      var desc = (input.getAttribute("aria-describedby") || "").split(" ").filter(function (x) { return x && x !== id; });
      desc.push(id);
      input.setAttribute("aria-describedby", desc.join(" "));
      if (ok) { input.removeAttribute("aria-invalid"); wrap.classList.remove("has-error"); }
      else { input.setAttribute("aria-invalid", "true"); wrap.classList.add("has-error"); }
    };
    var checkField = function (input) {
      var max = parseInt(input.getAttribute("data-max") || "0", 10), v = (input.value || "").trim();
      if (max && v.length > max) {
        var label = (intake.querySelector('label[for="' + input.id + '"]') || {}).textContent || "";
        fieldMessage(input, label + "は" + max + "文字以内で入力してください（いま" + v.length + "文字）", false);
        return;
      }
      if (input.getAttribute("data-role") === "birth") {
        if (!v) { fieldMessage(input, ""); return; }
        api("GET", "/api/check-birth?value=" + encodeURIComponent(v)).then(function (r) {
          if (input.value.trim() !== v) { return; }
          fieldMessage(input, r.ok ? (r.label ? "→ " + r.label : "") : r.message_ja, r.ok);
        }).catch(function () {});
        return;
      }
      if (input.getAttribute("aria-invalid") === "true") { fieldMessage(input, ""); }
    };
    var firstBad = function () { return intake.querySelector('[aria-invalid="true"]'); };
    var focusField = function (f) {
      var det = f.closest("details");
      if (det) { det.open = true; }
      f.focus();
    };
    var checkAll = function () {
      var bad = firstBad();
      if (bad) { focusField(bad); return false; }
      return true;
    };
    intake.addEventListener("focusout", function (e) {
      if (e.target.tagName === "INPUT" && e.target.type === "text") { checkField(e.target); }
    });
    intake.addEventListener("submit", function (e) { if (!checkAll()) { e.preventDefault(); } });
    var bad0 = firstBad();
    if (bad0) { focusField(bad0); }

    // members already on the page (a draft or a re-shown form): show their candidates again
    members.querySelectorAll("fieldset.member").forEach(function (f) { lookup(f.getAttribute("data-index")); });
  }

  /* ---------- review shortcuts ---------- */
  var review = document.getElementById("review");
  if (review) {
    // close candidates: nothing chosen until a number is pressed (X then rejects nobody by default)
    var selected = review.getAttribute("data-tied") === "1" ? 0 : 1;
    var select = function (n) {
      var b = document.getElementById("confirm-" + n);
      if (!b) { return; }
      selected = n;
      review.querySelectorAll(".cand-card").forEach(function (c) { c.classList.toggle("selected", c.getAttribute("data-index") === String(n)); });
      b.focus();
    };
    document.addEventListener("keydown", function (e) {
      if (e.ctrlKey || e.altKey || e.metaKey || /INPUT|SELECT|TEXTAREA/.test(e.target.tagName)) { return; }
      var k = e.key.toLowerCase();
      if (/^[1-9]$/.test(k)) { e.preventDefault(); select(parseInt(k, 10)); }
      else if (k === "x") { e.preventDefault(); var r = document.getElementById("reject-" + selected); if (r) { r.click(); } }
      else if (k === "n") { e.preventDefault(); document.getElementById("btn-not-resident").click(); }
      else if (k === "s") { e.preventDefault(); document.getElementById("btn-skip").click(); }
    });
  }

  /* ---------- registry import progress ---------- */
  var job = document.getElementById("job");
  if (job && job.getAttribute("data-status") === "running") {
    var poll = function () {
      api("GET", "/api/registry/jobs/" + job.getAttribute("data-job"), undefined, { "X-Anpi-Poll": "1" }).then(function (j) {
        if (j.status === "running") {
          document.getElementById("job-message").textContent = "取り込み中… " + j.rows + "行";
          setTimeout(poll, 1000);
        } else {
          location.href = "/admin/registry?job=" + encodeURIComponent(j.id);
        }
      }).catch(function () { setTimeout(poll, 3000); });
    };
    setTimeout(poll, 500);
  }

  /* ---------- a form that throws something away asks first (data-confirm) ---------- */
  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (f) {
    f.addEventListener("submit", function (e) { if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); } });
  });

  /* ---------- print ---------- */
  var printButton = document.getElementById("print-button");
  if (printButton) { printButton.addEventListener("click", function () { window.print(); }); }
})();
