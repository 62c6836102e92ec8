/* The Chat tab's message box: completion of commands, template names, params and runs as you
 * type (the server computes the suggestions: web/commands.py), history with ↑/↓ on an empty
 * box, and a cleared box after a command was sent. No inline script (CSP). */
(function () {
  "use strict";
  var form = document.getElementById("chat-form");
  if (!form) return;
  var input = document.getElementById("chat-text");
  var list = document.getElementById("chat-suggest");
  var stream = document.getElementById("stream");
  var items = [], active = -1, timer = null, seq = 0;
  var history = [], back = -1;

  function scrollDown() { if (stream) stream.scrollTop = stream.scrollHeight; }
  scrollDown();

  function render() {
    list.innerHTML = "";
    items.forEach(function (s, i) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      li.id = "chat-suggest-" + i;
      if (i === active) { li.setAttribute("aria-selected", "true"); }
      var label = document.createElement("span");
      label.className = "mono";
      label.textContent = s.label;
      li.appendChild(label);
      if (s.detail) {
        var d = document.createElement("span");
        d.className = "muted";
        d.textContent = " " + s.detail;
        li.appendChild(d);
      }
      li.addEventListener("mousedown", function (e) { e.preventDefault(); pick(i); });
      list.appendChild(li);
    });
    list.hidden = items.length === 0;
    input.setAttribute("aria-expanded", items.length ? "true" : "false");
    if (active >= 0) input.setAttribute("aria-activedescendant", "chat-suggest-" + active);
    else input.removeAttribute("aria-activedescendant");
  }
  function fetchSuggestions() {
    var mine = ++seq;
    fetch(form.dataset.complete + "?text=" + encodeURIComponent(input.value), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (found) {
        if (mine !== seq) return;
        items = found || [];
        active = items.length ? 0 : -1;
        render();
      })
      .catch(function () {});
  }
  function pick(i) {
    var s = items[i];
    if (!s) return;
    input.value = s.text;
    input.focus();
    items = []; active = -1; render();
    fetchSuggestions();
  }
  input.addEventListener("input", function () {
    back = -1;
    clearTimeout(timer);
    timer = setTimeout(fetchSuggestions, 120);
  });
  input.addEventListener("focus", fetchSuggestions);
  input.addEventListener("blur", function () { setTimeout(function () { items = []; render(); }, 150); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Tab" && items.length) { e.preventDefault(); pick(active < 0 ? 0 : active); return; }
    if (e.key === "ArrowDown" && items.length) { e.preventDefault(); active = (active + 1) % items.length; render(); return; }
    if (e.key === "ArrowUp" && items.length) { e.preventDefault(); active = (active - 1 + items.length) % items.length; render(); return; }
    if (e.key === "Escape") { items = []; render(); return; }
    if ((e.key === "ArrowUp" || e.key === "ArrowDown") && history.length && (input.value === "" || back >= 0)) {
      e.preventDefault();
      back = e.key === "ArrowUp" ? Math.min(back + 1, history.length - 1) : back - 1;
      input.value = back >= 0 ? history[history.length - 1 - back] : "";
    }
  });
  form.addEventListener("htmx:beforeRequest", function () {
    if (input.value.trim()) history.push(input.value.trim());
    items = []; render();
  });
  form.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.successful) { input.value = ""; back = -1; }
    input.focus();
    setTimeout(scrollDown, 50);
  });
  document.body.addEventListener("htmx:afterSettle", function (e) {
    if (e.detail.target === stream) scrollDown();
  });
})();
