/* Before the first paint: the saved theme, so a dark board never flashes white. A file, not an
 * inline script: the Content-Security-Policy allows the app's own scripts only. */
(function () {
  "use strict";
  var t = null;
  try { t = localStorage.getItem("pulser-ops-theme"); } catch (e) {}
  if (t === "light" || t === "dark") document.documentElement.setAttribute("data-theme", t);
})();
