// Bitesize dashboard: progressive enhancements. Every page works without this file: search,
// paging, zoom by a bar, facets, export and every form are plain links and form posts.
// With it:
// - links and forms between the dashboard's pages update the page in place: the server
//   renders the next page as usual, this script fetches it and swaps <main> and the header,
//   and the URL follows (history.pushState; Back and Forward work). "Load more" appends the
//   older lines instead of replacing the newer ones.
// - keyboard shortcuts (press ? on a page for the list), histogram drag-to-zoom, live tail.
(function () {
  "use strict";

  // Pages this script may load in place; anything else (exports, sign-in, sign-out, the API)
  // is left to the browser.
  var PAGES = /^\/(search|access|audit|namespaces|fleet)(\/|$)/;
  var NOT_PAGES = /^\/audit\/export(\/|$)/;

  function isPage(url) {
    return url.origin === window.location.origin && PAGES.test(url.pathname) && !NOT_PAGES.test(url.pathname);
  }

  function typing(target) {
    var tag = target && target.tagName ? target.tagName.toLowerCase() : "";
    return tag === "input" || tag === "textarea" || tag === "select" || (target && target.isContentEditable);
  }

  // A polite live region outside <main>, so screen readers hear what a swap changed.
  var announcer = null;
  function announce(text) {
    if (!announcer) {
      announcer = document.createElement("div");
      announcer.id = "announcer";
      announcer.className = "visually-hidden";
      announcer.setAttribute("aria-live", "polite");
      document.body.appendChild(announcer);
    }
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  // ---- In-place navigation -------------------------------------------------------------

  var pending = null; // the AbortController of the load in flight

  // Loads `url` (GET, or POST with `body`) and shows it in place. `how`: "push" (a new
  // history entry), "replace" (Back/Forward: the entry is already there) or "append" (more
  // result lines). `fallback` runs when the answer cannot be shown in place.
  function load(url, options, how, fallback) {
    if (pending) pending.abort();
    var controller = window.AbortController ? new AbortController() : null;
    pending = controller;
    document.body.classList.add("loading");
    document.body.setAttribute("aria-busy", "true");
    var init = {
      method: options.method || "GET",
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
      signal: controller ? controller.signal : undefined
    };
    if (options.body) {
      init.body = options.body;
      init.headers["Content-Type"] = "application/x-www-form-urlencoded;charset=UTF-8";
    }
    function done() {
      if (pending === controller) pending = null;
      document.body.classList.remove("loading");
      document.body.removeAttribute("aria-busy");
    }
    return fetch(url, init).then(function (response) {
      var type = response.headers.get("content-type") || "";
      var landed = new URL(response.url || url, window.location.href);
      // Not a page (a download), or redirected out of the dashboard (signed out): let the
      // browser do it.
      if (type.indexOf("text/html") < 0 || !isPage(landed)) { done(); fallback(landed); return; }
      return response.text().then(function (html) {
        done();
        var doc = new DOMParser().parseFromString(html, "text/html");
        if (!doc.querySelector("main")) { fallback(landed); return; }
        // A form post answered with a page (an error, a token shown once) keeps the URL: the
        // post's own URL is not a page one can reload.
        var shown = init.method === "GET" || response.redirected ? landed.href : null;
        if (how === "append" && appendResults(doc)) {
          if (shown) window.history.pushState({ bitesize: true }, "", shown);
        } else {
          swap(doc, shown, how, shown || url);
        }
      });
    }).catch(function (error) {
      done();
      if (error && error.name === "AbortError") return;
      fallback(new URL(url, window.location.href));
    });
  }

  // `anchorFrom`: the URL whose #fragment to scroll to (a form's action may have one).
  function swap(doc, shown, how, anchorFrom) {
    var focusedId = document.activeElement && document.activeElement.id;
    stopTail();
    var main = document.querySelector("main");
    var header = document.querySelector("header");
    var newHeader = doc.querySelector("header");
    main.replaceWith(document.adoptNode(doc.querySelector("main")));
    if (header && newHeader) header.replaceWith(document.adoptNode(newHeader));
    document.title = doc.title;
    if (shown && how === "push") window.history.pushState({ bitesize: true }, "", shown);
    enhance();
    // Focus: the control that had it, if the new page has it too (the query box after a
    // search); else the start of the new content.
    var again = focusedId && document.getElementById(focusedId);
    var target = again || document.querySelector("main");
    if (!again) target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
    var hash = new URL(anchorFrom, window.location.href).hash;
    var anchor = hash && document.getElementById(hash.slice(1));
    if (anchor) anchor.scrollIntoView();
    else if (how !== "replace") window.scrollTo(0, 0);
    var alert = document.querySelector("main [role=alert]");
    var status = document.querySelector("main .summary, main .notice");
    announce(alert ? alert.textContent : status ? status.textContent : document.title);
  }

  // "Load more": the older lines go below the ones shown; the paging links are replaced.
  function appendResults(doc) {
    var body = document.querySelector("table.hits tbody");
    var rows = doc.querySelectorAll("table.hits tbody tr.hit");
    if (!body) return false;
    var first = null;
    for (var i = 0; i < rows.length; i++) {
      var row = document.adoptNode(rows[i]);
      body.appendChild(row);
      if (!first) first = row;
    }
    var paging = document.querySelector("nav.paging");
    var newPaging = doc.querySelector("nav.paging");
    var older = newPaging && newPaging.querySelector("a.more");
    if (paging) {
      paging.textContent = "";
      if (older) paging.appendChild(document.adoptNode(older));
      else paging.appendChild(document.createTextNode("No older lines."));
    }
    var summary = document.querySelector(".summary");
    var newSummary = doc.querySelector(".summary");
    var total = newSummary && /^(\d+)/.exec(newSummary.textContent);
    var shown = body.querySelectorAll("tr.hit").length;
    if (summary && total) {
      summary.textContent = total[1] + " matching, showing the newest " + shown;
    }
    var focusable = first && first.querySelector("summary");
    if (focusable) focusable.focus();
    announce(rows.length + " older lines added; " + shown + " shown.");
    return true;
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var link = event.target.closest ? event.target.closest("a[href]") : null;
    if (!link || link.hasAttribute("download") || (link.target && link.target !== "_self")) return;
    if (link.closest("[data-reload]")) return;
    var url = new URL(link.getAttribute("href"), window.location.href);
    if (!isPage(url)) return;
    if (url.pathname === window.location.pathname && url.search === window.location.search && url.hash) return;
    event.preventDefault();
    var how = link.matches("nav.paging a.more") ? "append" : "push";
    load(url.href, {}, how, function (landed) { window.location.assign(landed.href); });
  });

  document.addEventListener("submit", function (event) {
    if (event.defaultPrevented) return;
    var form = event.target;
    var submitter = event.submitter;
    var action = new URL((submitter && submitter.getAttribute("formaction")) || form.getAttribute("action") || window.location.href, window.location.href);
    if (!isPage(action) || form.hasAttribute("data-reload")) return;
    var data = new FormData(form);
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    var params = new URLSearchParams();
    data.forEach(function (value, key) { params.append(key, typeof value === "string" ? value : ""); });
    var method = (form.getAttribute("method") || "get").toUpperCase();
    event.preventDefault();
    if (method === "GET") {
      action.search = params.toString();
      load(action.href, {}, "push", function (landed) { window.location.assign(landed.href); });
    } else {
      load(action.href, { method: "POST", body: params.toString() }, "push", function () {
        // Could not be shown in place: post the form the plain way.
        HTMLFormElement.prototype.submit.call(form);
      });
    }
  });

  window.addEventListener("popstate", function () {
    var url = new URL(window.location.href);
    if (!isPage(url)) return;
    load(url.href, {}, "replace", function (landed) { window.location.assign(landed.href); });
  });

  // ---- Keyboard shortcuts --------------------------------------------------------------

  var SHORTCUTS = [
    ["/", "Jump to the query box"],
    ["j / k", "Next / previous log line"],
    ["Enter", "Expand or collapse the line (its full record)"],
    ["m", "Load more (older) lines"],
    ["t", "Live tail on or off"],
    ["s", "Name and save this search"],
    ["?", "Show or hide this list"],
    ["Esc", "Leave the box you are typing in; close this list"]
  ];

  function toggleHelp() {
    var open = document.getElementById("shortcuts");
    if (open) { open.remove(); return; }
    var panel = document.createElement("div");
    panel.id = "shortcuts";
    panel.className = "shortcuts";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", "Keyboard shortcuts");
    var title = document.createElement("h2");
    title.textContent = "Keyboard shortcuts";
    panel.appendChild(title);
    var list = document.createElement("dl");
    SHORTCUTS.forEach(function (s) {
      var key = document.createElement("dt");
      var kbd = document.createElement("kbd");
      kbd.textContent = s[0];
      key.appendChild(kbd);
      var what = document.createElement("dd");
      what.textContent = s[1];
      list.appendChild(key);
      list.appendChild(what);
    });
    panel.appendChild(list);
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
    close.addEventListener("click", function () { panel.remove(); });
    panel.appendChild(close);
    document.body.appendChild(panel);
    close.focus();
  }

  function moveLine(step) {
    var lines = Array.prototype.slice.call(document.querySelectorAll("table.hits tr.hit summary"));
    if (!lines.length) return;
    var at = lines.indexOf(document.activeElement);
    var next = at < 0 ? (step > 0 ? 0 : lines.length - 1) : Math.max(0, Math.min(lines.length - 1, at + step));
    lines[next].focus();
    lines[next].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") {
      var help = document.getElementById("shortcuts");
      if (help) { help.remove(); return; }
      if (typing(event.target)) event.target.blur();
      return;
    }
    if (typing(event.target)) return;
    var act = {
      "/": function () {
        var box = document.getElementById("q");
        if (!box) return false;
        box.focus();
        box.select();
      },
      "j": function () { moveLine(1); },
      "k": function () { moveLine(-1); },
      "m": function () {
        var more = document.querySelector("nav.paging a.more");
        if (!more) return false;
        more.click();
      },
      "t": function () {
        var toggle = document.getElementById("tail-toggle");
        if (!toggle) return false;
        toggle.click();
      },
      "s": function () {
        var name = document.getElementById("save-name");
        if (!name) return false;
        name.focus();
      },
      "?": function () { toggleHelp(); }
    }[event.key];
    if (!act) return;
    if (act() !== false) event.preventDefault();
  });

  // ---- Histogram: drag across bars to zoom to their span --------------------------------
  // (a click on one bar is its plain link). One set of window listeners; `drag` is the drag
  // in progress on the current page's chart.

  var drag = null;

  function histogramZoom() {
    var svg = document.querySelector(".chart svg");
    if (!svg) return;
    var bars = Array.prototype.slice.call(svg.querySelectorAll("a.bar"));
    if (bars.length < 2) return;
    svg.addEventListener("mousedown", function (event) {
      if (event.button !== 0) return;
      drag = { svg: svg, bars: bars, startX: event.clientX, moved: false, brush: null };
      event.preventDefault();
    });
    // The click that ends a drag must not follow the bar under the pointer.
    svg.addEventListener("click", function (event) {
      if (svg.getAttribute("data-dragged")) {
        event.preventDefault();
        event.stopPropagation();
        svg.removeAttribute("data-dragged");
      }
    }, true);
  }

  function barIndex(d, clientX) {
    var box = d.svg.getBoundingClientRect();
    var i = Math.floor(((clientX - box.left) / box.width) * d.bars.length);
    return Math.max(0, Math.min(d.bars.length - 1, i));
  }

  window.addEventListener("mousemove", function (event) {
    if (!drag || Math.abs(event.clientX - drag.startX) < 4) return;
    drag.moved = true;
    drag.svg.classList.add("dragging");
    if (!drag.brush) {
      drag.brush = document.createElement("div");
      drag.brush.className = "brush";
      drag.svg.parentNode.appendChild(drag.brush);
    }
    var box = drag.svg.getBoundingClientRect();
    var left = Math.max(box.left, Math.min(drag.startX, event.clientX));
    var right = Math.min(box.right, Math.max(drag.startX, event.clientX));
    drag.brush.style.left = (left - box.left) + "px";
    drag.brush.style.width = (right - left) + "px";
  });

  window.addEventListener("mouseup", function (event) {
    if (!drag) return;
    var d = drag;
    drag = null;
    d.svg.classList.remove("dragging");
    if (!d.moved) return; // a click: the bar's own link
    d.svg.setAttribute("data-dragged", "true");
    var from = barIndex(d, Math.min(d.startX, event.clientX));
    var to = barIndex(d, Math.max(d.startX, event.clientX));
    var url = new URL(window.location.href);
    url.searchParams.set("from", d.bars[from].getAttribute("data-start"));
    url.searchParams.set("to", d.bars[to].getAttribute("data-end"));
    url.searchParams.delete("cursor");
    url.searchParams.delete("saved");
    load(url.href, {}, "push", function (landed) { window.location.assign(landed.href); });
  });

  // ---- Live tail: new matching lines stream in at the top; scrolling down pauses them -----

  var tail = null; // the current page's tail: { source, held, received, ... }

  function stopTail() {
    if (tail && tail.source) tail.source.close();
    tail = null;
  }

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
    button.setAttribute("aria-keyshortcuts", "t");
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

    var state = { source: null, held: [], received: 0, body: body, status: status, button: button };
    tail = state;
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
    state.show = function (records) {
      for (var i = 0; i < records.length; i++) body.insertBefore(row(records[i]), body.firstChild);
      // Keep the page bounded: at most 1000 rows.
      while (body.children.length > 1000) body.removeChild(body.lastChild);
    };
    function describe() {
      if (!state.source) { status.textContent = ""; return; }
      status.textContent = state.held.length
        ? "Paused while scrolled: " + state.held.length + " new lines waiting (scroll to the top)"
        : "Live: " + state.received + (state.received === 1 ? " new line" : " new lines");
    }
    state.describe = describe;
    function stop() {
      if (state.source) state.source.close();
      state.source = null;
      button.setAttribute("aria-pressed", "false");
      state.show(state.held);
      state.held = [];
      describe();
    }
    function start() {
      var url = results.getAttribute("data-tail");
      if (reason && reason.value && url.indexOf("reason=") < 0) {
        url += (url.indexOf("?") < 0 ? "?" : "&") + "reason=" + encodeURIComponent(reason.value);
      }
      var source = new EventSource(url);
      state.source = source;
      button.setAttribute("aria-pressed", "true");
      state.received = 0;
      source.addEventListener("record", function (event) {
        var record;
        try { record = JSON.parse(event.data); } catch (e) { return; }
        state.received++;
        if (window.scrollY > 40) state.held.push(record); else state.show([record]);
        describe();
      });
      source.addEventListener("dropped", function () {
        status.textContent = "Tail stopped: this page fell behind. Turn it on again to resume.";
        source.close(); state.source = null; button.setAttribute("aria-pressed", "false");
      });
      source.onerror = function () {
        if (source.readyState === EventSource.CLOSED && state.source === source) {
          status.textContent = "Tail stopped: the server refused it (check the query or reason).";
          state.source = null; button.setAttribute("aria-pressed", "false");
        }
      };
      describe();
    }
    button.addEventListener("click", function () { if (state.source) stop(); else start(); });
  }

  window.addEventListener("scroll", function () {
    if (tail && window.scrollY <= 40 && tail.held.length) {
      tail.show(tail.held);
      tail.held = [];
      tail.describe();
    }
  }, { passive: true });

  // Per-page enhancements, run at load and after every in-place swap.
  function enhance() {
    histogramZoom();
    liveTail();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", enhance);
  else enhance();
})();
