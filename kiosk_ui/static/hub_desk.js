/* The hub's desk screen (ハブの窓口): 安否照会, 証明書 and 捜索依頼 (PFIF) over the desks' JSON routes.
 *
 * The token and the calls are hub_token.js's (shared with /hq).  What the hub answers is put in the
 * page with textContent only, never as HTML.  The answer of an inquiry is shown exactly as the hub
 * returned it (answer_text, items): this script never words an answer itself, so every negative
 * answer looks the same whatever the reason was.  A bad field (field-named 4xx) is shown in
 * Japanese next to that field.
 */
(function () {
  "use strict";

  var Hub = window.AnpiHub;
  var showDone = Hub.showDone, clearMessages = Hub.clearMessages;  // the message box
  var ApiError = Hub.ApiError;
  var api = Hub.api;
  var CIRCLED = JSON.parse(document.body.dataset.circled || "{}");
  var ACTION_JA = JSON.parse(document.body.dataset.actionJa || "{}");
  var WHERE_JA = { hub: "ハブ", laptop: "避難所" };
  var SEX_JA = { male: "男", female: "女", other: "その他" };
  //: the API's field name → the input's id, per form (an id's error line is id + "-error")
  var INQ_FIELDS = ["inquirer_name", "inquirer_phone", "inquirer_address", "id_proof", "id_proof_note",
                    "relationship", "purpose", "sought_name", "sought_kana", "sought_birth", "sought_address"];
  var CERT_FIELDS = { resident_id: "cert-resident_id", name: "cert-name", address: "cert-address", kind: "cert-kind",
                      damage: "cert-damage", cause: "cert-cause", location: "cert-location",
                      identity: "cert-in_person", in_person: "cert-in_person", identity_note: "cert-id_note",
                      id_note: "cert-id_note", members: "cert-members", note: "cert-note",
                      include_members: "cert-include_members" };
  var me = null;
  var current = null;  // the certificate open in the detail box

  function $(id) { return document.getElementById(id); }

  // ---- messages --------------------------------------------------------------------------------
  /** The hub's answer in Japanese (the desks send detail_ja; the rest is said alike on every page). */
  function messageJa(err, what) {
    var common = Hub.commonMessage(err);
    if (common) { return common; }
    if (err.status === 403) {
      return err.detailJa || (what === "log" ? "照会の記録は本部または管理者の利用者だけが見られます。"
                                             : "この操作の権限がありません。");
    }
    if (err.detailJa) { return err.detailJa; }
    if (err.status === 404) { return what === "cert" ? "その整理番号の証明書はありません。" : "見つかりません。"; }
    if (err.status === 409) { return "ほかの操作と重なったか、すでに処理済みです。画面を更新して確認してください。"; }
    if (err.status === 413) { return "ファイルが大きすぎます。"; }
    return "入力が正しくありません。";
  }

  function showError(err, what) {
    if (typeof err === "string") { Hub.showError(err, ""); } else { Hub.showError(messageJa(err, what), Hub.detailLine(err)); }
    if (err instanceof ApiError && err.status === 401) { logout(true); }
  }


  function clearFieldErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".field-error"), function (p) { p.hidden = true; p.textContent = ""; });
    Array.prototype.forEach.call(form.querySelectorAll(".has-error"), function (b) { b.classList.remove("has-error"); });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (i) { i.removeAttribute("aria-invalid"); });
  }

  /** Put the message next to the field with this id; false when the page has no such field. */
  function fieldError(id, text) {
    var line = $(id + "-error");
    if (!line) { return false; }
    line.textContent = text;
    line.hidden = false;
    var box = $(id + "-box");
    if (box) { box.classList.add("has-error"); }
    var input = $(id) || (box && box.querySelector("input, textarea, select"));
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    return true;
  }

  /** A field-named 4xx next to its field (the global box says to look there); anything else above. */
  function formError(err, idOf, what) {
    if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 401 && err.field) {
      var id = idOf(err.field);
      if (id && fieldError(id, messageJa(err, what))) {
        showError("入力を確認してください: " + messageJa(err, what), what);
        $("hub-error-detail").textContent = Hub.detailLine(err);
        return;
      }
    }
    showError(err, what);
  }

  function td(tr, text, cls) {
    var cell = document.createElement("td");
    if (cls) { cell.className = cls; }
    cell.textContent = text == null ? "" : String(text);
    tr.appendChild(cell);
    return cell;
  }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }

  function localTime(iso) {
    if (!iso) { return ""; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return String(iso); }
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) + ":" +
      two(d.getMinutes());
  }

  function radioValue(form, name) {
    var checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : "";
  }

  // ---- tabs ------------------------------------------------------------------------------------
  var TABS = ["inquiry", "cert", "pfif"];

  function showTab(name, focus) {
    TABS.forEach(function (t) {
      var on = t === name;
      $("tab-" + t).setAttribute("aria-selected", on ? "true" : "false");
      $("tab-" + t).tabIndex = on ? 0 : -1;
      $("panel-" + t).hidden = !on;
    });
    history.replaceState(null, "", "/desk#" + $("tab-" + name).dataset.hash);
    if (focus) { $("tab-" + name).focus(); }
    if (name === "cert") { loadCertificates().catch(function (e) { showError(e); }); }
    if (name === "pfif") { loadSought().catch(function (e) { showError(e); }); }
  }

  function tabFromHash() {
    var h = (location.hash || "").replace("#", "");
    return h === "certificates" ? "cert" : (h === "pfif" ? "pfif" : "inquiry");
  }

  // ---- login -----------------------------------------------------------------------------------
  function start() {
    return Hub.whoami().then(function (who) {
      me = who;
      Hub.showWho(who);
      $("login").hidden = true;
      $("desk").hidden = false;
      $("inquiry-log-box").hidden = !(who.role === "hq" || who.role === "admin");  // the log is HQ's
      showTab(tabFromHash(), false);
    }).catch(function (err) { showError(err); });
  }

  function logout(keepMessage) {
    Hub.forget();
    Hub.hideWho();
    me = null;
    current = null;
    $("desk").hidden = true;
    $("login").hidden = false;
    ["answer-rows", "log-rows", "cert-rows", "cd-member-rows", "cd-history-rows", "pfif-list"].forEach(function (id) {
      $(id).textContent = "";
    });
    ["inquiry-form", "cert-issue-form", "cert-reissue-form", "cert-void-form", "pfif-import-form"].forEach(function (id) {
      $(id).reset(); clearFieldErrors($(id));
    });
    $("inquiry-answer").hidden = true;
    $("inquiry-form").hidden = false;
    $("cert-detail").hidden = true;
    $("pfif-result").hidden = true;
    $("pfif-problems-box").hidden = true;
    if (!keepMessage) { clearMessages(); showDone("ログアウトしました。トークンはこの画面から消えました。"); }
    $("token").focus();
  }

  // ---- 安否照会 ----------------------------------------------------------------------------------
  function inquiryBody() {
    var form = $("inquiry-form");
    var body = {};
    INQ_FIELDS.forEach(function (f) {
      var input = form.querySelector('[name="' + f + '"]');
      body[f] = input && input.type === "radio" ? radioValue(form, f) : (input ? input.value : "");
    });
    body.give_up = !$("give-up-box").hidden && $("inq-give_up").checked;
    return body;
  }

  function ask(ev) {
    ev.preventDefault();
    var form = $("inquiry-form");
    clearFieldErrors(form);
    clearMessages();
    var body = inquiryBody();
    $("inquiry-submit").disabled = true;
    api("/v1/hq/inquiries", { method: "POST", json: body })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        if (d.outcome === "needs_detail") {
          $("needs-detail").hidden = false;
          $("give-up-box").hidden = false;
          $("inq-sought_name").focus();
          return;
        }
        drawAnswer(body, d);
      })
      .catch(function (err) { formError(err, function (f) { return INQ_FIELDS.indexOf(f) >= 0 ? "inq-" + f : ""; }, "inquiry"); })
      .then(function () { $("inquiry-submit").disabled = false; });
  }

  /** The answer as the hub returned it: its script's first and last lines around the items, or the
   *  one sentence of "no information" (the same whatever the reason). */
  function drawAnswer(asked, d) {
    $("sum-inquirer").textContent = asked.inquirer_name + "（" + asked.relationship + "）";
    $("sum-sought").textContent = [asked.sought_name, asked.sought_kana].filter(Boolean).join(" ");
    var lines = String(d.answer_text || "").split("\n");
    var items = d.items || [];
    var rows = $("answer-rows");
    rows.textContent = "";
    items.forEach(function (i) {
      var tr = document.createElement("tr");
      td(tr, CIRCLED[String(i.no)] || i.no, "item-no");
      var th = el("th", i.label); th.scope = "row"; tr.appendChild(th);
      td(tr, i.value);
      rows.appendChild(tr);
    });
    var answered = items.length > 0;
    $("script-head").textContent = answered ? lines[0] : "";
    $("script-tail").textContent = answered ? lines[lines.length - 1] : "";
    $("script-none").textContent = answered ? "" : d.answer_text;
    $("script-head").hidden = $("script-tail").hidden = $("answer-items").hidden = !answered;
    $("script-none").hidden = answered;
    $("needs-detail").hidden = true;
    $("inquiry-form").hidden = true;
    $("inquiry-answer").hidden = false;
    $("next-inquiry").focus();
    if (!$("inquiry-log-box").hidden && !$("inquiry-log").hidden) { loadLog().catch(function (e) { showError(e, "log"); }); }
  }

  function nextInquiry() {
    var form = $("inquiry-form");
    form.reset();
    clearFieldErrors(form);
    clearMessages();
    $("give-up-box").hidden = true;
    $("needs-detail").hidden = true;
    $("inquiry-answer").hidden = true;
    form.hidden = false;
    $("inq-inquirer_name").focus();
  }

  function loadLog() {
    var q = new URLSearchParams();
    if ($("log-outcome").value) { q.set("outcome", $("log-outcome").value); }
    q.set("limit", "200");
    return api("/v1/hq/inquiries?" + q.toString()).then(function (r) { return r.json(); }).then(function (d) {
      var rows = $("log-rows");
      rows.textContent = "";
      d.inquiries.forEach(function (r) {
        var tr = document.createElement("tr");
        tr.className = "outcome-" + r.outcome;
        td(tr, localTime(r.at), "nowrap");
        td(tr, r.by_user);
        var who = td(tr, r.inquirer.name || "");
        who.appendChild(document.createElement("br"));
        who.appendChild(el("small", [r.inquirer.address, r.inquirer.phone].filter(Boolean).join(" ／ ")));
        td(tr, r.relationship);
        var proof = td(tr, r.inquirer.id_proof || "");
        if (r.inquirer.id_proof_note) { proof.appendChild(document.createElement("br")); proof.appendChild(el("small", r.inquirer.id_proof_note)); }
        var s = r.sought || {};
        var sought = td(tr, [s.name, s.kana].filter(Boolean).join(" "));
        sought.appendChild(document.createElement("br"));
        sought.appendChild(el("small", [s.birth, s.address].filter(Boolean).join(" ")));
        var oc = td(tr, "");
        oc.appendChild(el("span", r.needs_detail ? "特定できず（詳細を依頼）" : (r.outcome_ja || r.outcome), "outcome"));
        td(tr, (r.items || []).map(function (n) { return CIRCLED[String(n)] || n; }).join(""));
        rows.appendChild(tr);
      });
      if (!d.inquiries.length) { var tr = document.createElement("tr"); td(tr, "照会の記録はありません。").colSpan = 8; rows.appendChild(tr); }
      $("log-info").textContent = d.inquiries.length + "件（新しい順）";
      $("inquiry-log").hidden = false;
    });
  }

  // ---- 証明書 ------------------------------------------------------------------------------------
  function certMode() { return radioValue($("cert-issue-form"), "mode") || "registry"; }

  function syncCertForm() {
    var form = $("cert-issue-form");
    var manual = certMode() === "manual";
    Array.prototype.forEach.call(form.querySelectorAll(".cert-manual-only"), function (b) { b.hidden = !manual; });
    Array.prototype.forEach.call(form.querySelectorAll(".cert-registry-only"), function (b) { b.hidden = manual; });
    form.classList.toggle("hisai", radioValue(form, "kind") === "hisai");
  }

  function issueBody() {
    var form = $("cert-issue-form");
    var kind = radioValue(form, "kind");
    var body = { kind: kind, cause: $("cert-cause").value, location: $("cert-location").value,
                 damage: kind === "hisai" ? "" : radioValue(form, "damage") };
    if (certMode() === "manual") {
      body.manual = true;
      body.name = $("cert-name").value;
      body.address = $("cert-address").value;
      body.members = $("cert-members").value;
      body.note = $("cert-note").value;
    } else {
      body.resident_id = $("cert-resident_id").value.trim();
      body.in_person = $("cert-in_person").checked;
      body.id_note = $("cert-id_note").value;
      body.include_members = $("cert-include_members").checked;
    }
    return body;
  }

  function issue(ev) {
    ev.preventDefault();
    var form = $("cert-issue-form");
    clearFieldErrors(form);
    clearMessages();
    var body = issueBody();
    if (!body.manual && !body.resident_id) {  // the hub would say so too; no call needed for this one
      fieldError("cert-resident_id", "宛名番号を入力してください（台帳にない方は「手動で発行」を選びます）。");
      return;
    }
    $("cert-issue-submit").disabled = true;
    api("/v1/hq/certificates", { method: "POST", json: body })
      .then(function (r) { return r.json(); })
      .then(function (c) {
        form.reset();
        syncCertForm();
        openCertificate(c);
        showDone(c.kind_ja + "を発行しました（整理番号 " + c.number + "）。");
        return loadCertificates();
      })
      .catch(function (err) { formError(err, function (f) { return CERT_FIELDS[f] || ""; }, "issue"); })
      .then(function () { $("cert-issue-submit").disabled = false; });
  }

  function certQuery() {
    var q = new URLSearchParams();
    [["q", $("cert-q").value.trim()], ["kind", $("cert-f-kind").value], ["status", $("cert-f-status").value],
     ["origin", $("cert-f-origin").value]].forEach(function (kv) { if (kv[1]) { q.set(kv[0], kv[1]); } });
    q.set("limit", "200");
    return q;
  }

  function loadCertificates() {
    return api("/v1/hq/certificates?" + certQuery().toString()).then(function (r) { return r.json(); }).then(function (d) {
      var rows = $("cert-rows");
      rows.textContent = "";
      d.certificates.forEach(function (c) {
        var tr = document.createElement("tr");
        tr.className = "cert-row" + (c.status === "void" ? " void" : "");
        tr.dataset.number = c.number;
        var n = td(tr, "");
        var b = el("button", c.number, "btn-small cert-open");
        b.type = "button"; b.dataset.number = c.number;
        n.appendChild(b);
        td(tr, c.kind_ja); td(tr, c.damage_ja || "―"); td(tr, c.head_name); td(tr, c.location);
        td(tr, localTime(c.issued_at) + " " + (c.issued_by || "") + (c.origin === "laptop" ? "（" + (c.shelter_name || "避難所") + "）" : ""));
        var st = td(tr, "");
        st.appendChild(el("span", c.status_ja, "cert-status cert-" + c.status));
        if (c.manual) { st.appendChild(el("span", "手動", "tag tag-manual")); }
        if (c.reissue_count) { st.appendChild(el("span", "再発行" + c.reissue_count + "回", "tag tag-reissue")); }
        rows.appendChild(tr);
      });
      if (!d.certificates.length) { var tr = document.createElement("tr"); td(tr, "該当する証明書はありません。").colSpan = 7; rows.appendChild(tr); }
      $("cert-count").textContent = d.count + "件";
    });
  }

  function openCertificate(c) {
    current = c;
    $("cd-kind").textContent = c.kind_ja;
    $("cd-number").textContent = c.number;
    $("cd-status").textContent = c.status_ja;
    $("cd-status").className = "cert-status cert-" + c.status;
    $("cd-manual").hidden = !c.manual;
    $("cd-reissue").hidden = !c.reissue_count;
    $("cd-reissue").textContent = c.reissue_count ? "再発行" + c.reissue_count + "回" : "";
    var valid = c.status === "issued";
    $("cd-void-note").hidden = valid;
    $("cd-void-note").textContent = valid ? "" : "この証明書は無効です（理由: " + c.void_reason + "）。印刷・再発行はできません。";
    $("cd-unknown-note").hidden = c.content_known !== false;
    $("cd-print-actions").hidden = !valid || c.content_known === false;
    $("cd-ops").hidden = !valid;
    $("cert-reissue-submit").disabled = c.content_known === false;
    $("cd-head_address").textContent = c.head_address;
    $("cd-head_name").textContent = c.head_name;
    $("cd-cause").textContent = c.cause;
    $("cd-location").textContent = c.location;
    $("cd-damage").textContent = c.kind === "risai" ? (c.damage_ja || "") : "―（被災証明書）";
    $("cd-identity").textContent = (c.identity_ja || c.identity || "") + (c.identity_note ? "（" + c.identity_note + "）" : "") +
      (c.manual && c.manual_reason ? " ／ " + c.manual_reason : "");
    $("cd-resident").textContent = (c.resident_id || "―") + (c.household_id ? "（世帯番号 " + c.household_id + "）" : "");
    $("cd-issued").textContent = localTime(c.issued_at) + " " + (c.issued_by || "") +
      (c.origin === "laptop" ? "（避難所の端末: " + (c.shelter_name || c.device_id || "") + "）" : "（ハブ）");
    var mrows = $("cd-member-rows");
    mrows.textContent = "";
    (c.members || []).forEach(function (m) {
      var tr = document.createElement("tr");
      td(tr, m.name); td(tr, m.relationship); td(tr, m.birth_text || m.birth_date || m.birth_raw || "");
      mrows.appendChild(tr);
    });
    $("cd-members").hidden = !(c.members || []).length;
    var hrows = $("cd-history-rows");
    hrows.textContent = "";
    (c.history || []).forEach(function (h) {
      var tr = document.createElement("tr");
      td(tr, localTime(h.at)); td(tr, ACTION_JA[h.action] || h.action); td(tr, h.reason); td(tr, h.by);
      td(tr, WHERE_JA[h.where] || h.where || "");
      hrows.appendChild(tr);
    });
    ["cert-reissue-form", "cert-void-form"].forEach(function (id) { $(id).reset(); clearFieldErrors($(id)); });
    $("cert-detail").hidden = false;
    $("cert-detail").scrollIntoView();
  }

  function showCertificate(number) {
    clearMessages();
    return api("/v1/hq/certificates/" + encodeURIComponent(number))
      .then(function (r) { return r.json(); })
      .then(openCertificate)
      .catch(function (err) { showError(err, "cert"); });
  }

  /** The PDF is fetched with the token (a plain link could not send it) and handed to the browser
   *  as an object URL: saved as a file, or opened in a new tab. */
  function pdf(open) {
    if (!current) { return; }
    var number = current.number;
    var btn = open ? $("cert-pdf-open") : $("cert-pdf");
    var tab = open ? window.open("", "_blank") : null;  // opened now, while the click still counts
    btn.disabled = true;
    clearMessages();
    return api("/v1/hq/certificates/" + encodeURIComponent(number) + "/pdf").then(function (r) {
      var name = Hub.filenameOf(r, number + ".pdf");
      return r.blob().then(function (blob) {
        var url = URL.createObjectURL(new Blob([blob], { type: "application/pdf" }));
        if (tab) {
          tab.location.href = url;
        } else {
          Hub.saveUrl(url, name);
        }
        setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
        showDone(tab ? number + " のPDFを新しいタブで開きました。" : name + " を保存しました。");
      });
    }).catch(function (err) {
      if (tab) { tab.close(); }
      showError(err, "cert");
    }).then(function () { btn.disabled = false; });
  }

  function change(action, ev) {
    ev.preventDefault();
    if (!current) { return; }
    var form = $("cert-" + action + "-form");
    var input = $("cert-" + action + "_reason");
    clearFieldErrors(form);
    clearMessages();
    var number = current.number;
    $("cert-" + action + "-submit").disabled = true;
    api("/v1/hq/certificates/" + encodeURIComponent(number) + "/" + action, { method: "POST", json: { reason: input.value } })
      .then(function (r) { return r.json(); })
      .then(function (c) {
        openCertificate(c);
        showDone(action === "void" ? "証明書 " + number + " を無効にしました。"
                                   : "証明書 " + number + " を再発行しました（" + c.reissue_count + "回目）。PDFを保存して印刷してください。");
        return loadCertificates();
      })
      .catch(function (err) { formError(err, function (f) { return f === "reason" ? input.id : ""; }, "cert"); })
      .then(function () { $("cert-" + action + "-submit").disabled = false; });
  }

  // ---- 捜索依頼 (PFIF) ---------------------------------------------------------------------------
  function importFile(ev) {
    ev.preventDefault();
    var form = $("pfif-import-form");
    clearFieldErrors(form);
    clearMessages();
    $("pfif-result").hidden = true;
    $("pfif-problems-box").hidden = true;
    var file = $("pfif-file").files[0];
    if (!file) { fieldError("pfif-file", "取り込むファイルを選んでください。"); return; }
    $("pfif-import-submit").disabled = true;
    file.arrayBuffer().then(function (buf) {
      return api("/v1/hq/pfif/import?name=" + encodeURIComponent(file.name),
                 { method: "POST", body: buf, type: file.type || "application/octet-stream" });
    }).then(function (r) { return r.json(); }).then(function (d) {
      $("pfif-result-text").textContent = file.name + "（PFIF " + (d.version || "") + "）: 捜索依頼 " + d.persons + "件（新規 " +
        d.persons_new + "・更新 " + d.persons_updated + "・変更なし " + d.persons_unchanged + "）、メモ " + d.notes + "件（新規 " +
        d.notes_new + "・更新 " + d.notes_updated + "）を取り込みました。";
      $("pfif-result-links").textContent = "照合候補: 自動照合 " + d.linked_auto + "件、要確認 " + d.linked_review + "件。";
      var w = $("pfif-warnings");
      w.textContent = "";
      (d.warnings || []).forEach(function (t) { w.appendChild(el("li", t)); });
      $("pfif-result").hidden = false;
      form.reset();
      return loadSought();
    }).catch(function (err) {
      if (err instanceof ApiError && err.error === "bad_file") {
        $("pfif-problems-text").textContent = file.name + ": 読めない箇所があるため、何も取り込みませんでした（" +
          (err.data.total || (err.data.problems || []).length) + "件）。";
        var ul = $("pfif-problems");
        ul.textContent = "";
        (err.data.problems || []).forEach(function (p) {
          ul.appendChild(el("li", (p.line ? p.line + "行目 " : "") + (p.field ? p.field + ": " : "") + (p.message_ja || p.message)));
        });
        $("pfif-problems-box").hidden = false;
        fieldError("pfif-file", "このファイルは取り込めません（下の一覧を見てください）。");
      } else {
        formError(err, function (f) { return f === "file" ? "pfif-file" : ""; }, "pfif");
      }
    }).then(function () { $("pfif-import-submit").disabled = false; });
  }

  function soughtQuery() {
    var q = new URLSearchParams();
    if ($("pfif-q").value.trim()) { q.set("q", $("pfif-q").value.trim()); }
    if ($("pfif-only").value) { q.set("only", $("pfif-only").value); }
    return q;
  }

  function loadSought() {
    return api("/v1/hq/pfif/sought?" + soughtQuery().toString()).then(function (r) { return r.json(); }).then(function (d) {
      var box = $("pfif-list");
      box.textContent = "";
      d.sought.forEach(function (s) { box.appendChild(soughtCard(s)); });
      $("pfif-count").textContent = d.count + "件";
    });
  }

  function kv(dl, term, value) {
    dl.appendChild(el("dt", term));
    dl.appendChild(el("dd", value || "—"));
  }

  function soughtCard(s) {
    var card = el("article", null, "sought-card");
    card.id = "sought-" + s.sought_id;
    card.dataset.record = s.person_record_id;
    var h = el("h2", s.name || "（氏名なし）");
    if (s.alternate_names) { h.appendChild(document.createTextNode(" ")); h.appendChild(el("small", s.alternate_names.replace(/\n/g, "・"))); }
    if (s.status_ja) { h.appendChild(el("span", s.status_ja, "pfif-status pfif-" + s.status)); }
    if (s.expired) { h.appendChild(el("span", "期限切れ", "pfif-status")); }
    card.appendChild(h);
    var dl = el("dl", null, "kv sought-kv");
    kv(dl, "生年月日・年齢", (s.date_of_birth || "") + (s.age ? "（" + s.age + "歳）" : ""));
    kv(dl, "性別", SEX_JA[s.sex] || s.sex);
    kv(dl, "住所", s.home);
    if (s.description) { kv(dl, "特徴など", s.description); }
    kv(dl, "依頼者", s.author_name);
    kv(dl, "出典", [s.source_name, s.person_record_id, s.source_file ? "（" + s.source_file + "）" : ""].filter(Boolean).join(" "));
    card.appendChild(dl);
    if ((s.notes || []).length) {
      var det = el("details", null, "sought-notes");
      det.appendChild(el("summary", "メモ " + s.notes.length + "件"));
      var ul = document.createElement("ul");
      s.notes.forEach(function (n) {
        ul.appendChild(el("li", [localTime(n.source_date), n.status || "", (n.author_name || "") + ":", n.text || ""].filter(Boolean).join(" ")));
      });
      det.appendChild(ul);
      card.appendChild(det);
    }
    var links = s.links || [];
    var decided = (s.decided || []).filter(function (lv) {
      return !links.some(function (x) { return x.link_id === lv.link_id; });
    });
    if (links.length || decided.length) { card.appendChild(linkTable(s, links.concat(decided))); }
    else { card.appendChild(el("p", "照合候補はありません。", "sub")); }
    return card;
  }

  function linkTable(s, links) {
    var table = el("table", null, "list sought-links");
    table.appendChild(el("caption", "照合候補（同一人物かどうか確認してください）"));
    var head = document.createElement("tr");
    ["種類", "氏名", "フリガナ", "生年月日", "住所・避難所", "判定", "確からしさ", "操作"].forEach(function (t) {
      var th = el("th", t); th.scope = "col"; head.appendChild(th);
    });
    var thead = document.createElement("thead"); thead.appendChild(head); table.appendChild(thead);
    var tbody = document.createElement("tbody");
    links.forEach(function (lv) {
      var t = lv.target || {};
      var tr = document.createElement("tr");
      tr.className = "link-" + lv.decision + (lv.restricted ? " link-restricted" : "");
      tr.dataset.kind = lv.target_kind;
      tr.dataset.target = lv.target_id;
      var kind = td(tr, t.kind_ja || lv.target_kind);
      if (lv.restricted) { kind.appendChild(document.createTextNode(" ")); kind.appendChild(el("strong", "閲覧制限・回答しないこと", "restricted")); }
      var name = td(tr, t.name || "");
      var idText = lv.target_kind === "resident" ? "宛名番号 " + lv.target_id : (t.external_key ? "受付番号 " + t.external_key : "");
      if (idText) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("small", idText)); }
      td(tr, t.name_kana || "");
      td(tr, t.birth_date || "");
      td(tr, lv.target_kind === "resident" ? t.address : [t.shelter_name || t.shelter_code, t.status].filter(Boolean).join(" "));
      var dec = td(tr, "");
      dec.appendChild(el("span", lv.decision_ja || lv.decision, "dec dec-" + lv.decision));
      if (lv.by_user) { dec.appendChild(document.createTextNode(" ")); dec.appendChild(el("small", lv.by_user)); }
      td(tr, Math.round((lv.score || 0) * 100) + "%");
      var ops = td(tr, "", "nowrap");
      var staff = lv.by_user && (lv.decision === "confirmed" || lv.decision === "rejected");
      [["confirmed", "同一人物", "btn-primary btn-small"], ["rejected", "別人", "btn btn-small"]].forEach(function (x) {
        if (staff && lv.decision === x[0]) { return; }
        ops.appendChild(decisionButton(s, lv, x[0], x[1], x[2]));
      });
      if (staff) { ops.appendChild(decisionButton(s, lv, "undo", "判定を取り消す", "btn btn-small")); }
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    return table;
  }

  function decisionButton(s, lv, decision, label, cls) {
    var b = el("button", label, cls + " pfif-decide");
    b.type = "button";
    b.dataset.sought = s.sought_id;
    b.dataset.kind = lv.target_kind;
    b.dataset.target = lv.target_id;
    b.dataset.decision = decision;
    b.dataset.name = s.name || "";
    return b;
  }

  function decide(b) {
    clearMessages();
    b.disabled = true;
    var d = b.dataset;
    api("/v1/hq/pfif/sought/" + encodeURIComponent(d.sought) + "/links", { method: "POST",
        json: { target_kind: d.kind, target_id: d.target, decision: d.decision } })
      .then(function () {
        showDone(d.name + ": " + ({ confirmed: "同一人物と確認しました。", rejected: "別人として記録しました。",
                                     undo: "判定を取り消しました。" })[d.decision]);
        return loadSought();
      })
      .catch(function (err) { showError(err, "pfif"); b.disabled = false; });
  }

  // ---- wiring ----------------------------------------------------------------------------------
  function init() {
    Hub.bindLogin(function () { clearMessages(); start(); }, showError);
    $("logout").addEventListener("click", function () { logout(false); });
    TABS.forEach(function (t, i) {
      $("tab-" + t).addEventListener("click", function () { clearMessages(); showTab(t, false); });
      $("tab-" + t).addEventListener("keydown", function (ev) {
        var step = ev.key === "ArrowRight" ? 1 : (ev.key === "ArrowLeft" ? -1 : 0);
        if (step) { ev.preventDefault(); showTab(TABS[(i + step + TABS.length) % TABS.length], true); }
      });
    });
    $("inquiry-form").addEventListener("submit", ask);
    $("next-inquiry").addEventListener("click", nextInquiry);
    $("log-form").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearMessages(); loadLog().catch(function (e) { showError(e, "log"); });
    });
    $("cert-issue-form").addEventListener("change", syncCertForm);
    $("cert-issue-form").addEventListener("submit", issue);
    $("cert-filter-form").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearMessages(); loadCertificates().catch(function (e) { showError(e); });
    });
    $("cert-rows").addEventListener("click", function (ev) {
      var b = ev.target.closest && ev.target.closest("button.cert-open");
      if (b) { showCertificate(b.dataset.number); }
    });
    $("cert-pdf").addEventListener("click", function () { pdf(false); });
    $("cert-pdf-open").addEventListener("click", function () { pdf(true); });
    $("cert-reissue-form").addEventListener("submit", function (ev) { change("reissue", ev); });
    $("cert-void-form").addEventListener("submit", function (ev) { change("void", ev); });
    $("cert-detail-close").addEventListener("click", function () { $("cert-detail").hidden = true; current = null; });
    $("pfif-import-form").addEventListener("submit", importFile);
    $("pfif-filter-form").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearMessages(); loadSought().catch(function (e) { showError(e); });
    });
    $("pfif-list").addEventListener("click", function (ev) {
      var b = ev.target.closest && ev.target.closest("button.pfif-decide");
      if (b) { decide(b); }
    });
    syncCertForm();
    if (Hub.token()) { start(); } else { $("token").focus(); }
  }

  init();
}());
