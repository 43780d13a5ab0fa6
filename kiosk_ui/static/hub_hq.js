/* The hub's HQ screen (本部の安否確認): a thin face over the /v1/hq JSON routes.
 *
 * The bearer token is pasted once and kept in sessionStorage only (this tab; never a cookie,
 * never a URL); every call sends it as "Authorization: Bearer …".  Filters live in the page's
 * query string (they are not secret), so a chart bar's link (/hq?town=…) opens the list filtered.
 * Personal data is only ever put in the page with textContent, never as HTML.
 */
(function () {
  "use strict";

  var Hub = window.AnpiHub;  // the token, the calls and the login form: hub_token.js (shared with /desk)
  var showDone = Hub.showDone, clearMessages = Hub.clearMessages;  // the message box
  var ApiError = Hub.ApiError;
  var api = Hub.api;
  var body = document.body;
  var PER_PAGE = parseInt(body.dataset.perPage || "100", 10);
  var CARE = JSON.parse(body.dataset.careLabels || "{}");
  var DONE_JA = { confirmed_other: "他の手段で確認したことを記録しました", dead: "死亡の報告を記録しました",
                  missing: "行方不明の報告を記録しました", withdrawn: "直前の記録を取り消しました" };
  var FIELD_JA = { town: "町字", household: "世帯番号", age_band: "年齢", status: "状態・記録の種類",
                   method: "確認方法", note: "備考", resident_id: "宛名番号", format: "出力形式", encoding: "文字コード" };
  var state = { offset: 0, total: 0, towns: [] };

  function $(id) { return document.getElementById(id); }

  /** The hub's answer in Japanese: 401/403 and every error shape of the /v1/hq routes. */
  function messageJa(err, what) {
    var common = Hub.commonMessage(err);
    if (!(err instanceof ApiError)) { return [common, Hub.detailLine(err)]; }
    var field = err.field;
    var m;
    if (common) {
      m = common;
    } else if (err.status === 403) {
      m = "この操作の権限がありません（本部または管理者の利用者が必要です）。";
    } else if (err.status === 404) {
      m = what === "record" ? "その宛名番号は台帳にありません。" : "見つかりません。";
    } else if (err.error === "conflict") {
      m = /withdraw/.test(err.detail) ? "取り消す記録がありません。" : "ほかの操作と重なりました。画面を更新して確認してください。";
    } else if (field === "method") {
      m = "確認方法を選んでください（他の手段で確認した場合は必須です）。";
    } else if (field && FIELD_JA[field]) {
      m = FIELD_JA[field] + "の指定が正しくありません。";
    } else {
      m = "入力が正しくありません。";
    }
    return [m, Hub.detailLine(err)];
  }

  function showError(err, what) {
    var pair = typeof err === "string" ? [err, ""] : messageJa(err, what);
    Hub.showError(pair[0], pair[1]);
    if (err instanceof ApiError && err.status === 401) { logout(true); }
  }


  // ---- filters (in the query string, never the token) ------------------------------------------
  function filters() {
    var f = new URLSearchParams();
    [["town", $("town").value], ["household", $("household").value.trim()], ["age_band", $("age_band").value],
     ["status", $("status").value], ["care", $("care").checked ? "1" : ""]].forEach(function (kv) {
      if (kv[1]) { f.append(kv[0], kv[1]); }
    });
    return f;
  }

  function setSelect(sel, value) {
    if (value && !Array.prototype.some.call(sel.options, function (o) { return o.value === value; })) {
      var o = document.createElement("option");
      o.value = value; o.textContent = value;
      sel.appendChild(o);
    }
    sel.value = value || "";
  }

  function readLocation() {
    var q = new URLSearchParams(location.search);
    setSelect($("town"), q.get("town") || "");
    $("household").value = q.get("household") || "";
    $("age_band").value = q.get("age_band") || "";
    $("status").value = q.get("status") || "";
    $("care").checked = ["1", "true", "on"].indexOf(q.get("care") || "") >= 0;
  }

  function writeLocation() {
    var qs = filters().toString();
    history.replaceState(null, "", "/hq" + (qs ? "?" + qs : ""));
  }

  // ---- drawing -----------------------------------------------------------------------------------
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text == null ? "" : String(text);
    tr.appendChild(td);
    return td;
  }

  function detailOf(r) {
    if (r.hq) {
      return [r.hq.method, r.hq.note, r.hq.by_user ? "記録: " + r.hq.by_user : "",
              r.hq.typed_at === "hub" ? "（ハブで記録）" : "（避難所で記録）"].filter(Boolean).join(" ");
    }
    if (r.where) {
      var w = r.where;
      var place = [w.municipality_name && w.remote ? w.municipality_name : "", w.shelter_name || w.shelter_code || ""]
        .filter(Boolean).join(" ");
      return place + (w.destination ? " → " + w.destination : "");
    }
    return "";
  }

  function drawRows(rows) {
    var tbody = $("hq-rows");
    tbody.textContent = "";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.id = "res-" + r.resident_id;
      if (r.restricted) { tr.className = "restricted"; }
      cell(tr, r.town_label || r.town); cell(tr, r.household_id); cell(tr, r.relationship);
      var name = cell(tr, "");
      var n = document.createElement("span"); n.className = "hq-name"; n.textContent = r.name; name.appendChild(n);
      if (r.restricted) {
        var b = document.createElement("span"); b.className = "restricted-badge"; b.textContent = "閲覧制限";
        name.appendChild(document.createTextNode(" ")); name.appendChild(b);
      }
      name.appendChild(document.createElement("br"));
      var k = document.createElement("small"); k.textContent = r.name_kana || r.alpha_name || ""; name.appendChild(k);
      cell(tr, r.birth_date, "nowrap"); cell(tr, r.age == null ? "" : r.age); cell(tr, r.sex); cell(tr, r.address);
      var st = cell(tr, "");
      var s = document.createElement("span"); s.className = "st st-" + r.status; s.textContent = r.status_ja; st.appendChild(s);
      cell(tr, detailOf(r));
      cell(tr, (r.care || []).map(function (c) { return CARE[c] || c; }).join("・"));
      var act = cell(tr, "");
      var btn = document.createElement("button");
      btn.type = "button"; btn.className = "btn-small record-this"; btn.textContent = "記録";
      btn.dataset.resident = r.resident_id;
      btn.dataset.label = r.name + "（" + (r.name_kana || "") + "）宛名番号 " + r.resident_id + "・" + (r.town_label || r.town) +
        " ／ いまの状態: " + r.status_ja;
      act.appendChild(btn);
      tbody.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement("tr");
      var td = cell(tr, "該当する住民はいません。"); td.colSpan = 12;
      tbody.appendChild(tr);
    }
  }

  function drawCounts(d) {
    Object.keys(d.counts).forEach(function (k) { var el = $("n-" + k); if (el) { el.textContent = d.counts[k]; } });
    $("n-safe").textContent = d.safe;
    var snap = d.snapshot || {};
    $("snapshot-info").textContent = "住民基本台帳 " + (snap.as_of || "") + " 時点・" + (snap.row_count || snap.residents || "") + "人";
    state.total = d.total;
    var pages = Math.max(1, Math.ceil(d.total / PER_PAGE));
    var page = Math.floor(state.offset / PER_PAGE) + 1;
    $("list-info").textContent = d.total + "人" + (pages > 1 ? "・" + page + " / " + pages + "ページ" : "");
    $("pager").hidden = pages <= 1;
    $("page-info").textContent = page + " / " + pages;
    $("page-prev").disabled = page <= 1;
    $("page-next").disabled = page >= pages;
  }

  function drawTowns(names) {
    var sel = $("town");
    var current = sel.value;
    names.forEach(function (t) {
      if (!Array.prototype.some.call(sel.options, function (o) { return o.value === t; })) {
        var o = document.createElement("option"); o.value = t; o.textContent = t; sel.appendChild(o);
      }
    });
    sel.value = current;
  }

  function drawChart(svgText) {
    var doc = new DOMParser().parseFromString(svgText, "image/svg+xml");
    var svg = doc.documentElement;
    var box = $("town-chart-box");
    box.textContent = "";
    if (!svg || svg.nodeName !== "svg" || doc.getElementsByTagName("parsererror").length) {
      box.textContent = "グラフを表示できません。";
      return;
    }
    box.appendChild(document.importNode(svg, true));
  }

  // ---- loading -----------------------------------------------------------------------------------
  function refresh() {
    var f = filters();
    writeLocation();
    var list = new URLSearchParams(f);
    list.set("limit", String(PER_PAGE));
    list.set("offset", String(state.offset));
    var q = f.toString();
    return Promise.all([
      api("/v1/hq/anpi-list?" + list.toString()).then(function (r) { return r.json(); }),
      api("/v1/hq/anpi-list/chart.svg" + (q ? "?" + q : "")).then(function (r) { return r.text(); }),
    ]).then(function (res) {
      drawCounts(res[0]);
      drawRows(res[0].rows);
      drawTowns(Object.keys(res[0].town_counts));
      drawChart(res[1]);
    });
  }

  function start() {
    return Hub.whoami().then(function (me) {
      Hub.showWho(me);
      $("login").hidden = true;
      $("board").hidden = false;
      // every 町字 of the registry for the select, whatever the filter in the URL says
      return api("/v1/hq/anpi-list?limit=1").then(function (r) { return r.json(); }).then(function (all) {
        drawTowns(Object.keys(all.town_counts));
        return refresh();
      });
    }).catch(function (err) {
      if (err instanceof ApiError && err.status === 403) { $("board").hidden = true; }  // a 窓口 account: nothing to show
      showError(err);
    });
  }

  function logout(keepMessage) {
    Hub.forget();
    Hub.hideWho();
    $("board").hidden = true;
    $("login").hidden = false;
    $("hq-rows").textContent = "";
    $("town-chart-box").textContent = "";
    $("record-who").hidden = true;
    ["snapshot-info", "list-info"].forEach(function (id) { $(id).textContent = ""; });
    if (!keepMessage) { clearMessages(); showDone("ログアウトしました。トークンはこの画面から消えました。"); }
    $("token").focus();
  }

  // ---- actions -----------------------------------------------------------------------------------
  function download(btn) {
    var q = filters();
    q.set("format", btn.dataset.format);
    if (btn.dataset.encoding) { q.set("encoding", btn.dataset.encoding); }
    btn.disabled = true;
    clearMessages();
    return api("/v1/hq/anpi-list/export?" + q.toString()).then(function (r) {
      var rows = r.headers.get("X-Anpi-Rows");
      var name = Hub.filenameOf(r, "anpi-list." + btn.dataset.format);
      return r.blob().then(function (blob) {
        var url = URL.createObjectURL(blob);
        Hub.saveUrl(url, name);
        setTimeout(function () { URL.revokeObjectURL(url); }, 60000);
        showDone(name + " を保存しました" + (rows ? "（" + rows + "人）" : "") + "。");
      });
    }).catch(function (err) { showError(err, "export"); })
      .then(function () { btn.disabled = false; });
  }

  function record(ev) {
    ev.preventDefault();
    var rid = $("resident_id").value.trim();
    if (!rid) { showError("宛名番号を入力してください。"); $("resident_id").focus(); return; }
    var payload = { status: $("hq-status").value, method: $("method").value, note: $("note").value };
    $("record-submit").disabled = true;
    api("/v1/hq/anpi-list/" + encodeURIComponent(rid) + "/records", { method: "POST", json: payload })
      .then(function (r) { return r.json(); })
      .then(function (d) {
        $("note").value = "";
        $("method").value = "";
        return refresh().then(function () {
          showDone(DONE_JA[d.record && d.record.status] || "記録しました");
        });
      })
      .catch(function (err) { showError(err, "record"); })
      .then(function () { $("record-submit").disabled = false; });
  }

  function init() {
    Hub.bindLogin(function () { clearMessages(); state.offset = 0; start(); }, showError);
    $("logout").addEventListener("click", function () { logout(false); });
    $("hq-filters").addEventListener("submit", function (ev) {
      ev.preventDefault(); clearMessages(); state.offset = 0; refresh().catch(function (e) { showError(e); });
    });
    $("hq-clear").addEventListener("click", function () {
      $("hq-filters").reset(); $("town").value = ""; clearMessages(); state.offset = 0;
      refresh().catch(function (e) { showError(e); });
    });
    $("page-prev").addEventListener("click", function () {
      state.offset = Math.max(0, state.offset - PER_PAGE); refresh().catch(function (e) { showError(e); });
    });
    $("page-next").addEventListener("click", function () {
      state.offset += PER_PAGE; refresh().catch(function (e) { showError(e); });
    });
    $("town-chart-box").addEventListener("click", function (ev) {
      var a = ev.target.closest && ev.target.closest("a[data-town]");
      if (!a) { return; }
      ev.preventDefault();
      setSelect($("town"), a.getAttribute("data-town"));
      state.offset = 0;
      refresh().catch(function (e) { showError(e); });
    });
    $("hq-exports").addEventListener("click", function (ev) {
      var b = ev.target.closest && ev.target.closest("button[data-format]");
      if (b) { download(b); }
    });
    $("hq-rows").addEventListener("click", function (ev) {
      var b = ev.target.closest && ev.target.closest("button.record-this");
      if (!b) { return; }
      $("resident_id").value = b.dataset.resident;
      $("record-who").textContent = b.dataset.label;
      $("record-who").hidden = false;
      $("record").scrollIntoView();
      $("hq-status").focus();
    });
    $("record-form").addEventListener("submit", record);
    readLocation();
    if (Hub.token()) { start(); } else { $("token").focus(); }
  }

  init();
}());
