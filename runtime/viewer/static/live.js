// The live page of `epick pick --watch --dashboard`: polls /api/live every 2 s (see live.py).
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;

function ago(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
const esc = EPICK.esc;

function drawChart(series) {
  const cv = $("chart"), c = cv.getContext("2d"), dpr = window.devicePixelRatio || 1;
  const w = (cv.width = cv.clientWidth * dpr), h = (cv.height = cv.clientHeight * dpr);
  const L = 36 * dpr, B = 18 * dpr, T = 6 * dpr, R = 8 * dpr;
  c.fillStyle = "#181b20"; c.fillRect(0, 0, w, h);
  c.fillStyle = "#9aa3ad"; c.font = `${10 * dpr}px sans-serif`;
  if (!series.length) { c.fillText("waiting for the first micrograph…", L, h / 2); return; }
  const t1 = Math.max(series[series.length - 1][0], 1), ymax = Math.max(10, ...series.map((p) => p[1])) * 1.1;
  const X = (t) => L + (t / t1) * (w - L - R), Y = (n) => h - B - (n / ymax) * (h - B - T);
  c.strokeStyle = "#2c3038"; c.lineWidth = 1;
  for (const f of [0, 0.5, 1]) {
    const y = Y(f * ymax / 1.1);
    c.beginPath(); c.moveTo(L, y); c.lineTo(w - R, y); c.stroke();
    c.textAlign = "right"; c.fillText(String(Math.round(f * ymax / 1.1)), L - 4 * dpr, y + 3 * dpr);
  }
  c.textAlign = "left"; c.fillText("0", L, h - 4 * dpr);
  c.textAlign = "right"; c.fillText(`${ago(t1)} since start`, w - R, h - 4 * dpr);
  // points: picks per micrograph; failures as red marks on the axis; a running mean of 10
  const ok = series.filter((p) => p[1] >= 0);
  c.fillStyle = "#5aa9ff";
  for (const [t, n] of ok) { c.beginPath(); c.arc(X(t), Y(n), 2.2 * dpr, 0, 2 * Math.PI); c.fill(); }
  c.strokeStyle = "#fee050"; c.lineWidth = 1.5 * dpr; c.beginPath();
  ok.forEach(([t], i) => {
    const win = ok.slice(Math.max(0, i - 9), i + 1), m = win.reduce((a, p) => a + p[1], 0) / win.length;
    i ? c.lineTo(X(t), Y(m)) : c.moveTo(X(t), Y(m));
  });
  c.stroke();
  c.fillStyle = "#ff3c3c";
  for (const [t, n] of series) if (n < 0) c.fillRect(X(t) - 1.5 * dpr, h - B - 8 * dpr, 3 * dpr, 8 * dpr);
}

function render(s) {
  $("where").textContent = `${s.watch_dir} → ${s.out_dir} · ${s.model}` + (s.threshold !== null ? ` · threshold ${s.threshold}` : "");
  $("c-picked").textContent = String(s.picked);
  $("c-rate").textContent = s.rate_recent.toFixed(s.rate_recent < 1 ? 2 : 1);
  $("c-mean").textContent = s.picks_mean_recent === null ? "–" : s.picks_mean_recent.toFixed(0);
  $("c-behind").textContent = s.waiting ? ago(s.behind_s) : "0 s";
  $("c-waiting").textContent = s.waiting ? `${s.waiting} file${s.waiting > 1 ? "s" : ""} waiting` : "up to date";
  $("card-behind").className = "card" + (s.waiting > 5 ? " warn" : "");
  $("c-newest").textContent = s.newest_age_s === null ? "–" : `${ago(s.newest_age_s)} ago`;
  $("c-failed").textContent = String(s.failed);
  $("card-failed").className = "card" + (s.failed ? " bad" : "");
  drawChart(s.series);
  $("failures").querySelector("tbody").innerHTML = s.failures.length
    ? s.failures.map((f) => `<tr><td>${esc(f.name)}</td><td>${esc(f.reason)}</td></tr>`).join("")
    : `<tr><td class="muted">none</td></tr>`;
  $("thumbs").innerHTML = s.latest.map((m) =>
    `<figure>${m.thumb ? `<img alt="${esc(m.name)}" src="/api/thumb/${encodeURIComponent(m.name)}?t=${m.time}">` : ""}` +
    `<figcaption><span>${esc(m.name)}</span><span data-picks="${m.picks}">${m.picks} picks · ${ago(s.now - m.time)} ago</span></figcaption></figure>`).join("");
  $("status").textContent = `updated ${new Date(s.now * 1000).toLocaleTimeString()}`;
  document.body.dataset.picked = String(s.picked);
}

async function poll() {
  try {
    render(await EPICK.json("/api/live"));
  } catch (err) {
    $("status").textContent = `no answer from epick pick (${err.message}); it may have stopped`;
  }
  setTimeout(poll, POLL_MS);
}
poll();
