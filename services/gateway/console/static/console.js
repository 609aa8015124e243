// riskdesk console: a few enhancements; every page works without this script.
"use strict";
(function () {
  // SLA deadlines count down live ("in 3h 12m" / "overdue 5m") next to their date.
  function describe(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60);
    var text = (days ? days + "d " : "") + (days || hours ? hours + "h " : "") + (minutes % 60) + "m";
    return ms >= 0 ? "in " + text : "overdue " + text;
  }
  function tick() {
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-countdown"));
      if (isNaN(due)) { return; }
      if (!el.dataset.original) { el.dataset.original = el.textContent; }
      el.textContent = el.dataset.original + " (" + describe(due - Date.now()) + ")";
      el.classList.toggle("late", due < Date.now());
    });
  }
  // Filter selects apply at once.
  function autosubmit() {
    document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }
  // One submit per form: a double click files one request, not two.
  function once() {
    document.querySelectorAll("form[method=post]").forEach(function (form) {
      form.addEventListener("submit", function () {
        setTimeout(function () {
          form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
        }, 0);
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick(); autosubmit(); once();
    setInterval(tick, 30000);
  });
})();
