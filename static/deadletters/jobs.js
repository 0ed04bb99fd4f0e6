/* Replay jobs page: while a job is queued or running, refresh its progress every second. */
(function () {
  "use strict";
  var table = document.querySelector("table[data-poll]");
  if (!table) return;
  var url = table.getAttribute("data-poll");
  var active = {};
  table.querySelectorAll("tr[data-job]").forEach(function (row) {
    var status = row.querySelector("[data-field=status]").textContent.trim();
    if (status === "queued" || status === "running") active[row.getAttribute("data-job")] = row;
  });

  function set(row, field, text) {
    var el = row.querySelector("[data-field=" + field + "]");
    if (el) el.textContent = text;
  }

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var still = {};
        (data.results || []).forEach(function (job) { still[job.id] = job; });
        Object.keys(active).forEach(function (id) {
          var row = active[id];
          var job = still[id];
          if (!job) {
            // Finished: the page itself says how (completed, cancelled or failed).
            window.location.reload();
            return;
          }
          var bar = row.querySelector("[data-field=progress]");
          bar.max = job.total || 1;
          bar.value = job.sent + job.skipped + job.failed;
          set(row, "status", job.status);
          set(row, "counts", job.sent + " sent · " + job.skipped + " skipped · " + job.failed + " failed / " + job.total);
          set(row, "eta", job.eta_seconds === null ? "" : job.eta_seconds + " s");
        });
        if (Object.keys(active).length) setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 1000);
})();
