// Progressive enhancement only: the pages work without it. Stops a second click on a form's
// button while the first submission is on its way (the server books once either way).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  for (const button of form.querySelectorAll("button[type=submit]")) {
    button.setAttribute("aria-busy", "true");
    // Disabled after this tick, so the submitting button's own value still travels.
    setTimeout(() => { button.disabled = true; }, 0);
  }
});
