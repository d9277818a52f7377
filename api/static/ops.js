// The dashboard's ops view: lag per stage over the last hour, for platform
// admins only (GET /v1/ops/lag answers 403 to anyone else). Reads the token
// the main view stores; redraws every few seconds.
(function () {
  "use strict";
  const REFRESH_MS = 5000;
  const $ = (id) => document.getElementById(id);
  let chart = null;

  function render(points) {
    const xs = points.map((p) => p.t);
    const stage = (name, key) => points.map((p) => (p.stages[name] ? p.stages[name][key] : null));
    const data = [xs, stage("worker", "age_s"), stage("sink", "age_s")];
    const el = $("ops-chart");
    const width = Math.max(320, el.clientWidth || 900);
    if (chart) { chart.setData(data); chart.setSize({ width, height: 220 }); }
    else {
      chart = new uPlot({
        width, height: 220, legend: { show: true },
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
        scales: { y: { range: (u, min, max) => [0, Math.max(5, max * 1.1)] } },
        series: [{}, { label: "worker lag (s)", stroke: "#3b5bdb", width: 2 },
                 { label: "sink lag (s)", stroke: "#2f9e44", width: 2 }],
      }, data, el);
    }
    const last = points[points.length - 1];
    $("ops-now").textContent = last ? Object.entries(last.stages).map(([name, s]) =>
      `${name}: ${s.records} waiting, oldest ${s.age_s.toFixed(1)} s`).join(" · ") +
      ` · complete up to ${new Date(last.watermark * 1000).toISOString().slice(11, 19)} UTC` : "no reading yet";
  }

  async function refresh() {
    const token = sessionStorage.getItem("skillstream.token");
    if (!token) return;
    const r = await fetch("/v1/ops/lag?minutes=60", { headers: { Authorization: "Bearer " + token } });
    document.body.dataset.opsChecked = String(r.status);
    if (!r.ok) { $("ops").hidden = true; return; }
    const body = await r.json();
    $("ops").hidden = false;
    render(body.points);
    document.body.dataset.opsLoaded = String(body.points.length);
  }

  setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  refresh().catch(() => {});
})();
