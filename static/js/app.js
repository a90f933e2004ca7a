// Small behaviours the pages ask for with data- attributes, so that no page needs inline script
// (the Content-Security-Policy forbids it).
//   <form data-confirm="Delete?">   asks before submitting (plain and htmx forms alike)
//   <input data-select-on-focus>    selects its text when focused (a new API token)
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
}, true);
document.addEventListener("focusin", (event) => {
  if (event.target.matches && event.target.matches("[data-select-on-focus]")) event.target.select();
});
