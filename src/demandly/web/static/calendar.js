// Calendar screen: add and remove ranges of the weekly hours without a round trip. Without
// this script each day shows one empty range to fill and a range is removed by clearing it.
(function () {
  "use strict";
  function clear(row) {
    row.querySelectorAll('input[type="time"]').forEach(function (input) { input.value = ""; });
  }
  function wireRemove(row) {
    var button = row.querySelector("[data-remove-range]");
    if (!button || button.dataset.wired) return;
    button.dataset.wired = "1";
    button.hidden = false;
    button.addEventListener("click", function () {
      clear(row);
      row.hidden = true;
    });
  }
  function wire(root) {
    root.querySelectorAll(".hours-day").forEach(function (day) {
      day.querySelectorAll(".range-row").forEach(wireRemove);
      var add = day.querySelector("[data-add-range]");
      var blank = day.querySelector("[data-blank]");
      if (!add || !blank || add.dataset.wired) return;
      add.dataset.wired = "1";
      add.hidden = false;
      add.addEventListener("click", function () {
        var row = blank.cloneNode(true);
        row.removeAttribute("data-blank");
        clear(row);
        row.hidden = false;
        var button = row.querySelector("[data-remove-range]");
        if (button) delete button.dataset.wired;
        blank.parentNode.appendChild(row);
        wireRemove(row);
        var first = row.querySelector('input[type="time"]');
        if (first) first.focus();
      });
    });
  }
  if (document.readyState !== "loading") wire(document);
  else document.addEventListener("DOMContentLoaded", function () { wire(document); });
})();
