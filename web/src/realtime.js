// BitMEX's realtime WebSocket, as any client reads it: subscribe, a
// `partial` per topic (rows with their keys), then insert / update /
// delete deltas keyed by those keys. Reconnects on close (a restore of the
// exchange closes every connection with 1012) and subscribes again, so each
// table starts over from a fresh partial.

export class Table {
  constructor(name) {
    this.name = name;
    this.keys = [];
    this.rows = new Map();
  }
  key(row) {
    return this.keys.map((k) => row[k]).join('\u0001');
  }
  apply(msg) {
    if (msg.action === 'partial') {
      this.keys = msg.keys || [];
      this.rows.clear();
      for (const r of msg.data) this.rows.set(this.key(r), r);
      return;
    }
    for (const r of msg.data) {
      const k = this.key(r);
      if (msg.action === 'insert') this.rows.set(k, r);
      else if (msg.action === 'update') this.rows.set(k, Object.assign(this.rows.get(k) || {}, r));
      else if (msg.action === 'delete') this.rows.delete(k);
    }
  }
  values() {
    return [...this.rows.values()];
  }
}

export class Realtime {
  // topics(): the topics to subscribe to now; auth(): the authKeyExpires
  // args or null; onMessage(msg, table); onStatus(text).
  constructor({ topics, auth, onMessage, onStatus }) {
    this.topics = topics;
    this.auth = auth;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.tables = new Map();
    this.ws = null;
    this.delay = 250;
    this.closedByUs = false;
    this.connections = 0; // opened so far (a restore of the exchange closes them)
  }

  table(name) {
    if (!this.tables.has(name)) this.tables.set(name, new Table(name));
    return this.tables.get(name);
  }

  connect() {
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/realtime';
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = async () => {
      this.connections++;
      this.delay = 250;
      this.onStatus('connected');
      const args = this.auth ? await this.auth() : null;
      if (args) ws.send(JSON.stringify({ op: 'authKeyExpires', args }));
      ws.send(JSON.stringify({ op: 'subscribe', args: this.topics() }));
    };
    ws.onmessage = (ev) => {
      if (ev.data === 'pong') return;
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
      if (this.ws !== ws || this.closedByUs) return;
      this.onStatus(`reconnecting (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`);
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 5000);
    };
    this.ping = this.ping || setInterval(() => this.ws?.readyState === 1 && this.ws.send('ping'), 20000);
  }

  // Starts over: a new connection with the topics and auth of now.
  restart() {
    this.tables.clear();
    const old = this.ws;
    this.ws = null;
    if (old) old.close();
    this.connect();
  }
}
