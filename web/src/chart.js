// Candles with the index, mark and last price, the user's position's
// liquidation and bankruptcy prices, and a marker at each liquidation in
// the instrument: TradingView's lightweight-charts.
import { CandlestickSeries, ColorType, LineSeries, LineStyle, createChart, createSeriesMarkers } from 'lightweight-charts';

const MIN = 60;

export class PriceChart {
  constructor(el) {
    this.el = el;
    this.chart = createChart(el, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: '#11161d' }, textColor: '#c9d1d9' },
      grid: { vertLines: { color: '#1c232c' }, horzLines: { color: '#1c232c' } },
      timeScale: { timeVisible: true, secondsVisible: false },
      rightPriceScale: { borderColor: '#2b3440' },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: '#26a69a', downColor: '#ef5350', wickUpColor: '#26a69a', wickDownColor: '#ef5350', borderVisible: false,
    });
    this.index = this.chart.addSeries(LineSeries, { color: '#e3b341', lineWidth: 1, title: 'index', priceLineVisible: false });
    this.mark = this.chart.addSeries(LineSeries, { color: '#a371f7', lineWidth: 1, title: 'mark', priceLineVisible: false });
    this.bars = [];
    this.marks = [];
    this.indices = [];
    this.lines = [];
    this.markers = createSeriesMarkers(this.candles, []);
    this.liqMarkers = [];
  }

  // GET /explain/v1/liquidation rows of this instrument: a marker at the
  // minute of each, where the position was taken over and at what price.
  liquidations(rows) {
    const dp = (v) => Number(v).toLocaleString('en-US', { maximumFractionDigits: 2 });
    this.liqMarkers = rows
      .map((x) => {
        const long = x.position.currentQty > 0;
        return {
          time: Math.floor(Date.parse(x.timestamp) / 1000 / MIN) * MIN,
          position: long ? 'aboveBar' : 'belowBar',
          shape: long ? 'arrowDown' : 'arrowUp',
          color: '#f85149',
          text: `liq #${x.id}: ${long ? 'long' : 'short'} ${dp(Math.abs(x.position.currentQty))} @ bankruptcy ${dp(x.position.bankruptPrice)}`,
        };
      })
      .sort((a, b) => a.time - b.time);
    this.markers.setMarkers(this.liqMarkers);
    this.el.dataset.liqMarkers = String(this.liqMarkers.length);
  }

  // Bins from GET /trade/bucketed (timestamp: the bin's end).
  setBins(rows) {
    this.bars = rows
      .filter((r) => r.open != null)
      .map((r) => ({ time: Date.parse(r.timestamp) / 1000 - MIN, open: r.open, high: r.high, low: r.low, close: r.close }))
      .sort((a, b) => a.time - b.time);
    this.candles.setData(this.bars);
    this.el.dataset.bars = String(this.bars.length);
  }

  // A trade at ms: the minute's candle forms (or a new one opens).
  trade(ms, price) {
    const t = Math.floor(ms / 1000 / MIN) * MIN;
    const last = this.bars[this.bars.length - 1];
    if (last && last.time === t) {
      last.high = Math.max(last.high, price);
      last.low = Math.min(last.low, price);
      last.close = price;
    } else if (!last || t > last.time) {
      this.bars.push({ time: t, open: price, high: price, low: price, close: price });
    } else {
      return; // older than the last bar: already in a bin
    }
    this.candles.update(this.bars[this.bars.length - 1]);
    this.el.dataset.bars = String(this.bars.length);
  }

  // The instrument's mark and index as they change, one point a minute.
  point(series, store, ms, value) {
    if (value == null) return;
    const t = Math.floor(ms / 1000 / MIN) * MIN;
    const last = store[store.length - 1];
    if (last && last.time === t) last.value = value;
    else if (!last || t > last.time) store.push({ time: t, value });
    else return;
    series.update(store[store.length - 1]);
  }
  markAt(ms, v) {
    this.point(this.mark, this.marks, ms, v);
  }
  indexAt(ms, v) {
    this.point(this.index, this.indices, ms, v);
  }

  // The position's liquidation and bankruptcy prices, and the entry.
  positionLines(pos) {
    for (const l of this.lines) this.candles.removePriceLine(l);
    this.lines = [];
    if (!pos || !pos.currentQty) return;
    const add = (price, title, color) =>
      price && this.lines.push(this.candles.createPriceLine({ price, title, color, lineStyle: LineStyle.Dashed, lineWidth: 1 }));
    add(pos.avgEntryPrice, 'entry', '#58a6ff');
    add(pos.liquidationPrice, 'liquidation', '#ff7b72');
    add(pos.bankruptPrice, 'bankruptcy', '#f85149');
  }

  reset() {
    this.bars = [];
    this.marks = [];
    this.indices = [];
    this.candles.setData([]);
    this.liquidations([]);
    this.mark.setData([]);
    this.index.setData([]);
    this.el.dataset.bars = '0';
  }
}
