// One card's EventSource, and what it saw: events, counts, and whether ids ran on without a
// gap or a duplicate across reconnections. The browser's own EventSource reconnects by itself
// and sends Last-Event-ID; a reconnection the user makes (Disconnect, then Connect) starts a
// new EventSource, which cannot send that header, so it asks with ?lastEventId= instead.
export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface Received {
  id: number;
  event: string;
  data: string;
  at: number;
}

export interface Snapshot {
  state: ConnectionState;
  events: Received[];
  counts: Record<string, number>;
  lastId?: number;
  gaps: number;
  duplicates: number;
  notes: string[];
}

const KEPT_EVENTS = 30;
const KEPT_NOTES = 6;

export class Follower {
  private source?: EventSource;
  private listening = new Set<string>();
  private pendingResume?: number;
  /** the server run (its `since`) the last id came from */
  private run?: number;
  private snapshot: Snapshot = { state: 'idle', events: [], counts: {}, gaps: 0, duplicates: 0, notes: [] };

  constructor(
    private readonly onChange: (s: Snapshot) => void,
    /** the current run of the server, as the demo server last said */
    private readonly currentRun: () => number | undefined,
  ) {}

  get state() {
    return this.snapshot.state;
  }

  private update(patch: Partial<Snapshot>) {
    this.snapshot = { ...this.snapshot, ...patch };
    this.onChange(this.snapshot);
  }

  private note(text: string) {
    const time = new Date().toLocaleTimeString();
    this.update({ notes: [`${time} ${text}`, ...this.snapshot.notes].slice(0, KEPT_NOTES) });
  }

  connect(url: string, names: string[]) {
    this.source?.close();
    const { lastId } = this.snapshot;
    const sameRun = lastId !== undefined && this.run === this.currentRun();
    const query = sameRun ? `?lastEventId=${lastId}` : '';
    this.pendingResume = sameRun ? lastId : undefined;
    const source = new EventSource(url + query);
    this.source = source;
    this.listening = new Set();
    this.update({ state: 'connecting' });
    source.onopen = () => {
      if (this.snapshot.state === 'reconnecting') this.pendingResume = this.snapshot.lastId;
      this.update({ state: 'open' });
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) this.update({ state: 'closed' });
      else if (this.snapshot.state === 'open') {
        this.update({ state: 'reconnecting' });
        this.note(`connection lost after id ${this.snapshot.lastId ?? '-'}; reconnecting`);
      }
    };
    for (const name of ['message', ...names]) this.listen(name);
  }

  /** EventSource hands a named event only to listeners of that name. */
  listen(name: string) {
    if (!this.source || this.listening.has(name)) return;
    this.listening.add(name);
    this.source.addEventListener(name, (e) => this.receive(e as MessageEvent<string>));
  }

  private receive(e: MessageEvent<string>) {
    const id = Number(e.lastEventId);
    const run = this.currentRun();
    let { gaps, duplicates, lastId } = this.snapshot;
    if (this.pendingResume !== undefined) {
      const after = this.pendingResume;
      this.pendingResume = undefined;
      if (run !== this.run) this.note(`new server run: its ids start anew (${id} after ${after})`);
      else if (id === after + 1) this.note(`resumed after id ${after}: no gap, no duplicate`);
      else if (id <= after) (duplicates += 1), this.note(`resumed after id ${after}, but got ${id} again`);
      else (gaps += id - after - 1), this.note(`resumed after id ${after}: ${id - after - 1} missing before ${id}`);
    } else if (lastId !== undefined && run === this.run) {
      if (id <= lastId) duplicates += 1;
      else if (id > lastId + 1) gaps += id - lastId - 1;
    }
    this.run = run;
    lastId = id;
    const counts = { ...this.snapshot.counts, [e.type]: (this.snapshot.counts[e.type] ?? 0) + 1 };
    const events = [{ id, event: e.type, data: e.data, at: Date.now() }, ...this.snapshot.events].slice(0, KEPT_EVENTS);
    this.update({ events, counts, lastId, gaps, duplicates });
  }

  disconnect() {
    this.source?.close();
    this.source = undefined;
    this.update({ state: 'closed' });
  }
}
