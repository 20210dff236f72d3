import { allPages, api } from "../api";
import { describeError } from "../messages";
import { Alert, formatTime, useLoad } from "../ui";
import { AccountTable, useAccounts } from "./Accounts";

/** Read-only: every user and every account, as the API shows them to an admin. */
export function Admin() {
  const users = useLoad(() => allPages(api.users), []);
  const accounts = useAccounts(0);
  return (
    <>
      <section className="card" aria-labelledby="users-title">
        <h1 id="users-title">Users</h1>
        {users.error !== undefined && <Alert kind="error">{describeError(users.error)}</Alert>}
        {users.data && (
          <table className="stack">
            <caption className="visually-hidden">Every user</caption>
            <thead>
              <tr>
                <th scope="col">Number</th>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Role</th>
                <th scope="col">Joined</th>
              </tr>
            </thead>
            <tbody>
              {users.data.map((u) => (
                <tr key={u.id}>
                  <td data-label="Number">{u.id}</td>
                  <td data-label="Name">{u.name}</td>
                  <td data-label="Email">{u.email}</td>
                  <td data-label="Role">{u.role}</td>
                  <td data-label="Joined">{formatTime(u.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section className="card" aria-labelledby="all-accounts-title">
        <h2 id="all-accounts-title">Accounts</h2>
        {accounts.error !== undefined && <Alert kind="error">{describeError(accounts.error)}</Alert>}
        {accounts.data && <AccountTable accounts={accounts.data} caption="Every account in the bank" />}
      </section>
    </>
  );
}
