// perpsim's web page: the trader's view. Everything comes from perpsim's
// public REST and realtime WebSocket API, and, with the user's own key
// (signed here, never sent), the private tables and order entry: the page
// is a client like any other.
import './style.css';
import { admin, ApiError, engineNow, get, signed, syncTime, wsAuthArgs } from './api.js';
import { FundChart, MinuteLines, pnlCurves } from './teaching.js';
import { PriceChart } from './chart.js';
import { Realtime } from './realtime.js';

const $ = (id) => document.getElementById(id);
const LEVELS = 15;
const TRADES_KEPT = 60;

const state = {
  symbol: sessionStorage.getItem('symbol') || 'XBTUSD',
  instruments: new Map(), // symbol -> instrument row (REST, then WebSocket updates)
  creds: null,
  account: null, // the logged-in key's account number
  fundingAt: null, // the selected perpetual's next funding, as the feed last said
  adl: new Map(), // symbol -> deleveragePercentile of the user's position (REST: not in the feed's rows)
  trades: [],
  engineMs: 0,
};

// Number.toLocaleString builds a formatter per call, most of the page's
// script time on a busy feed: one Intl.NumberFormat per precision instead.
const formats = new Map();
function fmt(v, dp) {
  if (v == null || Number.isNaN(v)) return '';
  let f = formats.get(dp);
  if (!f) {
    f = new Intl.NumberFormat('en-US', { minimumFractionDigits: dp ?? 0, maximumFractionDigits: dp ?? 8 });
    formats.set(dp, f);
  }
  return f.format(Number(v));
}

function tickDp(inst) {
  const t = inst?.tickSize ?? 0.5;
  return Math.max(0, Math.ceil(-Math.log10(t) - 1e-9));
}

// Minor units of a settlement currency in its major unit.
const CURRENCY = { XBt: ['XBT', 1e8, 8], USDt: ['USDT', 1e6, 6] };
function money(cur, v) {
  const [name, scale, dp] = CURRENCY[cur] || [cur, 1, 0];
  return v == null ? '' : `${fmt(v / scale, dp)} ${name}`;
}

function isoTime(ms) {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function notice(text, bad) {
  const n = $('notice');
  n.textContent = text;
  n.className = bad ? 'bad' : 'ok';
}

// ---- the market ---------------------------------------------------------------

function renderStats() {
  const i = state.instruments.get(state.symbol);
  const dl = $('stats');
  dl.replaceChildren();
  if (!i) return;
  const dp = tickDp(i);
  const items = [
    ['Last', fmt(i.lastPrice, dp)],
    ['Mark', fmt(i.markPrice, 2)],
    ['Index', fmt(i.indicativeSettlePrice, 2)],
    ['Funding', i.fundingRate == null ? '' : `${(i.fundingRate * 100).toFixed(4)}%`],
    ['Next funding', i.fundingTimestamp ? countdown(Date.parse(i.fundingTimestamp)) : ''],
    ['Open interest', fmt(i.openInterest)],
  ];
  for (const [k, v] of items) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    dd.dataset.stat = k;
    dl.append(dt, dd);
  }
}

function countdown(at) {
  let s = Math.max(0, Math.floor((at - state.engineMs) / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  return `${h}h ${String(m).padStart(2, '0')}m ${String(s - m * 60).padStart(2, '0')}s`;
}

function renderClock() {
  $('clock').textContent = state.engineMs ? isoTime(state.engineMs) + ' UTC' : '';
}

function renderBook(table) {
  const inst = state.instruments.get(state.symbol);
  const dp = tickDp(inst);
  const rows = table.values().filter((r) => r.symbol === state.symbol);
  const asks = rows.filter((r) => r.side === 'Sell').sort((a, b) => a.price - b.price).slice(0, LEVELS);
  const bids = rows.filter((r) => r.side === 'Buy').sort((a, b) => b.price - a.price).slice(0, LEVELS);
  const total = (side) => side.reduce((s, r) => s + r.size, 0) || 1;
  const draw = (tbody, levels, cls, reverse) => {
    const max = total(levels);
    let cum = 0;
    const trs = levels.map((r) => {
      cum += r.size;
      const tr = document.createElement('tr');
      tr.className = cls;
      tr.style.setProperty('--depth', `${((100 * cum) / max).toFixed(1)}%`);
      cell(tr, fmt(r.price, dp), 'px');
      cell(tr, fmt(r.size));
      cell(tr, fmt(cum));
      tr.addEventListener('click', () => ($('price').value = r.price));
      return tr;
    });
    tbody.replaceChildren(...(reverse ? trs.reverse() : trs));
  };
  draw($('asks'), asks, 'ask', true);
  draw($('bids'), bids, 'bid', false);
  const sp = $('spread');
  sp.replaceChildren();
  if (asks.length && bids.length) {
    const tr = document.createElement('tr');
    tr.className = 'spread';
    const td = cell(tr, `spread ${fmt(asks[0].price - bids[0].price, dp)}`);
    td.colSpan = 3;
    sp.appendChild(tr);
  }
}

// The feed's tables change many times a frame when the market is busy: the
// book, the tape, the orders and the account are drawn at most once per
// animation frame, whatever came in between (counted, for the browser test).
const frames = { asked: false, todo: new Set(), messages: 0, draws: 0, book: 0 };
function later(draw) {
  frames.todo.add(draw);
  if (frames.asked) return;
  frames.asked = true;
  requestAnimationFrame(() => {
    frames.asked = false;
    const todo = [...frames.todo];
    frames.todo.clear();
    for (const f of todo) {
      frames.draws++;
      try {
        f();
      } catch (e) {
        console.error(e); /* the other draws of the frame still run */
      }
    }
  });
}

function onTrades(msg) {
  if (msg.action === 'partial') state.trades = [];
  for (const t of msg.data) {
    if (t.symbol !== state.symbol) continue;
    state.trades.unshift(t);
    if (msg.action !== 'partial') chart.trade(Date.parse(t.timestamp), t.price);
  }
  state.trades.sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp));
  state.trades.length = Math.min(state.trades.length, TRADES_KEPT);
  later(renderTape);
}

function renderTape() {
  const dp = tickDp(state.instruments.get(state.symbol));
  const tb = $('trades').tBodies[0];
  tb.replaceChildren(
    ...state.trades.map((t) => {
      const tr = document.createElement('tr');
      tr.className = t.side === 'Buy' ? 'bid' : 'ask';
      cell(tr, isoTime(Date.parse(t.timestamp)).slice(11));
      cell(tr, fmt(t.price, dp), 'px');
      cell(tr, fmt(t.size));
      return tr;
    }),
  );
}

function onInstrument(msg) {
  for (const r of msg.data) {
    const i = Object.assign(state.instruments.get(r.symbol) || {}, r);
    state.instruments.set(r.symbol, i);
    if (r.timestamp) state.engineMs = Math.max(state.engineMs, Date.parse(r.timestamp)); /* between syncs */
    if (r.symbol === state.symbol) {
      const ms = Date.parse(i.timestamp);
      chart.markAt(ms, i.markPrice);
      chart.indexAt(ms, i.indicativeSettlePrice);
      if (i.fundingRate != null) {
        basisChart.add(ms, i.fairBasis);
        rateChart.add(ms, i.indicativeFundingRate * 100, i.fundingRate * 100);
      }
      if (r.fundingTimestamp && r.fundingTimestamp !== state.fundingAt) {
        state.fundingAt = r.fundingTimestamp; /* a funding was paid: its card */
        loadFunding();
      }
    }
  }
  renderStats();
  renderClock();
}

// ---- the account ------------------------------------------------------------------

function renderAccount() {
  const margins = rt.table('margin').values();
  $('margin').replaceChildren(
    ...margins.map((m) => {
      const d = document.createElement('div');
      d.className = 'wallet';
      d.textContent =
        `${money(m.currency, m.walletBalance)} wallet · ${money(m.currency, m.marginBalance)} margin balance · ` +
        `${money(m.currency, m.availableMargin)} available · ${money(m.currency, m.unrealisedPnl)} unrealised`;
      return d;
    }),
  );
  const pos = rt.table('position').values().filter((p) => p.currentQty);
  $('positions').tBodies[0].replaceChildren(
    ...pos.map((p) => {
      const tr = document.createElement('tr');
      const dp = tickDp(state.instruments.get(p.symbol));
      cell(tr, p.symbol);
      cell(tr, fmt(p.currentQty), p.currentQty > 0 ? 'bid' : 'ask');
      cell(tr, fmt(p.avgEntryPrice, dp));
      cell(tr, fmt(p.markPrice, 2));
      cell(tr, fmt(p.liquidationPrice, dp));
      cell(tr, fmt(p.bankruptPrice, dp));
      cell(tr, money(p.currency, p.unrealisedPnl));
      cell(tr, money(p.currency, p.maintMargin));
      tr.append(adlLights(state.adl.get(p.symbol)));
      return tr;
    }),
  );
  chart.positionLines(pos.find((p) => p.symbol === state.symbol));
  renderPnl(pos.find((p) => p.symbol === state.symbol));
  const fills = rt
    .table('execution')
    .values()
    .filter((e) => e.execType === 'Trade')
    .sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp))
    .slice(0, 30);
  $('fills').tBodies[0].replaceChildren(
    ...fills.map((e) => {
      const tr = document.createElement('tr');
      cell(tr, isoTime(Date.parse(e.timestamp)).slice(11));
      cell(tr, e.symbol);
      cell(tr, e.side, e.side === 'Buy' ? 'bid' : 'ask');
      cell(tr, fmt(e.lastQty));
      cell(tr, fmt(e.lastPx, tickDp(state.instruments.get(e.symbol))));
      cell(tr, money(e.settlCurrency, e.execComm));
      return tr;
    }),
  );
}

// Open orders, updated in place by orderID: a price being typed into an
// order's amend box is never wiped by an update of another table or order.
const orderRows = new Map();
function renderOrders() {
  const open = rt
    .table('order')
    .values()
    .filter((o) => o.ordStatus === 'New' || o.ordStatus === 'PartiallyFilled')
    .sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0));
  const keep = new Set(open.map((o) => o.orderID));
  for (const [id, tr] of orderRows) if (!keep.has(id)) (tr.remove(), orderRows.delete(id));
  const tb = $('orders').tBodies[0];
  for (const o of open) {
    let tr = orderRows.get(o.orderID);
    if (!tr) orderRows.set(o.orderID, (tr = orderRow(o)));
    const dp = tickDp(state.instruments.get(o.symbol));
    tr.children[2].textContent = fmt(o.orderQty);
    tr.children[3].textContent = fmt(o.cumQty);
    const px = tr.querySelector('.amend-price');
    if (document.activeElement !== px && !px.dataset.edited) px.value = o.price ?? '';
    px.title = `at ${fmt(o.price, dp)}`;
    tb.appendChild(tr); // in order, newest first
  }
}

function orderRow(o) {
  const tr = document.createElement('tr');
  tr.dataset.orderId = o.orderID;
  cell(tr, o.symbol);
  cell(tr, o.side, o.side === 'Buy' ? 'bid' : 'ask');
  cell(tr, '');
  cell(tr, '');
  const pxCell = cell(tr, '');
  const px = document.createElement('input');
  px.type = 'number';
  px.step = 'any';
  px.className = 'amend-price';
  px.setAttribute('aria-label', 'new price');
  px.addEventListener('input', () => (px.dataset.edited = '1'));
  pxCell.appendChild(px);
  cell(tr, o.ordType);
  const act = cell(tr, '');
  const amend = document.createElement('button');
  amend.textContent = 'Amend';
  amend.className = 'amend';
  amend.addEventListener('click', async () => {
    if (px.value === '' || !(Number(px.value) > 0)) return notice('Amend: give the new price', true);
    await act_(() => signed(state.creds, 'PUT', 'order', { orderID: o.orderID, price: Number(px.value) }), 'Amended');
    delete px.dataset.edited;
  });
  const cancel = document.createElement('button');
  cancel.textContent = 'Cancel';
  cancel.className = 'cancel';
  cancel.addEventListener('click', () =>
    act_(() => signed(state.creds, 'DELETE', 'order', { orderID: o.orderID }), 'Canceled'),
  );
  act.append(amend, cancel);
  return tr;
}

async function act_(fn, done) {
  try {
    const r = await fn();
    const row = Array.isArray(r) ? r[0] : r;
    if (row?.ordStatus === 'Rejected') notice(`${done}: Rejected ${row.ordRejReason || row.text || ''}`, true);
    else notice(row?.ordStatus ? `${done}: ${row.ordStatus}` : done, false);
  } catch (e) {
    notice(e instanceof ApiError ? e.message : String(e), true);
  }
}

async function placeOrder(side) {
  const qty = Number($('qty').value);
  const price = $('price').value;
  const body = { symbol: state.symbol, side, orderQty: qty };
  if (price !== '') {
    body.price = Number(price);
    body.ordType = 'Limit';
  } else {
    body.ordType = 'Market';
  }
  await act_(() => signed(state.creds, 'POST', 'order', body), `${side} ${qty}`);
}

async function login(key, secret) {
  const creds = { key: key.trim(), secret: secret.trim() };
  try {
    const m = await signed(creds, 'GET', 'user/margin', null, { currency: 'all' });
    state.account = m[0]?.account ?? null;
  } catch (e) {
    $('who').textContent = e instanceof ApiError ? e.message : String(e);
    return false;
  }
  state.creds = creds;
  state.adl = new Map();
  sessionStorage.setItem('creds', JSON.stringify(creds));
  $('who').textContent = `key ${creds.key}`;
  $('order-form').hidden = false;
  $('logout').hidden = false;
  $('connect').hidden = true;
  rt.restart();
  return true;
}

function logout() {
  state.creds = null;
  state.account = null;
  state.adl = new Map();
  sessionStorage.removeItem('creds');
  $('who').textContent = '';
  $('order-form').hidden = true;
  $('logout').hidden = true;
  $('connect').hidden = false;
  rt.restart();
  renderAccount();
  renderOrders();
}

// ---- liquidations, explained ------------------------------------------------------------

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text != null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// One step of a liquidation, in words with its numbers.
function stepText(t, cur) {
  const px = (v) => fmt(v, 2);
  switch (t.step) {
    case 'orderCanceled':
      return `Order ${t.orderID.slice(-6)} canceled: ${t.side} ${fmt(t.leavesQty)} ${t.symbol}${t.price ? ' @ ' + px(t.price) : ''}`;
    case 'riskLimitDown':
      return `Risk limit stepped down on ${t.symbol}: ${money(cur, t.fromRiskLimit)} → ${money(cur, t.toRiskLimit)}`;
    case 'reduced':
      return `Reduced by a FillOrKill limited at ${px(t.limitPrice)} (the step's bankruptcy price): ${t.side} ${fmt(t.qty)} @ ${px(t.price)}`;
    case 'takeover':
      return `Taken over by the liquidator: ${fmt(t.qty)} ${t.symbol} at the bankruptcy price ${px(t.bankruptPrice)}; ` +
        `the owner's wallet ${money(cur, t.walletChange)} → ${money(cur, t.walletBalance)}`;
    case 'liquidatorFill':
      return `Liquidator's order filled in the book: ${t.side} ${fmt(t.qty)} @ ${px(t.price)}`;
    case 'insuranceFund':
      return `Insurance fund ${t.change >= 0 ? '+' : ''}${money(cur, t.change)} → ${money(cur, t.balance)}`;
    case 'deleverage':
      return `Auto-deleveraged, ADL rank ${t.rank} (score ${fmt(t.score, 4)}): account ${t.account} closed ` +
        `${fmt(t.qty)} ${t.symbol} (${t.side}) @ ${px(t.price)}; its wallet ${t.walletChange >= 0 ? '+' : ''}${money(cur, t.walletChange)}`;
    default:
      return t.step;
  }
}

function liqCard(x) {
  const c = el('article', null, 'liq');
  c.dataset.liqId = String(x.id);
  if (x.execID) c.dataset.execId = x.execID;
  const p = x.position;
  const cur = x.currency;
  c.append(
    el('h4', `Account ${x.account}, ${x.marginMode} ${x.symbol} — ${isoTime(Date.parse(x.timestamp))} UTC (command ${x.seq})`),
    el('p', `Trigger: ${x.trigger.command} — mark ${fmt(x.trigger.markPriceBefore, 2)} → ${fmt(x.trigger.markPrice, 2)} ` +
      `(index ${fmt(x.trigger.indexPrice, 2)}).`),
    el('p', x.trigger.why, 'why'),
    el('p', `Position: ${fmt(p.currentQty)} @ ${fmt(p.avgEntryPrice, 2)}, liquidation price ${fmt(p.liquidationPrice, 2)}, ` +
      `bankruptcy price ${fmt(p.bankruptPrice, 2)}.`),
    el('p', `Equity ${money(cur, x.check.equity)} < maintenance margin ${money(cur, x.check.maintMargin)}: ` +
      `short by ${money(cur, x.check.shortfall)}.`, 'check'),
    el('p', x.check.rule, 'why'),
  );
  const ol = el('ol');
  for (const t of x.steps) {
    const li = el('li', stepText(t, cur));
    li.dataset.step = t.step;
    if (t.why) li.append(el('div', t.why, 'why'));
    ol.append(li);
  }
  c.append(ol);
  if (x.canceledNotListed) c.append(el('p', `… and ${x.canceledNotListed} more orders canceled (${x.ordersCanceled} in all).`, 'why'));
  c.append(el('p', `Insurance fund: ${money(cur, x.insuranceFund.before)} → ${money(cur, x.insuranceFund.after)} ` +
    `(${x.insuranceFund.change >= 0 ? '+' : ''}${money(cur, x.insuranceFund.change)}).`, 'fund'));
  return c;
}

let liqLoading = false;
async function loadLiquidations() {
  if (liqLoading) return;
  liqLoading = true;
  try {
    const rows = await (await fetch('/explain/v1/liquidation?count=10')).json();
    if (Array.isArray(rows)) {
      $('liquidations').replaceChildren(...rows.map(liqCard));
      chart.liquidations(rows.filter((x) => x.symbol === state.symbol));
    }
  } catch {
    /* the server restarting: the next turn tries again */
  } finally {
    liqLoading = false;
  }
}

// ---- the mechanics, drawn ------------------------------------------------------------------

// Five lights: the position's place in the auto-deleveraging queue (its
// deleveragePercentile: 1 = the front, the first to be closed by ADL).
function adlLights(pct) {
  const td = document.createElement('td');
  const span = el('span', null, 'adl');
  const on = pct == null ? 0 : Math.max(1, Math.ceil(pct * 5));
  for (let k = 0; k < 5; k++) span.append(el('i', null, k < on ? 'on' : null));
  span.dataset.lights = String(on);
  span.title = pct == null ? 'no position' : `deleveragePercentile ${pct}`;
  td.append(span);
  return td;
}

async function loadAdl() {
  if (!state.creds) return;
  try {
    const rows = await signed(state.creds, 'GET', 'position');
    state.adl = new Map(rows.filter((p) => p.currentQty).map((p) => [p.symbol, p.deleveragePercentile]));
    renderAccount();
  } catch {
    /* the next turn tries again */
  }
}

function renderPnl(p) {
  const inst = state.instruments.get(state.symbol);
  const mark = inst?.markPrice;
  if (p && p.avgEntryPrice) {
    pnlCurves($('pnl-curves'), { side: p.currentQty > 0 ? 'Buy' : 'Sell', entry: p.avgEntryPrice, mark: p.markPrice,
      liq: p.liquidationPrice, symbol: p.symbol });
  } else if (mark) {
    pnlCurves($('pnl-curves'), { side: 'Buy', entry: mark, mark, liq: null, symbol: `${state.symbol} (a long at the mark, for example)` });
  }
}

async function loadFund() {
  try {
    const rows = await get('insurance', { symbol: 'XBt', count: 500, reverse: true });
    fundChart.set(rows, 1e8);
  } catch {
    /* the next turn tries again */
  }
}

// ---- funding, explained -----------------------------------------------------------------

const pctOf = (r) => `${(r * 100).toFixed(6)}%`;

function formulaBlock(f) {
  const d = el('div');
  d.append(el('p', `Premium index P = ${pctOf(f.premiumIndex)} (mean of ${fmt(f.samples)} minute samples), ` +
    `interest I = ${pctOf(f.interestRate)}`), el('p', f.formula, 'formula'));
  return d;
}

function fundCard(x, cur) {
  const c = el('article', null, 'fund');
  c.dataset.fundingTs = x.timestamp;
  const who = x.fundingRate >= 0 ? 'longs paid shorts' : 'shorts paid longs';
  c.append(el('h4', `${isoTime(Date.parse(x.timestamp))} UTC: ${x.symbol} funding ${pctOf(x.fundingRate)} — ${who}, ` +
    `mark ${fmt(x.markPrice, 2)}, index ${fmt(x.indexPrice, 2)}`));
  c.append(el('p', x.why, 'why'));
  if (x.rate) c.append(formulaBlock(x.rate));
  c.append(el('p', `${x.payment}. Paid ${money(cur, x.paid)}, received ${money(cur, x.received)}, ` +
    `rounding ${money(cur, x.rounding)}; ${fmt(x.paymentsCount)} positions.`));
  const t = el('table');
  const head = el('tr');
  for (const h of ['Account', 'Position', 'Value at mark', 'Wallet change']) head.append(el('th', h));
  t.append(head);
  const mine = x.payments.filter((p) => p.account === state.account);
  const shown = [...mine, ...x.payments.filter((p) => p.account !== state.account).slice(0, 8)];
  for (const p of shown) {
    const tr = el('tr', null, p.account === state.account ? 'mine' : null);
    tr.dataset.account = String(p.account);
    tr.append(el('td', p.account === state.account ? `${p.account} (you)` : String(p.account)), el('td', fmt(p.currentQty)),
      el('td', money(cur, p.markValue)), el('td', money(cur, p.walletChange)));
    t.append(tr);
  }
  c.append(t);
  c.append(el('p', `Next interval's rate, formed now from this interval's premium:`, 'why'), formulaBlock(x.nextRate));
  return c;
}

let fundLoading = false, fundAgain = false;
async function loadFunding() {
  const inst = state.instruments.get(state.symbol);
  if (!inst || inst.fundingRate == null) {
    $('funding').replaceChildren(el('p', `${state.symbol} is not a perpetual: it pays no funding.`, 'muted'));
    return;
  }
  if (fundLoading) {
    fundAgain = true; /* once this one is done: the symbol or the funding changed */
    return;
  }
  fundLoading = true;
  try {
    const sym = state.symbol;
    const x = await (await fetch(`/explain/v1/funding?symbol=${encodeURIComponent(sym)}&count=3`)).json();
    if (!x.next || sym !== state.symbol) return; /* another symbol chosen meanwhile: its own load follows */
    const cur = x.fundings[0]?.currency || 'XBt';
    const n = x.next;
    const head = el('article', null, 'fund');
    head.dataset.next = n.fundingTimestamp;
    const cd = el('h4', null);
    cd.id = 'funding-countdown';
    cd.dataset.at = String(Date.parse(n.fundingTimestamp));
    head.append(cd, el('p', `It will pay ${pctOf(n.fundingRate)} (${n.fundingRate >= 0 ? 'longs pay shorts' : 'shorts pay longs'}), ` +
      `every ${fmt(n.fundingInterval)} hours; mark ${fmt(n.markPrice, 2)}, index ${fmt(n.indexPrice, 2)}.`),
    el('p', `Forming now: ${n.indicative.why}`, 'why'), formulaBlock(n.indicative));
    $('funding').replaceChildren(head, ...x.fundings.map((f) => fundCard(f, cur)));
    renderFundingClock();
  } catch {
    /* the server restarting: the next turn tries again */
  } finally {
    fundLoading = false;
    if (fundAgain) {
      fundAgain = false;
      loadFunding();
    }
  }
}

function renderFundingClock() {
  const cd = $('funding-countdown');
  if (cd) cd.textContent = `Next funding in ${countdown(Number(cd.dataset.at))} at ${isoTime(Number(cd.dataset.at))} UTC`;
}

// ---- the instructor's panel (the admin API) ----------------------------------------------

const teach = { token: null, students: [] };
const A = (verb, path, body) => admin(teach.token, verb, path, body);

async function teachAct(what, fn) {
  try {
    const r = await fn();
    notice(`${what}: done`);
    await refreshTeach();
    return r;
  } catch (e) {
    notice(`${what}: ${e.message}`, true);
    return null;
  }
}

async function unlock(token) {
  teach.token = token;
  try {
    await A('GET', 'clock');
  } catch (e) {
    teach.token = null;
    $('admin-who').textContent = e instanceof ApiError ? e.message : String(e);
    return false;
  }
  sessionStorage.setItem('adminToken', token);
  $('teach').hidden = false;
  $('admin-lock').hidden = false;
  $('admin-unlock').hidden = true;
  $('admin-who').textContent = 'unlocked';
  const sel = $('shock-index');
  const indices = [...new Set([...state.instruments.values()].map((i) => i.referenceSymbol).filter(Boolean))];
  sel.replaceChildren(...indices.map((x) => Object.assign(document.createElement('option'), { value: x, textContent: x })));
  try {
    const m = await A('GET', 'market');
    $('mk-on').checked = m.enabled;
    $('mk-vol').value = m.volatility;
    $('mk-spread').value = m.spreadBp;
    $('mk-levels').value = m.levels;
    $('mk-size').value = m.sizeLots;
  } catch {
    $('mk-on').disabled = true; /* --no-market: nothing to steer */
  }
  await refreshTeach();
  return true;
}

function lock() {
  teach.token = null;
  teach.students = [];
  $('st-keys').replaceChildren();
  $('st-csv').hidden = true;
  $('admin-token').value = '';
  sessionStorage.removeItem('adminToken');
  $('teach').hidden = true;
  $('admin-lock').hidden = true;
  $('admin-unlock').hidden = false;
  $('admin-who').textContent = '';
}

let teachLoading = false;
async function refreshTeach() {
  if (!teach.token || teachLoading) return;
  teachLoading = true;
  try {
    const [clk, cps, faults, cls] = await Promise.all([
      A('GET', 'clock'),
      A('GET', 'checkpoint').catch(() => []),
      A('GET', 'faults'),
      A('GET', 'accounts'),
    ]);
    $('clock-mode').textContent = `(${clk.mode}${clk.mode === 'accelerated' ? ' ' + clk.speed + 'x' : ''})`;
    $('clock-mode').dataset.mode = clk.mode;
    $('cp-list').replaceChildren(...cps.map((c) => {
      const li = el('li', `${c.name} — ${isoTime(Date.parse(c.time))} (command ${c.seq}) `);
      li.dataset.name = c.name;
      const b = el('button', 'Restore');
      b.type = 'button';
      b.addEventListener('click', () => teachAct(`restore ${c.name}`, () => A('POST', 'restore', { name: c.name })));
      li.append(b);
      return li;
    }));
    const on = Object.keys(faults.faults || {});
    $('ft-state').textContent = on.length ? `(on: ${on.join(', ')})` : '(none)';
    $('ft-state').dataset.on = on.join(',');
    renderClass(cls.accounts);
  } catch {
    /* the server restarting, or maintenance: the next turn tries again */
  } finally {
    teachLoading = false;
  }
}

function renderClass(accounts) {
  const body = $('class').querySelector('tbody');
  body.replaceChildren(...accounts.map((a) => {
    const x = a.currencies.find((c) => c.currency === 'XBt') || a.currencies[0];
    const tr = el('tr', null, a.liquidations ? 'liquidated' : null);
    tr.dataset.account = String(a.account);
    const pos = a.positions.map((p) => `${p.symbol} ${fmt(p.currentQty)}`).join(', ');
    tr.append(el('td', String(a.account)), el('td', money(x.currency, x.walletBalance)),
      el('td', money(x.currency, x.marginBalance)), el('td', money(x.currency, x.unrealisedPnl)),
      el('td', money(x.currency, x.pnl)), el('td', pos), el('td', String(a.liquidations)));
    return tr;
  }));
}

async function makeStudents() {
  const n = Math.max(1, Math.min(100, Number($('st-n').value) || 0));
  const sats = Math.round(Number($('st-xbt').value) * 1e8);
  await teachAct(`${n} student accounts`, async () => {
    for (let k = 0; k < n; k++) teach.students.push(await A('POST', 'accounts', { deposits: { XBt: sats } }));
  });
  const t = $('st-keys');
  const head = el('tr');
  for (const h of ['Account', 'API key', 'API secret']) head.append(el('th', h));
  t.replaceChildren(head, ...teach.students.map((s) => {
    const tr = el('tr');
    tr.append(el('td', String(s.account)), el('td', s.apiKey), el('td', s.apiSecret));
    return tr;
  }));
  $('st-csv').hidden = teach.students.length === 0;
}

function studentsCsv() {
  const lines = ['account,apiKey,apiSecret', ...teach.students.map((s) => `${s.account},${s.apiKey},${s.apiSecret}`)];
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
  a.download = 'perpsim-students.csv';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function wireTeach() {
  $('admin-login').addEventListener('submit', (e) => {
    e.preventDefault();
    unlock($('admin-token').value.trim());
  });
  $('admin-lock').addEventListener('click', lock);
  $('shock').addEventListener('click', () =>
    teachAct('shock', () => A('POST', 'index', { symbol: $('shock-index').value, move: Number($('shock-move').value) / 100 })));
  $('clk-pause').addEventListener('click', () => teachAct('pause', () => A('POST', 'clock', { mode: 'stepped' })));
  $('clk-real').addEventListener('click', () => teachAct('real time', () => A('POST', 'clock', { mode: 'real' })));
  $('clk-fast').addEventListener('click', () =>
    teachAct('accelerate', () => A('POST', 'clock', { mode: 'accelerated', speed: Number($('clk-speed').value) })));
  for (const b of document.querySelectorAll('.clk-step'))
    b.addEventListener('click', () => teachAct(`step ${b.textContent}`, () => A('POST', 'clock/advance', { ms: Number(b.dataset.ms) })));
  $('cp-make').addEventListener('click', () =>
    teachAct('checkpoint', () => A('POST', 'checkpoint', { name: $('cp-name').value.trim() })));
  $('mk-apply').addEventListener('click', () =>
    teachAct('market', () => A('POST', 'market', {
      enabled: $('mk-on').checked,
      volatility: Number($('mk-vol').value),
      spreadBp: Number($('mk-spread').value),
      levels: Number($('mk-levels').value),
      sizeLots: Number($('mk-size').value),
    })));
  $('ft-overload-on').addEventListener('click', () =>
    teachAct('overload', () => A('POST', 'faults', { overload: Number($('ft-overload').value) })));
  $('ft-latency-on').addEventListener('click', () =>
    teachAct('latency', () => A('POST', 'faults', { latencyMs: Number($('ft-latency').value) })));
  $('ft-maint').addEventListener('click', () =>
    teachAct('maintenance', () => A('POST', 'faults', { maintenance: true, durationMs: 30000 })));
  $('ft-off').addEventListener('click', () => teachAct('faults off', () => A('DELETE', 'faults')));
  $('st-make').addEventListener('click', makeStudents);
  $('st-csv').addEventListener('click', studentsCsv);
}

// ---- wiring ---------------------------------------------------------------------------

const chart = new PriceChart($('chart'));
const fundChart = new FundChart($('fund-chart'));
const basisChart = new MinuteLines($('basis-chart'), [{ color: '#a371f7', title: 'fair basis' }]);
const rateChart = new MinuteLines($('rate-chart'),
  [{ color: '#e3b341', title: 'indicative %' }, { color: '#3fb950', title: 'next funding %' }], 4);

const PUBLIC = ['orderBookL2_25', 'trade', 'instrument', 'liquidation'];
const PRIVATE = ['order', 'execution', 'position', 'margin'];

const drawBook = () => {
  frames.book++;
  renderBook(rt.table('orderBookL2_25'));
};
const rt = new Realtime({
  topics: () => [...PUBLIC.map((t) => `${t}:${state.symbol}`), ...(state.creds ? PRIVATE : [])],
  auth: () => (state.creds ? wsAuthArgs(state.creds) : null),
  onOpen: () => {
    // A new connection: the tables, the candles and the lines start over
    // (a restore may have rewound all of them).
    state.trades = [];
    chart.reset();
    basisChart.reset();
    rateChart.reset();
    loadFund();
    loadBins();
    loadLiquidations();
    loadFunding();
    renderAccount();
    renderOrders();
  },
  onStatus: (s) => {
    $('status').textContent = s;
    $('status').dataset.state = s.split(' ')[0];
  },
  onMessage: (msg) => {
    frames.messages++;
    if (msg.table === 'orderBookL2_25') later(drawBook);
    else if (msg.table === 'trade') onTrades(msg);
    else if (msg.table === 'instrument') onInstrument(msg);
    else if (msg.table === 'liquidation') {
      loadLiquidations();
      loadFund();
    }
    else if (msg.table === 'order') later(renderOrders);
    else if (PRIVATE.includes(msg.table)) later(renderAccount);
  },
});

// The candles so far, from REST (after each (re)connect: a restore of the
// exchange may have rewound them).
async function loadBins() {
  try {
    const rows = await get('trade/bucketed', { binSize: '1m', symbol: state.symbol, count: 500, reverse: true, partial: true });
    chart.setBins(rows);
  } catch (e) {
    notice(`candles: ${e.message}`, true);
  }
}

let ticks = 0;
async function start() {
  await syncTime();
  setInterval(async () => {
    try {
      state.engineMs = await syncTime(); /* as it is: a restore may have taken it back */
      renderClock();
      renderStats();
      renderFundingClock();
      if (ticks % 2 === 0) refreshTeach();
      // The public explain and insurance reads count against the address's
      // rate limit (30 a minute by default): every 30 s, and when the feed
      // says a liquidation happened or a funding was paid.
      if (ticks % 5 === 0) {
        loadAdl(); /* signed: the key's own limit */
        if (!rt.table('position').values().some((p) => p.currentQty && p.symbol === state.symbol)) renderPnl(null);
      }
      if (++ticks % 30 === 0) {
        loadLiquidations(); /* others' liquidations, in any instrument */
        loadFunding(); /* the premium forming */
        loadFund();
      }
    } catch {
      /* the server restarting: the WebSocket says so */
    }
  }, 1000);
  const active = await get('instrument/active');
  const sel = $('symbol');
  for (const i of active) {
    state.instruments.set(i.symbol, i);
    const o = document.createElement('option');
    o.value = o.textContent = i.symbol;
    sel.appendChild(o);
  }
  if (!state.instruments.has(state.symbol)) state.symbol = active[0]?.symbol;
  sel.value = state.symbol;
  sel.addEventListener('change', () => {
    state.symbol = sel.value;
    sessionStorage.setItem('symbol', state.symbol);
    rt.restart();
  });
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    login($('key').value, $('secret').value);
  });
  $('logout').addEventListener('click', logout);
  wireTeach();
  const tok = sessionStorage.getItem('adminToken');
  if (tok) {
    $('admin-token').value = tok;
    unlock(tok);
  }
  $('buy').addEventListener('click', () => placeOrder('Buy'));
  $('sell').addEventListener('click', () => placeOrder('Sell'));
  const saved = sessionStorage.getItem('creds');
  if (saved) {
    const c = JSON.parse(saved);
    $('key').value = c.key;
    $('secret').value = c.secret;
  }
  if (!(saved && (await login($('key').value, $('secret').value)))) rt.connect();
  renderStats();
}

start().catch((e) => {
  $('status').textContent = `cannot reach the exchange: ${e.message}`;
});

// For tests and the curious: the page's tables as the WebSocket built them.
window.perpsim = { state, rt, chart, engineNow, frames };
