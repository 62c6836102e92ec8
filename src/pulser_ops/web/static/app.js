/* pulser-ops control room: live refresh, polling floor, theme, shortcuts, dialogs.
 * No build step. htmx (vendored) does the fetching and morphing; this file only decides when. */
(function () {
  "use strict";
  var body = document.body;
  var POLL = (parseInt(body.dataset.poll, 10) || 15) * 1000;
  var MIN_GAP = 1000; // at most one refresh a second, and never drop the last signal
  var last = 0, timer = null;

  function refresh() {
    timer = null;
    last = Date.now();
    htmx.trigger(body, "ops-refresh");
  }
  function soon() {
    if (document.hidden || timer) return;
    var wait = Math.max(0, MIN_GAP - (Date.now() - last));
    timer = setTimeout(refresh, wait);
  }
  window.pulserOpsRefresh = refresh;

  /* One EventSource per tab: it only says "something changed"; the regions re-fetch. */
  var live = document.getElementById("live");
  function state(s, text) {
    if (!live) return;
    live.dataset.state = s;
    live.querySelector(".txt").textContent = text;
  }
  if (window.EventSource && body.dataset.events) {
    var es = new EventSource(body.dataset.events);
    es.addEventListener("hello", function (m) {
      /* connected; "live" only if the server has a database listener (else it polls too) */
      var h = {};
      try { h = JSON.parse(m.data); } catch (e) {}
      if (h.listening) state("live", "live"); else state("polling", "polling every " + POLL / 1000 + "s");
    });
    es.addEventListener("change", soon);
    es.addEventListener("error", function () {
      state("polling", "polling every " + POLL / 1000 + "s");
    });
  } else {
    state("polling", "polling");
  }

  /* The polling floor: correct even where SSE or LISTEN is unavailable; paused while hidden. */
  setInterval(function () { if (!document.hidden && Date.now() - last >= POLL - 500) refresh(); }, 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && Date.now() - last > 2000) refresh();
  });

  /* Ages that keep counting between refreshes. */
  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }
  /* Heartbeat dots: their CSS animation runs over the lease, started as old as the last
     heartbeat. Set through the CSSOM (the CSP forbids style attributes); a morph drops the
     properties with the attribute, so they are set again after each swap and each tick. */
  function beats() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".hb[data-lease]").forEach(function (el) {
      if (el.style.getPropertyValue("--lease") === el.dataset.lease + "s") return;
      var beat = parseFloat(el.dataset.beat);
      el.style.setProperty("--lease", el.dataset.lease + "s");
      el.style.setProperty("--age", (isNaN(beat) ? 0 : Math.max(0, now - beat)).toFixed(1) + "s");
    });
  }
  beats();
  body.addEventListener("htmx:afterSettle", beats);
  setInterval(function () {
    var now = Date.now() / 1000;
    document.querySelectorAll("time[data-since]").forEach(function (t) {
      var suffix = t.dataset.suffix === undefined ? " ago" : t.dataset.suffix;
      t.textContent = fmt(now - parseFloat(t.dataset.since)) + suffix;
    });
    /* and times to come, counting down ("in 4m 07s"; "due now" once passed) */
    document.querySelectorAll("time[data-until]").forEach(function (t) {
      var left = parseFloat(t.dataset.until) - now;
      t.textContent = left > 0 ? "in " + fmt(left) : "due now";
    });
    beats();
  }, 1000);

  /* Behaviour the markup asks for by attribute (no inline handlers under the CSP). */
  document.addEventListener("click", function (e) {
    var close = e.target.closest && e.target.closest("[data-close-dialog]");
    if (close) { var d = close.closest("dialog"); if (d) d.close(); }
    var clear = e.target.closest && e.target.closest("[data-clear]");
    if (clear) { var c = document.querySelector(clear.dataset.clear); if (c) c.innerHTML = ""; }
  });
  /* The artifact viewer: JSON expand/collapse, image zoom. */
  var zoom = 1;
  function setZoom(img, z) {
    var label = document.getElementById("zoom-level");
    if (z === "fit") {
      img.classList.add("fit"); img.classList.remove("zoomed"); img.style.removeProperty("width");
      zoom = 1; if (label) label.textContent = "fit"; return;
    }
    zoom = Math.min(16, Math.max(0.1, z));
    img.classList.remove("fit"); img.classList.add("zoomed");
    img.style.setProperty("width", Math.round(img.naturalWidth * zoom) + "px");
    if (label) label.textContent = Math.round(zoom * 100) + "%";
  }
  document.addEventListener("click", function (e) {
    var j = e.target.closest && e.target.closest("[data-json]");
    if (j) {
      document.querySelectorAll(".json-tree details").forEach(function (d) { d.open = j.dataset.json === "expand"; });
      return;
    }
    var img = document.getElementById("artifact-image");
    if (!img) return;
    var z = e.target.closest && e.target.closest("[data-zoom]");
    if (z) {
      var how = z.dataset.zoom;
      setZoom(img, how === "fit" ? "fit" : how === "in" ? zoom * 1.5 : how === "out" ? zoom / 1.5 : parseFloat(how));
    } else if (e.target === img) {
      setZoom(img, img.classList.contains("fit") ? 1 : "fit");
    }
  });
  document.addEventListener("change", function (e) {
    var all = e.target.dataset && e.target.dataset.selectAll;
    if (all) document.querySelectorAll(all).forEach(function (c) { c.checked = e.target.checked; });
  });

  /* Dialogs: a swapped-in confirmation opens as a modal; errors become toasts. */
  var confirmBox = document.getElementById("confirm");
  var help = document.getElementById("help");
  document.getElementById("help-open").addEventListener("click", function () { help.showModal(); });
  body.addEventListener("htmx:afterSwap", function (e) {
    var t = e.detail.target;
    if (t === confirmBox && !confirmBox.open) confirmBox.showModal();
    if (t.id === "drawer") { t.hidden = false; }
  });
  function toast(text, cls) {
    var box = document.getElementById("toasts");
    var d = document.createElement("div");
    d.className = "toast " + (cls || "");
    d.setAttribute("role", "alert");
    d.textContent = text;
    box.appendChild(d);
    setTimeout(function () { d.remove(); }, 8000);
  }
  body.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr, text = "";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
      text = (doc.body && doc.body.textContent || "").trim();
    } catch (err) {}
    var slot = e.detail.target && e.detail.target.id === "rerun-error" ? e.detail.target : null;
    if (slot) { slot.textContent = text || ("error " + xhr.status); slot.className = "error-text"; return; }
    toast(text || ("error " + xhr.status + " " + xhr.statusText), "error");
  });
  body.addEventListener("htmx:sendError", function () { toast("the server cannot be reached", "error"); });

  /* The live log: skip lines this page already has (a reconnect that starts from the page's
     own position repeats nothing), keep the view pinned to the bottom while it is. */
  body.addEventListener("htmx:sseBeforeMessage", function (e) {
    var ev = e.detail;  /* the MessageEvent; lastEventId lingers on later events, so check the type */
    if (ev && ev.type === "log" && ev.lastEventId && document.getElementById("log-" + ev.lastEventId)) e.preventDefault();
  });
  body.addEventListener("htmx:sseMessage", function (e) {
    var log = document.getElementById("log");
    if (log) log.scrollTop = log.scrollHeight;
    /* the stream ended: the header stops saying "live" */
    var tag = document.getElementById("log-state");
    if (tag && e.detail && e.detail.type === "end") { tag.textContent = "ended"; tag.className = "ended-tag"; }
  });

  /* The drawer with a run's details (click a card on the board). */
  var drawer = document.getElementById("drawer");
  body.addEventListener("keydown", function (e) {
    var card = e.target.closest && e.target.closest(".card");
    if (card && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); htmx.trigger(card, "click"); }
  });
  body.addEventListener("ops-refresh", function () {
    var s = drawer && !drawer.hidden && drawer.querySelector(".run-summary h2 a");
    if (s) htmx.ajax("GET", s.getAttribute("href").replace(/\/runs\//, "/partials/runs/"), { target: drawer, swap: "morph:innerHTML" });
  });

  /* Keyboard shortcuts (not while typing). */
  var pending = null;
  document.addEventListener("keydown", function (e) {
    var tag = (e.target.tagName || "").toLowerCase();
    if (e.key === "Escape") {
      if (drawer && !drawer.hidden) { drawer.hidden = true; drawer.innerHTML = ""; }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey || tag === "input" || tag === "textarea" || tag === "select" || e.target.isContentEditable) return;
    if (pending === "g") {
      pending = null;
      var dest = { b: body.dataset.board, r: body.dataset.runs, w: body.dataset.workers,
                   t: body.dataset.templates, s: body.dataset.schedules, c: body.dataset.chat,
                   p: body.dataset.performance }[e.key];
      if (dest) { e.preventDefault(); window.location.href = dest; }
      return;
    }
    if (e.key === "g") { pending = "g"; setTimeout(function () { pending = null; }, 1500); return; }
    if (e.key === "/") { e.preventDefault(); var q = document.getElementById("q") || document.getElementById("global-search"); q.focus(); q.select(); return; }
    if (e.key === "?") { e.preventDefault(); help.showModal(); return; }
    if (e.key === "t") { window.pulserOpsToggleTheme(); return; }
    if (e.key === "r") { refresh(); return; }
  });
})();
