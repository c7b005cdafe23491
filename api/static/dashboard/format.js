// How figures read on the page. Money arrives in minor units with its currency.

const LOCALE = "en-US";

// ISO 4217 minor-unit exponents that differ from 2: the server's own (core/money.py
// _EXPONENTS, which a test holds this to). Amounts arrive in these minor units; Intl's
// digits are CLDR's, which differ (HUF and IDR 0, IQD 0 where ISO says 2, 2 and 3), and
// read that way 1,234.56 HUF showed as 123,456.
const EXPONENTS = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0,
  UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0, BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3,
  OMR: 3, TND: 3, CLF: 4, UYW: 4,
};

export function fractionDigits(currency) {
  return EXPONENTS[currency] ?? 2;
}

export function money(minor, currency) {
  if (minor === null || minor === undefined) return "—";
  if (!currency) return count(minor);
  const digits = fractionDigits(currency);
  return new Intl.NumberFormat(LOCALE, {
    style: "currency",
    currency,
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(minor / 10 ** digits);
}

export function count(n) {
  if (n === null || n === undefined) return "—";
  return new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 }).format(n);
}

// Rates and growths are fractions (0.125 = 12.5 %).
export function percent(fraction) {
  if (fraction === null || fraction === undefined) return "—";
  return `${(fraction * 100).toFixed(1)}%`;
}

// Growth of current over previous as a fraction, null when there is nothing to compare.
export function growth(current, previous) {
  if (previous === null || previous === undefined || previous === 0) return null;
  if (current === null || current === undefined) return null;
  return Math.round(((current - previous) / previous) * 10000) / 10000;
}

export function moment(iso, granularity) {
  const at = new Date(iso);
  const options =
    granularity === "hour"
      ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC" }
      : { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" };
  return new Intl.DateTimeFormat(LOCALE, options).format(at);
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 90) return `${Math.round(value)} s`;
  if (value < 5400) return `${Math.round(value / 60)} min`;
  if (value < 172800) return `${(value / 3600).toFixed(1)} h`;
  return `${(value / 86400).toFixed(1)} d`;
}
