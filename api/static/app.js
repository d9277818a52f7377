// SkillStream dashboard: plain JS, no build step. Reads the same report
// endpoints as the exports; refreshes every few seconds.
(function () {
  "use strict";
  const REFRESH_MS = 5000;
  const LOADING_REFRESH_MS = 1000;
  const WEEKS = 8;
  const $ = (id) => document.getElementById(id);
  const state = { token: null, demo: [], config: null, chart: null, timer: null, gen: 0, historyDone: false,
                  tenant: "", tenants: null, session: null };

  // Every figure states its window (the tile's `window` from the API, else
  // the period here); no two figures on the screen share a name.
  const TILES = [
    ["programs_tracked", "Programs tracked", (v) => fmtInt(v), false],
    ["median_engagement", "Engagement score", (v) => (v == null ? "–" : String(Math.round(v))), false],
    ["weekly_active_learners", "Active this week", (v) => fmtInt(v), false],
    ["completion_rate", "Completion rate", (v) => (v == null ? "–" : pct(v)), false],
    ["at_risk_learners", "At-risk", (v) => fmtInt(v), true],
    // from /v1/reports/activity: the last 30 days against the 30 before
    ["reports_generated", "Reports generated", (v) => fmtInt(v), false, "last 30 days"],
    ["audit_events", "Audit events", (v) => compact(v), false, "last 30 days"],
  ];

  function fmtInt(v) { return v == null ? "–" : Number(v).toLocaleString("en-US"); }
  function compact(v) {
    return v == null ? "–" : Number(v).toLocaleString("en-US", { notation: "compact", maximumFractionDigits: 1 });
  }
  function pct(v) { return (Math.round(v * 1000) / 10).toString() + "%"; }
  function secs(v) {
    const s = Math.round(v);
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  }
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }
  function utc(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "–"; }

  function deltaText(key, t, period) {
    if (t.delta == null) return { text: "no previous week", cls: "flat" };
    const cls = t.delta > 0 ? "up" : t.delta < 0 ? "down" : "flat";
    const sign = t.delta > 0 ? "+" : "";
    let text;
    if (key === "completion_rate") text = sign + (Math.round(t.delta * 1000) / 10) + " pts";
    else if (key === "median_engagement") text = sign + (Math.round(t.delta * 10) / 10) + " pts";
    else text = sign + fmtInt(t.delta) + (t.delta_pct != null ? " (" + sign + t.delta_pct + "%)" : "");
    return { text: text + (period ? " vs the 30 days before" : " vs last week"), cls };
  }

  // a platform admin's pick narrows every report to one tenant
  const scoped = (path) => state.tenant ? path + (path.includes("?") ? "&" : "?") +
    "tenant_id=" + encodeURIComponent(state.tenant) : path;

  async function tenantPicker(me) {
    const admin = me.role === "platform_admin";
    $("tenant-wrap").hidden = !admin; $("tenant-badge").hidden = !admin;
    if (!admin) return;
    if (!state.tenants) {
      state.tenants = (await api("/v1/reports/tenants")).tenants;
      $("tenant-pick").innerHTML = '<option value="">All tenants</option>' + state.tenants.map((t) =>
        `<option value="${esc(t.tenant_id)}">${esc(t.name)}</option>`).join("");
    }
    $("tenant-pick").value = state.tenant;
    const t = state.tenants.find((x) => x.tenant_id === state.tenant);
    $("tenant-badge").textContent = t ? "Tenant: " + t.name : "All tenants";
  }

  // a bearer token (operators, "view as") or else the sign-in session's cookie
  async function api(path) {
    const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
    const r = await fetch(path, { headers, credentials: "same-origin" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) { const e = new Error(body.detail || r.statusText); e.status = r.status; throw e; }
    return body;
  }

  function renderTiles(tiles) {
    $("tiles").innerHTML = TILES.map(([key, label, fmt, inverse, period]) => {
      const t = tiles[key]; const d = deltaText(key, t, period);
      const win = t.window || period;
      return `<div class="tile${inverse ? " inverse" : ""}" id="tile-${key}">
        <div class="label">${esc(label)}</div>
        <div class="window muted">${esc(win)}</div>
        <div class="value" data-value="${t.value == null ? "" : t.value}">${esc(fmt(t.value))}</div>
        <div class="delta ${d.cls}">${esc(d.text)}</div></div>`;
    }).join("");
  }

  function renderChart(series, target) {
    const xs = series.map((p) => Date.parse(p.week + "T00:00:00Z") / 1000);
    const eng = series.map((p) => p.median_score);
    const tgt = series.map(() => target);
    const data = [xs, eng, tgt];
    const el = $("chart");
    el.dataset.points = String(eng.filter((v) => v != null).length);  // weeks with a point
    const width = Math.max(320, el.clientWidth || 900);
    if (state.chart) { state.chart.setData(data); state.chart.setSize({ width, height: 280 }); return; }
    state.chart = new uPlot({
      width, height: 280, legend: { show: false }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: { y: { range: [0, 100] } },
      axes: [{ splits: (u) => u.data[0], values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(5, 10)) }, {}],
      series: [{}, { label: "Engagement", stroke: "#3b5bdb", width: 2.5, points: { size: 7 }, spanGaps: true },
               { label: "Target", stroke: "#e8590c", width: 2, dash: [6, 4], points: { show: false } }],
    }, data, el);
  }

  function renderStale(fresh, staleAfter) {
    const b = $("stale-banner");
    const age = fresh ? (Date.now() - Date.parse(fresh)) / 1000 : Infinity;
    if (age > staleAfter) {
      const mins = isFinite(age) ? Math.floor(age / 60) + " minutes" : "ever";
      b.textContent = fresh ? `Data is stale: newest event is ${mins} old (as of ${utc(fresh)}). ` +
        "Figures may lag behind learner activity." : "No data received yet for this scope.";
      b.hidden = false;
    } else b.hidden = true;
  }

  function renderAtRisk(res) {
    if (res.error) { $("atrisk").innerHTML = `<p class="muted">${esc(res.error)}</p>`; return; }
    if (!res.items.length) { $("atrisk").innerHTML = '<p class="muted">No learner at risk.</p>'; return; }
    $("atrisk").innerHTML = `<table id="atrisk-table"><thead><tr><th>Learner</th><th>Program</th>
      <th class="num">Score</th><th class="num">Days inactive</th></tr></thead><tbody>` +
      res.items.map((l) => `<tr><td>${esc(l.user_id)}</td><td>${esc(l.program_id || "–")}</td>
        <td class="num">${l.score}</td><td class="num">${l.days_inactive}</td></tr>`).join("") +
      `</tbody></table><p class="muted">${fmtInt(res.total)} in scope</p>`;
  }

  function renderKpis(res) {
    $("kpis").innerHTML = `<table id="kpi-table"><tbody>` + res.kpis.map((k) => {
      const v = k.value == null ? "–" : k.unit === "ratio" ? pct(k.value) : k.unit === "points" ?
        (k.value > 0 ? "+" : "") + k.value + " pts" : k.unit === "seconds" ? secs(k.value) : fmtInt(k.value);
      const nd = k.denominator != null && k.numerator != null ? `${fmtInt(k.numerator)}/${fmtInt(k.denominator)}` : "";
      return `<tr title="${esc(k.definition)}"><td>${esc(k.label)}</td>
        <td class="window muted">${esc(k.window || "")}</td><td class="num">${esc(v)}</td>
        <td class="num muted">${nd}</td></tr>`;
    }).join("") + "</tbody></table>" +
      `<p class="muted" id="kpi-fresh">Computed ${esc(utc(res.computed_at))} · data fresh as of ${esc(utc(res.data_fresh_as_of))}</p>`;
  }

  // Zeros while history is still on its way would read as data: say so instead.
  const demoHistory = () => fetch("/v1/demo/history").then((r) => r.json()).catch(() => null);
  // While the demo's history loads no report is asked for: those queries
  // would only compete with the sink for the store.
  async function demoLoading(me) {
    if (!state.config.demo || state.historyDone) return null;
    const h = await demoHistory();
    if (h && h.loading && (!h.tenants.length || h.tenants.includes(me.tenant_name)))
      return "loading demo history: " + (h.days ? `${h.loaded} of ${h.days} days` : "starting");
    if (h && !h.loading) state.historyDone = { at: h.finished_at && Date.parse(h.finished_at), days: h.days };
    return null;
  }

  // A kept result from before the history's end would show part of it as if it were all.
  function historyBehind(eng) {
    const done = state.historyDone;
    if (!done || !done.at) return null;
    if (eng.data_fresh_as_of && Date.parse(eng.data_fresh_as_of) >= done.at) { done.at = null; return null; }
    return `loading demo history: ${done.days} of ${done.days} days`;
  }

  function renderLoading(text) {
    $("loading").hidden = !text; $("main").hidden = !!text;
    if (text) { $("loading-text").textContent = text; $("stale-banner").hidden = true; }
  }

  async function refresh(gen) {
    let loading = null;
    try {
      const me = await api("/v1/reports/me");
      loading = await demoLoading(me);
      await tenantPicker(me);
      let eng, kpis, risk, act;
      if (!loading) {
        [eng, kpis, act] = await Promise.all([api(scoped(`/v1/reports/engagement?weeks=${WEEKS}`)),
          api(scoped("/v1/reports/kpis?days=30")), api(scoped("/v1/reports/activity?days=30"))]);
        try { risk = await api(scoped("/v1/reports/learners?at_risk=true&sort=score&page_size=10")); }
        catch (e) { if (e.status === 403) risk = { error: "Aggregated view: " + e.message }; else throw e; }
        // zeros with nothing queryable behind them would read as data
        if (!eng.data_fresh_as_of) loading = "loading history: no events are queryable for this scope yet";
        else loading = historyBehind(eng);
      }
      $("error").hidden = true; renderLoading(loading);
      $("whoami").textContent = `${me.role}${me.user_id ? " · " + me.user_id : ""} · ${me.tenant_name}` +
        (me.scope.tenant_id == null && !state.tenant ? " (all tenants)" : "");
      if (loading) return;
      $("weeks").textContent = eng.weeks;
      $("target").textContent = eng.target;
      $("computed").textContent = `Computed ${utc(eng.computed_at)} · data fresh as of ${utc(eng.data_fresh_as_of)}`;
      renderTiles({ ...eng.tiles, ...act.tiles });
      renderChart(eng.series, eng.target);
      renderStale(eng.data_fresh_as_of, eng.stale_after_s);
      renderAtRisk(risk);
      renderKpis(kpis);
      document.body.dataset.loaded = String(Date.now());
    } catch (e) {
      $("error").textContent = "Could not load reports: " + e.message; $("error").hidden = false;
      if (e.status === 401) { if (state.session) { location.reload(); return; } $("token-form").hidden = false; }
    } finally {
      if (gen === state.gen) state.timer = setTimeout(() => refresh(gen), loading ? LOADING_REFRESH_MS : REFRESH_MS);
    }
  }

  function useToken(token) {
    state.token = token; state.tenant = ""; state.tenants = null; sessionStorage.setItem("skillstream.token", token);
    $("signin").hidden = true;
    if (state.chart) { state.chart.destroy(); state.chart = null; $("chart").innerHTML = ""; }
    clearTimeout(state.timer); refresh(++state.gen);
  }

  // "Sign in with <your company>": the company from a hint (work e-mail, domain or its name)
  async function findCompany(hint) {
    $("signin-error").hidden = true; $("signin-found").hidden = true;
    const r = await fetch("/v1/auth/providers?hint=" + encodeURIComponent(hint));
    if (!r.ok) {
      $("signin-error").textContent = "No company signs in with " + hint + " here."; $("signin-error").hidden = false;
      return;
    }
    const found = await r.json();
    $("signin-go").textContent = "Sign in with " + found.label; $("signin-go").href = found.login_url;
    $("signin-found").hidden = false;
  }

  function showSignIn(slug) {
    $("signin").hidden = false; $("token-form").hidden = false;
    if (slug) { $("signin-hint").value = slug; findCompany(slug); }
  }

  function useSession(sess) {
    state.session = sess; state.token = null; state.tenant = ""; state.tenants = null;
    $("signin").hidden = true; $("token-form").hidden = true; $("signout").hidden = false;
    clearTimeout(state.timer); refresh(++state.gen);
  }

  async function signOut() {
    const r = await fetch("/v1/auth/logout", { method: "POST", credentials: "same-origin",
      headers: { [state.session.csrf_header]: state.session.csrf_token } });
    const body = await r.json().catch(() => ({}));
    state.session = null;
    location.assign(body.end_session_url || "/");  // the provider's own sign-out, where it has one
  }

  async function start() {
    state.config = await fetch("/v1/dashboard/config").then((r) => r.json());
    const hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get("token")) { useToken(hash.get("token")); history.replaceState(null, "", location.pathname); return; }
    const query = new URLSearchParams(location.search);
    const session = await fetch("/v1/auth/session", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null)).catch(() => null);
    if (session) { useSession(session); return; }
    if (query.get("tenant")) { showSignIn(query.get("tenant")); return; }
    if (state.config.demo) {
      $("demo-banner").hidden = false;

      // the demo registers its tenants and their org data just after `up` prints the URL
      while (!((await demoHistory()) || {}).tenants?.length) {
        renderLoading("loading demo history: starting"); await new Promise((ok) => setTimeout(ok, 1000));
      }
      // the real sign-in, through the demo company's identity provider (set up with the org data)
      const signIn = (await fetch("/v1/dashboard/config").then((r) => r.json())).sign_in || [];
      $("demo-signin").innerHTML = signIn.map((s) =>
        `<a class="signin-link" href="${esc(s.login_url)}">Sign in with ${esc(s.tenant)}</a>`).join(" ");
      $("demo-signin").hidden = !signIn.length;
      const demo = await fetch("/v1/demo/tokens").then((r) => r.json());
      state.demo = demo.users;
      const sel = $("viewas");
      sel.innerHTML = demo.users.map((u, i) => `<option value="${i}">${esc(u.role)} · ${esc(u.user_id)}</option>`).join("");
      const pick = Math.max(0, demo.users.findIndex((u) => u.role === (hash.get("role") || "company_admin")));
      sel.value = String(pick);
      sel.addEventListener("change", () => useToken(state.demo[Number(sel.value)].token));
      $("viewas-wrap").hidden = false;
      useToken(demo.users[pick].token);
      return;
    }
    const saved = sessionStorage.getItem("skillstream.token");
    if (saved) { useToken(saved); return; }
    showSignIn(null);
  }

  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault(); const hint = $("signin-hint").value.trim(); if (hint) findCompany(hint);
  });
  $("signout").addEventListener("click", () => signOut());

  $("tenant-pick").addEventListener("change", () => {
    state.tenant = $("tenant-pick").value;
    clearTimeout(state.timer); refresh(++state.gen);
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault(); $("token-form").hidden = true; useToken($("token-input").value.trim());
  });
  window.addEventListener("resize", () => { if (state.chart) state.chart.setSize({ width: $("chart").clientWidth, height: 280 }); });
  start();
})();
