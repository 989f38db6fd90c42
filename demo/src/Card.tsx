import { useEffect, useRef, useState } from 'react';
import type { TargetInfo } from './api';
import { Follower, type Snapshot } from './follower';

interface Props {
  target: TargetInfo;
  now: number;
  /** bumped by "Connect all" */
  connectAll: number;
}

const ago = (now: number, at?: number) => (at === undefined ? '—' : `${Math.max(0, Math.round((now - at) / 1000))} s ago`);

export function Card({ target, now, connectAll }: Props) {
  const [snap, setSnap] = useState<Snapshot>();
  const since = useRef(target.since);
  since.current = target.since;
  const follower = useRef<Follower>(undefined);
  follower.current ??= new Follower(setSnap, () => since.current);
  const up = target.state === 'up';
  const streamUrl = `${target.url}${target.path}`;

  const connect = () => follower.current!.connect(streamUrl, target.events);
  useEffect(() => {
    if (connectAll && up && ['idle', 'closed'].includes(follower.current!.state)) connect();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [connectAll]);
  useEffect(() => () => follower.current?.disconnect(), []);

  const state = snap?.state ?? 'idle';
  const live = state === 'open' || state === 'connecting' || state === 'reconnecting';
  return (
    <article className={`card ${state}`} data-target={target.id} data-state={state} data-server={target.state}>
      <header>
        <h2>{target.language}</h2>
        <span className="muted">
          {target.framework} · <code>{target.id}</code> · :{target.port}
        </span>
      </header>
      {target.level !== 'runs' || target.state === 'not run' ? (
        <p className="why">Not run here: {target.reason}</p>
      ) : (
        <>
          <div className="row">
            <button type="button" onClick={connect} disabled={!up || live} data-action="connect">
              Connect
            </button>
            <button type="button" onClick={() => follower.current!.disconnect()} disabled={!live} data-action="disconnect">
              Disconnect
            </button>
            <span className={`pill ${state}`} data-role="state">
              {state}
            </span>
            <span className="muted">server {target.state}</span>
          </div>
          {target.reason && target.state !== 'up' && <p className="why">{target.reason}</p>}
          <dl className="stats">
            <dt>last id</dt>
            <dd data-role="last-id">{snap?.lastId ?? '—'}</dd>
            <dt>heartbeat</dt>
            <dd title="EventSource does not show comments: the demo server watches the stream and says when it saw the last one">
              {ago(now, target.lastHeartbeatAt)}
            </dd>
            <dt>gaps · dups</dt>
            <dd data-role="gaps" data-gaps={snap?.gaps ?? 0} data-duplicates={snap?.duplicates ?? 0}>
              {snap?.gaps ?? 0} · {snap?.duplicates ?? 0}
            </dd>
          </dl>
          <p className="counts">
            {Object.entries(snap?.counts ?? {}).map(([name, n]) => (
              <span key={name} className="count">
                {name} <b>{n}</b>
              </span>
            ))}
          </p>
          <ul className="notes" data-role="notes">
            {snap?.notes.map((n) => <li key={n}>{n}</li>)}
          </ul>
          <ol className="events" data-role="events">
            {snap?.events.slice(0, 8).map((e) => (
              <li key={`${e.id}-${e.at}`} data-id={e.id} data-event={e.event}>
                <span className="id">#{e.id}</span> <span className="name">{e.event}</span>
                <pre>{e.data}</pre>
              </li>
            ))}
          </ol>
          <Publish target={target} onName={(name) => follower.current!.listen(name)} />
        </>
      )}
    </article>
  );
}

function Publish({ target, onName }: { target: TargetInfo; onName: (name: string) => void }) {
  const [event, setEvent] = useState('message');
  const [text, setText] = useState('');
  const [asJson, setAsJson] = useState(false);
  const [result, setResult] = useState<string>();

  const send = async () => {
    let data: unknown = text;
    if (asJson) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        return setResult(`not JSON: ${(e as Error).message}`);
      }
    }
    onName(event);
    try {
      const res = await fetch(`${target.url}/publish`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${target.publishToken}` },
        body: JSON.stringify({ event, data }),
      });
      const body = await res.json().catch(() => ({}));
      setResult(res.status === 202 ? `202: published as id ${body.id}` : `${res.status}: ${body.error ?? 'refused'}`);
    } catch (e) {
      setResult(`failed: ${(e as Error).message}`);
    }
  };

  return (
    <form
      className="publish"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      <input aria-label="event name" value={event} onChange={(e) => setEvent(e.target.value)} data-role="publish-event" />
      <textarea aria-label="data" rows={2} value={text} onChange={(e) => setText(e.target.value)} placeholder="text, or JSON" data-role="publish-data" />
      <label>
        <input type="checkbox" checked={asJson} onChange={(e) => setAsJson(e.target.checked)} /> JSON
      </label>
      <button type="submit" disabled={target.state !== 'up'} data-action="publish">
        Publish
      </button>
      {result && <span className="muted" data-role="publish-result">{result}</span>}
    </form>
  );
}
