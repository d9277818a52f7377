// The dashboard's import panel: each running historical import's progress
// (events read and accepted, %, events/s, ETA) for company and platform
// admins (GET /v1/imports?status=running answers 403 to anyone else, and the
// panel stays hidden). Reads the token the main view stores, else the
// session cookie; polls every few seconds.
(function () {
  "use strict";
  const REFRESH_MS = 3000;
  const $ = (id) => document.getElementById(id);
  const num = (v) => (v == null ? "–" : Number(v).toLocaleString("en-US"));
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  function eta(s) {
    if (s == null) return "–";
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }

  function row(st) {
    const pct = Math.min(100, Math.round((st.progress || 0) * 1000) / 10);
    const phase = st.status === "sending" ? "" : ` · ${esc(st.status)}` +
      (st.records_behind ? ` (${num(st.records_behind)} records to apply)` : "");
    return `<div class="import" data-import="${esc(st.import_id)}">
      <div class="import-head"><strong>${esc(st.tenant)}</strong>
        <span class="muted">${esc(st.source)}</span></div>
      <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="${pct}">
        <span style="width:${pct}%"></span></div>
      <div class="muted">${pct}% · read ${num(st.read)} · accepted ${num(st.accepted)}` +
      (st.rejected ? ` · rejected ${num(st.rejected)}` : "") +
      ` · ${num(Math.round(st.events_per_s || 0))} events/s · ETA ${eta(st.eta_s)}${phase}</div>
    </div>`;
  }

  async function refresh() {
    const token = sessionStorage.getItem("skillstream.token");
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const r = await fetch("/v1/imports?status=running", { headers, credentials: "same-origin" });
    document.body.dataset.importsChecked = String(r.status);
    if (!r.ok) { $("imports").hidden = true; return; }
    const running = await r.json();
    $("imports").hidden = running.length === 0;
    $("imports-list").innerHTML = running.map(row).join("");
    document.body.dataset.importsRunning = String(running.length);
  }

  setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  refresh().catch(() => {});
})();
