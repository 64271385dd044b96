// The live inbox: rows and messages arrive over server-sent events (htmx sse extension);
// this keeps one row per conversation (the newest on top) and one bubble per message.
(function () {
  "use strict";
  function dedupe(container, attribute) {
    var seen = {};
    container.querySelectorAll("[" + attribute + "]").forEach(function (el) {
      var key = el.getAttribute(attribute);
      if (seen[key]) el.remove(); else seen[key] = true;
    });
  }
  document.addEventListener("htmx:sseMessage", function (event) {
    var target = event.target;
    if (!target || !target.id) return;
    if (target.id === "inbox-rows") {
      dedupe(target, "data-conversation");
      var empty = target.querySelector(".inbox-empty");
      if (empty && target.querySelector("[data-conversation]")) empty.remove();
    } else if (target.id === "transcript") {
      dedupe(target, "data-seq");
    }
  });
})();
