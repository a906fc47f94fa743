// The result pages' drawing: DOM built as text nodes only (never HTML from data), charts by
// the vendored lightweight-charts (the global LightweightCharts, loaded before this module).
// Imports nothing, so a report inlines it as a plain script (ktrdr_api.dashboard.report_html).

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(4);
  return String(value);
}

export function table(headers, rows, attrs) {
  return el(
    "table",
    attrs,
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell) => el("td", {}, cell))))),
  );
}

// Every chart on the page, by name: for linked zoom, and for tests and the bench, which read
// the library's own series (series.data(), markers.markers()).
export const charts = {};
globalThis.ktrdrCharts = charts;

const COLORS = { equity: "#2962ff", held: "#9e9e9e", drawdown: "#d32f2f", up: "#26a69a", down: "#ef5350" };

function pane(root, name, title, height) {
  const box = el("div", { class: "chart", "data-chart": name, style: null });
  root.append(el("h4", {}, title), box);
  const chart = LightweightCharts.createChart(box, {
    height,
    autoSize: true,
    layout: { attributionLogo: true },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { minimumWidth: 90 },
  });
  charts[name] = { chart };
  return chart;
}

function points(rows) {
  return rows.filter((r) => r[1] !== null).map(([time, value]) => ({ time, value }));
}

function linkZoom() {
  const all = Object.values(charts).map((c) => c.chart);
  let busy = false;
  for (const chart of all) {
    chart.timeScale().subscribeVisibleTimeRangeChange((range) => {
      if (busy || !range) return;
      busy = true;
      for (const other of all) if (other !== chart) other.timeScale().setVisibleRange(range);
      busy = false;
    });
  }
}

function equityPanes(root, prefix, data) {
  const equity = pane(root, `${prefix}equity`, "Equity against buy-and-hold", 260);
  const held = equity.addSeries(LightweightCharts.LineSeries, { color: COLORS.held, lineWidth: 1, title: "buy & hold" });
  held.setData(points(data.buy_and_hold));
  const mine = equity.addSeries(LightweightCharts.LineSeries, { color: COLORS.equity, lineWidth: 2, title: "strategy" });
  mine.setData(points(data.equity));
  Object.assign(charts[`${prefix}equity`], { equity: mine, held });
  const dd = pane(root, `${prefix}drawdown`, "Drawdown (fraction below the peak)", 160);
  const under = dd.addSeries(LightweightCharts.AreaSeries, {
    lineColor: COLORS.drawdown, topColor: "rgba(211,47,47,0.05)", bottomColor: "rgba(211,47,47,0.4)",
    invertFilledArea: true, priceFormat: { type: "percent" },
  });
  under.setData(points(data.drawdown).map((p) => ({ time: p.time, value: -p.value * 100 })));
  charts[`${prefix}drawdown`].drawdown = under;
}

function metricsTable(data, name) {
  const keys = Object.keys(data.metrics);
  return table(
    ["metric", "strategy", "buy & hold"],
    keys.map((k) => [k, fmt(data.metrics[k]), fmt((data.buy_and_hold_metrics || {})[k])]),
    { class: "metrics", "data-metrics": name },
  );
}

function symbolSection(root, series) {
  const s = series;
  const section = el("section", { class: "symbol", "data-symbol": s.symbol });
  section.append(el("h3", {}, `${s.symbol}: ${s.trades.length} trades over ${s.bars} bars`));
  section.append(metricsTable(s, s.symbol));
  const counts = s.signal_counts || {};
  section.append(
    el("h4", {}, "Signals"),
    table(Object.keys(counts), [Object.values(counts).map(fmt)], { class: "signals", "data-signals": s.symbol }),
  );
  if (s.zero_trade_reason) section.append(el("p", { class: "no-trades" }, `No trade: ${s.zero_trade_reason}`));
  root.append(section);
  const price = pane(section, `${s.symbol}:price`, `${s.symbol} price, entries and exits`, 320);
  const candles = price.addSeries(LightweightCharts.CandlestickSeries, {
    upColor: COLORS.up, downColor: COLORS.down, borderVisible: false, wickUpColor: COLORS.up, wickDownColor: COLORS.down,
  });
  candles.setData(s.price.map(([time, open, high, low, close]) => ({ time, open, high, low, close })));
  const marks = [];
  for (const t of s.trades) {
    const long = t.side === "long";
    if (t.entry_time !== null) marks.push({ time: t.entry_time, position: long ? "belowBar" : "aboveBar", color: long ? COLORS.up : COLORS.down, shape: long ? "arrowUp" : "arrowDown", text: long ? "buy" : "sell", id: "entry" });
    if (t.exit_time !== null) marks.push({ time: t.exit_time, position: long ? "aboveBar" : "belowBar", color: "#616161", shape: "circle", text: "exit", id: "exit" });
  }
  marks.sort((a, b) => a.time - b.time);
  const markers = LightweightCharts.createSeriesMarkers(candles, marks);
  Object.assign(charts[`${s.symbol}:price`], { candles, markers });
  equityPanes(section, `${s.symbol}:`, s);
}

export function renderBacktest(root, series) {
  for (const key of Object.keys(charts)) delete charts[key];
  const names = Object.keys(series.symbols);
  root.append(
    el("p", { class: "lede" },
      `${series.strategy_name} · ${names.join(", ")} · ${series.timeframe} · ${series.period} period ${series.start} … ${series.end} · ${series.bars} bars`),
  );
  if (series.portfolio) {
    const p = series.portfolio;
    const section = el("section", { class: "portfolio" }, el("h3", {}, `Portfolio of ${names.join(", ")}`));
    section.append(metricsTable(p, "portfolio"));
    section.append(
      el("h4", {}, "Sleeves"),
      table(["symbol", "weight", "contribution"], names.map((n) => [n, fmt(p.weights[n]), fmt(p.contributions[n])]), { class: "sleeves" }),
    );
    root.append(section);
    equityPanes(section, "portfolio:", p);
  }
  for (const name of names) symbolSection(root, series.symbols[name]);
  linkZoom();
  for (const c of Object.values(charts)) c.chart.timeScale().fitContent();
}

export function renderWalkforward(root, series) {
  for (const key of Object.keys(charts)) delete charts[key];
  root.append(el("p", { class: "lede" }, `${series.strategy_name} · stitched out-of-sample equity, ${series.fold_starts.length} folds`));
  root.append(table(["metric", "out of sample"], Object.entries(series.metrics).map(([k, v]) => [k, fmt(v)]), { class: "metrics", "data-metrics": "walkforward" }));
  equityPanes(root, "walkforward:", series);
  const held = charts["walkforward:equity"].held;
  const folds = LightweightCharts.createSeriesMarkers(held, series.fold_starts.map((time, i) => ({ time, position: "aboveBar", color: "#455a64", shape: "square", text: `fold ${i}` })));
  charts["walkforward:equity"].folds = folds;
  linkZoom();
  for (const c of Object.values(charts)) c.chart.timeScale().fitContent();
}

// Set once every series has its data and a frame has been drawn (the bench waits for it).
export function markReady(root) {
  // Its value: milliseconds since navigation began (bench/dashboard.py reads it).
  requestAnimationFrame(() =>
    requestAnimationFrame(() => root.setAttribute("data-charts-ready", String(Math.round(performance.now())))),
  );
}

// A report file's entry point: the series inlined beside this code.
export function renderReport(kind) {
  const root = document.getElementById("view");
  const series = JSON.parse(document.getElementById("ktrdr-series").textContent);
  root.append(el("h2", {}, kind === "backtest" ? `Backtest of ${series.strategy_name}` : `Walk-forward of ${series.strategy_name}`));
  (kind === "backtest" ? renderBacktest : renderWalkforward)(root, series);
  markReady(root);
}

// A study's objective by trial number (a numeric horizontal axis: the library's options
// chart), each completed trial a point, and the best so far as a step line.
export function trialsChart(root, name) {
  const box = el("div", { class: "chart", "data-chart": name });
  root.append(box);
  const chart = LightweightCharts.createOptionsChart(box, {
    height: 240,
    autoSize: true,
    localization: { timeFormatter: (n) => `trial ${n}` },
    timeScale: { tickMarkFormatter: (n) => (Number.isInteger(n) ? `#${n}` : "") },
  });
  const values = chart.addSeries(LightweightCharts.LineSeries, {
    color: COLORS.equity, lineVisible: false, pointMarkersVisible: true, pointMarkersRadius: 4,
    title: "trial", lastValueVisible: false, priceLineVisible: false,
  });
  const best = chart.addSeries(LightweightCharts.LineSeries, {
    color: COLORS.up, lineWidth: 2, lineType: LightweightCharts.LineType.WithSteps, title: "best so far",
  });
  let drawn = null;
  charts[name] = {
    chart, values, best,
    // Redrawn (and refitted) only when a trial's value came or changed: a live page keeps
    // the reader's zoom between polls.
    show(trials, direction) {
      const done = trials.filter((t) => t.state === "completed" && t.value !== null && t.value !== undefined)
        .sort((a, b) => a.number - b.number);
      const points = done.map((t) => ({ time: t.number, value: t.value }));
      const key = JSON.stringify(points);
      if (key === drawn) return;
      drawn = key;
      const better = direction === "maximize" ? Math.max : Math.min;
      let top = null;
      values.setData(points);
      best.setData(points.map((p) => ({ time: p.time, value: (top = top === null ? p.value : better(top, p.value)) })));
      chart.timeScale().fitContent();
    },
  };
  return charts[name];
}
