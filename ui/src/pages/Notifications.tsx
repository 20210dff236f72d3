import { useState } from "react";
import { api, type Notification } from "../api";
import { describeError } from "../messages";
import { useNotifications } from "../notifications";
import { Alert, formatTime, useLoad } from "../ui";

export function NotificationList() {
  const { arrived, markRead, version } = useNotifications();
  const loaded = useLoad(() => api.notifications(), []);
  const [readIds, setReadIds] = useState<Set<number>>(new Set());
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);
  const seen = new Set<number>();
  const items = [...arrived, ...(loaded.data?.items ?? [])].filter((n) => !seen.has(n.id) && seen.add(n.id));
  const isRead = (n: Notification) => n.read || readIds.has(n.id);
  const unread = items.filter((n) => !isRead(n));

  async function mark(ids: number[]) {
    setBusy(true);
    setProblem("");
    try {
      await markRead(ids);
      setReadIds((current) => new Set([...current, ...ids]));
    } catch (error) {
      setProblem(describeError(error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="card" aria-labelledby="notes-title" data-version={version}>
      <div className="row">
        <h1 id="notes-title">Notifications</h1>
        <button type="button" className="secondary" disabled={busy || unread.length === 0}
          onClick={() => mark(unread.map((n) => n.id))}>
          Mark all as read
        </button>
      </div>
      {(loaded.error !== undefined || problem) && <Alert kind="error">{problem || describeError(loaded.error)}</Alert>}
      {!loaded.loading && items.length === 0 && <p>Nothing yet.</p>}
      <ul className="notes">
        {items.map((n) => (
          <li key={n.id} className={isRead(n) ? "read" : "unread"}>
            <p>
              {!isRead(n) && <span className="visually-hidden">Unread: </span>}
              {n.message}
            </p>
            <p className="meta">
              <time dateTime={n.timestamp}>{formatTime(n.timestamp)}</time>
              {!isRead(n) && (
                <button type="button" className="link" disabled={busy} onClick={() => mark([n.id])}>
                  Mark as read
                </button>
              )}
            </p>
          </li>
        ))}
      </ul>
      {loaded.data?.next && <p className="hint">Showing the newest {items.length}.</p>}
    </section>
  );
}
