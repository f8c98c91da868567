// Bitesize dashboard: small progressive enhancements. Every page works without this file:
// search, paging, zoom by a bar, export and every form are plain links and form posts.
(function () {
  "use strict";

  // "/" focuses the query box (unless already typing somewhere).
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || (target && target.isContentEditable)) return;
    var box = document.getElementById("q");
    if (!box) return;
    event.preventDefault();
    box.focus();
    box.select();
  });

  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  // Histogram: drag across bars to zoom to their span (a click on one bar is its plain link).
  function histogramZoom() {
    var svg = document.querySelector(".chart svg");
    if (!svg) return;
    var bars = Array.prototype.slice.call(svg.querySelectorAll("a.bar"));
    if (bars.length < 2) return;
    var chart = svg.parentNode;
    var brush = null, startX = null, dragged = false;
    function index(clientX) {
      var box = svg.getBoundingClientRect();
      var i = Math.floor(((clientX - box.left) / box.width) * bars.length);
      return Math.max(0, Math.min(bars.length - 1, i));
    }
    svg.addEventListener("mousedown", function (event) {
      if (event.button !== 0) return;
      startX = event.clientX;
      dragged = false;
      event.preventDefault();
    });
    window.addEventListener("mousemove", function (event) {
      if (startX === null) return;
      if (Math.abs(event.clientX - startX) < 4) return;
      dragged = true;
      svg.classList.add("dragging");
      if (!brush) {
        brush = document.createElement("div");
        brush.className = "brush";
        chart.appendChild(brush);
      }
      var box = svg.getBoundingClientRect();
      var left = Math.max(box.left, Math.min(startX, event.clientX));
      var right = Math.min(box.right, Math.max(startX, event.clientX));
      brush.style.left = (left - box.left) + "px";
      brush.style.width = (right - left) + "px";
    });
    window.addEventListener("mouseup", function (event) {
      if (startX === null) return;
      var from = index(Math.min(startX, event.clientX));
      var to = index(Math.max(startX, event.clientX));
      var wasDrag = dragged;
      startX = null;
      svg.classList.remove("dragging");
      if (!wasDrag) return; // a click: the bar's own link
      var url = new URL(window.location.href);
      url.searchParams.set("from", bars[from].getAttribute("data-start"));
      url.searchParams.set("to", bars[to].getAttribute("data-end"));
      url.searchParams.delete("cursor");
      window.location.assign(url.toString());
    });
    // The click that ends a drag must not follow the bar under the pointer.
    svg.addEventListener("click", function (event) {
      if (dragged) {
        event.preventDefault();
        dragged = false;
      }
    }, true);
  }

  // Live tail: new matching lines stream in at the top; scrolling down pauses them.
  function liveTail() {
    var results = document.querySelector("section.results[data-tail]");
    var body = results && results.querySelector("table.hits tbody");
    var toolbar = results && results.querySelector(".toolbar");
    if (!body || !toolbar || !window.EventSource) return;
    var reason = document.getElementById("reason");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "tail";
    button.id = "tail-toggle";
    button.setAttribute("aria-pressed", "false");
    button.textContent = "● Live tail";
    var status = document.createElement("span");
    status.className = "tail-status";
    status.id = "tail-status";
    status.setAttribute("role", "status");
    var wrap = document.createElement("span");
    wrap.appendChild(button);
    wrap.appendChild(document.createTextNode(" "));
    wrap.appendChild(status);
    toolbar.insertBefore(wrap, toolbar.children[1] || null);

    var source = null, held = [], received = 0;
    function paused() { return window.scrollY > 40; }
    function cell(text, cls) {
      var td = document.createElement("td");
      if (cls) td.className = cls;
      td.textContent = text || "";
      return td;
    }
    function row(record) {
      var k8s = record.kubernetes || {};
      var tr = document.createElement("tr");
      tr.className = "hit live";
      var time = String(record.time || "");
      tr.appendChild(cell(time.replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace("Z", ""), "time"));
      tr.appendChild(cell(k8s.namespace_name));
      tr.appendChild(cell(k8s.pod_name));
      tr.appendChild(cell(k8s.container_name));
      tr.appendChild(cell(record.stream, record.stream === "stderr" ? "stream stderr" : "stream"));
      var message = cell("", "message");
      var details = document.createElement("details");
      var summary = document.createElement("summary");
      summary.textContent = record.log || "";
      var pre = document.createElement("pre");
      pre.className = "record";
      pre.textContent = JSON.stringify(record, null, 2);
      details.appendChild(summary);
      details.appendChild(pre);
      message.appendChild(details);
      tr.appendChild(message);
      return tr;
    }
    function show(records) {
      for (var i = 0; i < records.length; i++) body.insertBefore(row(records[i]), body.firstChild);
      // Keep the page bounded: at most 1000 rows.
      while (body.children.length > 1000) body.removeChild(body.lastChild);
    }
    function describe() {
      if (!source) { status.textContent = ""; return; }
      status.textContent = held.length
        ? "Paused while scrolled: " + held.length + " new lines waiting (scroll to the top)"
        : "Live: " + received + (received === 1 ? " new line" : " new lines");
    }
    function stop() {
      if (source) source.close();
      source = null;
      button.setAttribute("aria-pressed", "false");
      show(held);
      held = [];
      describe();
    }
    function start() {
      var url = results.getAttribute("data-tail");
      if (reason && reason.value && url.indexOf("reason=") < 0) {
        url += (url.indexOf("?") < 0 ? "?" : "&") + "reason=" + encodeURIComponent(reason.value);
      }
      source = new EventSource(url);
      button.setAttribute("aria-pressed", "true");
      received = 0;
      source.addEventListener("record", function (event) {
        var record;
        try { record = JSON.parse(event.data); } catch (e) { return; }
        received++;
        if (paused()) held.push(record); else show([record]);
        describe();
      });
      source.addEventListener("dropped", function () {
        status.textContent = "Tail stopped: this page fell behind. Turn it on again to resume.";
        source.close(); source = null; button.setAttribute("aria-pressed", "false");
      });
      source.onerror = function () {
        if (source && source.readyState === EventSource.CLOSED) {
          status.textContent = "Tail stopped: the server refused it (check the query or reason).";
          source = null; button.setAttribute("aria-pressed", "false");
        }
      };
      describe();
    }
    button.addEventListener("click", function () { if (source) stop(); else start(); });
    window.addEventListener("scroll", function () {
      if (!paused() && held.length) { show(held); held = []; describe(); }
    }, { passive: true });
  }

  ready(function () {
    histogramZoom();
    liveTail();
  });
})();
