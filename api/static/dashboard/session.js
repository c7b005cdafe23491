// Sign-in and authorised reads. Tokens live in this module's memory only (never in
// localStorage or a readable cookie): reloading the page asks for the password again.

const STAFF_ROLES = new Set(["staff", "admin"]);

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

// The session ended (refresh refused) or was never opened: the page asks to sign in.
export class SignInNeeded extends Error {}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText, detail: `HTTP ${response.status}` };
  }
}

export class Session {
  constructor() {
    this.accessToken = null;
    this.refreshToken = null;
    this.user = null;
    this.refreshing = null;
  }

  get signedIn() {
    return this.accessToken !== null;
  }

  // {ok: true, user} for a staff account; {ok: false, message} otherwise.
  async signIn(email, password) {
    const response = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ email, password }),
    });
    if (!response.ok) {
      const problem = await problemOf(response);
      if (response.status === 401) {
        return { ok: false, message: "Wrong email or password." };
      }
      return { ok: false, message: problem.detail || problem.title || `HTTP ${response.status}` };
    }
    const tokens = await response.json();
    if (!STAFF_ROLES.has(tokens.user.role)) {
      // Close the session we were given: a customer has nothing to do here.
      await fetch("/api/auth/logout", {
        method: "POST",
        headers: {
          Authorization: `Bearer ${tokens.accessToken}`,
          "Content-Type": "application/json",
        },
        body: JSON.stringify({ refreshToken: tokens.refreshToken }),
      }).catch(() => undefined);
      return {
        ok: false,
        message:
          `${tokens.user.email} is not a staff account: the dashboard is for staff only. ` +
          "Sign in with a staff account (shop seed prints one; shop admin create makes one).",
      };
    }
    this.keep(tokens);
    return { ok: true, user: tokens.user };
  }

  keep(tokens) {
    this.accessToken = tokens.accessToken;
    this.refreshToken = tokens.refreshToken;
    this.user = tokens.user;
  }

  forget() {
    this.accessToken = null;
    this.refreshToken = null;
    this.user = null;
    this.refreshing = null;
  }

  async signOut() {
    if (!this.signedIn) return;
    const headers = {
      Authorization: `Bearer ${this.accessToken}`,
      "Content-Type": "application/json",
    };
    const body = JSON.stringify({ refreshToken: this.refreshToken });
    this.forget();
    await fetch("/api/auth/logout", { method: "POST", headers, body }).catch(() => undefined);
  }

  // One refresh at a time: parallel reads that all got 401 wait for the same one.
  async refresh() {
    if (!this.refreshing) {
      const token = this.refreshToken;
      this.refreshing = (async () => {
        if (!token) return false;
        const response = await fetch("/api/auth/refresh", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ refreshToken: token }),
        });
        if (!response.ok) return false;
        this.keep(await response.json());
        return true;
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  // GET a JSON API as the signed-in member; a 401 refreshes the token once.
  async getJson(path) {
    if (!this.signedIn) throw new SignInNeeded();
    for (let attempt = 0; ; attempt += 1) {
      const token = this.accessToken;
      const response = await fetch(path, {
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      });
      if (response.ok) return response.json();
      if (response.status === 401 && attempt === 0) {
        // Another read may have refreshed already; otherwise refresh now.
        if (this.accessToken !== token || (await this.refresh())) continue;
        this.forget();
        throw new SignInNeeded();
      }
      if (response.status === 401) {
        this.forget();
        throw new SignInNeeded();
      }
      throw new ApiError(response.status, await problemOf(response));
    }
  }
}
