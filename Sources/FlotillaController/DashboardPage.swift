/// The dashboard at `/`: one self-contained page (inline CSS and script, nothing fetched from
/// elsewhere) that follows `/events`, the status JSON once a second, and draws job progress and
/// ETA, shards by state, a throughput chart, one tile per worker (with its predictor pools),
/// re-enqueues and dead letters by reason, and the autoscaler's decisions.
enum DashboardPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Flotilla</title>
    <style>
      :root { --bg:#0f1419; --panel:#182029; --line:#26313d; --text:#d8e0e8; --dim:#8a99a8; --accent:#3fb6ff; --ok:#52c41a; --warn:#faad14; --bad:#ff4d4f; }
      * { box-sizing: border-box; }
      body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
      header { display:flex; align-items:baseline; gap:16px; padding:16px 24px; border-bottom:1px solid var(--line); }
      header h1 { margin:0; font-size:20px; }
      .state { padding:2px 10px; border-radius:10px; background:var(--line); text-transform:uppercase; font-size:12px; letter-spacing:.05em; }
      .state.running { background:#103a5c; color:var(--accent); } .state.done { background:#173d12; color:var(--ok); }
      .state.cancelled, .state.failed { background:#4a1517; color:var(--bad); }
      main { display:grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap:16px; padding:16px 24px; }
      section { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:14px 16px; }
      section h2 { margin:0 0 10px; font-size:13px; color:var(--dim); text-transform:uppercase; letter-spacing:.06em; font-weight:600; }
      .wide { grid-column: 1 / -1; }
      .bar { height:14px; background:var(--line); border-radius:7px; overflow:hidden; }
      .bar > div { height:100%; width:0; background:linear-gradient(90deg, #1d7fd1, var(--accent)); transition:width .5s; }
      .figures { display:flex; flex-wrap:wrap; gap:24px; margin-top:12px; }
      .figure b { display:block; font-size:22px; font-variant-numeric: tabular-nums; }
      .figure span { color:var(--dim); font-size:12px; }
      .tiles { display:grid; grid-template-columns: repeat(auto-fill, minmax(110px, 1fr)); gap:8px; }
      .tile { background:#111820; border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
      .tile b { display:block; font-size:18px; font-variant-numeric: tabular-nums; }
      .tile span { color:var(--dim); font-size:12px; }
      .tile.lost { border-color:var(--bad); } .tile.idle b { color:var(--dim); }
      .tile .pool { display:block; }
      .workers { grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); }
      table { width:100%; border-collapse:collapse; } td { padding:3px 0; border-bottom:1px solid var(--line); }
      td.n { text-align:right; font-variant-numeric: tabular-nums; }
      svg { width:100%; height:160px; display:block; }
      .error { color:var(--warn); margin-top:8px; font-size:12px; }
      footer { padding:0 24px 16px; color:var(--dim); font-size:12px; }
      .picker { margin-left:auto; color:var(--dim); font-size:12px; }
      .picker select { background:var(--panel); color:var(--text); border:1px solid var(--line); border-radius:4px; padding:2px 6px; }
      .other { margin:16px 24px 0; padding:10px 16px; background:var(--panel); border:1px solid var(--line); border-radius:8px; }
    </style>
    </head>
    <body>
    <header><h1>Flotilla · <span id="job">…</span></h1><span id="state" class="state">connecting</span>
      <label class="picker">jobs on this cluster <select id="jobs"></select></label></header>
    <div id="other" class="other" hidden></div>
    <main>
      <section class="wide">
        <h2>Progress</h2>
        <div class="bar"><div id="bar"></div></div>
        <div class="figures">
          <div class="figure"><b id="samplesDone">0</b><span>samples done</span></div>
          <div class="figure"><b id="totalSamples">?</b><span>samples in the job</span></div>
          <div class="figure"><b id="percent">0%</b><span>complete</span></div>
          <div class="figure"><b id="rate">0</b><span>samples/s now</span></div>
          <div class="figure"><b id="eta">–</b><span>ETA</span></div>
          <div class="figure"><b id="workers">0/0</b><span>workers live/wanted</span></div>
        </div>
        <div id="lastError" class="error"></div>
      </section>
      <section><h2>Shards by state</h2><div id="shards" class="tiles"></div></section>
      <section><h2>Throughput (samples/s)</h2><svg id="chart" viewBox="0 0 300 160" preserveAspectRatio="none"></svg></section>
      <section><h2>Re-enqueues and dead letters</h2><table id="reasons"></table></section>
      <section><h2>Fleet size</h2><div id="scaling"></div><table id="decisions"></table></section>
      <section class="wide"><h2>Workers</h2><div id="workerTiles" class="tiles workers"></div></section>
    </main>
    <footer>Live from <code>/events</code> · <span id="updates" data-count="0">0</span> updates · last <span id="updated">–</span></footer>
    <script>
    "use strict";
    const $ = id => document.getElementById(id);
    const history = [];
    const phases = ["pending", "queued", "in-flight", "failed", "done", "dead"];
    function text(id, value) { $(id).textContent = value; }
    function duration(seconds) {
      if (seconds == null || !isFinite(seconds)) return "–";
      if (seconds < 1) return "< 1 s";
      seconds = Math.round(seconds);
      if (seconds < 60) return seconds + " s";
      if (seconds < 3600) return Math.floor(seconds / 60) + " m " + String(seconds % 60).padStart(2, "0") + " s";
      return Math.floor(seconds / 3600) + " h " + String(Math.floor(seconds / 60) % 60).padStart(2, "0") + " m";
    }
    function el(tag, cls, html) { const e = document.createElement(tag); if (cls) e.className = cls; if (html != null) e.textContent = html; return e; }
    function tile(value, label, cls) { const t = el("div", "tile " + (cls || "")); t.append(el("b", "", value), el("span", "", label)); return t; }
    function chart(points) {
      const svg = $("chart"), max = Math.max(1, ...points), w = 300, h = 160;
      const xy = points.map((v, i) => [points.length < 2 ? w : i * w / (points.length - 1), h - 8 - (v / max) * (h - 24)]);
      const line = xy.map(p => p[0].toFixed(1) + "," + p[1].toFixed(1)).join(" ");
      svg.innerHTML = '<line x1="0" y1="' + (h - 8) + '" x2="' + w + '" y2="' + (h - 8) + '" stroke="#26313d"/>' +
        '<text x="4" y="14" fill="#8a99a8" font-size="11">' + Math.round(max) + '/s</text>' +
        (xy.length ? '<polyline fill="none" stroke="#3fb6ff" stroke-width="2" points="' + line + '"/>' : "");
    }
    let picked = null, last = null;
    function pickJobs(s) {
      const select = $("jobs"), jobs = s.jobs || [];
      const wanted = jobs.map(j => j.job).join(",");
      if (select.dataset.jobs !== wanted) {
        select.replaceChildren(...jobs.map(j => { const o = el("option", "", j.job + " (" + j.status + ")"); o.value = j.job; return o; }));
        select.dataset.jobs = wanted;
        select.value = picked || s.job;
      }
      const other = jobs.find(j => j.job === picked && j.job !== s.job), panel = $("other");
      panel.hidden = !other;
      if (other) {
        panel.textContent = other.job + ": " + other.status + " · " + other.shards + " shards" + (other.samples != null ? ", " + other.samples + " samples" : "") +
          (other.done != null ? " · " + other.done + " shards done" : "") + " · from its manifest on the jobs topic; its own controller serves its live view";
      }
    }
    $("jobs").onchange = event => { picked = event.target.value; if (last) pickJobs(last); };
    function render(s) {
      last = s;
      pickJobs(s);
      text("job", s.job);
      const state = $("state"); state.textContent = s.state; state.className = "state " + s.state;
      const total = s.totalSamples;
      const fraction = total ? Math.min(1, s.samplesDone / total) : (s.state === "done" ? 1 : 0);
      $("bar").style.width = (fraction * 100).toFixed(1) + "%";
      text("samplesDone", s.samplesDone);
      text("totalSamples", total == null ? "?" : total);
      text("percent", Math.floor(fraction * 100) + "%");
      text("rate", Math.round(s.samplesPerSecond));
      text("eta", s.state === "done" ? "done" : duration(s.etaSeconds));
      const live = s.workers.filter(w => !w.lost);
      text("workers", live.length + "/" + s.desiredWorkers);
      text("lastError", s.lastWorkerError ? "last worker error: " + s.lastWorkerError : "");
      const shards = $("shards"); shards.replaceChildren();
      for (const phase of phases) shards.append(tile(s.shards[phase] || 0, phase));
      shards.dataset.total = s.totalShards;
      history.push(s.samplesPerSecond); if (history.length > 120) history.shift();
      chart(history);
      const reasons = $("reasons"); reasons.replaceChildren();
      const rows = Object.entries(s.reEnqueues || {}).sort();
      rows.push(["dead-lettered shards", s.shards["dead"] || 0], ["duplicate executions", s.duplicates], ["worker restarts", s.workerRestarts]);
      for (const d of s.deadLetterReasons || []) rows.push(["dead: " + d.message, d.count]);
      for (const [name, count] of rows) { const tr = el("tr"); tr.append(el("td", "", name), el("td", "n", count)); reasons.append(tr); }
      text("scaling", (s.autoscaling ? "autoscaling" : "fixed size") + " · " + s.desiredWorkers + " wanted");
      const decisions = $("decisions"); decisions.replaceChildren();
      for (const d of (s.scaleDecisions || []).slice(-8).reverse()) {
        const tr = el("tr");
        tr.append(el("td", "n", new Date(d.time).toLocaleTimeString()), el("td", "n", d.from + " → " + d.to), el("td", "", d.reason));
        decisions.append(tr);
      }
      const tiles = $("workerTiles"); tiles.replaceChildren();
      for (const w of s.workers) {
        const t = el("div", "tile " + (w.lost ? "lost" : w.idle ? "idle" : ""));
        t.dataset.worker = w.id;
        t.append(el("b", "", w.id + " · " + Math.round(w.samplesPerSecond) + "/s"),
                 el("span", "", (w.lost ? "LOST" : w.state) + " · " + w.inFlight.length + " running, " + w.queued + " queued · " +
                    (w.lastHeartbeatAgoMs / 1000).toFixed(1) + " s ago"));
        for (const p of w.predictors || []) {
          t.append(el("span", "pool", p.stage + ": " + p.processes + " process" + (p.processes === 1 ? "" : "es") + ", " + p.busy + " busy, " + p.restarts + " restarts"));
        }
        tiles.append(t);
      }
      const updates = $("updates"), count = Number(updates.dataset.count) + 1;
      updates.dataset.count = count; updates.textContent = count;
      text("updated", new Date(s.updatedAt).toLocaleTimeString());
    }
    const source = new EventSource("events");
    source.onmessage = event => render(JSON.parse(event.data));
    source.onerror = () => { const state = $("state"); if (state.textContent === "running") state.textContent = "reconnecting"; };
    </script>
    </body>
    </html>
    """#
}
