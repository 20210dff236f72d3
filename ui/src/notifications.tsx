// The unread count and the newest notifications, kept live from the server-sent event stream.
import { createContext, useCallback, useContext, useEffect, useState } from "react";
import { api, type Notification } from "./api";
import { followNotifications } from "./stream";

interface Notifications {
  unread: number;
  /** Moves on every notification that arrives, so pages showing balances can reload. */
  version: number;
  live: boolean;
  arrived: Notification[];
  markRead: (ids: number[]) => Promise<void>;
}

export const NotificationsContext = createContext<Notifications>({
  unread: 0,
  version: 0,
  live: false,
  arrived: [],
  markRead: async () => {},
});

export const useNotifications = () => useContext(NotificationsContext);

export function useLiveNotifications(): Notifications {
  const [unreadIds, setUnreadIds] = useState<Set<number>>(new Set());
  const [arrived, setArrived] = useState<Notification[]>([]);
  const [live, setLive] = useState(false);

  useEffect(() => {
    const stop = new AbortController();
    // Subscribe first, then count: a notification stored in between is in one or both, and the
    // set of ids counts it once.
    followNotifications(
      (notification) => {
        setArrived((list) => [notification, ...list.filter((n) => n.id !== notification.id)]);
        if (!notification.read) setUnreadIds((ids) => new Set(ids).add(notification.id));
      },
      setLive,
      stop.signal,
    );
    api.unreadNotifications().then(
      (page) => setUnreadIds((ids) => new Set([...ids, ...page.items.map((n) => n.id)])),
      () => {},
    );
    return () => stop.abort();
  }, []);

  const markRead = useCallback(async (ids: number[]) => {
    for (const id of ids) {
      await api.markRead(id);
      setUnreadIds((current) => {
        const next = new Set(current);
        next.delete(id);
        return next;
      });
    }
  }, []);

  return { unread: unreadIds.size, version: arrived.length, live, arrived, markRead };
}
