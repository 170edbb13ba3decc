// Isthmus federation dashboard: renders /v1/ui/state, kept live by /v1/ui/stream (SSE), with
// polling as the fallback. No dependencies, no build step. Every element a test or a user
// looks for carries a data-testid and data-* attributes with the raw values.
"use strict";

(function () {
  const POLL_MS = 2000;
  const STALE_MS = 8000;
  const CLOUD_COLOURS = { aws: "#ff9f43", gcp: "#4f8cff", azure: "#36c5f0" };
  const LABELS = {
    join: "joined", "lease-expired": "lease expired", recovered: "recovered",
    rotation: "bundle rotated", nack: "snapshot refused", drill: "drill",
    failover: "failover", failback: "failback", lease: "lease", "placement-moved": "placement moved",
  };
  let selected = null;
  let lastState = null;
  let lastUpdate = 0;
  let seenEvents = new Set();
  let pollTimer = null;

  const $ = (id) => document.getElementById(id);
  const esc = (value) => String(value === null || value === undefined ? "" : value)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  const cloudColour = (cloud) => CLOUD_COLOURS[cloud] || "#b08cff";
  const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
  const fmtPct = (e) => (e === 0 ? "0" : (e * 100).toFixed(e >= 0.1 ? 0 : 1)) + "% err";
  const fmtMs = (ms) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1)) + " ms";
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });

  function ago(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    if (seconds < 1) return "just now";
    if (seconds < 90) return seconds.toFixed(0) + " s ago";
    if (seconds < 5400) return (seconds / 60).toFixed(0) + " min ago";
    if (seconds < 172800) return (seconds / 3600).toFixed(0) + " h ago";
    return (seconds / 86400).toFixed(0) + " d ago";
  }

  function until(seconds) {
    if (seconds < 0) return "expired";
    if (seconds < 7200) return "in " + (seconds / 60).toFixed(0) + " min";
    if (seconds < 172800) return "in " + (seconds / 3600).toFixed(0) + " h";
    return "in " + (seconds / 86400).toFixed(0) + " d";
  }

  function setConn(state, text) {
    const el = $("conn");
    el.dataset.state = state;
    el.innerHTML = text;
  }

  // ---------------------------------------------------------------- topology
  // Clouds sit on a ring (triangle for three), each a box of its clusters stacked by region.
  function layout(clusters) {
    const clouds = [...new Set(clusters.map((c) => c.cloud))].sort();
    const width = 960, nodeW = 210, boxW = 240;
    const n = clouds.length;
    const boxes = clouds.map((cloud) => {
      const members = clusters.filter((c) => c.cloud === cloud)
        .sort((a, b) => (a.region + a.name).localeCompare(b.region + b.name));
      const heights = members.map((c) => 74 + 15 * Math.min(c.services.length, 4));
      const h = 62 + heights.reduce((a, b) => a + b + 16, 0);
      return { cloud: cloud, members: members, heights: heights, w: boxW, h: h };
    });
    const tallest = Math.max(...boxes.map((b) => b.h));
    const rx = n <= 1 ? 0 : n === 2 ? 260 : 300;
    const ry = n <= 2 ? 0 : tallest / 2 + 50;
    const cy = 20 + ry + tallest / 2;
    const positions = {};
    let bottom = 0;
    boxes.forEach((box, i) => {
      const angle = n === 2 ? Math.PI * (i + 1) : -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
      const cx = width / 2 + rx * Math.cos(angle);
      const centreY = n <= 2 ? cy - ry : cy + ry * Math.sin(angle);
      box.x = cx - box.w / 2;
      box.y = centreY - box.h / 2;
      let y = box.y + 62;
      box.members.forEach((c, j) => {
        positions[c.name] = { x: cx - nodeW / 2, y: y, w: nodeW, h: box.heights[j] };
        y += box.heights[j] + 16;
      });
      bottom = Math.max(bottom, box.y + box.h);
    });
    const top = Math.min(...boxes.map((b) => b.y));
    const shift = 16 - top;
    boxes.forEach((b) => { b.y += shift; });
    Object.values(positions).forEach((p) => { p.y += shift; });
    return { clouds: boxes, positions: positions, width: width, height: bottom + shift + 16 };
  }

  function centre(box) { return { x: box.x + box.w / 2, y: box.y + box.h / 2 }; }

  function edgePoint(box, towards) {
    const c = centre(box);
    const dx = towards.x - c.x, dy = towards.y - c.y;
    const t = Math.min(Math.abs(dx) > 1e-6 ? (box.w / 2 + 4) / Math.abs(dx) : Infinity,
      Math.abs(dy) > 1e-6 ? (box.h / 2 + 4) / Math.abs(dy) : Infinity);
    return { x: c.x + dx * t, y: c.y + dy * t };
  }

  function linkSvg(link, pos) {
    const a = pos[link.source], b = pos[link.destination];
    if (!a || !b) return "";
    const p1 = centre(a), p2 = centre(b);
    const dx = p2.x - p1.x, dy = p2.y - p1.y;
    const dist = Math.hypot(dx, dy) || 1;
    const bend = 28 + dist * 0.12;
    const ctl = { x: (p1.x + p2.x) / 2 - (dy / dist) * bend, y: (p1.y + p2.y) / 2 + (dx / dist) * bend };
    const s = edgePoint(a, ctl), e = edgePoint(b, ctl);
    const mid = { x: 0.25 * s.x + 0.5 * ctl.x + 0.25 * e.x, y: 0.25 * s.y + 0.5 * ctl.y + 0.25 * e.y };
    const down = link.state === "down";
    const width = down ? 2 : 1.5 + Math.min(6, Math.log2(1 + link.request_rate));
    const label = down ? "✕ link down"
      : link.request_rate > 0
        ? fmtRate(link.request_rate) + " rps · " + fmtPct(link.error_rate) + " · " + fmtMs(link.latency_ms)
        : "idle";
    const errors = link.error_rate >= 0.05 ? "high" : "low";
    return '<g class="link" data-testid="link" data-source="' + esc(link.source) +
      '" data-destination="' + esc(link.destination) + '" data-state="' + esc(link.state) +
      '" data-errors="' + errors + '" data-rate="' + link.request_rate.toFixed(3) + '">' +
      "<title>" + esc(link.source + " → " + link.destination + ": " + label) + "</title>" +
      '<path d="M' + s.x.toFixed(1) + "," + s.y.toFixed(1) + " Q" + ctl.x.toFixed(1) + "," +
      ctl.y.toFixed(1) + " " + e.x.toFixed(1) + "," + e.y.toFixed(1) + '" stroke-width="' +
      width.toFixed(1) + '" marker-end="url(#' + (down ? "arrow-down" : "arrow-up") + ')"/>' +
      '<text x="' + mid.x.toFixed(1) + '" y="' + (mid.y + 4).toFixed(1) +
      '" text-anchor="middle" data-testid="link-label">' + esc(label) + "</text></g>";
  }

  function nodeSvg(c, box) {
    const state = c.state;
    const badge = state === "healthy" ? "● healthy" : state === "unreachable" ? "✕ UNREACHABLE" : "◌ pending";
    let svcs = "";
    c.services.slice(0, 4).forEach((svc, i) => {
      const rate = svc.request_rate > 0 ? " · " + fmtRate(svc.request_rate) + " rps" : "";
      svcs += '<text class="svc" x="' + (box.x + 12) + '" y="' + (box.y + 82 + i * 15) + '">' +
        esc(svc.name + "  " + svc.healthy_endpoints + "/" + svc.endpoints + rate) + "</text>";
    });
    const age = c.last_report_age_s === null ? "no report yet" : "report " + ago(c.last_report_age_s);
    return '<g class="node" data-testid="cluster" data-cluster="' + esc(c.name) + '" data-state="' +
      esc(state) + '" data-cloud="' + esc(c.cloud) + '" data-region="' + esc(c.region) + '">' +
      "<title>" + esc(c.name + " (" + c.trust_domain + "): " + state) + "</title>" +
      '<rect class="card" x="' + box.x + '" y="' + box.y + '" width="' + box.w + '" height="' +
      box.h + '" rx="10"/>' +
      '<rect x="' + box.x + '" y="' + (box.y + 8) + '" width="4" height="' + (box.h - 16) +
      '" fill="' + cloudColour(c.cloud) + '"/>' +
      '<text class="name" x="' + (box.x + 12) + '" y="' + (box.y + 22) + '">' + esc(c.name) + "</text>" +
      '<text class="badge" data-testid="cluster-state" x="' + (box.x + box.w - 10) + '" y="' +
      (box.y + 22) + '" text-anchor="end">' + esc(badge) + "</text>" +
      '<text class="sub" x="' + (box.x + 12) + '" y="' + (box.y + 40) + '">' +
      esc(c.region + (c.zone ? "/" + c.zone : "") + " · gw " + (c.gateways[0] || "?")) + "</text>" +
      '<text class="sub" x="' + (box.x + 12) + '" y="' + (box.y + 56) + '">' +
      esc(age + (c.snapshot_version ? " · snapshot v" + c.snapshot_version : "")) + "</text>" +
      svcs + "</g>";
  }

  function renderTopology(state) {
    const svg = $("topology");
    if (!state.clusters.length) {
      svg.setAttribute("viewBox", "0 0 960 120");
      svg.innerHTML = '<text x="480" y="60" text-anchor="middle" fill="#8c9ab5">No cluster has joined yet: ' +
        "isthmus federation token CLUSTER, then isthmus gateway join.</text>";
      return;
    }
    const l = layout(state.clusters);
    svg.setAttribute("viewBox", "0 0 " + l.width + " " + l.height);
    let out = '<defs><marker id="arrow-up" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="5" ' +
      'markerHeight="5" orient="auto-start-reverse"><path class="arrow-up" d="M0,0 L10,5 L0,10 z"/></marker>' +
      '<marker id="arrow-down" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="5" markerHeight="5" ' +
      'orient="auto-start-reverse"><path class="arrow-down" d="M0,0 L10,5 L0,10 z"/></marker></defs>';
    l.clouds.forEach((cb) => {
      out += '<g data-testid="cloud" data-cloud="' + esc(cb.cloud) + '"><rect class="cloud-box" x="' +
        cb.x.toFixed(1) + '" y="' + cb.y.toFixed(1) + '" width="' + cb.w + '" height="' + cb.h + '" rx="12"/>' +
        '<text class="cloud-title" x="' + (cb.x + 14).toFixed(1) + '" y="' + (cb.y + 24).toFixed(1) +
        '" fill="' + cloudColour(cb.cloud) + '">' + esc(cb.cloud) + "</text>" +
        '<text class="region-title" x="' + (cb.x + 14).toFixed(1) + '" y="' + (cb.y + 42).toFixed(1) + '">' +
        esc([...new Set(cb.members.map((c) => c.region))].join(" · ")) + "</text></g>";
    });
    state.links.forEach((link) => { out += linkSvg(link, l.positions); });
    state.clusters.forEach((c) => { out += nodeSvg(c, l.positions[c.name]); });
    svg.innerHTML = out;
  }

  // ---------------------------------------------------------------- placement
  function weightBar(service, source, levels, clusters) {
    const srcState = ((clusters.find((c) => c.name === source) || {}).state) || "pending";
    const level = (levels || []).find((lv) => Object.values(lv).some((w) => w > 0)) || {};
    const total = Object.values(level).reduce((a, b) => a + b, 0);
    const byName = Object.fromEntries(clusters.map((c) => [c.name, c]));
    let segs = "";
    Object.keys(level).sort().forEach((dest) => {
      const w = level[dest];
      const pct = total ? (100 * w) / total : 0;
      const colour = cloudColour((byName[dest] || {}).cloud);
      segs += '<span data-testid="weight" data-service="' + esc(service) + '" data-source="' +
        esc(source) + '" data-destination="' + esc(dest) + '" data-weight="' + w + '" data-pct="' +
        pct.toFixed(1) + '" data-colour="' + colour + '" title="' + esc(source + " → " + dest + ": " +
        pct.toFixed(0) + "%") + '">' + (pct >= 18 ? esc(dest + " " + pct.toFixed(0) + "%") : "") + "</span>";
    });
    const extra = (levels || []).length > 1 ? " +" + (levels.length - 1) + " fallback" : "";
    const stale = srcState !== "healthy";
    return '<div class="weight-row' + (stale ? " stale" : "") + '" data-source-state="' + esc(srcState) +
      '"><span class="src">from ' + esc(source) + (stale ? " (" + esc(srcState) + ", last known)" : "") +
      '</span><div class="bar">' +
      (segs || '<span class="zero">no route</span>') + "</div>" +
      '<span class="zero">' + esc(extra) + "</span></div>";
  }

  function renderPlacement(state) {
    const services = state.placement;
    if (!services.length) {
      $("placement").innerHTML = '<div class="empty">No service is exported or placed yet.</div>';
      return;
    }
    const clusters = state.clusters;
    let head = "<tr><th>service</th>";
    clusters.forEach((c) => {
      head += '<th title="' + esc(c.cloud + "/" + c.region) + '">' + esc(c.name) +
        (c.state !== "healthy" ? ' <span class="pill ' + esc(c.state) + '">' + esc(c.state) + "</span>" : "") + "</th>";
    });
    head += "<th>traffic weights per source cluster</th></tr>";
    let rows = "";
    services.forEach((svc) => {
      rows += '<tr class="service-row' + (svc.name === selected ? " selected" : "") +
        '" data-testid="placement-row" data-service="' + esc(svc.name) + '"><td><b>' + esc(svc.name) +
        '</b><br><span class="zero">' + (svc.source === "decision" ? "placement engine" : "from reports") +
        "</span></td>";
      clusters.forEach((c) => {
        const n = svc.replicas[c.name] || 0;
        rows += '<td class="num ' + (c.state !== "healthy" ? "down-cell" : n ? "" : "zero") +
          '" data-testid="replicas" data-cluster="' + esc(c.name) + '" data-replicas="' + n + '">' + n + "</td>";
      });
      let bars = "";
      Object.keys(svc.traffic).sort().forEach((src) => { bars += weightBar(svc.name, src, svc.traffic[src], clusters); });
      rows += '<td><div class="weights">' + (bars || '<span class="zero">no snapshot yet</span>') + "</div></td></tr>";
    });
    $("placement").innerHTML = "<table><thead>" + head + "</thead><tbody>" + rows + "</tbody></table>";
    // CSP forbids inline style attributes; set sizes through the CSSOM instead.
    $("placement").querySelectorAll("span[data-pct]").forEach((span) => {
      span.style.width = span.dataset.pct + "%";
      span.style.background = span.dataset.colour;
    });
    $("placement").querySelectorAll("tr.service-row").forEach((tr) => {
      tr.addEventListener("click", () => {
        selected = selected === tr.dataset.service ? null : tr.dataset.service;
        renderPlacement(lastState);
        renderExplanation(lastState);
      });
    });
  }

  function fmtValue(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    if (Array.isArray(v)) return v.map(fmtValue).join(", ");
    if (typeof v === "object") {
      const keys = Object.keys(v);
      return keys.length ? keys.map((k) => k + " " + fmtValue(v[k])).join(" · ") : "none";
    }
    return String(v);
  }

  function explanationHtml(expl) {
    if (expl && typeof expl === "object" && !Array.isArray(expl)) {
      const keys = Object.keys(expl);
      if (keys.length && keys.every((k) => expl[k] && typeof expl[k] === "object" && !Array.isArray(expl[k]))) {
        const cols = [...new Set(keys.flatMap((k) => Object.keys(expl[k])))];
        let t = "<table><thead><tr><th></th>" + cols.map((c) => "<th>" + esc(c) + "</th>").join("") + "</tr></thead><tbody>";
        keys.forEach((k) => {
          t += '<tr data-testid="explanation-row" data-cluster="' + esc(k) + '"><td><b>' + esc(k) + "</b></td>" +
            cols.map((c) => "<td>" + esc(fmtValue(expl[k][c])) + "</td>").join("") + "</tr>";
        });
        return t + "</tbody></table>";
      }
    }
    return "<pre>" + esc(JSON.stringify(expl, null, 2)) + "</pre>";
  }

  function renderExplanation(state) {
    const panel = $("explanation");
    const svc = selected && state.placement.find((s) => s.name === selected);
    if (!svc) { panel.hidden = true; panel.innerHTML = ""; return; }
    panel.hidden = false;
    panel.dataset.service = svc.name;
    const when = svc.decided_at ? "decided at " + clock(svc.decided_at) : "";
    const body = svc.explanation === null || svc.explanation === undefined
      ? '<p class="zero">No placement decision stored for this service yet: replicas shown are what its gateways report.</p>'
      : explanationHtml(svc.explanation);
    const problem = svc.unschedulable
      ? '<p class="down-cell" data-testid="unschedulable">unschedulable: ' +
        esc(svc.unschedulable.message || svc.unschedulable.constraint || "") + "</p>"
      : "";
    panel.innerHTML = "<h3>Why " + esc(svc.name) + " runs where it does <small class=\"zero\">" + esc(when) +
      "</small></h3>" + problem + body;
  }

  // ---------------------------------------------------------------- trust, timeline, summary
  function renderTrust(state) {
    if (!state.trust.length) { $("trust").innerHTML = '<div class="empty">No trust domain yet.</div>'; return; }
    let rows = "";
    state.trust.forEach((t) => {
      const left = t.root_expires_at === null ? null : t.root_expires_at - state.now;
      const soon = left !== null && left < 7 * 86400;
      rows += '<tr data-testid="trust-row" data-trust-domain="' + esc(t.trust_domain) + '" data-sequence="' +
        esc(t.sequence) + '"><td><b>' + esc(t.trust_domain) + '</b><br><span class="zero">' + esc(t.cluster || "") +
        '</span></td><td class="num">' + esc(t.sequence) + "</td><td>" +
        (left === null ? "?" : '<span class="pill ' + (soon ? "warn" : "up") + '">' + esc(until(left)) + "</span><br>" +
          '<span class="zero">' + esc(new Date(t.root_expires_at * 1000).toISOString().slice(0, 10)) + "</span>") +
        "</td><td>" + (t.last_rotation_at === null ? '<span class="zero">never</span>' : esc(ago(state.now - t.last_rotation_at))) +
        "</td></tr>";
    });
    $("trust").innerHTML = "<table><thead><tr><th>trust domain</th><th>bundle seq</th><th>root expiry</th>" +
      "<th>last rotation</th></tr></thead><tbody>" + rows + "</tbody></table>";
  }

  function eventDetail(e) {
    const d = Object.assign({}, e.detail);
    delete d.external;
    if (e.kind === "lease") return (d.from || "?") + " → " + (d.to || "?");
    const replicas = (m) => Object.keys(m || {}).map((k) => k + "×" + m[k]).join(", ") || "none";
    if (e.kind === "placement-moved") return replicas(d.before) + " → " + replicas(d.after);
    if (e.kind === "failover") return "traffic left " + fmtValue(d.from) + " → " + fmtValue(d.to);
    if (e.kind === "failback") return "traffic back to " + fmtValue(d.to);
    return Object.keys(d).map((k) => k + "=" + fmtValue(d[k])).join(" · ");
  }

  function renderEvents(state) {
    const items = state.events.slice().reverse();
    if (!items.length) { $("events").innerHTML = '<li class="empty">Nothing has happened yet.</li>'; return; }
    const first = seenEvents.size === 0;
    let out = "";
    items.forEach((e) => {
      const fresh = !first && !seenEvents.has(e.id);
      out += '<li data-testid="event" data-kind="' + esc(e.kind) + '" data-label="' + esc(e.label) +
        '" data-subject="' + esc(e.subject) + '"' + (fresh ? ' class="fresh"' : "") + "><time>" + esc(clock(e.at)) +
        '</time><span><span class="what">' + esc(LABELS[e.label] || e.label) + "</span> " + esc(e.subject) +
        '</span><span class="detail">' + esc(eventDetail(e)) + "</span></li>";
    });
    seenEvents = new Set(items.map((e) => e.id));
    $("events").innerHTML = out;
  }

  function renderSummary(state) {
    const count = (s) => state.clusters.filter((c) => c.state === s).length;
    const rate = state.links.reduce((a, l) => a + (l.state === "up" ? l.request_rate : 0), 0);
    const served = state.clusters.reduce((a, c) => a + c.services.reduce((b, s) => b + s.request_rate, 0), 0);
    const down = state.links.filter((l) => l.state === "down").length;
    $("summary").innerHTML =
      '<span data-testid="cluster-count" data-count="' + state.clusters.length + '"><b>' + state.clusters.length + "</b> clusters</span>" +
      '<span><b>' + count("healthy") + "</b> healthy</span>" +
      '<span class="' + (count("unreachable") ? "bad" : "") + '" data-testid="unreachable-count" data-count="' +
      count("unreachable") + '"><b>' + count("unreachable") + "</b> unreachable</span>" +
      "<span><b>" + state.placement.length + "</b> services</span>" +
      '<span data-testid="served-rate"><b>' + fmtRate(served) + "</b> rps served</span>" +
      '<span data-testid="cross-rate"><b>' + fmtRate(rate) + "</b> rps cross-cluster</span>" +
      '<span class="' + (down ? "bad" : "") + '"><b>' + down + "</b> links down</span>";
  }

  function render(state) {
    lastState = state;
    lastUpdate = Date.now();
    document.body.dataset.updated = String(state.now);
    renderSummary(state);
    renderTopology(state);
    renderPlacement(state);
    renderExplanation(state);
    renderTrust(state);
    renderEvents(state);
  }

  // ---------------------------------------------------------------- transport
  function needLogin() {
    setConn("login", 'session expired — <a href="/ui/login">log in again</a>');
  }

  async function poll() {
    try {
      const res = await fetch("/v1/ui/state", { credentials: "same-origin", cache: "no-store" });
      if (res.status === 401) { needLogin(); return; }
      if (!res.ok) throw new Error("HTTP " + res.status);
      render(await res.json());
      setConn("polling", "polling every " + POLL_MS / 1000 + " s");
    } catch (err) {
      setConn("offline", "federation unreachable — retrying");
    }
    pollTimer = setTimeout(poll, POLL_MS);
  }

  function stream() {
    if (!window.EventSource) { poll(); return; }
    const es = new EventSource("/v1/ui/stream");
    es.addEventListener("state", (msg) => {
      render(JSON.parse(msg.data));
      setConn("live", "● live");
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        if (!pollTimer) poll();  // refused (401) or not SSE-capable: poll instead
      } else {
        setConn("offline", "reconnecting…");
      }
    };
  }

  setInterval(() => {
    if (lastUpdate && Date.now() - lastUpdate > STALE_MS && $("conn").dataset.state === "live") {
      setConn("offline", "no update for " + ((Date.now() - lastUpdate) / 1000).toFixed(0) + " s");
    }
  }, 1000);

  document.addEventListener("DOMContentLoaded", stream);
})();
