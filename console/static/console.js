/* intelshare console: live lists over Server-Sent Events, and the issue form's stale preview.
 *
 * Every element with data-live-url opens an EventSource on it. The server sends HTML it
 * rendered and escaped; elements are matched by id:
 *   upsert      replace the element with the same id, if the page shows it;
 *   upsert-new  the same, or insert it at the top of the live element (a new row, a new event);
 *   signed-out  the session ended: go to the sign-in page;
 *   reload      the stream cannot resume from here: reload the page.
 * The browser itself reconnects after a drop and sends Last-Event-ID, the node's cursor of the
 * last event this page has; the server resumes right after it.
 */
(function () {
  "use strict";

  function parse(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return Array.prototype.slice.call(t.content.children);
  }

  function toggle(id, hidden) {
    var el = id && document.getElementById(id);
    if (el) { el.hidden = hidden; }
  }

  function apply(container, html, mayInsert) {
    parse(html).forEach(function (node) {
      var existing = node.id ? document.getElementById(node.id) : null;
      if (existing) {
        existing.replaceWith(node);
      } else if (mayInsert && container.dataset.liveInsert === "top") {
        container.prepend(node);
        toggle(container.dataset.liveReveal, false);
        toggle(container.dataset.liveHide, true);
        var max = parseInt(container.dataset.liveMax || "0", 10);
        while (max && container.children.length > max) { container.lastElementChild.remove(); }
      } else {
        return;
      }
      node.classList.add("arrived");
      if (window.htmx) { window.htmx.process(node); }
    });
  }

  function connect(el) {
    var status = document.getElementById("live-status");
    var say = function (text, cls) {
      if (status) { status.textContent = text; status.className = "live " + cls; }
    };
    var source = new EventSource(el.dataset.liveUrl);
    el.liveSource = source;
    source.addEventListener("open", function () { say("live", "on"); });
    source.addEventListener("error", function () { say("reconnecting…", "off"); });
    source.addEventListener("upsert", function (e) { apply(el, e.data, false); });
    source.addEventListener("upsert-new", function (e) { apply(el, e.data, true); });
    source.addEventListener("signed-out", function () {
      source.close();
      window.location.assign("/sign-in?expired=1");
    });
    source.addEventListener("reload", function () {
      source.close();
      window.location.reload();
    });
  }

  function watchIssueForm() {
    var form = document.getElementById("issue-form");
    if (!form) { return; }
    form.addEventListener("input", function (e) {
      var send = document.getElementById("send-button");
      if (!send || (e.target && e.target.closest && e.target.closest("#preview"))) { return; }
      send.disabled = true;
      toggle("stale-note", false);
      var preview = document.getElementById("preview");
      if (preview) { preview.classList.add("stale"); }
    });
    var title = document.getElementById("preview-title");
    if (title) { title.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-url]"), connect);
    watchIssueForm();
  });
  window.addEventListener("pagehide", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-url]"), function (el) {
      if (el.liveSource) { el.liveSource.close(); }
    });
  });
})();
