import { Component, useCallback, useEffect, useState, type ReactNode } from "react";
import { api, onSignedOut, setToken, type User } from "./api";
import { describeError } from "./messages";
import { NotificationsContext, useLiveNotifications, useNotifications } from "./notifications";
import { Accounts } from "./pages/Accounts";
import { Admin } from "./pages/Admin";
import { LogIn, SignUp } from "./pages/Auth";
import { History } from "./pages/History";
import { MoveMoney } from "./pages/Move";
import { NotificationList } from "./pages/Notifications";
import { Alert, Link, navigate, SessionContext, usePath, useSession } from "./ui";

export function App() {
  const [user, setUser] = useState<User | null>(null);
  const [notice, setNotice] = useState<string | undefined>();
  const path = usePath();

  const logOut = useCallback((message?: string) => {
    setToken(null);
    setUser(null);
    setNotice(message);
    navigate("/login");
  }, []);

  useEffect(() => onSignedOut(() => logOut("Your session has ended. Log in again.")), [logOut]);

  const onToken = async (token: string) => {
    setToken(token);
    try {
      setUser(await api.me());
    } catch (error) {
      setToken(null);
      throw error;
    }
    setNotice(undefined);
    navigate("/accounts");
  };

  let page: ReactNode;
  if (!user) {
    page =
      path === "/signup" ? (
        <SignUp
          onSignedUp={(made) => {
            setNotice(`Welcome, ${made.name}: you are signed up. Log in to open your first account.`);
            navigate("/login");
          }}
        />
      ) : (
        <LogIn onToken={onToken} notice={notice} />
      );
  }

  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      {user ? (
        <SessionContext.Provider value={{ user, logOut }}>
          <SignedIn path={path} />
        </SessionContext.Provider>
      ) : (
        <>
          <header className="top"><span className="brand">microbank</span></header>
          <main id="main" tabIndex={-1}>
            <Guard>{page}</Guard>
          </main>
        </>
      )}
    </>
  );
}

function SignedIn({ path }: { path: string }) {
  const notifications = useLiveNotifications();
  return (
    <NotificationsContext.Provider value={notifications}>
      <Header />
      <main id="main" tabIndex={-1}>
        <Guard key={path}>
          <Route path={path} />
        </Guard>
      </main>
    </NotificationsContext.Provider>
  );
}

function Route({ path }: { path: string }) {
  const { user } = useSession();
  const { version } = useNotifications();
  const history = /^\/accounts\/(\d+)$/.exec(path);
  if (history) return <History accountId={Number(history[1])} version={version} />;
  if (path === "/move") return <MoveMoney version={version} />;
  if (path === "/notifications") return <NotificationList />;
  if (path === "/admin" && user.role === "admin") return <Admin />;
  if (path !== "/accounts") {
    queueMicrotask(() => navigate("/accounts"));
    return null;
  }
  return <Accounts version={version} />;
}

function Header() {
  const { user, logOut } = useSession();
  const { unread, live } = useNotifications();
  return (
    <header className="top">
      <span className="brand">microbank</span>
      <nav aria-label="Main">
        <Link to="/accounts">Accounts</Link>
        <Link to="/move">Move money</Link>
        {user.role === "admin" && <Link to="/admin">Admin</Link>}
        <Link to="/notifications" className="bell">
          <BellIcon />
          <span className="visually-hidden">Notifications, </span>
          <span className="badge" data-testid="unread-count">{unread}</span>
          <span className="visually-hidden"> unread{live ? "" : " (updates paused, reconnecting)"}</span>
        </Link>
      </nav>
      <div className="who">
        <span className="name">{user.name}</span>
        <button type="button" className="secondary" onClick={() => logOut("You have logged out.")}>Log out</button>
      </div>
    </header>
  );
}

function BellIcon() {
  return (
    <svg className="icon" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
      <path
        fill="currentColor"
        d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z"
      />
    </svg>
  );
}

/** A page that fails to render shows a message, not a blank screen. */
class Guard extends Component<{ children: ReactNode }, { error: unknown }> {
  state = { error: undefined as unknown };

  static getDerivedStateFromError(error: unknown) {
    return { error };
  }

  render() {
    if (this.state.error !== undefined) {
      return <Alert kind="error">{describeError(this.state.error)}</Alert>;
    }
    return this.props.children;
  }
}
