// カード読取: the camera path. Only where the browser offers getUserMedia (a LAN tablet or phone on
// https, or localhost); it decodes frames with the vendored jsQR and fills the same scan field the
// USB scanner types into, then submits it. Without a camera nothing changes: the field works alone.
(function () {
  "use strict";
  var button = document.getElementById("scan-camera");
  var form = document.getElementById("scan-form");
  var input = document.getElementById("scan-input");
  if (!button || !form || !input) return;
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia) || typeof window.jsQR !== "function") return;
  button.hidden = false;
  var box = document.getElementById("scan-video-box");
  var video = document.getElementById("scan-video");
  var canvas = document.getElementById("scan-canvas");
  var note = document.getElementById("scan-camera-note");
  var stream = null;

  function stop() {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = null;
    box.hidden = true;
  }

  function tick() {
    if (!stream) return;
    if (video.readyState === video.HAVE_ENOUGH_DATA) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      var ctx = canvas.getContext("2d");
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      var img = ctx.getImageData(0, 0, canvas.width, canvas.height);
      var code = window.jsQR(img.data, img.width, img.height, { inversionAttempts: "dontInvert" });
      if (code && code.data) {
        input.value = code.data;
        stop();
        form.submit();
        return;
      }
    }
    window.requestAnimationFrame(tick);
  }

  button.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false }).then(function (s) {
      stream = s;
      box.hidden = false;
      video.srcObject = s;
      video.play();
      window.requestAnimationFrame(tick);
    }).catch(function () {
      box.hidden = false;
      note.textContent = "カメラを使えません。読取機を使うか、カメラの使用を許可してください";
    });
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") stop(); });
})();
