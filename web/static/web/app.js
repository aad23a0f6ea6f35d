// The few things the pages do in the browser: remember the reader's time zone, count down the
// follow-up window of waiting alerts, keep the alerts inbox selection usable while it refreshes,
// print the report, filter the system picker, keep number fields from the scroll wheel and copy
// the integration's webhook address and configuration. No inline script or handler anywhere: the
// Content-Security-Policy forbids them.
(function () {
  "use strict";

  // The server shows times in the zone this cookie names (web/middleware.py).
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + encodeURIComponent(zone)) === -1) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) { /* an old browser: the organisation's zone is shown, and named */ }

  function clock(seconds) {
    seconds = Math.abs(seconds);
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  // Each countdown knows the seconds left when the server rendered it; counting from when the
  // browser first saw it keeps it right whatever the two clocks say.
  function startCountdowns(root) {
    var now = Date.now();
    root.querySelectorAll("[data-remaining]").forEach(function (el) {
      if (!el.dataset.deadline) {
        el.dataset.deadline = String(now + Number(el.dataset.remaining) * 1000);
      }
    });
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Math.floor((Number(el.dataset.deadline) - now) / 1000);
      var late = left < 0;
      el.textContent = (late ? el.dataset.late : el.dataset.left).replace("%(time)s", clock(left));
      el.classList.toggle("late", late);
      el.classList.toggle("urgent", !late && left <= 60);
    });
  }

  function selectedAlerts() {
    return document.querySelectorAll("#alerts-live input[name=ids]:checked");
  }

  function updateSelection() {
    var label = document.querySelector(".selected-count");
    if (!label) { return; }
    var n = selectedAlerts().length;
    label.textContent = n ? label.dataset.some.replace("%(count)s", n) : label.dataset.none;
  }

  // The inbox refreshes itself every 10 s, except while someone is choosing alerts or typing a
  // comment: a refresh then would throw their selection away. (Cancelled here rather than by an
  // hx-trigger filter: filters need eval, which the Content-Security-Policy forbids.)
  function liveRefreshAllowed() {
    var active = document.activeElement;
    var typing = active && active.closest && active.closest(".bulk-bar") && active.tagName === "INPUT";
    // choosing a silence's minutes in a group
    var choosing = active && active.closest && active.closest("#alerts-live") && active.tagName === "SELECT";
    return selectedAlerts().length === 0 && !typing && !choosing;
  }

  // A refresh keeps unfolded the groups of alerts a person unfolded (by rule and system).
  var unfoldedGroups = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "alerts-live") { return; }
    unfoldedGroups = Array.prototype.map.call(
      document.querySelectorAll("#alerts-live .alert-group > details[open]"),
      function (details) { return details.parentNode.dataset.key; }
    );
  });
  document.addEventListener("htmx:afterSettle", function () {
    document.querySelectorAll("#alerts-live .alert-group").forEach(function (group) {
      if (unfoldedGroups.indexOf(group.dataset.key) !== -1) { group.querySelector(":scope > details").open = true; }
    });
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.id === "alerts-live" && event.detail.requestConfig.verb === "get" && !liveRefreshAllowed()) {
      event.preventDefault();
    }
  });

  // Copy buttons (the integration's address, token and configuration): the clipboard API where the
  // page is a secure context, else the selection and execCommand (a plain-HTTP install).
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) { return navigator.clipboard.writeText(text); }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var done = document.execCommand("copy");
    document.body.removeChild(area);
    return done ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.querySelector(button.dataset.copy);
    if (!source) { return; }
    copyText(source.textContent.trim()).then(function () {
      var status = document.querySelector(".copy-status");
      if (status) { status.textContent = button.dataset.copied; }
      button.classList.add("copied");
    }, function () {
      // Refused (no permission): leave the text selected for a manual copy.
      var range = document.createRange();
      range.selectNodeContents(source);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
    });
  });

  // Buttons that print the page (the report), without an inline handler.
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-print]")) { window.print(); }
  });

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.classList && target.classList.contains("select-all")) {
      document.querySelectorAll("#alerts-live input[name=ids]").forEach(function (box) {
        box.checked = target.checked;
      });
    }
    updateSelection();
  });

  // A number field keeps its value under the scroll wheel: the wheel scrolls the page instead of
  // turning a focused 15000 into 14999 (the field is left, as if clicked away).
  document.addEventListener("wheel", function (event) {
    var target = event.target;
    if (target && target.type === "number" && target === document.activeElement) { target.blur(); }
  }, { passive: true });

  // The system picker (web/forms.py SystemPicker): a text filter over the systems grouped by team.
  // Chosen systems stay shown; a team whose systems are all filtered out is hidden.
  function filterSystems(input) {
    var picker = input.closest(".system-picker");
    var words = input.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var matched = 0;
    picker.querySelectorAll(".picker-group").forEach(function (group) {
      var inGroup = 0;
      group.querySelectorAll(".picker-option").forEach(function (option) {
        var text = option.dataset.search || "";
        var match = words.every(function (word) { return text.indexOf(word) !== -1; });
        var shown = match || option.querySelector("input").checked;
        option.hidden = !shown;
        if (shown) { inGroup += 1; }
        if (match) { matched += 1; }
      });
      group.hidden = inGroup === 0;
    });
    picker.querySelector(".picker-none").hidden = matched !== 0;
  }

  function startPickers(root) {
    root.querySelectorAll(".system-picker .picker-search[hidden]").forEach(function (search) {
      search.hidden = false;
    });
  }

  document.addEventListener("input", function (event) {
    if (event.target.classList && event.target.classList.contains("picker-filter")) { filterSystems(event.target); }
  });
  // Enter in the filter filters; it does not send the form.
  document.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && event.target.classList && event.target.classList.contains("picker-filter")) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    startPickers(document);
    startCountdowns(document);
    tick();
    setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    startPickers(document);
    startCountdowns(document);
    tick();
    updateSelection();
    // A comment sent is cleared once the list came back without errors.
    if (event.detail.xhr && event.detail.xhr.status === 200 && event.detail.requestConfig &&
        event.detail.requestConfig.verb === "post") {
      var comment = document.querySelector(".comment-row input[name=text]");
      if (comment) { comment.value = ""; }
    }
  });
})();
