/* Tenant dashboard charts: reads /dashboard/data/ and draws them with uPlot (vendored). */
(function () {
  "use strict";
  var root = document.getElementById("charts");
  if (!root || typeof uPlot === "undefined") return;
  var status = document.getElementById("charts-status");
  var plots = [];

  // Numbers as the page's language groups them (1,000,000), as the server writes them.
  var number = new Intl.NumberFormat(document.documentElement.lang || undefined);
  function fmt(x) { return x === null || x === undefined ? "—" : number.format(x); }
  function width(el) { return Math.max(260, el.clientWidth - 16); }
  // The y axis as wide as its longest label (uPlot's default is a fixed 50 px, which clips
  // "100,000,000" to "0,000").
  function axisSize(self, values, axisIdx, cycleNum) {
    var axis = self.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (a, v) {
      return v && String(v).length > a.length ? String(v) : a;
    }, "");
    if (longest) {
      self.ctx.font = axis.font[0];
      size += self.ctx.measureText(longest).width / (window.devicePixelRatio || 1);
    }
    return Math.ceil(size) + 4;
  }
  var yAxis = {
    size: axisSize,
    values: function (self, splits) { return splits.map(fmt); },
  };
  function fmtPct(x) { return x === null ? "no deliveries" : (Math.round(x * 1000) / 10) + " %"; }
  function fmtMs(x) { return x === null ? "—" : (x >= 30000 ? "> " + fmt(30000) + " ms" : "≤ " + fmt(x) + " ms"); }

  function draw(id, series, data, opts) {
    var el = document.getElementById(id);
    if (!el) return;
    el.innerHTML = "";
    var plot = new uPlot(Object.assign({
      width: width(el), height: 200, series: [{}].concat(series),
      axes: [{}, yAxis], legend: { live: false },
    }, opts || {}), data, el);
    el.uplot = plot; // read by the browser tests (labels within the axis)
    plots.push([plot, el]);
  }

  function render(d) {
    plots.forEach(function (p) { p[0].destroy(); });
    plots = [];
    var t = d.totals;
    document.getElementById("stat-delivered").textContent = fmt(t.delivered) + " ok, " + fmt(t.failed) + " failed";
    document.getElementById("stat-rate").textContent = fmtPct(t.success_rate);
    document.getElementById("stat-latency").textContent = fmtMs(t.p50) + " / " + fmtMs(t.p95);
    document.getElementById("stat-dead").textContent = fmt(t.dead);
    document.getElementById("stat-today").textContent =
      fmt(t.events_today) + (t.daily_quota ? " of " + fmt(t.daily_quota) : "");
    draw("chart-deliveries", [
      { label: "ok", stroke: "#137333", fill: "rgba(19,115,51,.08)" },
      { label: "failed", stroke: "#b42318" },
    ], [d.deliveries.t, d.deliveries.ok, d.deliveries.failed]);
    draw("chart-latency", [
      { label: "p50 ms", stroke: "#2456c7", spanGaps: true },
      { label: "p95 ms", stroke: "#8a5300", spanGaps: true },
    ], [d.latency.t, d.latency.p50, d.latency.p95]);
    var today = [{ label: "events today", stroke: "#2456c7", fill: "rgba(36,86,199,.08)" }];
    var todayData = [d.today.t, d.today.ingested];
    if (d.today.quota.length) {
      today.push({ label: "daily quota", stroke: "#b42318", dash: [6, 4] });
      todayData.push(d.today.quota);
    }
    draw("chart-today", today, todayData);
    draw("chart-dead", [{ label: "dead-lettered", stroke: "#b42318", fill: "rgba(180,35,24,.08)" }],
      [d.dead.t, d.dead.dead]);
    status.textContent = "Charts updated for the last " + d.hours + " h (" + d.step_minutes + " min steps).";
  }

  function load() {
    var hours = document.getElementById("chart-hours").value;
    status.textContent = "Loading charts…";
    fetch("/dashboard/data/?hours=" + encodeURIComponent(hours), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(render)
      .catch(function () { status.textContent = "The charts could not be loaded; try again in a moment."; });
  }

  document.getElementById("chart-hours").addEventListener("change", load);
  window.addEventListener("resize", function () {
    plots.forEach(function (p) { p[0].setSize({ width: width(p[1]), height: 200 }); });
  });
  load();
})();
