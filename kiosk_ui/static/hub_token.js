/* The hub's screens (/hq 本部, /desk 窓口): the bearer token and the calls made with it, shared.
 *
 * The token is pasted once and kept in sessionStorage only (this tab; never a cookie, so no CSRF
 * surface; never in a URL); every call sends it as "Authorization: Bearer …".  Both pages load this
 * file before their own script, which finds everything under window.AnpiHub.
 */
(function (global) {
  "use strict";

  var KEY = "anpi-hub-token";
  var ROLE_JA = { hq: "本部", desk: "窓口", admin: "管理者" };

  function $(id) { return document.getElementById(id); }

  function token() {
    try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  }

  /** false when the browser refuses storage (the page then says so). */
  function keep(t) {
    try { sessionStorage.setItem(KEY, t); return true; } catch (e) { return false; }
  }

  function forget() {
    try { sessionStorage.removeItem(KEY); } catch (e) { /* storage refused: nothing kept */ }
  }

  /** A 4xx/5xx answer of the hub: its status and the shapes every /v1/hq route uses
   *  ({"error", "detail"} plus "field" and "detail_ja" where the desks name a bad field). */
  function ApiError(status, data) {
    data = data || {};
    this.status = status;
    this.data = data;
    this.error = data.error || "";
    this.detail = (typeof data.detail === "string" ? data.detail : (data.detail ? JSON.stringify(data.detail) : "")) || "";
    this.detailJa = typeof data.detail_ja === "string" ? data.detail_ja : "";
    // the field: named by the desks, or the "field: …" prefix of the older routes' detail
    this.field = data.field || (this.detail.match(/^([a-z_]+):/) || [])[1] || "";
  }

  /** fetch with the token; opts.json (sent as JSON) or opts.body (sent as is, opts.type its type).
   *  Resolves to the Response when it is 2xx, else rejects with an ApiError. */
  function api(path, opts) {
    opts = opts || {};
    var headers = { Authorization: "Bearer " + token() };
    var body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers["Content-Type"] = opts.type || "application/octet-stream";
      body = opts.body;
    }
    return fetch(path, { method: opts.method || "GET", headers: headers, credentials: "omit", cache: "no-store",
                         body: body })
      .then(function (r) {
        if (r.ok) { return r; }
        return r.json().catch(function () { return {}; }).then(function (d) { throw new ApiError(r.status, d); });
      });
  }

  /** The Japanese message for what every page answers alike, or "" when the page must say it. */
  function commonMessage(err) {
    if (!(err instanceof ApiError)) {
      return "ハブに接続できません。ネットワークを確認して、もう一度お試しください。";
    }
    if (err.status === 401) { return "トークンが正しくないか、無効になっています。貼り付け直してください。"; }
    if (err.error === "no_registry") { return "この自治体の住民基本台帳がまだハブに取り込まれていません。"; }
    if (err.error === "no_data_key") {
      return "ハブにデータ鍵が設定されていないため、処理できません。管理者に連絡してください。";
    }
    if (err.error === "font_missing") {
      return "ハブに日本語フォントがないため、PDFを作成できません。管理者に連絡してください。";
    }
    if (err.status >= 500) { return "ハブでエラーが起きました。しばらくしてからもう一度お試しください。"; }
    return "";
  }

  /** The hub's own words under the message, for whoever has to call the administrator. */
  function detailLine(err) {
    if (!(err instanceof ApiError)) { return String(err); }
    return err.detail ? "（ハブの応答 " + err.status + ": " + err.detail + "）" : "（ハブの応答 " + err.status + "）";
  }

  function whoami() {
    return api("/v1/hq/whoami").then(function (r) { return r.json(); });
  }

  /** Fill the header's #who-muni, #who-name, #who-role and show #who. */
  function showWho(me) {
    $("who-muni").textContent = (me.municipality_name || "") + "（" + me.municipality_code + "）";
    $("who-name").textContent = me.name;
    $("who-role").textContent = ROLE_JA[me.role] || me.role;
    $("who-role").className = "role role-" + me.role;
    $("who").hidden = false;
  }

  function hideWho() {
    $("who").hidden = true;
    ["who-muni", "who-name", "who-role"].forEach(function (id) { $(id).textContent = ""; });
  }

  /** The token form (#token-form, #token): keep what was pasted, clear the field, then onToken();
   *  a problem goes to onProblem(message in Japanese). */
  function bindLogin(onToken, onProblem) {
    $("token-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var t = $("token").value.trim();
      $("token").value = "";
      if (!t) { onProblem("トークンを貼り付けてください。"); return; }
      if (!keep(t)) { onProblem("このブラウザーではトークンを保存できません。"); return; }
      onToken();
    });
  }

  /** The file name a download answer gives (Content-Disposition), else ``fallback``. */
  function filenameOf(r, fallback) {
    var cd = r.headers.get("Content-Disposition") || "";
    var m = cd.match(/filename\*=UTF-8''([^;]+)/i) || cd.match(/filename="?([^";]+)"?/i);
    return m ? decodeURIComponent(m[1]) : fallback;
  }

  /** Hand an object URL to the browser as a saved file (files come with the token in a header,
   *  so a plain link could not fetch them). */
  function saveUrl(url, name) {
    var a = document.createElement("a");
    a.href = url; a.download = name; a.hidden = true;
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  /** The page's message box (#hub-error / #hub-done): one message at a time. */
  function showError(text, detail) {
    $("hub-error-text").textContent = text;
    $("hub-error-detail").textContent = detail || "";
    $("hub-error").hidden = false;
    $("hub-done").hidden = true;
  }

  function showDone(text) {
    $("hub-done-text").textContent = text;
    $("hub-done").hidden = false;
    $("hub-error").hidden = true;
  }

  function clearMessages() { $("hub-error").hidden = true; $("hub-done").hidden = true; }

  global.AnpiHub = {
    KEY: KEY, ROLE_JA: ROLE_JA, ApiError: ApiError, token: token, keep: keep, forget: forget, api: api,
    commonMessage: commonMessage, detailLine: detailLine, whoami: whoami, showWho: showWho, hideWho: hideWho,
    bindLogin: bindLogin, showError: showError, showDone: showDone, clearMessages: clearMessages,
    filenameOf: filenameOf, saveUrl: saveUrl,
  };
}(window));
