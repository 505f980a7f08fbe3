// `epick view`: micrograph list, one micrograph with its picks, threshold slider, histogram, Apply.
// The picks of the shown micrograph are fetched once (all of them, with TP flags under --truth);
// moving the slider only redraws (see api.py for why matching at any threshold needs no server).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { job: null, rows: [], key: null, picks: null, t: 0.3, cache: new Map(), imageWidth: 1280 };
const stage = new EPICK.Stage($("view"));

function k100(t) { return Math.round(t * 100); }
function sumFrom(a, k) { let s = 0; for (let i = k; i < a.length; i++) s += a[i]; return s; }

// ---------------------------------------------------------------- drawing the micrograph
stage.draw = (c, scale) => {
  const p = state.picks;
  if (!p || p.key !== state.key) { $("drawn").textContent = "0"; return; }
  const t = state.t, P = p.picks, truth = p.truth;
  const colourOf = truth ? (i) => (P.tp[i] ? EPICK.TP : EPICK.FP) : (i) => EPICK.scoreColour(P.score[i]);
  const n = EPICK.drawPicks(c, scale, p, t, colourOf);
  let missed = 0, tp = 0;
  if (truth) {
    for (let i = 0; i < P.x.length; i++) if (P.tp[i] && P.score[i] >= t - 1e-9) tp++;
    const r0 = (p.diameter || 20) / 2;
    c.strokeStyle = EPICK.MISSED; c.setLineDash([4 / scale, 3 / scale]);
    for (let j = 0; j < truth.x.length; j++) {
      if (truth.matched_score[j] >= t - 1e-9) continue;
      missed++;
      if (!$("showtruth").checked) continue;
      c.beginPath();
      c.arc(truth.x[j] + 0.5, truth.y[j] + 0.5, truth.radius ? truth.radius[j] : r0, 0, 2 * Math.PI);
      c.stroke();
    }
    c.setLineDash([]);
  }
  $("drawn").textContent = String(n);
  $("drawn").dataset.count = String(n);
  $("micpr").textContent = truth
    ? ` · TP ${tp} · FP ${n - tp} · missed ${missed} · precision ${EPICK.fmt(n ? tp / n : null, 2)} · recall ${EPICK.fmt(truth.x.length ? tp / truth.x.length : null, 2)}`
    : "";
};

function legend() {
  const el = $("legend");
  if (state.job.has_truth) {
    el.innerHTML = `<span style="color:${EPICK.TP}">&#9711; true positive</span> <span style="color:${EPICK.FP}">&#9711; false positive</span> <span style="color:${EPICK.MISSED}">&#9675; missed</span>`;
  } else if (state.job.object_type === "fiber") {
    el.textContent = "fibers: one colour per tube";
  } else {
    const stops = [0, 0.25, 0.5, 0.75, 1].map((s) => `${EPICK.scoreColour(s)} ${s * 100}%`).join(",");
    el.innerHTML = `score <span class="bar" style="background:linear-gradient(90deg,${stops})"></span> 0 – 1`;
  }
}

// ---------------------------------------------------------------- histogram and totals
function drawHistogram() {
  const cv = $("hist"), c = cv.getContext("2d"), h = state.job.histogram;
  const dpr = window.devicePixelRatio || 1, w = cv.clientWidth * dpr, ht = cv.clientHeight * dpr;
  cv.width = w; cv.height = ht;
  c.fillStyle = "#181b20"; c.fillRect(0, 0, w, ht);
  const max = Math.max(1, ...h.counts), bw = w / h.bins, k = k100(state.t), base = ht - 14 * dpr;
  for (let b = 0; b < h.bins; b++) {
    if (!h.counts[b]) continue;
    const H = (h.counts[b] / max) * (base - 4 * dpr);
    c.globalAlpha = b >= k ? 1 : 0.35;
    if (h.tp) {
      const T = (h.tp[b] / max) * (base - 4 * dpr);
      c.fillStyle = EPICK.FP; c.fillRect(b * bw, base - H, Math.max(1, bw - 1), H - T);
      c.fillStyle = EPICK.TP; c.fillRect(b * bw, base - T, Math.max(1, bw - 1), T);
    } else {
      c.fillStyle = EPICK.scoreColour((b + 0.5) / h.bins);
      c.fillRect(b * bw, base - H, Math.max(1, bw - 1), H);
    }
  }
  c.globalAlpha = 1;
  c.strokeStyle = "#fff"; c.lineWidth = 2 * dpr;
  c.beginPath(); c.moveTo(k * bw, 0); c.lineTo(k * bw, base); c.stroke();
  c.fillStyle = "#9aa3ad"; c.font = `${10 * dpr}px sans-serif`;
  for (const s of [0, 0.25, 0.5, 0.75, 1]) {
    c.textAlign = s === 0 ? "left" : s === 1 ? "right" : "center";
    c.fillText(String(s), s * w, ht - 2 * dpr);
  }
  $("histnote").textContent = `${state.job.n_picks} picks on ${state.job.n_micrographs} micrographs; highest bar ${max}` +
    (h.tp ? " (blue: true positives, red: false)" : "");
}

function drawTotals() {
  const h = state.job.histogram, k = k100(state.t), n = sumFrom(h.counts, k);
  const rows = [["picks at threshold", `${n} of ${state.job.n_picks}`],
                ["per micrograph", EPICK.fmt(n / Math.max(1, state.job.n_micrographs), 1)]];
  if (h.tp) {
    const tp = sumFrom(h.tp, k), paired = sumFrom(h.paired, k);
    rows.push(["precision", EPICK.fmt(paired ? tp / paired : null)], ["recall", EPICK.fmt(tp / Math.max(1, state.job.n_truth))],
              ["true positives", `${tp} of ${state.job.n_truth} in the truth`], ["matched by", state.job.match]);
  }
  $("stats").innerHTML = rows.map(([a, b]) => `<tr><td>${a}</td><td>${EPICK.esc(b)}</td></tr>`).join("");
  $("totals").textContent = `threshold ${state.t.toFixed(2)} · ${n} picks` +
    (h.tp ? ` · precision ${EPICK.fmt(sumFrom(h.paired, k) ? sumFrom(h.tp, k) / sumFrom(h.paired, k) : null, 2)} · recall ${EPICK.fmt(sumFrom(h.tp, k) / Math.max(1, state.job.n_truth), 2)}` : "");
}

// ---------------------------------------------------------------- micrograph list
function drawList() {
  const q = $("filter").value.trim().toLowerCase();
  const truth = state.job.has_truth;
  $("list").querySelector("tbody").innerHTML = state.rows
    .filter((r) => !q || r.name.toLowerCase().includes(q))
    .map((r) => `<tr data-key="${encodeURIComponent(r.key)}" class="${r.key === state.key ? "sel" : ""}">` +
      `<td title="${EPICK.esc(r.name)}">${EPICK.esc(shortName(r.name))}${r.image ? "" : " <span class=muted>(no image)</span>"}</td>` +
      `<td class="num">${r.n}</td>${truth ? `<td class="num">${r.tp ?? "–"} / ${r.n_truth ?? "–"}</td>` : ""}</tr>`)
    .join("");
}

function shortName(name) {  // micrograph names differ at the end: keep it, cut the middle
  return name.length > 20 ? `…${name.slice(-17)}` : name;
}

let listTimer = null;
function refreshList() {   // counts per micrograph at the threshold: asked of the server, debounced
  clearTimeout(listTimer);
  listTimer = setTimeout(async () => {
    state.rows = await EPICK.json(`/api/micrographs?threshold=${state.t}`);
    drawList();
  }, 120);
}

// ---------------------------------------------------------------- one micrograph
function loadImage(key, width = state.imageWidth) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => resolve(null);
    img.src = `/api/image/${encodeURIComponent(key)}?width=${width}`;
  });
}

// Zoomed in past the image's resolution: fetch the micrograph once more at full width (at most
// 4096 px, a few MB), so particles keep their detail; only on demand, once per micrograph.
const FULL_WIDTH = 4096;
let sharpening = null;
function sharpenIfZoomed() {
  const img = stage.image, key = state.key, nx = stage.shape[1];
  if (!img || sharpening === key || img.naturalWidth >= Math.min(nx, FULL_WIDTH)) return;
  if (stage.scale * nx / img.naturalWidth < 1.3) return;        // screen px per image px
  sharpening = key;
  loadImage(key, Math.min(nx, FULL_WIDTH)).then((sharp) => {
    if (sharp && state.key === key) { stage.image = sharp; stage.render(); }
  });
}
$("view").addEventListener("wheel", () => setTimeout(sharpenIfZoomed, 300));

async function select(key) {
  state.key = key;
  drawList();
  const p = await EPICK.json(`/api/picks/${encodeURIComponent(key)}?threshold=0`);
  if (state.key !== key) return;
  state.picks = p;
  $("title").textContent = p.name;
  const img = p.image ? await loadImage(key) : null;
  if (state.key !== key) return;
  stage.show(p.shape, img);
  const next = state.rows[state.rows.findIndex((r) => r.key === key) + 1];
  if (next && next.image) loadImage(next.key);   // warm the server's and the browser's cache
}

function step(d) {
  const rows = state.rows, i = rows.findIndex((r) => r.key === state.key);
  const j = Math.min(rows.length - 1, Math.max(0, i + d));
  if (rows[j]) select(rows[j].key);
}

// ---------------------------------------------------------------- threshold and apply
function setThreshold(t, fromSlider = false) {
  state.t = Math.min(1, Math.max(0, Math.round(t * 100) / 100));
  if (!fromSlider) $("threshold").value = String(state.t);
  $("thvalue").textContent = state.t.toFixed(2);
  $("out").value = state.job.apply_out.replace("{threshold}", state.t.toFixed(2));
  stage.render(); drawHistogram(); drawTotals(); refreshList();
}

async function apply() {
  const box = $("applied");
  box.textContent = "writing…"; box.className = "small";
  try {
    const r = await EPICK.json("/api/apply", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ threshold: state.t, out: $("out").value }) });
    box.textContent = `kept ${r.picks_kept} of ${r.picks_before} picks (score ≥ ${r.threshold.toFixed(2)}) on ` +
      `${r.micrographs} micrographs\n${r.files} files written to ${r.out}\n\nsame as:\n${r.command}\n\n${r.pick_hint}`;
    box.dataset.kept = String(r.picks_kept);
  } catch (err) {
    box.textContent = `not written: ${err.message}`; box.className = "small error";
  }
}

// ---------------------------------------------------------------- start
async function start() {
  state.job = await EPICK.json("/api/job");
  const j = state.job;
  document.body.classList.toggle("has-truth", j.has_truth);
  const size = j.object_type === "vesicle" ? " · circles: each vesicle's radius"
    : j.diameter_known ? ` · diameter ${+j.diameter.toFixed(1)} px` : " · diameter unknown (pass --diameter)";
  $("job").textContent = `${j.folder} · ${j.n_micrographs} micrograph${j.n_micrographs === 1 ? "" : "s"} · ` +
    `${j.object_type}s · ${j.formats.join(", ")}${size}`;
  state.imageWidth = Math.min(2048, Math.max(1024, Math.ceil($("view").clientWidth * (window.devicePixelRatio || 1) / 256) * 256));
  legend();
  state.rows = await EPICK.json(`/api/micrographs?threshold=${j.threshold}`);
  setThreshold(j.threshold);
  if (!j.has_scores) $("threshold").disabled = true;
  if (state.rows.length) await select(state.rows[0].key);
  document.body.dataset.ready = "1";
}

$("threshold").addEventListener("input", (e) => setThreshold(parseFloat(e.target.value), true));
$("hist").addEventListener("click", (e) => {
  const r = e.target.getBoundingClientRect();
  setThreshold((e.clientX - r.left) / r.width);
});
$("list").addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-key]");
  if (tr) select(decodeURIComponent(tr.dataset.key));
});
$("filter").addEventListener("input", drawList);
$("showtruth").addEventListener("change", () => stage.render());
$("apply").addEventListener("click", apply);
window.addEventListener("resize", () => { if (state.job) drawHistogram(); });
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;      // the slider takes its own arrow keys
  if (e.key === "ArrowRight" || e.key === "j") { step(1); e.preventDefault(); }
  if (e.key === "ArrowLeft" || e.key === "k") { step(-1); e.preventDefault(); }
});
start().catch((err) => { $("job").textContent = `error: ${err.message}`; });
