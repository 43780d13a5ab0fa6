/* 証明書 forms: hide the damage grades while 被災証明書 is chosen (the server checks it anyway). */
(function () {
  "use strict";
  document.querySelectorAll("form.cert-form").forEach(function (form) {
    var sync = function () {
      var hisai = form.querySelector('input[name="kind"][value="hisai"]');
      form.classList.toggle("hisai", !!(hisai && hisai.checked));
    };
    form.addEventListener("change", sync);
    sync();
  });
})();
