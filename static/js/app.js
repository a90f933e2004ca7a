// Small behaviours the pages ask for with data- attributes, so that no page needs inline script
// (the Content-Security-Policy forbids it).
//   <form data-confirm="Delete?">   asks before submitting (plain and htmx forms alike)
//   <input data-select-on-focus>    selects its text when focused (a new API token)
//   #timezone-proposal              offers the browser's time zone (base.html)
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
}, true);
document.addEventListener("focusin", (event) => {
  if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
});
// The time zone proposal after signing in (base.html): offer the browser's own zone.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("timezone-proposal");
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!form || !zone) return;
  form.querySelector("[data-browser-timezone]").value = zone;
  const text = form.querySelector("[data-browser-timezone-text]");
  text.querySelector("strong").textContent = zone;
  text.hidden = false;
  form.querySelector("[data-browser-timezone-use]").hidden = false;
});
