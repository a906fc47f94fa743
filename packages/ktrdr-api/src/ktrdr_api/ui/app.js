// The ktrdr dashboard: hash routes (#/operations/ID, #/backtests/ID, ...) over the REST API.
// The token is asked once and kept in sessionStorage; it goes only in the Authorization
// header, never in a URL. Everything the API returns is rendered as text (charts.js: el).
import { charts, el, fmt, markReady, renderBacktest, renderWalkforward, table, trialsChart } from "./charts.js";

const API = "/api/v1";
const TOKEN_KEY = "ktrdr.token";
const POLL_MS = 1000;
const view = document.getElementById("view");
const notice = document.getElementById("notice");
const login = document.getElementById("login");
let me = null; // {name, role} of the token in use
let timer = null;

class Refused extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(API + path, { ...options, headers });
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    const detail = (await response.json().catch(() => ({}))).detail || "";
    throw new Refused(`The API refused the token (${response.status}): ${detail}`);
  }
  if (options.accept && options.accept.includes(response.status)) return response.json();
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${options.method || "GET"} ${path}: ${response.status} ${detail || response.statusText}`);
  }
  return response.json();
}

function say(message) {
  notice.hidden = !message;
  notice.textContent = message || "";
}

function askToken(message) {
  say(message);
  login.hidden = false;
  view.replaceChildren();
  document.getElementById("token").focus();
}

login.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  start();
});

const can = (role) => ({ admin: 4, researcher: 3 }[me.role] || 0) >= ({ researcher: 3, admin: 4 }[role] || 0);
const when = (stamp) => (stamp ? String(stamp).replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "—");
const link = (href, text) => el("a", { href }, text);

function progressCell(op) {
  const p = op.progress || {};
  return el("span", {}, el("progress", { max: 100, value: p.percent || 0, "data-percent": p.percent || 0 }), ` ${fmt(p.percent || 0)}%`);
}

// A value of any JSON type as text: numbers as fmt shows them, lists and objects as JSON.
const shown = (v) => (v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : fmt(v));

// Cancel and retry of an operation, unavailable (with the reason) below the researcher role.
function actions(op) {
  const live = op.state === "pending" || op.state === "running";
  const ended = op.state === "failed" || op.state === "cancelled";
  const allowed = can("researcher");
  const why = allowed ? null : `your token (${me.name}) has role ${me.role}: cancel and retry need researcher`;
  const path = `/operations/${op.operation_id}`;
  return el("p", { class: "actions" },
    el("button", { id: "cancel", disabled: !live || !allowed || op.cancel_requested, title: why, onclick: () => act(`${path}/cancel`) }, op.cancel_requested ? "Cancelling…" : "Cancel"),
    " ",
    el("button", { id: "retry", disabled: !ended || !allowed, title: why, onclick: () => act(`${path}/retry`) }, "Retry"),
    why ? el("span", { class: "lede" }, ` (${why})`) : null,
  );
}

function pageOf(op) {
  if (op.kind === "tune") return `#/tunes/${op.operation_id}`;
  if (op.kind === "backtest" && op.state === "completed") return `#/backtests/${op.operation_id}`;
  if (op.kind === "walkforward" && op.state === "completed") return `#/walkforwards/${op.operation_id}`;
  return null;
}

function operationsTable(ops) {
  return table(
    ["operation", "kind", "state", "progress", "message", "strategy", "created"],
    ops.map((op) => [
      link(`#/operations/${op.operation_id}`, op.operation_id), op.kind, op.state, progressCell(op),
      (op.progress || {}).message || op.error || op.waiting || "", op.strategy_name || "", when(op.created_at),
    ]),
    { class: "operations" },
  );
}

// --- pages: each returns a function to refresh it, or nothing -------------------------

const pages = {
  async operations() {
    view.append(el("h2", {}, "Operations"));
    const box = el("div");
    view.append(box);
    return async () => box.replaceChildren(operationsTable(await api("/operations?limit=200")));
  },

  async operation(id) {
    const box = el("div");
    view.append(el("h2", {}, `Operation ${id}`), box);
    return async () => {
      const op = await api(`/operations/${id}`);
      const p = op.progress || {};
      const parts = [
        table(["", ""], [
          ["kind", op.kind], ["state", op.state], ["strategy", op.strategy_name || "—"],
          ["worker", op.worker_id || "—"], ["attempt", op.attempt], ["created", when(op.created_at)],
          ["finished", when(op.finished_at)], ["error", op.error || "—"], ["waiting", op.waiting || "—"],
        ], { class: "facts" }),
        el("p", {}, progressCell(op), " ", p.message || ""),
      ];
      if (p.step !== null && p.step !== undefined)
        parts.push(el("p", { class: "step" }, `${op.kind === "training" ? "epoch" : "step"} ${p.step} of ${p.total_steps ?? "?"}`));
      if (p.metrics && Object.keys(p.metrics).length)
        parts.push(table(["metric", "value"], Object.entries(p.metrics).map(([k, v]) => [k, fmt(v)]), { class: "progress-metrics" }));
      parts.push(actions(op));
      const page = pageOf(op);
      if (page) parts.push(el("p", {}, link(page, "Open its result page")));
      if (op.kind === "training" && op.result && op.result.model_id)
        parts.push(el("p", {}, link(`#/models/${op.result.model_id}`, `Model ${op.result.model_id}`)));
      if (op.kind === "walkforward") {
        const wf = await api(`/walkforwards/${id}`);
        parts.push(el("h3", {}, "Children"), operationsTable(wf.children));
      }
      box.replaceChildren(...parts);
    };
  },

  async workers() {
    view.append(el("h2", {}, "Workers"));
    const box = el("div");
    view.append(box);
    return async () => {
      const workers = await api("/workers");
      box.replaceChildren(table(
        ["worker", "kind", "device", "status", "operation", "host", "last seen"],
        workers.map((w) => [w.worker_id, w.kind, (w.capabilities || {}).device || "cpu", w.status,
          w.current_operation_id ? link(`#/operations/${w.current_operation_id}`, w.current_operation_id) : "—",
          w.host || "—", when(w.last_seen_at)]),
        { class: "workers" },
      ));
    };
  },

  async datasets() {
    view.append(el("h2", {}, "Datasets"));
    const sets = await api("/data");
    view.append(table(
      ["symbol", "timeframe", "version", "bars", "first", "last", "exchange", "unexpected gaps", "missing bars", "holidays"],
      sets.map((d) => {
        const g = d.gap_report || {};
        return [d.symbol, d.timeframe, d.version, d.rows, when(d.first), when(d.last), d.exchange || "—",
          fmt(g.unexpected_total), fmt(Object.values(g.missing_bars || {}).reduce((a, b) => a + b, 0)), fmt(g.holidays_total)];
      }),
      { class: "datasets" },
    ));
    const newest = {};
    for (const d of sets) if (!newest[`${d.symbol}/${d.timeframe}`]) newest[`${d.symbol}/${d.timeframe}`] = d;
    for (const d of Object.values(newest)) {
      const prices = await api(`/data/${encodeURIComponent(d.symbol)}/${d.timeframe}/prices?version=${d.version}`);
      const box = el("section", { class: "dataset", "data-dataset": `${d.symbol}/${d.timeframe}` });
      view.append(box);
      const name = `${d.symbol}/${d.timeframe}`;
      box.append(el("h4", {}, `${d.symbol} ${d.timeframe} v${d.version}: ${prices.bars} bars` + (prices.bars_per_candle > 1 ? `, ${prices.bars_per_candle} bars a candle` : "")));
      const chart = LightweightCharts.createChart(box.appendChild(el("div", { class: "chart" })), { height: 280, autoSize: true, timeScale: { timeVisible: true } });
      const candles = chart.addSeries(LightweightCharts.CandlestickSeries, { upColor: "#26a69a", downColor: "#ef5350", borderVisible: false });
      candles.setData(prices.candles.map(([time, open, high, low, close]) => ({ time, open, high, low, close })));
      chart.timeScale().fitContent();
      charts[name] = { chart, candles };
    }
    markReady(view);
    for (const d of sets) {
      const gaps = (d.gap_report || {}).unexpected || [];
      if (!gaps.length) continue;
      view.append(el("h3", {}, `${d.symbol} ${d.timeframe} v${d.version}: unexpected gaps`),
        table(["kind", "start", "end", "missing bars"], gaps.slice(0, 50).map((g) => [g.kind, when(g.start), when(g.end), g.missing_bars]), { class: "gaps" }));
    }
  },

  async models() {
    view.append(el("h2", {}, "Models"));
    const models = await api("/models");
    view.append(table(
      ["model", "strategy", "created", "balanced accuracy", "baseline"],
      models.map((m) => {
        const t = (m.metadata || {}).test_metrics || {};
        return [link(`#/models/${m.model_id}`, m.model_id), m.name, when(m.created_at), fmt(t.balanced_accuracy), fmt((t.baseline || {}).balanced_accuracy)];
      }),
      { class: "models" },
    ));
  },

  async model(id) {
    const m = await api(`/models/${id}`);
    const meta = m.metadata || {};
    const t = meta.test_metrics || {};
    const classes = Object.keys(t.per_class || {});
    view.append(
      el("h2", {}, `Model ${id}: ${m.name}`),
      el("h3", {}, "Test metrics against the majority baseline"),
      table(["", "model", `baseline (always ${(t.baseline || {}).class || "?"})`], [
        ["accuracy", fmt(t.accuracy), fmt((t.baseline || {}).accuracy)],
        ["balanced accuracy", fmt(t.balanced_accuracy), fmt((t.baseline || {}).balanced_accuracy)],
        ["samples", fmt(t.samples), ""],
      ], { class: "metrics", "data-metrics": "model" }),
      el("h3", {}, "Confusion matrix (rows: true, columns: predicted)"),
      table(["", ...classes], (t.confusion_matrix || []).map((row, i) => [classes[i], ...row.map(fmt)]), { class: "confusion" }),
      el("h3", {}, "Explanation"),
      table(["rank", "feature", "importance", "pushes towards", "reading"],
        (meta.explanations || []).map((r) => [r.rank, r.feature, fmt(r.importance), r.pushes_towards, r.text]), { class: "explanation" }),
      el("h3", {}, "Training curves"),
    );
    const history = meta.history || [];
    const box = el("div");
    view.append(box);
    const chart = LightweightCharts.createChart(box.appendChild(el("div", { class: "chart" })), {
      height: 260, autoSize: true,
      timeScale: { tickMarkFormatter: (t) => `epoch ${t}` },
      localization: { timeFormatter: (t) => `epoch ${t}` },
    });
    const series = (color, title, key) => {
      const s = chart.addSeries(LightweightCharts.LineSeries, { color, title });
      s.setData(history.map((h) => ({ time: h.epoch, value: h[key] })));
      return s;
    };
    charts.training = { chart, train: series("#2962ff", "train loss", "train_loss"), val: series("#ef6c00", "validation loss", "val_loss"), acc: series("#2e7d32", "val balanced accuracy", "val_balanced_accuracy") };
    chart.timeScale().fitContent();
    markReady(view);
  },

  async strategies() {
    view.append(el("h2", {}, "Strategies"), el("p", { class: "lede" }, "Paste a strategy file to check it; each problem is shown at its line."));
    const text = el("textarea", { id: "strategy", rows: 16, cols: 100, spellcheck: "false" });
    const out = el("div", { id: "validation" });
    const check = async () => {
      const body = JSON.stringify({ strategy: text.value });
      const answer = await api("/strategies/validate", { method: "POST", body, headers: { "Content-Type": "application/json" }, accept: [422] });
      const issues = answer.issues || [];
      const atLine = {};
      const unplaced = [];
      for (const issue of issues) {
        const line = /\(line (\d+)\)$/.exec(issue.message);
        if (line) (atLine[line[1]] ||= []).push(issue);
        else unplaced.push(issue);
      }
      const lines = text.value.split("\n").map((line, i) => {
        const here = atLine[String(i + 1)] || [];
        return el("div", { class: here.length ? "bad" : null, "data-line": i + 1 },
          `${String(i + 1).padStart(4)}  ${line}`,
          here.map((issue) => el("div", { class: "problem" }, `      ↑ ${issue.path}: ${issue.message}`)));
      });
      out.replaceChildren(
        el("p", { class: issues.length ? "problems" : "valid" }, issues.length ? `${issues.length} problem(s)` : `valid: ${answer.name}, ${answer.features.length} features`),
        unplaced.length ? el("ul", { class: "problems" }, unplaced.map((i) => el("li", {}, `${i.path}: ${i.message}`))) : null,
        el("pre", { class: "yaml" }, lines),
      );
    };
    view.append(text, el("p", {}, el("button", { id: "validate", onclick: () => check().catch(failed) }, "Validate")), out);
  },

  async runs() {
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    const strategy = params.get("strategy") || "";
    const picked = (params.get("diff") || "").split(",").filter(Boolean);
    view.append(el("h2", {}, "Runs"));
    const filter = el("input", { id: "run-strategy", value: strategy, placeholder: "strategy name" });
    const go = (next) => { location.hash = `#/runs?${new URLSearchParams(next)}`; };
    view.append(el("form", { onsubmit: (e) => { e.preventDefault(); go({ strategy: filter.value.trim() }); } },
      el("label", {}, "Strategy ", filter), " ", el("button", { type: "submit" }, "Filter")));
    const runs = await api(`/runs?limit=200${strategy ? `&strategy=${encodeURIComponent(strategy)}` : ""}`);
    const pick = (id) => {
      const next = picked.includes(id) ? picked.filter((p) => p !== id) : [...picked, id].slice(-2);
      go({ ...(strategy ? { strategy } : {}), diff: next.join(",") });
    };
    const headline = { training: "balanced_accuracy", backtest: "total_return", walkforward: "total_return" };
    view.append(el("p", { class: "lede" }, "Pick two runs to see them side by side (as `ktrdr runs diff`)."),
      table(["", "run", "kind", "state", "strategy", "seed", "result", "created"],
        runs.map((r) => [
          el("input", { type: "checkbox", class: "pick", "data-run": r.operation_id, checked: picked.includes(r.operation_id), onchange: () => pick(r.operation_id) }),
          link(`#/operations/${r.operation_id}`, r.operation_id), r.kind, r.state, r.strategy_name || "", fmt(r.seed),
          `${headline[r.kind]} ${fmt(r.metrics[headline[r.kind]])}`, when(r.created_at),
        ]), { class: "runs" }));
    if (picked.length !== 2) return;
    const d = await api(`/runs/diff?a=${picked[0]}&b=${picked[1]}`);
    const section = el("section", { class: "diff" }, el("h3", {}, `A ${d.a.operation_id} (${d.a.kind} of ${d.a.strategy_name}) against B ${d.b.operation_id} (${d.b.kind} of ${d.b.strategy_name})`));
    for (const note of [...d.a.notes, ...d.b.notes]) section.append(el("p", { class: "lede" }, `note: ${note}`));
    if (d.same_inputs) section.append(el("p", {}, "inputs: identical (parameters, data, seed and code versions)"));
    for (const [title, rows] of [["parameter", d.parameters], ["data", d.data], ["code", d.versions]])
      if (rows.length) section.append(table([title, "A", "B"], rows.map(([k, x, y]) => [k, shown(x), shown(y)]), { class: `diff-${title}` }));
    if (d.seed) section.append(table(["seed", "A", "B"], [["seed", shown(d.seed[0]), shown(d.seed[1])]]));
    section.append(table(["metric", "A", "B", "B − A"], d.metrics.map(([k, x, y, delta]) => [k, shown(x), shown(y), shown(delta)]), { class: "diff-metrics" }));
    view.append(section);
  },

  async backtests() {
    view.append(el("h2", {}, "Backtests"));
    const ops = await api("/backtests?limit=200");
    view.append(table(
      ["backtest", "state", "strategy", "trades", "total return", "buy & hold"],
      ops.map((op) => {
        const s = (op.result || {}).summary || {};
        return [link(pageOf(op) || `#/operations/${op.operation_id}`, op.operation_id), op.state, op.strategy_name || "",
          fmt(s.trades), fmt((s.metrics || {}).total_return), fmt((s.buy_and_hold || {}).total_return)];
      }),
      { class: "backtests" },
    ));
  },

  async backtest(id) {
    view.append(el("h2", {}, `Backtest ${id}`));
    const series = await api(`/backtests/${id}/series`);
    renderBacktest(view, series);
    markReady(view);
  },

  async tunes() {
    view.append(el("h2", {}, "Parameter studies"));
    const box = el("div");
    view.append(box);
    return async () => {
      const studies = await api("/tunes?limit=200");
      box.replaceChildren(table(
        ["study", "strategy", "state", "trials done", "objective", "best", "progress", "created"],
        studies.map((s) => [
          link(`#/tunes/${s.operation_id}`, s.operation_id), s.strategy_name || "", s.state,
          `${s.trials_done}/${s.inputs.trials}`, `${s.inputs.objective} (${s.inputs.direction})`, fmt(s.best_value),
          (s.progress || {}).message || s.error || "", when(s.created_at),
        ]),
        { class: "tunes" },
      ));
    };
  },

  async tune(id) {
    const head = el("div");
    const trialsBox = el("div");
    const results = el("div");
    const chartBox = el("section", { class: "progression" }, el("h3", {}, "Objective by trial"));
    view.append(el("h2", {}, `Study ${id}`), head, el("h3", {}, "Trials"), trialsBox, chartBox, results);
    let order = "number";
    let study = null;
    let chart = null;
    const drawTrials = () => {
      const inputs = study.operation.inputs;
      const paths = Object.keys(inputs.space);
      const sorter = (next, label) => el("button", { class: "sort", "data-order": next, onclick: () => { order = next; drawTrials(); } }, label);
      const arrow = order === "best" ? " ▼ best first" : order === "worst" ? " ▲ worst first" : "";
      trialsBox.replaceChildren(table(
        [sorter("number", "trial"), ...paths.map((p) => el("span", { title: p }, shortPath(p))),
          sorter(order === "best" ? "worst" : "best", `${inputs.objective}${arrow}`), "folds done", "state", "duration", "workers"],
        sortTrials(study.trials, order, inputs.direction).map((t) => [
          link(trialPage(t), String(t.number)), ...paths.map((p) => shown(t.params[p])), fmt(t.value),
          `${t.fold_values.filter((v) => v !== null).length}/${t.folds}`, trialState(t), seconds(t.duration_s),
          t.workers.join(", ") || "—",
        ]),
        { class: "trials", "data-order": order },
      ));
    };
    return async () => {
      study = await api(`/tunes/${id}`);
      const op = study.operation;
      const inputs = op.inputs;
      const summary = op.result ? op.result.summary : null;
      head.replaceChildren(...[
        el("p", { class: "lede" }, `${op.strategy_name}: ${inputs.trials} trials of ${inputs.objective} (${inputs.direction}), ${inputs.sampler} sampler. Each trial is a walk-forward on the workers; its number opens it.`),
        studyFacts(op),
        el("h3", {}, "Search space"),
        table(["path", "distribution"], Object.entries(inputs.space).map(([path, spec]) => [path, JSON.stringify(spec)]), { class: "space" }),
        actions(op),
        summary && summary.warnings.length
          ? el("ul", { class: "warnings", role: "note" }, summary.warnings.map((w) => el("li", {}, `warning: ${w}`)))
          : null,
      ].filter(Boolean));
      drawTrials();
      if (!chart) {
        chart = trialsChart(chartBox, "trials");
        markReady(view);
      }
      chart.show(study.trials, inputs.direction);
      results.replaceChildren(...(summary
        ? [holdoutSection(study, summary), importanceSection(summary.importance)]
        : [el("p", { class: "lede pending-results" }, "The holdout comparison, the parameter importance and the warnings come when the search ends.")]));
    };
  },

  async walkforwards() {
    view.append(el("h2", {}, "Walk-forwards"));
    const ops = await api("/walkforwards?limit=200");
    view.append(operationsTable(ops));
  },

  async walkforward(id) {
    view.append(el("h2", {}, `Walk-forward ${id}`));
    const [report, series] = await Promise.all([api(`/walkforwards/${id}/report`), api(`/walkforwards/${id}/series`)]);
    view.append(
      el("h3", {}, "Folds"),
      table(["fold", "test start", "test end", "bars", "total return", "buy & hold", "model"],
        report.folds.map((f) => [f.fold ?? f.index, when(f.test_start), when(f.test_end), f.bars, fmt(f.total_return), fmt(f.buy_and_hold_return), f.model_id ? link(`#/models/${f.model_id}`, f.model_id) : "—"]),
        { class: "folds" }),
      el("h3", {}, "Explanation stability"),
      el("p", {}, `feature ranking across folds: mean Spearman ${fmt((report.stability || {}).mean_spearman)}, lowest pair ${fmt((report.stability || {}).min_spearman)} (1 = the same order every fold)`),
      table(["feature", "mean importance", "rank per fold", "folds in top 5"],
        ((report.stability || {}).features || []).map((f) => [f.feature, fmt(f.mean_importance), f.ranks.join(" "), f.folds_in_top]), { class: "stability" }),
    );
    renderWalkforward(view, series);
    markReady(view);
  },
};

// --- parameter studies (ktrdr tune) ------------------------------------------------------

// A dotted strategy path by its last two names that say something (as `ktrdr tunes show`).
const shortPath = (path) => path.split(".").filter((n) => n !== "params").slice(-2).join(".");
const seconds = (s) => (s === null || s === undefined ? "—" : s < 120 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${String(Math.round(s % 60)).padStart(2, "0")} s`);
// A trial's walk-forward: its result page once completed, else its operation page (folds).
const trialPage = (t) => (t.state === "completed" ? `#/walkforwards/${t.operation_id}` : `#/operations/${t.operation_id}`);

function trialState(t) {
  if (t.pruned) return "pruned";
  if (t.state === "failed") return `failed: ${(t.error || "no reason given").split("\n")[0]}`;
  return t.state;
}

// Trials in the order asked: by number, or by objective best first (or last), no value last.
function sortTrials(trials, order, direction) {
  if (order === "number") return [...trials].sort((a, b) => a.number - b.number);
  const sign = (direction === "maximize") === (order === "best") ? -1 : 1;
  const valued = trials.filter((t) => t.value !== null && t.value !== undefined);
  const rest = trials.filter((t) => t.value === null || t.value === undefined);
  return [...valued.sort((a, b) => sign * (a.value - b.value) || a.number - b.number), ...rest];
}

function studyFacts(op) {
  const i = op.inputs;
  return table(["", ""], [
    ["state", op.state], ["progress", (op.progress || {}).message || "—"], ["strategy", op.strategy_name || "—"],
    ["objective", `${i.objective} (${i.direction})`], ["trials", i.trials], ["sampler", i.sampler],
    ["seed", i.tune_seed], ["folds a trial", i.folds === 1 ? "1 (one train/test split)" : i.folds],
    ["training window", `${i.train_blocks} test windows`], ["embargo", `${i.embargo_bars} bars`],
    ["search range", `${i.data_start} … ${i.search_end}`],
    ["holdout", `the last ${Math.round(i.holdout * 100)}% of the range: ${i.holdout_start} … ${i.holdout_end}, never seen by a trial`],
    ["parallel trials", i.parallel > 1
      ? `${i.parallel}: the order trials finish in shapes what the sampler proposes next, so a rerun may differ`
      : "1: the same seed reproduces the study trial for trial"], ["pruning", i.prune ? "median pruner after each fold" : "off"],
    ["driver's worker", op.worker_id || "—"], ["created", when(op.created_at)], ["finished", when(op.finished_at)],
    ["error", op.error || "—"],
  ], { class: "facts" });
}

function holdoutSection(study, summary) {
  const op = study.operation;
  const runs = Object.fromEntries(study.holdout.map((h) => [h.number, h]));
  const trials = Object.fromEntries(study.trials.map((t) => [t.number, t]));
  const objective = summary.objective;
  const row = (label, r) => {
    const run = runs[r.trial];
    const held = r.holdout !== null && r.holdout !== undefined ? fmt(r.holdout) : run && run.error ? `failed: ${run.error.split("\n")[0]}` : "—";
    return [label, trials[r.trial] ? link(trialPage(trials[r.trial]), `trial ${r.trial}`) : `trial ${r.trial}`,
      fmt(r.search), held, run ? link(trialPage(run), run.operation_id) : "—"];
  };
  const rows = summary.holdout.map((r) => row(`#${r.rank}`, r));
  if (summary.median) rows.push(row("median", summary.median));
  const section = el("section", { class: "holdout" },
    el("h3", {}, "The search against the holdout"),
    el("p", { class: "lede" }, `Holdout ${summary.holdout_period[0]} … ${summary.holdout_period[1]}: days no trial saw. The best trials and the median one, trained on the whole search range, tested there.`),
    table(["", "trial", `${objective} in the search`, `${objective} on the holdout`, "holdout run"], rows, { class: "holdout" }));
  const d = summary.deflated_sharpe;
  section.append(el("p", { class: "deflated" }, d
    ? `Deflated Sharpe (Bailey & López de Prado, ${d.trials} trials): probability ${fmt(d.probability)} that trial ${d.trial}'s Sharpe ${fmt(d.sharpe)} beats the best of as many unskilled trials (expected ${fmt(d.expected_max_sharpe)}).`
    : "Deflated Sharpe: not computed (fewer than two completed trials with a Sharpe ratio)."));
  if (op.state !== "completed") section.append(el("p", { class: "lede" }, `The study is ${op.state}.`));
  return section;
}

function importanceSection(importance) {
  const section = el("section", { class: "importance" }, el("h3", {}, "Parameter importance (PED-ANOVA)"));
  if (typeof importance === "string" || !importance) {
    section.append(el("p", { class: "lede" }, importance || "not computed"));
    return section;
  }
  section.append(el("p", { class: "lede" }, "Each parameter's share of the objective's variation across the trials."),
    table(["parameter", "share", ""], Object.entries(importance).map(([path, share]) => [
      el("span", { title: path }, path), el("meter", { min: 0, max: 1, value: share, "data-param": path }), fmt(share),
    ]), { class: "importance" }));
  return section;
}

const ROUTES = [
  [/^#\/operations\/([\w-]+)$/, pages.operation],
  [/^#\/backtests\/([\w-]+)$/, pages.backtest],
  [/^#\/walkforwards\/([\w-]+)$/, pages.walkforward],
  [/^#\/tunes\/([\w-]+)$/, pages.tune],
  [/^#\/models\/([\w-]+)$/, pages.model],
  [/^#\/workers$/, pages.workers],
  [/^#\/datasets$/, pages.datasets],
  [/^#\/strategies$/, pages.strategies],
  [/^#\/runs(\?.*)?$/, pages.runs],
  [/^#\/models$/, pages.models],
  [/^#\/backtests$/, pages.backtests],
  [/^#\/walkforwards$/, pages.walkforwards],
  [/^#\/tunes$/, pages.tunes],
  [/^(#\/operations)?$/, pages.operations],
];

async function act(path) {
  try {
    await api(path, { method: "POST" });
    say("");
    await render();
  } catch (error) {
    failed(error);
  }
}

function failed(error) {
  if (error instanceof Refused) askToken(error.message);
  else say(error.message);
}

async function render() {
  clearInterval(timer);
  view.removeAttribute("data-charts-ready");
  for (const c of Object.values(charts)) c.chart.remove();
  for (const key of Object.keys(charts)) delete charts[key];
  view.replaceChildren();
  const hash = location.hash || "#/operations";
  const route = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!route) {
    say(`No page at ${hash}`);
    return;
  }
  const args = hash.match(route[0]).slice(1).filter((a) => a && !a.startsWith("#"));
  try {
    const refresh = await route[1](...args);
    if (refresh) {
      await refresh();
      timer = setInterval(() => refresh().catch(failed), POLL_MS);
    }
  } catch (error) {
    failed(error);
  }
}

async function start() {
  const sent = sessionStorage.getItem(TOKEN_KEY) !== null;
  if (!sent && document.querySelector("meta[name=ktrdr-auth]").content === "token") {
    askToken("This backend asks for an API token.");
    return;
  }
  try {
    me = await api("/me");
  } catch (error) {
    if (!(error instanceof Refused)) say(error.message);
    else askToken(sent ? error.message : "This backend asks for an API token.");
    return;
  }
  login.hidden = true;
  say("");
  document.getElementById("who").textContent = `${me.name} (${me.role})`;
  await render();
}

window.addEventListener("hashchange", () => me && render());
start();
