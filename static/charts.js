// Small SVG charts drawn from data (no library, no inline styles: CSP-safe).
'use strict';
const SVG_NS = 'http://www.w3.org/2000/svg';

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// Stacked bars per time bucket, one colour per series ({name, values, and
// a class of its own if it has one}); `starts` are the buckets' start times.
function stackedChart(starts, series, labelOf) {
  const width = 800, height = 200, left = 36, bottom = 20, top = 8;
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', preserveAspectRatio: 'none' });
  const totals = starts.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0));
  const max = Math.max(1, ...totals);
  const plotH = height - bottom - top, plotW = width - left;
  const step = plotW / Math.max(1, starts.length);
  const y = v => top + plotH - (v / max) * plotH;
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    svg.appendChild(svgEl('line', { x1: left, x2: width, y1: y(v), y2: y(v), class: 'axis' }));
    svg.appendChild(svgEl('text', { x: 2, y: y(v) + 3 }, String(v)));
  }
  starts.forEach((start, i) => {
    const x = left + i * step + step * 0.1, w = Math.max(1, step * 0.8);
    let base = 0;
    series.forEach((s, n) => {
      const v = s.values[i];
      if (!v) return;
      const bar = svgEl('rect', { x, y: y(base + v), width: w, height: y(base) - y(base + v), class: s.cls || 'series s' + (n % 6) });
      bar.appendChild(svgEl('title', {}, `${labelOf(start)} · ${s.name}: ${v}`));
      svg.appendChild(bar);
      base += v;
    });
  });
  const ticks = Math.min(6, starts.length);
  for (let k = 0; k < ticks; k++) {
    const i = Math.floor((k * (starts.length - 1)) / Math.max(1, ticks - 1));
    const last = k === ticks - 1 && ticks > 1;
    // The last label ends at the right edge instead of running past it.
    svg.appendChild(svgEl('text', { x: last ? width : left + i * step, y: height - 4, 'text-anchor': last ? 'end' : 'start' }, labelOf(starts[i])));
  }
  return svg;
}

// One bar split by key state.
function stateBar(counts) {
  const bar = document.createElement('div');
  bar.className = 'statebar';
  const total = counts.active + counts.partial + counts.cooling + counts.disabled;
  for (const state of ['active', 'partial', 'cooling', 'disabled']) {
    if (!counts[state]) continue;
    const part = document.createElement('div');
    part.className = state;
    part.style.width = (100 * counts[state] / Math.max(1, total)) + '%';
    part.title = `${state}: ${counts[state]}`;
    bar.appendChild(part);
  }
  return bar;
}

// A success-rate line over time buckets ({start_ms, ok, failed}); buckets
// without attempts leave a gap.
function successSparkline(buckets, labelOf) {
  const width = 240, height = 36, pad = 3;
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${height}`, class: 'spark', role: 'img' });
  const step = (width - 2 * pad) / Math.max(1, buckets.length - 1);
  const y = rate => pad + (1 - rate) * (height - 2 * pad);
  svg.appendChild(svgEl('line', { x1: 0, x2: width, y1: y(1), y2: y(1), class: 'axis' }));
  let path = '', pen = 'M';
  buckets.forEach((b, i) => {
    const n = b.ok + b.failed;
    if (!n) { pen = 'M'; return; }
    const x = pad + i * step, rate = b.ok / n;
    path += `${pen}${x.toFixed(1)},${y(rate).toFixed(1)} `;
    pen = 'L';
    const dot = svgEl('circle', { cx: x, cy: y(rate), r: 2, class: rate < 0.9 ? 'dot-bad' : 'dot-ok' });
    dot.appendChild(svgEl('title', {}, `${labelOf(b.start_ms)}: ${b.ok} / ${n}`));
    svg.appendChild(dot);
  });
  if (path) svg.insertBefore(svgEl('path', { d: path.trim(), class: 'spark-line' }), svg.children[1] || null);
  return svg;
}
