// The agent builder: a live widget preview (CSS custom properties set through the CSSOM, which
// the strict CSP allows), colour pickers beside the hex fields, and focus after a chat turn.
(function () {
  "use strict";
  var HEX = /^#[0-9a-f]{6}$/i;

  function onReady(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  // Black or white text on a colour, by WCAG relative luminance (as the server decides).
  function onColour(hex) {
    var channels = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.substr(i, 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
    return luminance > 0.4 ? "#111111" : "#ffffff";
  }

  function colour(preview, input) {
    var which = input.getAttribute("data-preview-color");
    var value = input.value.trim();
    if (HEX.test(value)) {
      preview.style.setProperty("--preview-" + which, value);
      preview.style.setProperty("--preview-on-" + which, onColour(value));
    } else {
      preview.style.removeProperty("--preview-" + which);
      preview.style.removeProperty("--preview-on-" + which);
    }
  }

  function wirePreview() {
    var preview = document.getElementById("widget-preview");
    if (!preview) return;
    document.querySelectorAll("[data-preview-color]").forEach(function (input) {
      input.addEventListener("input", function () { colour(preview, input); });
      colour(preview, input);
    });
    var position = document.querySelector("[data-preview-position]");
    if (position) {
      position.addEventListener("change", function () {
        preview.classList.toggle("left", position.value === "bottom-left");
      });
    }
    var notice = document.querySelector("[data-preview-notice]");
    var shown = document.getElementById("preview-notice");
    if (notice && shown) {
      var standard = shown.textContent;
      notice.addEventListener("input", function () {
        shown.textContent = notice.value.trim() || standard;
      });
    }
  }

  function wirePickers() {
    document.querySelectorAll("input[type=color][data-pick-for]").forEach(function (picker) {
      var field = document.getElementById(picker.getAttribute("data-pick-for"));
      if (!field) return;
      picker.hidden = false;
      picker.addEventListener("input", function () {
        field.value = picker.value;
        field.dispatchEvent(new Event("input", { bubbles: true }));
      });
      field.addEventListener("input", function () {
        if (/^#[0-9a-f]{6}$/i.test(field.value.trim())) picker.value = field.value.trim();
      });
    });
  }

  onReady(function () {
    wirePreview();
    wirePickers();
  });
  // After a test-chat or simulator turn (the panel was swapped), keep typing where one was.
  document.addEventListener("htmx:afterSettle", function () {
    var field = document.querySelector("#test-chat #test-text, #phone-sim #sim-text");
    var idle = !document.activeElement || document.activeElement === document.body;
    if (field && idle) field.focus();
  });
})();
