import { useState, type FormEvent } from "react";
import { api, type User } from "../api";
import { logInProblem, signUpProblem } from "../messages";
import { Alert, Field, Link } from "../ui";
import { validateLogIn, validateSignUp, type FieldErrors } from "../validation";

export function LogIn({ onToken, notice }: { onToken: (token: string) => Promise<void>; notice?: string }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = validateLogIn({ email, password });
    setErrors(found);
    setProblem("");
    if (Object.keys(found).length || busy) return;
    setBusy(true);
    try {
      const answer = await api.logIn(email.trim(), password);
      await onToken(answer.access_token);
    } catch (error) {
      setProblem(logInProblem(error));
      setBusy(false);
    }
  }

  return (
    <section className="card narrow" aria-labelledby="login-title">
      <h1 id="login-title">Log in</h1>
      {notice && <Alert kind="info">{notice}</Alert>}
      {problem && <Alert kind="error">{problem}</Alert>}
      <form onSubmit={submit} noValidate>
        <Field id="login-email" label="Email" error={errors.email}>
          {(described, invalid) => (
            <input id="login-email" type="email" autoComplete="username" value={email}
              aria-describedby={described} aria-invalid={invalid} onChange={(e) => setEmail(e.target.value)} />
          )}
        </Field>
        <Field id="login-password" label="Password" error={errors.password}>
          {(described, invalid) => (
            <input id="login-password" type="password" autoComplete="current-password" value={password}
              aria-describedby={described} aria-invalid={invalid} onChange={(e) => setPassword(e.target.value)} />
          )}
        </Field>
        <button type="submit" disabled={busy}>{busy ? "Logging in…" : "Log in"}</button>
      </form>
      <p>New here? <Link to="/signup">Open your bank login</Link></p>
    </section>
  );
}

export function SignUp({ onSignedUp }: { onSignedUp: (user: User) => void }) {
  const [form, setForm] = useState({ name: "", email: "", password: "" });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [problem, setProblem] = useState("");
  const [busy, setBusy] = useState(false);
  const set = (field: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm({ ...form, [field]: e.target.value });

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = validateSignUp(form);
    setErrors(found);
    setProblem("");
    if (Object.keys(found).length || busy) return;
    setBusy(true);
    try {
      onSignedUp(await api.signUp(form.name.trim(), form.email.trim(), form.password));
    } catch (error) {
      const { message, fields } = signUpProblem(error);
      setErrors(fields);
      setProblem(message);
      setBusy(false);
    }
  }

  return (
    <section className="card narrow" aria-labelledby="signup-title">
      <h1 id="signup-title">Sign up</h1>
      {problem && <Alert kind="error">{problem}</Alert>}
      <form onSubmit={submit} noValidate>
        <Field id="signup-name" label="Name" error={errors.name}>
          {(described, invalid) => (
            <input id="signup-name" autoComplete="name" value={form.name}
              aria-describedby={described} aria-invalid={invalid} onChange={set("name")} />
          )}
        </Field>
        <Field id="signup-email" label="Email" error={errors.email}>
          {(described, invalid) => (
            <input id="signup-email" type="email" autoComplete="email" value={form.email}
              aria-describedby={described} aria-invalid={invalid} onChange={set("email")} />
          )}
        </Field>
        <Field id="signup-password" label="Password" hint="At least 12 characters." error={errors.password}>
          {(described, invalid) => (
            <input id="signup-password" type="password" autoComplete="new-password" value={form.password}
              aria-describedby={described} aria-invalid={invalid} onChange={set("password")} />
          )}
        </Field>
        <button type="submit" disabled={busy}>{busy ? "Signing up…" : "Sign up"}</button>
      </form>
      <p>Already a customer? <Link to="/login">Log in</Link></p>
    </section>
  );
}
