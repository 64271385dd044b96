// Knowledge screen: more Q&A rows without a round trip, and a too-large file caught before
// it is sent. Without this script the form has three pairs and the server checks the size.
(function () {
  "use strict";
  function wire(root) {
    root.querySelectorAll("[data-add-pair]").forEach(function (button) {
      if (button.dataset.wired) return;
      button.dataset.wired = "1";
      button.hidden = false;
      button.addEventListener("click", function () {
        var form = button.form;
        var rows = form.querySelectorAll(".qa-pair");
        var last = rows[rows.length - 1];
        var row = last.cloneNode(true);
        row.querySelectorAll("input, textarea").forEach(function (el) { el.value = ""; });
        var legend = row.querySelector("legend");
        if (legend) legend.textContent = legend.textContent.replace(/\d+/, String(rows.length + 1));
        last.parentNode.appendChild(row);
        var first = row.querySelector("input");
        if (first) first.focus();
      });
    });
    root.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
      if (input.dataset.wired) return;
      input.dataset.wired = "1";
      var limit = parseInt(input.getAttribute("data-max-bytes"), 10);
      input.addEventListener("change", function () {
        var file = input.files && input.files[0];
        input.setCustomValidity(file && file.size > limit ? input.getAttribute("data-too-large") : "");
        input.reportValidity();
      });
      input.form.addEventListener("submit", function (event) {
        if (!input.checkValidity()) { event.preventDefault(); input.reportValidity(); }
      });
    });
  }
  if (document.readyState !== "loading") wire(document);
  else document.addEventListener("DOMContentLoaded", function () { wire(document); });
})();
