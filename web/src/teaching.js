// The teaching charts: the insurance fund over time, the fair basis as it
// decays toward the funding, and a position's PnL on an inverse contract
// against a linear one (plain SVG: a price axis, not a time axis).
import { ColorType, LineSeries, createChart } from 'lightweight-charts';

function smallChart(el) {
  return createChart(el, {
    autoSize: true,
    layout: { background: { type: ColorType.Solid, color: '#11161d' }, textColor: '#c9d1d9' },
    grid: { vertLines: { color: '#1c232c' }, horzLines: { color: '#1c232c' } },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { borderColor: '#2b3440' },
  });
}

function line(chart, { color, title }, precision = 2) {
  return chart.addSeries(LineSeries, {
    color, lineWidth: 2, title, priceLineVisible: false,
    priceFormat: { type: 'price', precision, minMove: 10 ** -precision },
  });
}

// GET /insurance rows (walletBalance in minor units) as a line, one point a second.
export class FundChart {
  constructor(el) {
    this.el = el;
    this.series = line(smallChart(el), { color: '#3fb950', title: 'insurance fund' }, 8); /* to the satoshi */
  }

  set(rows, scale) {
    const by = new Map();
    // Oldest first, so that of rows in one second the last one stands.
    const sorted = [...rows].reverse().sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    for (const r of sorted) by.set(Math.floor(Date.parse(r.timestamp) / 1000), r.walletBalance / scale);
    const data = [...by.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
    this.series.setData(data);
    this.el.dataset.points = String(data.length);
    this.el.dataset.last = data.length ? String(data[data.length - 1].value) : '';
  }
}

// Lines fed by the instrument table, a point a minute each (the minute's
// last value stands): the fair basis (mark - index) decaying toward each
// funding; the indicative funding rate as each minute's premium sample
// moves it, beside the rate the next funding pays.
export class MinuteLines {
  constructor(el, lines, precision = 2) {
    this.el = el;
    const chart = smallChart(el);
    this.series = lines.map((l) => line(chart, l, precision));
    this.points = lines.map(() => []);
  }

  reset() {
    this.points = this.points.map(() => []);
    for (const s of this.series) s.setData([]);
    this.el.dataset.points = '0';
  }

  add(ms, ...values) {
    const time = Math.floor(ms / 60000) * 60;
    values.forEach((value, k) => {
      if (value == null || Number.isNaN(value)) return;
      const pts = this.points[k];
      const last = pts[pts.length - 1];
      if (last && last.time === time) last.value = value;
      else if (!last || time > last.time) pts.push({ time, value });
      else return;
      this.series[k].update(pts[pts.length - 1]);
    });
    this.el.dataset.points = String(this.points[0].length);
  }
}

const NS = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

// PnL as a share of the position's value at entry, at prices from half to
// one and a half times the entry: inverse (margined and paid in the coin:
// 1 - E/p for a long) against linear (p/E - 1), a short the opposite.
export function pnlCurves(el, { side, entry, mark, liq, symbol }) {
  const W = 640, H = 240, L = 48, R = 12, T = 12, B = 28;
  const lo = entry * 0.5, hi = entry * 1.5;
  const sign = side === 'Sell' ? -1 : 1;
  const inv = (p) => sign * (1 - entry / p);
  const lin = (p) => sign * (p / entry - 1);
  const x = (p) => L + ((p - lo) / (hi - lo)) * (W - L - R);
  const y = (v) => T + ((0.6 - Math.max(-0.6, Math.min(0.6, v))) / 1.2) * (H - T - B);
  const line = (f) => {
    const pts = [];
    for (let k = 0; k <= 100; k++) {
      const p = lo + ((hi - lo) * k) / 100;
      pts.push(`${x(p).toFixed(1)},${y(f(p)).toFixed(1)}`);
    }
    return pts.join(' ');
  };
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img' });
  s.append(svg('line', { x1: L, x2: W - R, y1: y(0), y2: y(0), class: 'axis' }));
  for (const v of [-0.5, -0.25, 0.25, 0.5])
    s.append(svg('text', { x: 4, y: y(v) + 4, class: 'tick' }, `${v > 0 ? '+' : ''}${v * 100}%`));
  for (const p of [lo, entry, hi]) s.append(svg('text', { x: x(p) - 18, y: H - 8, class: 'tick' }, p.toFixed(0)));
  const vline = (p, cls, label) => {
    if (!(p > lo && p < hi)) return;
    s.append(svg('line', { x1: x(p), x2: x(p), y1: T, y2: H - B, class: cls }));
    s.append(svg('text', { x: x(p) + 3, y: T + 10, class: 'tick' }, label));
  };
  vline(entry, 'entry', 'entry');
  vline(mark, 'mark', 'mark');
  if (liq) vline(liq, 'liq', 'liquidation');
  s.append(svg('polyline', { points: line(lin), class: 'linear', fill: 'none' }));
  s.append(svg('polyline', { points: line(inv), class: 'inverse', fill: 'none' }));
  const down = entry * 0.8;
  el.replaceChildren(s);
  el.dataset.inverseAt80 = inv(down).toFixed(4);
  el.dataset.linearAt80 = lin(down).toFixed(4);
  const caption = document.createElement('p');
  caption.className = 'why';
  caption.textContent =
    `${symbol} ${side === 'Sell' ? 'short' : 'long'} from ${entry.toFixed(2)}: PnL as a share of its value at entry. ` +
    `Inverse (orange, paid in the coin): ${(inv(down) * 100).toFixed(1)}% at a 20% fall, against ` +
    `${(lin(down) * 100).toFixed(1)}% linear (blue). A long's coin loses value as the price falls while the loss in ` +
    `coin grows as 1/price: on the way down it loses faster, so its liquidation comes sooner; on the way up it gains less.`;
  el.append(caption);
}
