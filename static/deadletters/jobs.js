/* Progress bars of long jobs (replay jobs, a tenant's resync and offboarding): while a job is
   queued or running, refresh its row every second from the element's data-poll URL, which
   answers {"results": [active jobs]}. A job carries `done` and `total` (or a replay job's
   sent/skipped/failed) and may carry a `summary`; one gone from the answer is over, and the
   page reloads to say how. Status changes are announced in the [data-live] region. */
(function () {
  "use strict";
  var box = document.querySelector("[data-poll]");
  if (!box) return;
  var url = box.getAttribute("data-poll");
  var live = document.querySelector("[data-live]");
  var active = {};
  box.querySelectorAll("[data-job]").forEach(function (row) {
    var status = row.querySelector("[data-field=status]").textContent.trim();
    if (status === "queued" || status === "running") active[row.getAttribute("data-job")] = row;
  });

  function set(row, field, text) {
    var el = row.querySelector("[data-field=" + field + "]");
    if (el) el.textContent = text;
  }

  function announce(row, text) {
    if (live) live.textContent = (row.getAttribute("data-name") || "Job") + ": " + text;
  }

  function update(row, job) {
    var done = "done" in job ? job.done : job.sent + job.skipped + job.failed;
    var bar = row.querySelector("[data-field=progress]");
    bar.max = job.total || 1;
    bar.value = done;
    var before = row.querySelector("[data-field=status]").textContent.trim();
    if (before !== job.status) announce(row, job.status);
    set(row, "status", job.status);
    set(row, "counts", job.summary || (job.sent + " sent · " + job.skipped + " skipped · " + job.failed + " failed / " + job.total));
    if ("eta_seconds" in job) set(row, "eta", job.eta_seconds === null ? "" : job.eta_seconds + " s");
  }

  function tick() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var still = {};
        (data.results || []).forEach(function (job) { still[job.id] = job; });
        var finished = false;
        Object.keys(active).forEach(function (id) {
          if (still[id]) update(active[id], still[id]);
          else finished = true;
        });
        if (finished) {
          // The page itself says how it ended (done, completed, cancelled or failed).
          if (live) live.textContent = "A job finished; reloading.";
          window.location.reload();
          return;
        }
        if (Object.keys(active).length) setTimeout(tick, 1000);
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 1000);
})();
