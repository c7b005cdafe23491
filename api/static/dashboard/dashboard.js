// The staff dashboard: signs in, reads /api/analytics/{dashboard,funnel,retention} and
// draws them. The page is marked ``data-loaded="<range>"`` once a range is on screen.

import { bar, el, heat, lineChart } from "./charts.js";
import { count, growth, money, moment, percent, seconds } from "./format.js";
import { ApiError, Session, SignInNeeded } from "./session.js";

const session = new Session();
const $ = (id) => document.getElementById(id);

// Retention cohorts for each range: daily up to 30 days, weekly beyond. A single day's
// cohort cannot show anyone coming back, so 24h shows the last week's daily cohorts.
const RETENTION = {
  "24h": { period: "day", periods: 7, timeRange: "7d" },
  "7d": { period: "day", periods: 7, timeRange: "7d" },
  "30d": { period: "day", periods: 14, timeRange: "30d" },
  "90d": { period: "week", periods: 12, timeRange: "90d" },
  "12m": { period: "week", periods: 26, timeRange: "12m" },
};

let generation = 0;
let shown = null; // the last data drawn, for the overlay toggle

function selectedRange() {
  const checked = document.querySelector("input[name=range]:checked");
  return checked ? checked.value : "7d";
}

function say(text) {
  $("status").textContent = text;
}

function fail(text) {
  const box = $("error");
  box.textContent = text;
  box.hidden = !text;
}

function showSignIn(message) {
  $("board").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  const note = $("sign-in-message");
  note.textContent = message || "";
  note.hidden = !message;
  document.body.removeAttribute("data-loaded");
  say("");
  $("email").focus();
}

function showBoard() {
  $("sign-in").hidden = true;
  $("sign-in-message").hidden = true;
  $("who-email").textContent = session.user.email;
  $("who").hidden = false;
  $("board").hidden = false;
}

// ---- headline figures -------------------------------------------------------------

function figure(key, label, value, text, change, { upIsGood = true } = {}) {
  const item = el("div", { class: "figure", "data-key": key, "data-value": value ?? "" });
  item.append(el("dt", {}, label));
  const dd = el("dd", {}, el("span", { class: "value" }, text));
  if (change !== undefined) {
    let arrow = "";
    let tone = "flat";
    let words = "no previous figure to compare with";
    if (change !== null) {
      arrow = change > 0 ? "▲" : change < 0 ? "▼" : "▶";
      const better = change === 0 ? null : change > 0 === upIsGood;
      tone = better === null ? "flat" : better ? "good" : "bad";
      const direction = change > 0 ? "up" : change < 0 ? "down" : "unchanged";
      words = `${direction} ${percent(Math.abs(change))} on the previous period`;
    }
    dd.append(
      el(
        "span",
        { class: `growth ${tone}`, "data-growth": change ?? "", title: words },
        el("span", { "aria-hidden": "true" }, change === null ? "–" : `${arrow} ${percent(Math.abs(change))}`),
        el("span", { class: "visually-hidden" }, words),
      ),
    );
  }
  item.append(dd);
  return item;
}

function aov(revenue, orders) {
  return orders ? Math.round(revenue / orders) : 0;
}

function drawHeadline(data) {
  const sales = data.sales;
  const users = data.users;
  const prev = sales.previous;
  const uprev = users.previous;
  const cur = sales.currency;
  const compare = (value, before) => (prev ? growth(value, before) : undefined);
  $("headline").replaceChildren(
    figure("revenue", "Revenue", sales.revenue, money(sales.revenue, cur), prev ? sales.revenueGrowth : undefined),
    figure("orders", "Orders", sales.orders, count(sales.orders), prev ? sales.ordersGrowth : undefined),
    figure(
      "avgOrderValue",
      "Average order value",
      sales.avgOrderValue,
      money(sales.avgOrderValue, cur),
      prev ? growth(sales.avgOrderValue, aov(prev.revenue, prev.orders)) : undefined,
    ),
    figure("refunds", "Refunds", sales.refunds, money(sales.refunds, cur), compare(sales.refunds, prev?.refunds), {
      upIsGood: false,
    }),
    figure("netRevenue", "Net revenue", sales.netRevenue, money(sales.netRevenue, cur), compare(sales.netRevenue, prev?.netRevenue)),
    figure("newUsers", "New users", users.newUsers, count(users.newUsers), uprev ? growth(users.newUsers, uprev.newUsers) : undefined),
    figure(
      "activeUsers",
      "Active users",
      users.activeUsers,
      count(users.activeUsers),
      uprev ? growth(users.activeUsers, uprev.activeUsers) : undefined,
    ),
    figure("retentionRate", "Retention rate", users.retentionRate, percent(users.retentionRate)),
  );

  const rows = sales.byCurrency || [];
  if (rows.length > 1) {
    const table = el(
      "table",
      { class: "data", id: "by-currency" },
      el("caption", {}, "Sales by currency (never added together)"),
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          ...["Currency", "Revenue", "Orders", "Average order", "Refunds", "Net revenue", "Revenue growth"].map((h, i) =>
            el("th", { scope: "col", class: i ? "num" : null }, h),
          ),
        ),
      ),
      el(
        "tbody",
        {},
        ...rows.map((r) =>
          el(
            "tr",
            { "data-currency": r.currency },
            el("th", { scope: "row" }, r.currency),
            el("td", { class: "num" }, money(r.revenue, r.currency)),
            el("td", { class: "num" }, count(r.orders)),
            el("td", { class: "num" }, money(r.avgOrderValue, r.currency)),
            el("td", { class: "num" }, money(r.refunds, r.currency)),
            el("td", { class: "num" }, money(r.netRevenue, r.currency)),
            el("td", { class: "num" }, r.revenueGrowth === null || r.revenueGrowth === undefined ? "—" : percent(r.revenueGrowth)),
          ),
        ),
      ),
    );
    $("currencies").replaceChildren(table);
  } else {
    $("currencies").replaceChildren();
  }
}

// ---- charts -------------------------------------------------------------------------

const CHARTS = [
  { id: "chart-revenue", key: "revenue", title: "Revenue", money: true, summary: "Total" },
  { id: "chart-orders", key: "orders", title: "Orders", summary: "Total" },
  { id: "chart-active", key: "activeUsers", title: "Active users", summary: "Peak" },
];

function drawCharts(data) {
  const series = data.series || { points: [], previousPoints: null, granularity: "day" };
  const currency = series.currency || data.sales.currency;
  const overlay = $("compare").checked && Array.isArray(series.previousPoints);
  const per = series.granularity === "hour" ? "hour" : "day";
  for (const spec of CHARTS) {
    const values = series.points.map((p) => p[spec.key] ?? 0);
    const previous = overlay ? series.previousPoints.map((p) => p[spec.key] ?? 0) : null;
    const format = spec.money ? (v) => money(Math.round(v), currency) : (v) => count(Math.round(v));
    const total = values.reduce((a, b) => a + b, 0);
    const peak = values.length ? Math.max(...values) : 0;
    const shownValue = spec.summary === "Total" ? total : peak;
    const title = `${spec.title} per ${per}: ${spec.summary.toLowerCase()} ${format(shownValue)}`;
    const box = $(spec.id);
    box.dataset.points = String(values.length);
    box.dataset.total = String(total);
    box.dataset.previousShown = String(Boolean(previous));
    const previousValues = Array.isArray(series.previousPoints)
      ? series.previousPoints.map((p) => p[spec.key] ?? 0)
      : [];
    const previousTotal = previousValues.reduce((a, b) => a + b, 0);
    const previousPeak = previousValues.length ? Math.max(...previousValues) : 0;
    const summary = el(
      "p",
      { class: "chart-summary" },
      el("span", { class: "chart-total" }, `${spec.summary}: ${format(shownValue)}`),
      previous
        ? el(
            "span",
            { class: "chart-previous" },
            ` · previous period: ${format(spec.summary === "Total" ? previousTotal : previousPeak)}`,
          )
        : null,
    );
    const legend = el(
      "p",
      { class: "legend" },
      el("span", { class: "key current" }, "this period"),
      previous ? el("span", { class: "key previous" }, "previous period") : null,
    );
    const label = (i) => moment(series.points[i].at, series.granularity);
    box.replaceChildren(
      el("figcaption", {}, `${spec.title} per ${per}`),
      summary,
      lineChart({ title, values, previous, label, format }),
      legend,
    );
  }
}

// ---- funnel -------------------------------------------------------------------------

function drawFunnel(funnel) {
  const steps = funnel.steps || [];
  const start = steps.length ? steps[0].count : 0;
  const table = el(
    "table",
    { class: "data funnel", id: "funnel-table" },
    el("caption", {}, `People through each step (order: ${funnel.order}, window ${funnel.window})`),
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Step", "People", "", "From previous", "Dropped", "Still in window", "Median time"].map((h, i) =>
          el("th", { scope: "col", class: i === 2 ? "bar-col" : null }, i === 2 ? el("span", { class: "visually-hidden" }, "Share of the first step") : h),
        ),
      ),
    ),
    el(
      "tbody",
      {},
      ...steps.map((s) =>
        el(
          "tr",
          { "data-step": s.step, "data-count": s.count },
          el("th", { scope: "row" }, s.step.replaceAll("_", " ")),
          el("td", { class: "num" }, count(s.count)),
          el(
            "td",
            { class: "bar-col" },
            bar(
              s.conversionFromStart,
              start ? s.inWindow / start : 0,
              `${percent(s.conversionFromStart)} of the first step, ${count(s.inWindow)} still in the window`,
            ),
          ),
          el("td", { class: "num" }, percent(s.conversionFromPrevious)),
          el("td", { class: "num dropped" }, s.dropped ? `−${count(s.dropped)}` : "0"),
          el("td", { class: "num" }, count(s.inWindow)),
          el("td", { class: "num" }, seconds(s.medianSecondsFromPrevious)),
        ),
      ),
    ),
  );
  const nobody = start === 0 ? el("p", { class: "empty" }, "Nobody entered the funnel in this range.") : null;
  $("funnel").replaceChildren(...[nobody, steps.length ? table : null].filter(Boolean));
}

// ---- retention ----------------------------------------------------------------------

function drawRetention(retention) {
  const cohorts = retention.cohorts || [];
  const unit = retention.period === "day" ? "Day" : "Week";
  const caption = `${unit === "Day" ? "Daily" : "Weekly"} cohorts by ${
    retention.cohortBy === "first_visit" ? "first visit" : "first order"
  }: the share who came back in each later ${unit.toLowerCase()}`;
  if (cohorts.length === 0) {
    $("retention").replaceChildren(el("p", { class: "empty" }, "No cohorts in this range yet."));
    return;
  }
  const periods = Math.max(retention.periods || 0, ...cohorts.map((c) => c.rates.length));
  const head = el(
    "tr",
    {},
    el("th", { scope: "col" }, "Cohort"),
    el("th", { scope: "col" }, "People"),
    ...Array.from({ length: periods }, (_, k) => el("th", { scope: "col" }, `${unit} ${k}`)),
  );
  const body = cohorts.map((c) => {
    const cells = Array.from({ length: periods }, (_, k) => {
      if (k >= c.rates.length) return el("td", { class: "heat none" }, "");
      const shade = heat(c.rates[k]);
      const cell = el(
        "td",
        { class: `heat${shade.dark ? " dark" : ""}`, "data-rate": c.rates[k], title: `${count(c.retained[k])} of ${count(c.size)}` },
        percent(c.rates[k]),
      );
      cell.style.backgroundColor = shade.background; // CSSOM: allowed by the CSP
      return cell;
    });
    return el(
      "tr",
      { "data-cohort": c.start },
      el("th", { scope: "row" }, c.start),
      el("td", { class: "num" }, count(c.size)),
      ...cells,
    );
  });
  $("retention").replaceChildren(
    el(
      "div",
      { class: "scroll" },
      el("table", { class: "data heatmap", id: "retention-table" }, el("caption", {}, caption), el("thead", {}, head), el("tbody", {}, ...body)),
    ),
  );
}

// ---- products -----------------------------------------------------------------------

function table(id, caption, headings, rows, empty) {
  if (rows.length === 0) return el("p", { class: "empty", id }, empty);
  return el(
    "table",
    { class: "data", id },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, ...headings.map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
    el("tbody", {}, ...rows),
  );
}

function topRows(products) {
  return products.map((p) =>
    el(
      "tr",
      { "data-product": p.productId },
      el("th", { scope: "row" }, p.name),
      el("td", { class: "num" }, count(p.units)),
      el("td", { class: "num" }, money(p.revenue, p.currency)),
    ),
  );
}

function drawProducts(products) {
  // Revenue is ranked within a currency, never across: the main currency's first (as the
  // headline figures), then each other currency's own table.
  const top = topRows(products.topByRevenue || []);
  const others = (products.topByRevenueByCurrency || [])
    .filter((c) => c.currency !== products.currency)
    .map((c) =>
      table(`top-revenue-${c.currency}`, `By revenue in ${c.currency}`, ["Product", "Units", "Revenue"], topRows(c.topByRevenue), ""),
    );
  const viewed = (products.viewToPurchase || []).map((p) =>
    el(
      "tr",
      { "data-product": p.productId },
      el("th", { scope: "row" }, p.name),
      el("td", { class: "num" }, count(p.views)),
      el("td", { class: "num" }, count(p.purchases)),
      el("td", { class: "num" }, percent(p.rate)),
    ),
  );
  const caption = products.currency ? `By revenue in ${products.currency}` : "By revenue";
  $("top-products").replaceChildren(
    table("top-revenue", caption, ["Product", "Units", "Revenue"], top, "No sales in this range."),
    ...others,
    table("view-to-purchase", "Views to purchases", ["Product", "Views", "Purchases", "Rate"], viewed, "No product views in this range."),
  );
  const low = (products.lowStock || []).map((p) =>
    el(
      "tr",
      { "data-product": p.productId },
      el("th", { scope: "row" }, p.name),
      el("td", { class: "num" }, count(p.available)),
      el("td", { class: "num" }, count(p.lowStockThreshold)),
    ),
  );
  $("low-stock").replaceChildren(
    table("low-stock-table", "Products at or under their low-stock threshold", ["Product", "Available", "Threshold"], low, "Nothing is low on stock."),
  );
}

// ---- loading ------------------------------------------------------------------------

function drawRange(data) {
  const r = data.range;
  const per = r.granularity === "hour" ? "hourly" : "daily";
  let text = `${moment(r.from, r.granularity)} – ${moment(r.to, r.granularity)} (UTC, ${per})`;
  if (r.previousFrom) {
    text += `, compared with ${moment(r.previousFrom, r.granularity)} – ${moment(r.previousTo, r.granularity)}`;
  }
  $("range-text").textContent = text;
}

async function load() {
  const range = selectedRange();
  const mine = ++generation;
  document.body.removeAttribute("data-loaded");
  say(`Loading the last ${range}…`);
  fail("");
  const r = RETENTION[range];
  const query = new URLSearchParams({ timeRange: range });
  const retentionQuery = new URLSearchParams({ period: r.period, periods: String(r.periods), timeRange: r.timeRange });
  try {
    const [dashboard, funnel, retention] = await Promise.all([
      session.getJson(`/api/analytics/dashboard?${query}&compare=previous_period`),
      session.getJson(`/api/analytics/funnel?${query}`),
      session.getJson(`/api/analytics/retention?${retentionQuery}`),
    ]);
    if (mine !== generation) return; // another range was chosen meanwhile
    shown = { dashboard };
    drawRange(dashboard);
    drawHeadline(dashboard);
    drawCharts(dashboard);
    drawFunnel(funnel);
    drawRetention(retention);
    drawProducts(dashboard.products);
    $("updated").textContent = `Figures as of ${new Date(dashboard.timestamp).toISOString()}`;
    say(`Showing the last ${range}.`);
    document.body.dataset.loaded = range;
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof SignInNeeded) {
      showSignIn("Your session has ended: sign in again.");
    } else if (error instanceof ApiError && error.status === 403) {
      await session.signOut();
      showSignIn("This account may not read analytics: the dashboard is for staff only.");
    } else if (error instanceof ApiError) {
      const p = error.problem;
      say("");
      fail(`Could not load the figures: ${p.title || "error"}: ${p.detail || error.message}${p.code ? ` (${p.code})` : ""}`);
    } else {
      say("");
      fail(`Could not load the figures: ${error.message}`);
    }
  }
}

function start() {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const email = $("email").value.trim();
    const password = $("password").value;
    if (!email || !password) {
      showSignIn("Enter your email and password.");
      return;
    }
    say("Signing in…");
    let result;
    try {
      result = await session.signIn(email, password);
    } catch (error) {
      result = { ok: false, message: `Could not reach the server: ${error.message}` };
    }
    $("password").value = "";
    if (!result.ok) {
      showSignIn(result.message);
      return;
    }
    showBoard();
    await load();
  });
  $("sign-out").addEventListener("click", async () => {
    generation += 1;
    await session.signOut();
    showSignIn("Signed out.");
  });
  for (const input of document.querySelectorAll("input[name=range]")) {
    input.addEventListener("change", () => load());
  }
  $("controls").addEventListener("submit", (event) => event.preventDefault());
  $("compare").addEventListener("change", () => {
    if (shown) drawCharts(shown.dashboard);
  });
  showSignIn("");
}

start();
