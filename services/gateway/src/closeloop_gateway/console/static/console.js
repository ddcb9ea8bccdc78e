// Closeloop console: progressive enhancement only. Every page works without this file;
// with it the inbox refreshes itself, SLA clocks count down and keys do the common things.
(function () {
  "use strict";

  function formatLeft(seconds) {
    if (seconds < 90) return Math.max(0, Math.round(seconds)) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  // SLA countdowns: red once a quarter of the clock's window is left (as the server
  // decides too), "breached" text when it runs out.
  function tickSla() {
    var now = Date.now();
    document.querySelectorAll(".sla[data-due]").forEach(function (el) {
      var due = Date.parse(el.dataset.due);
      var start = el.dataset.start ? Date.parse(el.dataset.start) : NaN;
      var left = (due - now) / 1000;
      var counter = el.querySelector(".countdown");
      if (counter) counter.textContent = formatLeft(left);
      var state = "ok";
      if (left <= 0) state = "breached";
      else if (!isNaN(start) && left <= ((due - start) / 1000) * 0.25) state = "at_risk";
      if (state !== el.dataset.state) {
        el.classList.remove("sla-" + el.dataset.state);
        el.classList.add("sla-" + state);
        el.dataset.state = state;
      }
    });
  }

  // The inbox asks for its rows again every few seconds and marks the new ones.
  function liveInbox() {
    var table = document.getElementById("alerts");
    if (!table || !table.dataset.refresh) return;
    var body = table.tBodies[0];
    var live = document.getElementById("live-status");
    var known = new Set(Array.from(body.rows).map(function (row) { return row.dataset.alertId; }));
    var interval = parseInt(table.dataset.interval || "5000", 10);
    function refresh() {
      if (document.hidden) return;
      fetch(table.dataset.refresh, { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.redirected || !response.ok) throw new Error("refresh " + response.status);
          return response.text();
        })
        .then(function (html) {
          var selected = body.querySelector("tr.selected");
          var selectedId = selected ? selected.dataset.alertId : null;
          body.innerHTML = html;
          var fresh = 0;
          Array.from(body.rows).forEach(function (row) {
            var id = row.dataset.alertId;
            if (id && !known.has(id)) { row.classList.add("fresh"); fresh += 1; known.add(id); }
            if (id && id === selectedId) row.classList.add("selected");
          });
          if (fresh && live) live.textContent = fresh + " " + table.dataset.newLabel;
          tickSla();
        })
        .catch(function () { /* the next round tries again */ });
    }
    window.setInterval(refresh, interval);
  }

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function inboxKeys(event) {
    var table = document.getElementById("alerts");
    if (!table) return false;
    var rows = Array.from(table.tBodies[0].rows).filter(function (row) { return row.dataset.alertId; });
    var current = rows.findIndex(function (row) { return row.classList.contains("selected"); });
    if (event.key === "j" || event.key === "k") {
      var next = current + (event.key === "j" ? 1 : -1);
      next = Math.max(0, Math.min(rows.length - 1, next));
      if (rows[current]) rows[current].classList.remove("selected");
      if (rows[next]) {
        rows[next].classList.add("selected");
        var link = rows[next].querySelector("a.open");
        if (link) link.focus();
      }
      return true;
    }
    if (event.key === "Enter" && rows[current]) {
      var open = rows[current].querySelector("a.open");
      if (open) { window.location.href = open.href; return true; }
    }
    if (event.key === "/") {
      var filter = document.getElementById("f-status");
      if (filter) { filter.focus(); return true; }
    }
    return false;
  }

  // On the alert page a shortcut key activates (buttons, links) or focuses (fields)
  // the element that declares it with data-shortcut.
  function declaredShortcut(event) {
    var el = document.querySelector('[data-shortcut="' + event.key + '"]');
    if (!el) return false;
    if (el.tagName === "BUTTON" || el.tagName === "A") el.click();
    else { el.scrollIntoView({ block: "center" }); el.focus(); }
    return true;
  }

  function help() {
    var hints = document.querySelectorAll(".hint");
    hints.forEach(function (hint) { hint.scrollIntoView({ block: "center" }); });
    var first = document.getElementById("shortcuts-hint") || hints[0];
    if (first) first.classList.add("notice");
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var handled = false;
    if (event.key === "?") { help(); handled = true; }
    else handled = inboxKeys(event) || declaredShortcut(event);
    if (handled) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () {
    tickSla();
    window.setInterval(tickSla, 1000);
    liveInbox();
  });
})();
