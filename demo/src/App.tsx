import { useEffect, useState } from 'react';
import { fetchTargets, type TargetsAnswer } from './api';
import { Card } from './Card';

export function App() {
  const [answer, setAnswer] = useState<TargetsAnswer>();
  const [problem, setProblem] = useState<string>();
  const [connectAll, setConnectAll] = useState(0);

  useEffect(() => {
    let live = true;
    const poll = () =>
      fetchTargets().then(
        (a) => live && (setAnswer(a), setProblem(undefined)),
        (e: Error) => live && setProblem(e.message),
      );
    void poll();
    const timer = setInterval(poll, 1000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, []);

  const up = answer?.targets.filter((t) => t.state === 'up').length ?? 0;
  return (
    <main>
      <header>
        <h1>create-sse-server</h1>
        <p>
          One event spec, a server per language. Each card opens a real <code>EventSource</code> from this page's origin to
          that server's.
        </p>
        <div className="toolbar">
          <button type="button" onClick={() => setConnectAll((n) => n + 1)} disabled={!up}>
            Connect all
          </button>
          <span className="muted">
            {answer ? `${up} of ${answer.targets.length} servers up` : 'asking the demo server…'}
            {problem && <span className="bad"> · {problem}</span>}
          </span>
        </div>
      </header>
      <section className="cards">
        {answer?.targets.map((t) => <Card key={t.id} target={t} now={answer.now} connectAll={connectAll} />)}
      </section>
    </main>
  );
}
