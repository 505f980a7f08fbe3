// Shared by the viewer and the live page: colours, JSON fetch, drawing picks on a 2-D canvas.
// Coordinates: picks are in original-micrograph pixels, centre of pixel; the "world" of a canvas
// is original pixel EDGES, so a pick at x is drawn at x + 0.5 and the image covers [0, nx] x [0, ny].
"use strict";

const EPICK = (() => {
  const STOPS = [[0.0, [69, 117, 180]], [0.3, [116, 173, 209]], [0.5, [102, 204, 140]],
                 [0.7, [254, 224, 80]], [1.0, [255, 110, 60]]];
  const TUBE = ["#ff5050", "#40c8ff", "#ffc800", "#78ff78", "#ff78ff", "#ffffff"];
  // true/false positive and missed: the colours of docs/picks_betagal.png (distinct for colour-blind eyes)
  const TP = "#00c8ff", FP = "#ff3c3c", MISSED = "#ffdc00";

  function scoreColour(s) {
    s = Math.min(1, Math.max(0, s));
    for (let i = 1; i < STOPS.length; i++) {
      if (s <= STOPS[i][0]) {
        const [a, ca] = STOPS[i - 1], [b, cb] = STOPS[i];
        const f = (s - a) / (b - a);
        const c = ca.map((v, k) => Math.round(v + f * (cb[k] - v)));
        return `rgb(${c[0]},${c[1]},${c[2]})`;
      }
    }
    return "rgb(255,110,60)";
  }

  async function json(url, options) {
    const reply = await fetch(url, options);
    const body = await reply.json();
    if (!reply.ok) throw new Error(body.error || reply.statusText);
    return body;
  }

  // A canvas showing one micrograph (image + vector overlay) with zoom and pan.
  class Stage {
    constructor(canvas, { interactive = true } = {}) {
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.image = null;
      this.shape = [512, 512];   // ny, nx of the micrograph
      this.scale = 1; this.ox = 0; this.oy = 0;
      this.draw = () => {};
      if (interactive) this._interact();
      new ResizeObserver(() => { this.resize(); }).observe(canvas);
    }
    resize() {
      const r = this.canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
      this.canvas.width = Math.max(1, Math.round(r.width * dpr));
      this.canvas.height = Math.max(1, Math.round(r.height * dpr));
      if (!this.touched) this.fit();
      this.render();
    }
    fit() {
      const [ny, nx] = this.shape, w = this.canvas.width, h = this.canvas.height;
      this.scale = Math.min(w / nx, h / ny);
      this.ox = (w - nx * this.scale) / 2; this.oy = (h - ny * this.scale) / 2;
      this.touched = false;
    }
    show(shape, image) {
      this.shape = shape; this.image = image; this.fit(); this.render();
    }
    render() {
      const c = this.ctx, [ny, nx] = this.shape;
      c.setTransform(1, 0, 0, 1, 0, 0);
      c.fillStyle = "#111"; c.fillRect(0, 0, this.canvas.width, this.canvas.height);
      c.setTransform(this.scale, 0, 0, this.scale, this.ox, this.oy);
      c.imageSmoothingEnabled = this.scale < 2;
      if (this.image) c.drawImage(this.image, 0, 0, nx, ny);
      else { c.fillStyle = "#555"; c.fillRect(0, 0, nx, ny); }
      this.draw(c, this.scale);
    }
    _interact() {
      const cv = this.canvas;
      let drag = null;
      cv.addEventListener("wheel", (e) => {
        e.preventDefault();
        const dpr = window.devicePixelRatio || 1, r = cv.getBoundingClientRect();
        const px = (e.clientX - r.left) * dpr, py = (e.clientY - r.top) * dpr;
        const f = Math.exp(-e.deltaY * 0.0015);
        const s = Math.min(64, Math.max(0.02, this.scale * f)), k = s / this.scale;
        this.ox = px - (px - this.ox) * k; this.oy = py - (py - this.oy) * k; this.scale = s;
        this.touched = true; this.render();
      }, { passive: false });
      cv.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; cv.setPointerCapture(e.pointerId); });
      cv.addEventListener("pointermove", (e) => {
        if (!drag) return;
        const dpr = window.devicePixelRatio || 1;
        this.ox += (e.clientX - drag[0]) * dpr; this.oy += (e.clientY - drag[1]) * dpr;
        drag = [e.clientX, e.clientY]; this.touched = true; this.render();
      });
      cv.addEventListener("pointerup", () => { drag = null; });
      cv.addEventListener("dblclick", () => { this.fit(); this.render(); });
    }
  }

  // Draw picks (JSON of /api/picks) kept at threshold t; returns how many objects were drawn.
  // colourOf(i) gives the colour of pick i; fibers are polylines per tube through kept points.
  function drawPicks(c, scale, p, t, colourOf, lineWidth = 1.6) {
    const P = p.picks, n = P.x.length, keep = [];
    for (let i = 0; i < n; i++) if (P.score[i] >= t - 1e-9) keep.push(i);
    c.lineWidth = lineWidth / scale;
    if (P.tube_id) {
      const tubes = new Map();
      for (const i of keep) { const k = P.tube_id[i]; if (!tubes.has(k)) tubes.set(k, []); tubes.get(k).push(i); }
      let j = 0;
      for (const [, idx] of [...tubes.entries()].sort((a, b) => a[0] - b[0])) {
        const col = TUBE[j++ % TUBE.length];
        c.strokeStyle = col; c.fillStyle = col;
        c.beginPath();
        idx.forEach((i, m) => { const x = P.x[i] + 0.5, y = P.y[i] + 0.5; m ? c.lineTo(x, y) : c.moveTo(x, y); });
        c.stroke();
        for (const i of idx) {
          c.beginPath(); c.arc(P.x[i] + 0.5, P.y[i] + 0.5, 2.5 / scale, 0, 2 * Math.PI); c.fill();
        }
      }
      return keep.length;
    }
    const r0 = (p.diameter || 20) / 2;
    for (const i of keep) {
      c.strokeStyle = colourOf(i);
      c.beginPath();
      c.arc(P.x[i] + 0.5, P.y[i] + 0.5, P.radius ? P.radius[i] : r0, 0, 2 * Math.PI);
      c.stroke();
    }
    return keep.length;
  }

  function esc(text) {   // text for innerHTML (file names come from disk)
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function fmt(v, d = 3) { return v === null || v === undefined || !isFinite(v) ? "–" : v.toFixed(d); }

  return { scoreColour, json, Stage, drawPicks, fmt, esc, TP, FP, MISSED };
})();
