// BitMEX's realtime WebSocket, as any client reads it: subscribe, a
// `partial` per topic (rows with their keys), then insert / update /
// delete deltas keyed by those keys. Reconnects on close (a restore of the
// exchange closes every connection with 1012) and subscribes again: every
// table starts over from its fresh partial. One connection at a time.

// Rows kept per table at most (the oldest go first), as BitMEX's adapter
// keeps its maxTableLen: a bot's key watched for hours must not grow the page.
const KEEP = { execution: 200, trade: 200 };
const DONE = new Set(['Filled', 'Canceled', 'Rejected']);

export class Table {
  constructor(name) {
    this.name = name;
    this.keys = [];
    this.rows = new Map();
    this.ready = false; // its partial has come
  }
  key(row) {
    return this.keys.map((k) => row[k]).join('\u0001');
  }
  apply(msg) {
    if (msg.action === 'partial') {
      this.keys = msg.keys || [];
      this.rows.clear();
      this.ready = true;
    }
    if (!this.ready) return; // deltas before the partial mean nothing yet
    for (const r of msg.data) {
      const k = this.key(r);
      if (msg.action === 'partial' || msg.action === 'insert') this.rows.set(k, r);
      else if (msg.action === 'update') {
        const had = this.rows.get(k);
        if (had) Object.assign(had, r); // an update of a row not kept: nothing to update
      } else if (msg.action === 'delete') this.rows.delete(k);
    }
    this.trim();
  }
  trim() {
    if (this.name === 'order') {
      // Closed orders leave the table once shown closed (the page lists open ones).
      for (const [k, r] of this.rows) if (DONE.has(r.ordStatus)) this.rows.delete(k);
    }
    const keep = KEEP[this.name];
    if (keep && this.rows.size > keep) {
      const drop = this.rows.size - keep;
      let n = 0;
      for (const k of this.rows.keys()) {
        if (n++ >= drop) break;
        this.rows.delete(k);
      }
    }
  }
  values() {
    return [...this.rows.values()];
  }
}

export class Realtime {
  // topics(): the topics to subscribe to now; auth(): the authKeyExpires
  // args or null; onOpen(); onMessage(msg, table); onStatus(text).
  constructor({ topics, auth, onOpen, onMessage, onStatus }) {
    this.topics = topics;
    this.auth = auth;
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.tables = new Map();
    this.ws = null;
    this.timer = null;
    this.delay = 250;
    this.connections = 0; // opened so far (a restore of the exchange closes them)
  }

  table(name) {
    if (!this.tables.has(name)) this.tables.set(name, new Table(name));
    return this.tables.get(name);
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    const old = this.ws;
    this.ws = null;
    if (old) old.close();
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/realtime';
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = async () => {
      if (this.ws !== ws) return;
      this.connections++;
      this.delay = 250;
      this.tables.clear(); // everything comes again, from partials
      this.onStatus('connected');
      if (this.onOpen) this.onOpen();
      const args = this.auth ? await this.auth() : null;
      if (this.ws !== ws) return;
      if (args) ws.send(JSON.stringify({ op: 'authKeyExpires', args }));
      ws.send(JSON.stringify({ op: 'subscribe', args: this.topics() }));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws || ev.data === 'pong') return;
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.table && msg.action) {
        const t = this.table(msg.table);
        t.apply(msg);
        this.onMessage(msg, t);
      } else if (msg.error) {
        this.onStatus('error: ' + msg.error);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onStatus(`reconnecting (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`);
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
    this.ping = this.ping || setInterval(() => this.ws?.readyState === 1 && this.ws.send('ping'), 20000);
  }

  // Starts over: a new connection with the topics and auth of now.
  restart() {
    this.tables.clear();
    this.connect();
  }
}
