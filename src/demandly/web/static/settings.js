// Agency settings: keep each colour picker and its hex text field in step.
(function () {
  "use strict";
  var HEX = /^#[0-9a-fA-F]{6}$/;
  function wire() {
    document.querySelectorAll("input[type=color][data-color-text]").forEach(function (picker) {
      var text = document.getElementById(picker.getAttribute("data-color-text"));
      if (!text) return;
      picker.addEventListener("input", function () { text.value = picker.value; });
      text.addEventListener("input", function () {
        if (HEX.test(text.value.trim())) picker.value = text.value.trim().toLowerCase();
      });
    });
  }
  if (document.readyState !== "loading") wire(); else document.addEventListener("DOMContentLoaded", wire);
})();
