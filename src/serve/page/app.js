// bn-lab live: the page's state is a bn-lab command line (in the URL as ?args=...). Controls
// edit the line, the line is run through the server's API, and the report's JSON is drawn here as
// SVG. Plain ES2017, no framework, no build step; everything comes from this server.
//
// Why the charts are drawn here rather than with a charting library: they are a few line charts
// on log axes whose markers must match the slides (the styles come from /api/arms, the same
// table the PNG figures use), every mark is a DOM element the browser test can query, and there
// is no vendored library whose licence and version would have to be kept.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

// grad-norms' defaults, from `bn-lab grad-norms --help`: only flags that differ go on the line.
const GN_DEFAULTS = {
  depth: '50', width: '256', batch: '256', act: 'sigmoid', init: 'xavier', sigma: '0.05',
  norms: ['none', 'batch'], placement: 'pre', affine: true, block: 'plain', skipinit: false,
  vsplain: false, beta: '1', dtype: 'f32', seeds: '1', seed: '0',
};
// grad-norms flags that take a value (the form reads them; others are kept as written).
const GN_VALUE_FLAGS = ['--depth', '--width', '--batch', '--act', '--init', '--placement',
  '--residual-scale', '--dtype', '--seeds', '--seed', '--bn', '--norm', '--skips', '--block'];
const NORM_ORDER = ['none', 'batch', 'layer'];
// The form's block and SkipInit as one arm of `grad-norms --skips` (the CLI's names) and back.
// The page never judges a combination itself: the line goes to the server, which refuses
// what the CLI refuses (SkipInit without basic or preact, ...) in the CLI's one line.
const SKIP_ARMS = {
  off: ['plain', false], plain: ['plain', false], on: ['residual', false], residual: ['residual', false],
  basic: ['basic', false], preact: ['preact', false],
  'basic-skipinit': ['basic', true], 'preact-skipinit': ['preact', true],
};
function skipArm(block, skipinit) {
  const name = block === 'plain' ? 'off' : block === 'residual' ? 'on' : block;
  return skipinit && (block === 'basic' || block === 'preact') ? name + '-skipinit' : name;
}
// `--skips LIST` into the form when it is one arm, or plain beside one arm; else null (the
// words stay on the line as written).
function skipsState(list) {
  const arms = list.split(',');
  const known = arms.every((a) => Object.prototype.hasOwnProperty.call(SKIP_ARMS, a));
  if (!known || arms.length > 2) return null;
  const vsplain = arms.length === 2;
  if (vsplain && (SKIP_ARMS[arms[0]][0] !== 'plain' || SKIP_ARMS[arms[1]][0] === 'plain')) return null;
  const [block, skipinit] = SKIP_ARMS[arms[arms.length - 1]];
  return { block, skipinit, vsplain };
}

// A first command for each entry of the command selector: answers in seconds.
const STARTERS = {
  'grad-norms': 'grad-norms',
  theory: 'theory',
  sweep: 'sweep --vary depth --values 5,10,20,50 --steps 0',
  train: 'train --configs off,on --lr 0.01,0.1',
  shattered: 'shattered --seeds 2',
  other: 'nonlinearity --acts relu',
};
const STREAMED = new Set(['train', 'sweep', 'shattered', 'nonlinearity', 'landscape', 'ics',
  'noisy-bn', 'input-shift']);
const DEBOUNCE_MS = 150;

let ARMS = { norms: {}, skips: {}, configs: {}, blocks: {} };
let CLAIMS = [];
let extraWords = []; // words of a grad-norms line the form does not show, kept as written
let pending = null; // debounce timer
let inflight = null; // { abort() } of the run being waited for
let shownLine = null; // the line whose report is drawn

// ---------- the command line ----------

function words(line) {
  const w = line.trim().split(/\s+/).filter(Boolean);
  if (w[0] === 'bn-lab') w.shift();
  return w;
}

function lineFromUrl() {
  const args = new URLSearchParams(location.search).get('args');
  return args && args.trim() ? words(args).join(' ') : 'grad-norms';
}

function urlOf(line) {
  return '/?args=' + encodeURIComponent(line);
}

// `--flag value` and `--flag=value` of a grad-norms line into the form's state; other words
// into `extra`.
function parseGradNorms(ws) {
  const s = JSON.parse(JSON.stringify(GN_DEFAULTS));
  const extra = [];
  for (let i = 1; i < ws.length; i++) {
    let flag = ws[i];
    let value = null;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) { value = flag.slice(eq + 1); flag = flag.slice(0, eq); }
    if (GN_VALUE_FLAGS.includes(flag)) {
      if (value === null) value = ws[++i] || '';
      switch (flag) {
        case '--depth': s.depth = value; break;
        case '--width': s.width = value; break;
        case '--batch': s.batch = value; break;
        case '--act': s.act = value; break;
        case '--init':
          if (value.startsWith('normal:')) { s.init = 'normal'; s.sigma = value.slice(7); } else s.init = value;
          break;
        case '--placement': s.placement = value; break;
        case '--residual-scale': s.beta = value; break;
        case '--dtype': s.dtype = value; break;
        case '--seeds': s.seeds = value; break;
        case '--seed': s.seed = value; break;
        case '--bn': s.norms = value === 'off' ? ['none'] : value === 'on' ? ['batch'] : ['none', 'batch']; break;
        case '--norm': s.norms = value.split(',').filter((n) => NORM_ORDER.includes(n)); break;
        case '--skips': {
          const st = skipsState(value);
          if (st) Object.assign(s, st); else extra.push('--skips', value);
          break;
        }
        case '--block': s.block = value; break;
        default: break;
      }
    } else if (flag === '--residual') {
      if (s.block === 'plain') s.block = 'residual';
    } else if (flag === '--skip-init') {
      s.skipinit = true;
    } else if (flag === '--affine') {
      s.affine = true;
    } else if (flag === '--no-affine') {
      s.affine = false;
    } else {
      extra.push(ws[i]);
    }
  }
  return { state: s, extra };
}

// The form's state as a grad-norms line: only what differs from the defaults.
function gradNormsLine(s, extra) {
  const d = GN_DEFAULTS;
  const w = ['grad-norms'];
  const add = (flag, v, def) => { if (String(v) !== String(def)) w.push(flag, String(v)); };
  add('--depth', s.depth, d.depth);
  const norms = NORM_ORDER.filter((n) => s.norms.includes(n));
  if (norms.join(',') !== d.norms.join(',')) w.push('--norm', norms.join(','));
  add('--width', s.width, d.width);
  add('--batch', s.batch, d.batch);
  add('--act', s.act, d.act);
  add('--init', s.init === 'normal' ? 'normal:' + s.sigma : s.init, d.init);
  add('--placement', s.placement, d.placement);
  if (!s.affine) w.push('--no-affine');
  const arm = skipArm(s.block, s.skipinit);
  if (s.vsplain && s.block !== 'plain') {
    w.push('--skips', 'off,' + arm);
    if (s.skipinit && !arm.endsWith('-skipinit')) w.push('--skip-init');
  } else {
    if (s.block === 'residual') w.push('--residual');
    if (s.block === 'basic' || s.block === 'preact') w.push('--block', s.block);
    if (s.skipinit) w.push('--skip-init');
  }
  if (s.block !== 'plain') add('--residual-scale', s.beta, d.beta);
  add('--dtype', s.dtype, d.dtype);
  add('--seeds', s.seeds, d.seeds);
  add('--seed', s.seed, d.seed);
  return w.concat(extra).join(' ');
}

function readForm() {
  return {
    depth: $('depth').value, width: $('width').value, batch: $('batch').value, act: $('act').value,
    init: $('init').value, sigma: $('sigma').value,
    norms: Array.from(document.querySelectorAll('input[name=norm]:checked')).map((c) => c.value),
    placement: $('placement').value, affine: $('affine').checked, block: $('block').value,
    skipinit: $('skipinit').checked, vsplain: $('vsplain').checked, beta: $('beta').value, dtype: $('dtype').value, seeds: $('seeds').value, seed: $('seed').value,
  };
}

function writeForm(s) {
  const first = String(s.depth).split(',')[0];
  $('depth').value = first;
  $('depth-range').value = first;
  for (const k of ['width', 'batch', 'act', 'init', 'sigma', 'placement', 'beta', 'dtype', 'seeds', 'seed']) {
    $(k).value = s[k];
  }
  // A block the select does not list (a typo on the line) shows as plain; the server refuses it.
  $('block').value = SKIP_ARMS[s.block] ? SKIP_ARMS[s.block][0] : 'plain';
  $('affine').checked = s.affine;
  $('skipinit').checked = s.skipinit;
  $('vsplain').checked = s.vsplain;
  for (const c of document.querySelectorAll('input[name=norm]')) c.checked = s.norms.includes(c.value);
  enableDependents();
}

function enableDependents() {
  $('sigma').disabled = $('init').value !== 'normal';
  $('beta').disabled = $('block').value === 'plain';
  $('vsplain').disabled = $('block').value === 'plain';
  const normed = Array.from(document.querySelectorAll('input[name=norm]:checked')).some((c) => c.value !== 'none');
  $('placement').disabled = !normed;
  $('affine').disabled = !normed;
}

// Show `line` in the controls (without running it).
function showLine(line) {
  const ws = words(line);
  const cmd = ws[0] || '';
  $('cmdline').value = ws.join(' ');
  const known = Object.prototype.hasOwnProperty.call(STARTERS, cmd) ? cmd : 'other';
  $('command').value = known;
  const isGn = cmd === 'grad-norms';
  $('gn').hidden = !isGn;
  $('generic').hidden = isGn;
  if (isGn) {
    const { state, extra } = parseGradNorms(ws);
    extraWords = extra;
    writeForm(state);
  } else {
    $('generic-hint').textContent = 'Runs as `bn-lab ' + ws.join(' ') + '` would, in memory; flags as in `bn-lab ' + cmd + ' --help`.';
  }
  const claim = CLAIMS.find((c) => c.command === ws.join(' ') || c.control === ws.join(' '));
  $('claims').value = claim ? claim.file : '';
  $('claim-text').textContent = claim ? 'Claim: “' + claim.claim + '”' : '';
}

// A new line from the user: shown, put in the URL (pushState) and run, after `delay` ms
// (the debounce; every change in the meantime restarts the wait).
function change(line, delay) {
  line = words(line).join(' ');
  $('cmdline').value = line;
  clearTimeout(pending);
  pending = setTimeout(() => {
    pending = null;
    if (urlOf(line) !== location.pathname + location.search) {
      history.pushState({ args: line }, '', urlOf(line));
    }
    run(line);
  }, delay);
}

// ---------- running ----------

function setBusy(on, text) {
  $('busy').classList.toggle('running', on);
  $('stop').disabled = !on;
  $('status').textContent = text || '';
  $('charts').classList.toggle('stale', on);
}

function cancelInflight() {
  if (inflight) { inflight.abort(); inflight = null; }
}

function run(line) {
  cancelInflight();
  $('error').textContent = '';
  const cmd = words(line)[0];
  if (STREAMED.has(cmd) && typeof EventSource !== 'undefined') stream(line);
  else fetchRun(line);
}

// A busy server (a class on one machine) answers 503 with Retry-After: ask again after that
// many seconds, with a little jitter so that a room of browsers does not come back at once,
// up to MAX_RETRIES times, unless a newer request has replaced this one.
const MAX_RETRIES = 20;

function fetchRun(line, attempt = 0) {
  const ctl = new AbortController();
  let timer = null;
  const mine = { abort: () => { ctl.abort(); if (timer) clearTimeout(timer); } };
  inflight = mine;
  const t0 = performance.now();
  setBusy(true, attempt > 0 ? 'server busy: waiting for a free core…' : 'computing…');
  $('progress').removeAttribute('value');
  fetch('/api/run?args=' + encodeURIComponent(line), { signal: ctl.signal })
    .then((r) => r.json().then((body) => ({ status: r.status, body, retry: r.headers.get('Retry-After') })))
    .then(({ status, body, retry }) => {
      if (inflight !== mine) return;
      if (status === 503 && retry && attempt < MAX_RETRIES) {
        const wait = 1000 * (Number(retry) || 1) + Math.random() * 500;
        timer = setTimeout(() => { if (inflight === mine) fetchRun(line, attempt + 1); }, wait);
        return;
      }
      inflight = null;
      setBusy(false, '');
      if (status === 200) {
        $('status').textContent = 'answered in ' + Math.round(performance.now() - t0) + ' ms';
        render(body.command, body.report);
      } else {
        $('error').textContent = body.error || ('the server answered ' + status);
      }
    })
    .catch((e) => {
      if (e.name === 'AbortError' || inflight !== mine) return;
      inflight = null;
      setBusy(false, '');
      $('error').textContent = 'no answer from the server: ' + e.message;
    });
}

// Server-sent events of /api/stream: progress, partial (loss curves grow), report, error.
// If the stream cannot start (a refused command answers a plain 400; an older server has no
// stream), /api/run answers instead, with the same report or the one-line error.
function stream(line) {
  const es = new EventSource('/api/stream?args=' + encodeURIComponent(line));
  const mine = { abort: () => es.close() };
  inflight = mine;
  let opened = false;
  const partial = new Map();
  setBusy(true, 'starting…');
  $('progress').value = 0;
  const done = () => { es.close(); if (inflight === mine) inflight = null; setBusy(false, $('status').textContent); };
  es.onopen = () => { opened = true; };
  es.addEventListener('progress', (ev) => {
    const p = JSON.parse(ev.data);
    if (p.total > 0) { $('progress').max = p.total; $('progress').value = p.done; }
    $('status').textContent = p.total > 0 ? 'running: ' + Math.floor((100 * p.done) / p.total) + '%' : 'running';
  });
  es.addEventListener('partial', (ev) => {
    for (const pt of JSON.parse(ev.data).points) {
      if (!partial.has(pt.arm)) partial.set(pt.arm, []);
      partial.get(pt.arm).push([pt.step, pt.loss]);
    }
    drawPartial(partial);
  });
  es.addEventListener('report', (ev) => {
    const body = JSON.parse(ev.data);
    done();
    $('status').textContent = 'done';
    render(body.command, body.report);
  });
  es.addEventListener('error', (ev) => {
    if (ev.data) {
      done();
      $('error').textContent = JSON.parse(ev.data).error;
      return;
    }
    // A network error: before the stream opened, ask /api/run; after, say so.
    if (inflight !== mine) return;
    es.close();
    if (!opened) { inflight = null; fetchRun(line); return; }
    done();
    $('error').textContent = 'the stream ended before its report';
  });
}

// ---------- drawing ----------

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function h(tag, text, parent) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

// Numbers as bn-lab prints them (src/stats.rs fmt_num): 3 decimals in [0.01, 1e4), else 2.00e-5.
function fmt(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v !== 'number') return String(v);
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return '0';
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const a = Math.abs(v);
  if (a >= 1e-2 && a < 1e4) return v.toFixed(3);
  return v.toExponential(2).replace('e+', 'e');
}

const SUP = { '-': '⁻', 0: '⁰', 1: '¹', 2: '²', 3: '³', 4: '⁴', 5: '⁵', 6: '⁶', 7: '⁷', 8: '⁸', 9: '⁹' };
function decade(k) {
  return '10' + String(k).split('').map((c) => SUP[c]).join('');
}

function geomean(vals) {
  const ok = vals.filter((v) => Number.isFinite(v) && v > 0);
  if (!ok.length) return NaN;
  return Math.exp(ok.reduce((a, v) => a + Math.log(v), 0) / ok.length);
}

function niceStep(span, n) {
  const raw = span / n;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

function markerPath(kind, x, y, r) {
  switch (kind) {
    case 'square': return `M${x - r},${y - r}h${2 * r}v${2 * r}h${-2 * r}z`;
    case 'diamond': return `M${x},${y - r * 1.3}l${r * 1.3},${r * 1.3}l${-r * 1.3},${r * 1.3}l${-r * 1.3},${-r * 1.3}z`;
    case 'triangle-up': return `M${x},${y - r * 1.3}l${r * 1.2},${r * 2.1}h${-r * 2.4}z`;
    case 'triangle-down': return `M${x},${y + r * 1.3}l${r * 1.2},${-r * 2.1}h${-r * 2.4}z`;
    case 'cross': return `M${x - r},${y - r}L${x + r},${y + r}M${x - r},${y + r}L${x + r},${y - r}`;
    default: return `M${x - r},${y}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0`;
  }
}

// One panel: series of [x, y] on a log y axis (decade ticks) and a linear (or log) x axis.
// series: {label, color, marker, dash, width, points, what}; notes: {series index, text}.
function chart(spec) {
  const W = spec.width;
  const H = spec.height;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': spec.title });
  el('title', {}, svg).textContent = spec.title;
  const m = { l: 74, r: 24, t: 34, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const ys = [];
  const xs = [];
  for (const s of spec.series) {
    for (const [x, y] of s.points) {
      if (Number.isFinite(y) && y > 0) ys.push(y);
      if (Number.isFinite(x)) xs.push(x);
    }
  }
  const t = el('text', { x: m.l, y: 22, 'font-size': 18, 'font-weight': 'bold', class: 'chart-title' }, svg);
  t.textContent = spec.title;
  if (!ys.length) {
    el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', 'font-size': 18, class: 'empty' }, svg)
      .textContent = spec.empty || 'no finite positive values';
    return svg;
  }
  let lo = Math.floor(Math.log10(Math.min(...ys)));
  let hi = Math.ceil(Math.log10(Math.max(...ys)));
  if (hi <= lo) hi = lo + 1;
  let [x0, x1] = spec.xrange || [Math.min(...xs), Math.max(...xs)];
  if (x1 <= x0) { x0 -= 0.5; x1 += 0.5; }
  const xlog = spec.xlog && x0 > 0;
  const fx = (x) => m.l + pw * (xlog ? Math.log(x / x0) / Math.log(x1 / x0) : (x - x0) / (x1 - x0));
  const fy = (y) => m.t + ph * (1 - (Math.log10(y) - lo) / (hi - lo));
  const axes = el('g', { class: 'axes' }, svg);
  el('rect', { x: m.l, y: m.t, width: pw, height: ph, fill: 'none', stroke: '#000', 'stroke-width': 1.5 }, axes);
  // y: one tick per decade (every k-th labelled when there are many).
  const every = Math.max(1, Math.ceil((hi - lo) / Math.max(2, Math.floor(ph / 34))));
  for (let k = lo; k <= hi; k++) {
    const y = fy(Math.pow(10, k));
    el('line', { x1: m.l, x2: m.l + pw, y1: y, y2: y, stroke: '#ccc', 'stroke-width': 1 }, axes);
    if ((k - lo) % every === 0) {
      el('text', { x: m.l - 6, y: y + 6, 'text-anchor': 'end', 'font-size': 16, class: 'ytick' }, axes).textContent = decade(k);
    }
    // Within a decade or two, 2× and 5× ticks too, so the values can be read.
    for (const f of hi - lo <= 2 && k < hi ? [2, 5] : []) {
      const yf = fy(f * Math.pow(10, k));
      el('line', { x1: m.l, x2: m.l + pw, y1: yf, y2: yf, stroke: '#e4e4e4', 'stroke-width': 1 }, axes);
      el('text', { x: m.l - 6, y: yf + 6, 'text-anchor': 'end', 'font-size': 16, class: 'ytick' }, axes)
        .textContent = fmt(f * Math.pow(10, k)).replace(/\.?0+$/, '');
    }
  }
  // x: nice linear ticks, or decades on a log axis.
  const xticks = [];
  if (xlog) {
    for (let k = Math.ceil(Math.log10(x0)); k <= Math.floor(Math.log10(x1)); k++) xticks.push(Math.pow(10, k));
    if (xticks.length < 2) xticks.splice(0, xticks.length, ...new Set(xs));
  } else {
    let step = niceStep(x1 - x0, Math.max(2, Math.floor(pw / 80)));
    if (spec.integerX) step = Math.max(1, Math.round(step));
    for (let v = Math.ceil(x0 / step) * step; v <= x1 + 1e-9; v += step) xticks.push(v);
  }
  for (const v of xticks) {
    const x = fx(v);
    el('line', { x1: x, x2: x, y1: m.t + ph, y2: m.t + ph + 6, stroke: '#000', 'stroke-width': 1.5 }, axes);
    el('text', { x, y: m.t + ph + 24, 'text-anchor': 'middle', 'font-size': 16, class: 'xtick' }, axes)
      .textContent = Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? fmt(v) : String(+v.toPrecision(6));
  }
  el('text', { x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle', 'font-size': 16 }, svg).textContent = spec.xlabel;
  el('text', { x: 16, y: m.t + ph / 2, 'text-anchor': 'middle', 'font-size': 16, transform: `rotate(-90 16 ${m.t + ph / 2})` }, svg)
    .textContent = spec.ylabel;
  const plot = el('g', { class: 'series' }, svg);
  spec.series.forEach((s, i) => {
    const g = el('g', { class: 'line', 'data-label': s.label }, plot);
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && y > 0);
    if (!pts.length) return;
    const d = pts.map(([x, y], j) => (j ? 'L' : 'M') + fx(x).toFixed(1) + ',' + fy(y).toFixed(1)).join('');
    el('path', {
      d, fill: 'none', stroke: s.color, 'stroke-width': s.width || 3,
      'stroke-dasharray': s.dash || 'none', 'stroke-linecap': 'round', 'stroke-linejoin': 'round',
    }, g);
    if (s.marker) {
      const stride = Math.max(1, Math.ceil(pts.length / 25));
      const md = pts.filter((_, j) => (j + i) % stride === 0 || j === 0)
        .map(([x, y]) => markerPath(s.marker, fx(x), fy(y), 5)).join('');
      el('path', {
        d: md, class: 'marker', fill: s.marker === 'cross' ? 'none' : s.color,
        stroke: s.marker === 'cross' ? s.color : '#fff', 'stroke-width': s.marker === 'cross' ? 3 : 1,
      }, g);
    }
    if (s.what) {
      for (const [x, y] of pts) {
        const c = el('circle', { cx: fx(x).toFixed(1), cy: fy(y).toFixed(1), r: 7, class: 'hit' }, g);
        el('title', {}, c).textContent = `${s.label} · ${spec.xname || 'x'} ${+x.toPrecision(6)}: ${s.what} = ${fmt(y)}`;
      }
    }
  });
  // Notes beside their lines at the input end, pushed apart so they do not overlap.
  const notes = (spec.notes || []).map((n) => {
    const s = spec.series[n.series];
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && y > 0);
    if (!pts.length) return null;
    // Below the line where it rises to the right, above it where it falls (as on the slides).
    const p = pts[0];
    const q = pts[Math.min(pts.length - 1, Math.max(1, Math.floor(pts.length / 4)))];
    const rises = fy(q[1]) < fy(p[1]) - 4;
    const flat = Math.abs(fy(q[1]) - fy(p[1])) <= 4;
    return { text: n.text, color: s.color, x: fx(p[0]) + (rises ? 26 : 10), y: fy(p[1]) + (rises ? 24 : flat ? 26 : -22) };
  }).filter(Boolean).sort((a, b) => a.y - b.y);
  const gap = 22;
  for (let i = 0; i < notes.length; i++) {
    notes[i].y = Math.max(notes[i].y, m.t + 18, i ? notes[i - 1].y + gap : -Infinity);
  }
  for (let i = notes.length - 1; i >= 0; i--) {
    notes[i].y = Math.min(notes[i].y, m.t + ph - 8, i < notes.length - 1 ? notes[i + 1].y - gap : Infinity);
  }
  const ng = el('g', {
    class: 'notes', 'data-left': m.l + 6, 'data-right': m.l + pw - 4,
    'data-top': m.t + 4, 'data-bottom': m.t + ph - 2, 'data-gap': gap,
  }, svg);
  for (const n of notes) {
    const tx = el('text', {
      x: n.x, y: n.y + 6, 'font-size': 17, 'font-weight': 'bold', fill: n.color,
      stroke: '#fff', 'stroke-width': 4, 'paint-order': 'stroke', class: 'note',
    }, ng);
    tx.textContent = n.text;
    tx.style.fill = n.color;
  }
  return svg;
}

// Once `svg` is on the page (text has a size only then): notes stay inside the plot, clear of
// the tick labels left of it and below it. A note that would run past the plot's right edge
// moves left, but never past its left edge (the y tick labels are there); one wider than the
// plot wraps at spaces; then the notes are pushed apart again by their drawn heights.
function fitNotes(svg) {
  // A title wider than the chart takes a smaller font (down to 13), not the next panel's room.
  const title = svg.querySelector('text.chart-title');
  const room = svg.viewBox.baseVal.width - Number(title.getAttribute('x')) - 4;
  const tw = title.getBBox().width;
  if (tw > room) title.setAttribute('font-size', Math.max(13, Math.floor(18 * room / tw)));
  for (const g of svg.querySelectorAll('g.notes')) {
    const [left, right, top, bottom, gap] = ['left', 'right', 'top', 'bottom', 'gap'].map((k) => Number(g.dataset[k]));
    const texts = Array.from(g.querySelectorAll('text'));
    for (const t of texts) {
      if (t.getBBox().width > right - left) wrapNote(t, left, right - left);
      const b = t.getBBox();
      const x = Math.max(left, Math.min(b.x, right - b.width));
      if (x !== b.x) moveNote(t, x - b.x, 0);
    }
    // Top to bottom by where they sit now: each below the one above, then back up from the
    // bottom edge where they ran past it (as chart() stacks them, with their real heights).
    texts.sort((a, b) => a.getBBox().y - b.getBBox().y);
    let floor = top;
    for (const t of texts) {
      const b = t.getBBox();
      if (b.y < floor) moveNote(t, 0, floor - b.y);
      floor = t.getBBox().y + t.getBBox().height + Math.max(0, gap - b.height);
    }
    let ceiling = bottom;
    for (const t of texts.slice().reverse()) {
      const b = t.getBBox();
      if (b.y + b.height > ceiling) moveNote(t, 0, ceiling - b.y - b.height);
      ceiling = t.getBBox().y - Math.max(0, gap - b.height);
    }
  }
  return svg;
}

// Shift a note (and its wrapped lines) by (dx, dy).
function moveNote(t, dx, dy) {
  for (const n of [t, ...t.querySelectorAll('tspan')]) {
    if (n.hasAttribute('x')) n.setAttribute('x', Number(n.getAttribute('x')) + dx);
    if (n === t) t.setAttribute('y', Number(t.getAttribute('y')) + dy);
  }
}

// Break a note's text at spaces into lines at most `width` wide, each starting at `x`; the
// text stays the same words, a space ending every line but the last.
function wrapNote(t, x, width) {
  const words = t.textContent.split(' ');
  t.textContent = '';
  t.setAttribute('x', x);
  let line = el('tspan', { x, dy: 0 }, t);
  for (const w of words) {
    const before = line.textContent;
    line.textContent = before ? before + ' ' + w : w;
    if (before && line.getComputedTextLength() > width) {
      line.textContent = before + ' ';
      line = el('tspan', { x, dy: '1.15em' }, t);
      line.textContent = w;
    }
  }
}

function panel(container, cls) {
  const d = h('div', null, container);
  d.className = 'panel ' + (cls || '');
  return d;
}

// The arm's look as on the slides: its normaliser's colour and marker; a standard block's arm
// the block's (its marker names the block, SkipInit train's SkipInit colour); with both skip arms, the arm
// with one-layer skips takes the skip style (src/plot/grad_norms.rs arm_style).
function armStyle(arm, report) {
  if (arm.block) {
    const st = (ARMS.blocks[arm.block + (arm.skip_init ? '-skipinit' : '')] || {})[arm.norm] || {};
    return { color: st.color || '#000', marker: st.marker || 'diamond' };
  }
  const skipsCompared = (report.config.skips || []).length > 1
    || new Set(report.arms.map((a) => a.residual)).size > 1;
  if (arm.residual && skipsCompared) {
    const st = ARMS.skips[arm.norm === 'off' ? 'off' : 'on'] || {};
    return { color: st.color || '#cc79a7', marker: st.marker || 'triangle-up' };
  }
  const st = ARMS.norms[arm.norm] || {};
  return { color: st.color || '#000', marker: st.marker || 'circle' };
}

function perLayer(arm, key) {
  const L = arm.depth;
  const out = [];
  for (let l = 0; l < L; l++) out.push([l + 1, geomean(arm.seeds.map((s) => s[key][l]))]);
  return out;
}

// The least-squares line through the usable points with the report's factor per layer (as
// src/plot/grad_norms.rs fit_line draws it): its two ends.
function fitLine(points, growth, L) {
  const ok = points.filter(([, y]) => Number.isFinite(y) && y > 0).map(([l, y]) => [l, Math.log(y)]);
  if (!ok.length || !(growth > 0)) return [];
  const ml = ok.reduce((a, p) => a + p[0], 0) / ok.length;
  const my = ok.reduce((a, p) => a + p[1], 0) / ok.length;
  return [1, L].map((l) => [l, Math.exp(my - Math.log(growth) * (l - ml))]);
}

function renderGradNorms(report) {
  const charts = $('charts');
  charts.className = '';
  const many = new Set(report.arms.map((a) => a.depth)).size > 1;
  const name = (a) => (many ? `${a.label}, L=${a.depth}` : a.label);
  const maxDepth = Math.max(...report.arms.map((a) => a.depth));
  const xrange = [1, Math.max(2, maxDepth)];
  const total = charts.clientWidth || 900;
  const wide = Math.floor((total - 10) * 0.62);
  const narrow = total - 10 - wide;
  const base = (a, i, key, what) => Object.assign(armStyle(a, report), {
    label: name(a), points: perLayer(a, key), what, width: 3,
  });
  // Standard blocks record 1 + 2L matrices: draw their per-block norm, without the per-matrix fit.
  const blocks = report.arms.some((a) => a.block);
  const wKey = (a) => (a.block ? 'block_weight_grad_norm' : 'weight_grad_norm');
  const wSeries = report.arms.map((a, i) => base(a, i, wKey(a), '‖∂L/∂W‖'));
  const fits = report.arms.filter((a) => !a.block).map((a) => ({
    label: name(a) + ' fit', color: '#000', dash: '9 6', width: 2,
    points: fitLine(perLayer(a, 'weight_grad_norm'), a.weight_grad.growth_per_layer, a.depth),
  }));
  const notes = report.arms.map((a, i) => {
    const w = a.weight_grad;
    const factor = w.growth_per_layer === null ? '–' : '×' + fmt(w.growth_per_layer);
    // A block arm's summary is the report's, over its 1 + 2L matrices (stem first), not its blocks.
    const per = a.block ? '/matrix, first/last matrix' : '/layer, first/last';
    return { series: i, text: `${name(a)}: ${factor}${per} ${fmt(w.ratio)} (${w.verdict})` };
  });
  const sSeries = report.arms.map((a, i) => base(a, i, 'activation_grad_norm', '‖∂L/∂h‖'));
  const theory = report.arms.filter((a) => a.theory && a.theory.profile && a.theory.profile.length).map((a) => {
    // The mean-field profile of ‖∂L/∂h_l‖², met with the measurement at the last layer (as
    // src/plot/grad_norms.rs theory_series draws it).
    const last = a.activation_grad.last;
    return Object.assign(armStyle(a, report), {
      label: name(a) + ' theory', dash: '2 7', width: 3, marker: null,
      points: a.theory.profile.map((p, l) => [l + 1, last * Math.sqrt(p)]),
    });
  });
  const fSeries = report.arms.map((a, i) => base(a, i, 'activation_std', 'std(h)'));
  // A standard block's forward spread is its residual stream's: its prediction dotted, from the
  // measured stem output h_0 (src/plot/grad_norms.rs stream_panel).
  const predicted = report.arms.filter((a) => a.block && a.stream && a.stream.predicted_std).map((a) => (
    Object.assign(armStyle(a, report), {
      label: name(a) + ' predicted', dash: '2 7', width: 3, marker: null,
      points: a.stream.predicted_std.slice(1).map((v, l) => [l + 1, v]),
    })));
  const common = {
    xlabel: blocks ? 'layer or block l (1 = input)' : 'layer l (1 = input)',
    xname: blocks ? 'layer/block' : 'layer', xrange, integerX: true,
  };
  fitNotes(panel(charts, 'wide').appendChild(chart(Object.assign({
    title: blocks ? 'Weight gradients per block √(‖∂L/∂W1‖²+‖∂L/∂W2‖²) (one-layer arms: per layer)'
      : 'Weight gradients ‖∂L/∂W_l‖ (dashed: fit)',
    ylabel: '‖∂L/∂W_l‖ (log)',
    width: wide, height: 540, series: wSeries.concat(fits), notes,
    empty: report.arms.every((a) => a.skip_init) ? 'SkipInit: α = 0, so every branch weight gradient is exactly 0' : null,
  }, common))));
  panel(charts).appendChild(chart(Object.assign({
    title: '‖∂L/∂h_l‖' + (theory.length ? ' · dotted: theory' : ''), ylabel: '‖∂L/∂h_l‖ (log)',
    width: narrow, height: 265, series: sSeries.concat(theory),
  }, common)));
  panel(charts).appendChild(chart(Object.assign({
    title: predicted.length ? 'std(h_l) · dotted: predicted' : 'Forward spread std(h_l)',
    ylabel: 'std(h_l) (log)', width: narrow, height: 265, series: fSeries.concat(predicted),
  }, common)));
  gradNormsTable(report, name);
  // SkipInit's branch matrices get exactly 0 at initialisation: no line on a log axis, and the
  // page says why rather than leave a line missing.
  const zero = report.arms.filter((a) => a.skip_init);
  if (zero.length) {
    const p = h('p', zero.map(name).join(', ') + ': no weight-gradient line. ' + (zero[0].weight_grad.verdict_reason || ''), $('numbers'));
    p.className = 'hint';
    p.id = 'skipinit-note';
  }
}

function swatch(style, td) {
  const s = h('span', { square: '■', circle: '●', diamond: '◆', 'triangle-up': '▲', 'triangle-down': '▼', cross: '✕' }[style.marker] || '●', td);
  s.className = 'swatch';
  s.style.color = style.color;
  s.setAttribute('aria-hidden', 'true');
}

function gradNormsTable(report, name) {
  const t = h('table', null, $('numbers'));
  t.className = 'numbers';
  t.id = 'factors';
  const head = h('tr', null, h('thead', null, t));
  for (const c of ['arm', '‖∂L/∂W_l‖ per layer', 'first/last', 'verdict', '‖∂L/∂h_l‖² per layer', 'theory']) h('th', c, head);
  const body = h('tbody', null, t);
  for (const a of report.arms) {
    const tr = h('tr', null, body);
    const td = h('td', null, tr);
    swatch(armStyle(a, report), td);
    td.appendChild(document.createTextNode(' ' + name(a)));
    const w = a.weight_grad;
    h('td', w.growth_per_layer === null ? '–' : '×' + fmt(w.growth_per_layer), tr);
    h('td', fmt(w.ratio), tr);
    h('td', w.verdict, tr).title = w.verdict_basis || '';
    h('td', a.measured_rate === null ? '–' : '×' + fmt(a.measured_rate), tr);
    h('td', a.theory ? '×' + fmt(a.theory.rate) : '–', tr);
  }
}

// Training curves: loss per arm (and learning rate) against the step, log y.
function lossSeries(report) {
  const lrs = Array.from(new Set(report.runs.map((r) => r.lr)));
  const dashes = ['none', '9 5', '2 6', '12 4 2 4'];
  return report.runs.map((r) => {
    // The configuration's look (SkipInit its own, src/plot/arms.rs arm_color); files written
    // before `arm` was recorded go by the normaliser.
    const st = ARMS.configs[r.arm] || ARMS.norms[r.norm] || {};
    const hst = r.history || {};
    return {
      label: `${r.label}, lr ${r.lr}`, color: st.color || '#000', marker: st.marker || 'circle',
      dash: dashes[lrs.indexOf(r.lr) % dashes.length], what: 'train loss',
      points: (hst.eval_steps || []).map((s, j) => [s, (hst.train_loss || [])[j]]),
    };
  });
}

function legend(series, parent) {
  const ul = h('ul', null, parent);
  ul.className = 'legend';
  for (const s of series) {
    const li = h('li', null, ul);
    swatch(s, li);
    li.appendChild(document.createTextNode(' ' + s.label));
  }
}

function renderTrain(report) {
  const charts = $('charts');
  charts.className = 'single';
  const series = lossSeries(report);
  panel(charts).appendChild(chart({
    title: 'Training loss (evaluated every ' + report.config.eval_every + ' steps)', ylabel: 'train loss (log)',
    xlabel: 'step', xname: 'step', width: charts.clientWidth || 900, height: 460, series,
  }));
  legend(series, charts);
}

// Loss curves as they stream in: {arm key: [[step, loss], ...]}.
function drawPartial(partial) {
  const charts = $('charts');
  charts.textContent = '';
  charts.className = 'single';
  // The arm's normaliser is the one whose label starts the arm's name (`BN on lr=0.1`); what
  // follows the label (the learning rate) picks the dash, as in the final chart.
  const dashes = ['none', '9 5', '2 6', '12 4 2 4'];
  const rests = [];
  const series = Array.from(partial.entries()).map(([arm, pts], i) => {
    const looks = Object.values(ARMS.configs).length ? Object.values(ARMS.configs) : Object.values(ARMS.norms);
    const st = looks
      .filter((n) => arm === n.label || arm.startsWith(n.label + ' ') || arm.startsWith(n.label + ','))
      .sort((a, b) => b.label.length - a.label.length)[0];
    const rest = st ? arm.slice(st.label.length) : arm;
    if (!rests.includes(rest)) rests.push(rest);
    return {
      label: arm, color: st ? st.color : ['#000', '#e69f00', '#56b4e9', '#009e73'][i % 4],
      marker: st ? st.marker : 'circle', dash: dashes[rests.indexOf(rest) % dashes.length],
      what: 'loss', points: pts,
    };
  });
  panel(charts).appendChild(chart({
    title: 'Mini-batch loss so far', ylabel: 'loss (log)', xlabel: 'step', xname: 'step',
    width: charts.clientWidth || 900, height: 460, series,
  }));
  legend(series, charts);
}

function renderSweep(report) {
  const charts = $('charts');
  charts.className = 'single';
  const byArm = new Map();
  for (const p of report.means || []) {
    if (!byArm.has(p.arm)) byArm.set(p.arm, []);
    byArm.get(p.arm).push(p);
  }
  const vary = report.config.vary || 'value';
  const series = Array.from(byArm.entries()).map(([arm, ps]) => {
    const st = ARMS.norms[arm] || {};
    return {
      label: ps[0].label, color: st.color || '#000', marker: st.marker || 'circle', what: 'first/last',
      points: ps.map((p) => [p.value, p.grad_ratio]),
    };
  });
  const vals = (report.means || []).map((p) => p.value).filter((v) => v > 0);
  panel(charts).appendChild(chart({
    title: '‖∂L/∂W_1‖ / ‖∂L/∂W_L‖ against ' + vary, ylabel: 'first/last (log)', xlabel: vary, xname: vary,
    xlog: vals.length > 1 && Math.max(...vals) / Math.min(...vals) > 20,
    width: charts.clientWidth || 900, height: 420, series,
  }));
  legend(series, charts);
}

// theory: BatchNorm's gradient growth factor per layer λ(B) against the batch, one line per
// activation (the report's numbers; the colours are a fixed list, not arms).
function renderTheory(report) {
  const charts = $('charts');
  charts.className = 'single';
  const colors = ['#d55e00', '#0072b2', '#009e73', '#cc79a7', '#000000'];
  const markers = ['square', 'circle', 'triangle-up', 'diamond', 'cross'];
  const batches = report.config.batches || [];
  const series = (report.bn || []).map((b, i) => ({
    label: b.act, color: colors[i % 5], marker: markers[i % 5], what: 'λ(B)',
    points: (b.lambda || []).map((v, j) => [batches[j], v]),
  }));
  panel(charts).appendChild(chart({
    title: 'With BatchNorm: gradient factor per layer λ(B) (Yang et al. 2019)', ylabel: 'λ(B) (log)',
    xlabel: 'batch B', xname: 'B', xlog: true, width: charts.clientWidth || 900, height: 380, series,
  }));
  legend(series, charts);
}

// shattered: the slide's headline, the lag-1 correlation of dy/dx against depth per
// architecture, here |mean over seeds| on a log axis, with the white-noise band dashed and the
// deepest value beside each line (styles as src/plot/shattered.rs arch_style).
function renderShattered(report) {
  const charts = $('charts');
  charts.className = 'single';
  const cfg = report.config;
  const depths = cfg.depths.slice().sort((a, b) => a - b);
  const deep = depths[depths.length - 1];
  const bn = ARMS.norms[cfg.bn] || {};
  const green = bn.color === '#009e73';
  const looks = {
    feedforward: ARMS.norms.off || {},
    'feedforward+bn': bn,
    'resnet+bn': { color: green ? '#000000' : '#009e73', marker: bn.marker === 'triangle-up' ? 'diamond' : 'triangle-up' },
    resnet: { color: bn.color === '#cc79a7' ? '#e69f00' : '#cc79a7', marker: bn.marker === 'triangle-down' ? 'cross' : 'triangle-down' },
  };
  // The standard blocks: the colours and markers the four above leave free, in turn.
  const taken = Object.values(looks);
  const freeColors = ['#56b4e9', '#000000', '#e69f00', '#009e73', '#cc79a7', '#0072b2', '#d55e00']
    .filter((c) => taken.every((t) => t.color !== c));
  const freeMarkers = ['diamond', 'cross', 'triangle-up', 'triangle-down', 'circle', 'square']
    .filter((m) => taken.every((t) => t.marker !== m));
  ['preact', 'preact+bn', 'preact+skipinit', 'basic+bn'].forEach((arch, k) => {
    looks[arch] = { color: freeColors[k % freeColors.length], marker: freeMarkers[k % freeMarkers.length] };
  });
  const series = cfg.archs.map((arch) => {
    const st = looks[arch] || {};
    return {
      label: arch, color: st.color || '#000', marker: st.marker || 'circle', what: '|lag-1 r|',
      points: depths.map((d) => {
        const a = report.arms.find((x) => x.name === arch && x.depth === d);
        return [d, a ? Math.abs(a.lag1_correlation) : NaN];
      }),
    };
  });
  const notes = cfg.archs.map((arch, i) => {
    const a = report.arms.find((x) => x.name === arch && x.depth === deep);
    return { series: i, text: `${arch}: r = ${fmt(a ? a.lag1_correlation : NaN)} at L = ${deep}` };
  });
  const pad = Math.max(1, (deep - depths[0]) * 0.06);
  series.push({
    label: `white noise: |r| < ${fmt(report.mean_noise_band)}`, color: '#777', dash: '8 6', width: 2,
    points: [[depths[0] - pad, report.mean_noise_band], [deep + pad, report.mean_noise_band]],
  });
  fitNotes(panel(charts).appendChild(chart({
    title: `Lag-1 correlation of dy/dx against depth (|mean over ${cfg.seeds} seeds|)`,
    ylabel: '|lag-1 correlation r| (log)', xlabel: 'depth L (hidden layers)', xname: 'L', integerX: true,
    xrange: [depths[0] - pad, deep + pad], width: charts.clientWidth || 900, height: 440, series, notes,
  })));
  legend(series, charts);
}

// Every list of objects in the report as a table of its plain fields.
function genericTables(report) {
  for (const [key, v] of Object.entries(report)) {
    if (key === 'points' && report.means) continue; // a sweep: the means over seeds suffice
    if (key === 'config' || key === 'tool' || !Array.isArray(v) || !v.length || typeof v[0] !== 'object') continue;
    const cols = Object.keys(v[0]).filter((c) => v.some((r) => r[c] !== null && typeof r[c] !== 'object'));
    if (!cols.length) continue;
    h('h3', key, $('numbers'));
    const t = h('table', null, $('numbers'));
    t.className = 'numbers';
    const head = h('tr', null, h('thead', null, t));
    for (const c of cols) h('th', c, head);
    const body = h('tbody', null, t);
    for (const r of v.slice(0, 40)) {
      const tr = h('tr', null, body);
      for (const c of cols) {
        const td = h('td', typeof r[c] === 'object' && r[c] !== null ? '…' : fmt(r[c]), tr);
        if (typeof r[c] === 'string') td.style.textAlign = 'left';
      }
    }
  }
}

function render(command, report) {
  shownLine = command;
  $('charts').textContent = '';
  $('numbers').textContent = '';
  $('raw-json').textContent = JSON.stringify(report, null, 1);
  const cmd = words(command)[0];
  try {
    if (cmd === 'grad-norms') renderGradNorms(report);
    else if (cmd === 'train' && report.runs) { renderTrain(report); genericTables(report); }
    else if (cmd === 'theory' && report.bn) { renderTheory(report); genericTables(report); }
    else if (cmd === 'sweep' && report.means) { renderSweep(report); genericTables(report); }
    else if (cmd === 'shattered' && report.arms) { renderShattered(report); genericTables(report); }
    else genericTables(report);
  } catch (e) {
    $('error').textContent = 'cannot draw this report: ' + e.message;
  }
  document.body.dataset.shown = command;
}

// ---------- wiring ----------

function onFormInput(ev) {
  if (ev && ev.target && ev.target.id === 'depth-range') $('depth').value = $('depth-range').value;
  if (ev && ev.target && ev.target.id === 'depth') $('depth-range').value = $('depth').value;
  const boxes = Array.from(document.querySelectorAll('input[name=norm]'));
  if (!boxes.some((c) => c.checked) && ev && ev.target) ev.target.checked = true; // keep one arm
  enableDependents();
  change(gradNormsLine(readForm(), extraWords), DEBOUNCE_MS);
}

function fillClaims() {
  const sel = $('claims');
  for (const c of CLAIMS) {
    const o = h('option', `${c.file.slice(0, 2)} ${c.title}` + (c.refused ? ' (not on the server)' : ''), sel);
    o.value = c.file;
    o.disabled = !!c.refused;
    o.title = c.refused ? c.refused : 'bn-lab ' + c.command;
  }
}

function init() {
  $('gn').addEventListener('input', onFormInput);
  $('gn').addEventListener('submit', (e) => e.preventDefault());
  $('cmdline').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { showLine($('cmdline').value); change($('cmdline').value, 0); }
  });
  $('run').addEventListener('click', () => change($('cmdline').value, 0));
  $('copy').addEventListener('click', () => {
    const text = 'bn-lab ' + $('cmdline').value;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    $('status').textContent = 'copied: ' + text;
  });
  $('stop').addEventListener('click', () => { cancelInflight(); setBusy(false, 'stopped'); });
  $('command').addEventListener('change', () => {
    const line = STARTERS[$('command').value];
    showLine(line);
    change(line, 0);
  });
  $('claims').addEventListener('change', () => {
    const c = CLAIMS.find((x) => x.file === $('claims').value);
    if (!c) return;
    showLine(c.command);
    change(c.command, 0);
  });
  window.addEventListener('popstate', (e) => {
    const line = (e.state && e.state.args) || lineFromUrl();
    clearTimeout(pending);
    showLine(line);
    run(line);
  });
  const line = lineFromUrl();
  history.replaceState({ args: line }, '', urlOf(line));
  Promise.all([
    fetch('/api/arms').then((r) => r.json()).then((a) => { ARMS = a; }),
    fetch('/api/claims').then((r) => r.json()).then((c) => { CLAIMS = c; fillClaims(); }),
  ]).catch(() => {}).then(() => {
    showLine(line);
    run(line);
  });
}

document.addEventListener('DOMContentLoaded', init);
