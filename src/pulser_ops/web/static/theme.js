/* Before the first paint: the saved theme, so a dark board never flashes white. A file, not an
 * inline script: the Content-Security-Policy allows the app's own scripts only.
 *
 * The toggle lives here too, listening on the document, because this script runs in <head> while
 * app.js is deferred: a click on the button before app.js has run must not be lost. */
(function () {
  "use strict";
  var root = document.documentElement;
  var t = null;
  try { t = localStorage.getItem("pulser-ops-theme"); } catch (e) {}
  if (t === "light" || t === "dark") root.setAttribute("data-theme", t);

  function toggle() {
    var cur = root.getAttribute("data-theme");
    if (!cur) cur = window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
    var next = cur === "dark" ? "light" : "dark";
    root.setAttribute("data-theme", next);
    try { localStorage.setItem("pulser-ops-theme", next); } catch (e) {}
  }
  window.pulserOpsToggleTheme = toggle;  /* the "t" shortcut in app.js */
  document.addEventListener("click", function (e) {
    if (e.target.closest && e.target.closest("#theme-toggle")) toggle();
  });
})();
