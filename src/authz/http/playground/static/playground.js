// The policy playground: editors on the left, tabs on the right, a JSON API on the same origin.
// Plain JavaScript, no framework, no request to any other host. Everything the tabs show is computed
// by the server on a scratch engine from what is in the editors; nothing here is saved anywhere but
// in the files the author downloads.
"use strict";

(() => {
  const BASE = location.pathname.replace(/\/+$/, "");  // "/playground"
  const TOKEN_KEY = "authz-playground-token";
  const ORDER = ["model.conf", "catalogue.yaml"];  // then the .csv files, by name

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const byTestId = (id) => $(`[data-testid="${CSS.escape(id)}"]`);

  // Build DOM without innerHTML: every text the server or the author wrote is text, never markup.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---- state -----------------------------------------------------------------------------------

  const state = {
    serving: {version: "", files: {}},  // what the service serves, as last loaded
    worldName: "world.yaml",
    lintTimer: 0,
    runs: {},  // tab -> sequence number of its latest request: only the latest one renders
    stale: {matrix: true, diff: true},
  };

  function status(message, kind = "") {
    const box = byTestId("status");
    box.textContent = message;
    box.className = `status ${kind}`;
  }

  // ---- the API ---------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, detail = {}) {
      super(message);
      this.detail = detail;
    }
  }

  async function api(path, body) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = {method: body === undefined ? "GET" : "POST", headers, cache: "no-store"};
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${BASE}/api/${path}`, init);
    } catch (error) {
      throw new ApiError(`The server did not answer (${error.message}). Is the service still running?`);
    }
    const type = response.headers.get("content-type") || "";
    if (response.ok) return response.json();
    if (type.startsWith("application/json")) {
      const detail = await response.json();
      throw new ApiError(detail.message || `${response.status}`, detail);
    }
    const text = await response.text();
    if (response.status === 401) {
      throw new ApiError(`This server needs its bearer token: paste it into the Token field above. (${text})`,
        {status: 401});
    }
    throw new ApiError(`${response.status}: ${text}`, {status: response.status});
  }

  // ---- editors ---------------------------------------------------------------------------------

  function lineHeight(textarea) {
    const value = parseFloat(getComputedStyle(textarea).lineHeight);
    return Number.isFinite(value) ? value : 18;
  }

  function refreshGutter(block) {
    const textarea = $("textarea", block);
    const count = textarea.value.split("\n").length;
    const gutter = $(".gutter", block);
    if (Number(gutter.dataset.count) !== count) {
      gutter.textContent = Array.from({length: count}, (_, i) => i + 1).join("\n") + "\n";
      gutter.dataset.count = String(count);
    }
    gutter.scrollTop = textarea.scrollTop;
    const name = block.dataset.file;
    if (name) {
      const edited = textarea.value !== (state.serving.files[name] ?? null);
      block.classList.toggle("edited", edited);
      const link = $(`[data-goto="${CSS.escape(name)}"]`, byTestId("file-index"));
      if (link) link.classList.toggle("edited", edited);
    }
  }

  function showCaret(block) {
    const textarea = $("textarea", block);
    const line = textarea.value.slice(0, textarea.selectionStart).split("\n").length;
    $(".caret", block).textContent = `line ${line}`;
  }

  function wireEditor(block, onEdit) {
    const textarea = $("textarea", block);
    textarea.addEventListener("input", () => {
      refreshGutter(block);
      showCaret(block);
      onEdit();
    });
    textarea.addEventListener("scroll", () => { $(".gutter", block).scrollTop = textarea.scrollTop; });
    for (const event of ["keyup", "click", "select", "focus"]) {
      textarea.addEventListener(event, () => showCaret(block));
    }
    textarea.addEventListener("focus", () => activate(block));
  }

  function activate(block) {
    for (const other of $$(".editor-block")) other.classList.toggle("active", other === block);
    const name = block.dataset.file || "";
    for (const link of $$("[data-goto]", byTestId("file-index"))) {
      link.classList.toggle("active", link.dataset.goto === name);
    }
  }

  function sortedNames(names) {
    return [...names].sort((a, b) => {
      const ia = ORDER.indexOf(a), ib = ORDER.indexOf(b);
      if (ia !== ib) return (ia === -1 ? ORDER.length : ia) - (ib === -1 ? ORDER.length : ib);
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }

  function policyBlocks() {
    return $$(".editor-block[data-file]", byTestId("policy-editors")).filter((block) => block.dataset.file);
  }

  function policyFiles() {
    const files = {};
    for (const block of policyBlocks()) files[block.dataset.file] = $("textarea", block).value;
    return files;
  }

  function worldBody() {
    return {files: policyFiles(), world: byTestId("world-editor").value, world_name: state.worldName};
  }

  function makePolicyEditor(name, text) {
    const textarea = el("textarea", {"data-testid": `policy-file-${name}`, spellcheck: "false", wrap: "off",
      "aria-label": `Policy file ${name}`});
    textarea.value = text;
    const block = el("div", {class: "editor-block", "data-file": name},
      el("div", {class: "editor-head"},
        el("h2", {}, name),
        el("span", {class: "edited-mark", title: "differs from the serving file"}, "edited"),
        el("span", {class: "caret"}),
        el("button", {type: "button", class: "small", title: `Download ${name}`,
          "data-testid": `download-${name}`, onclick: () => saveBlob(name, new Blob([textarea.value]))}, "⤓"),
        el("button", {type: "button", class: "small", title: `Remove ${name} from the edited policy`,
          "data-testid": `remove-${name}`, onclick: () => removeFile(name)}, "×")),
      el("div", {class: "editor"}, el("pre", {class: "gutter", "aria-hidden": "true"}), textarea));
    textarea.rows = Math.max(4, Math.min(18, text.split("\n").length + 1));
    wireEditor(block, policyEdited);
    return block;
  }

  function setPolicyFiles(files) {
    const holder = byTestId("policy-editors");
    holder.replaceChildren(...sortedNames(Object.keys(files)).map((name) => makePolicyEditor(name, files[name])));
    for (const block of policyBlocks()) refreshGutter(block);
    renderIndex();
  }

  function addPolicyFile(name, text) {
    const existing = policyBlocks().find((block) => block.dataset.file === name);
    if (existing) {
      $("textarea", existing).value = text;
      refreshGutter(existing);
    } else {
      const files = policyFiles();
      files[name] = text;
      setPolicyFiles(files);
    }
  }

  function removeFile(name) {
    const files = policyFiles();
    delete files[name];
    setPolicyFiles(files);
    policyEdited();
  }

  function renderIndex() {
    const index = byTestId("file-index");
    const links = [el("button", {type: "button", class: "world", "data-goto": "", onclick: () => goTo("", 0)},
      state.worldName)];
    for (const block of policyBlocks()) {
      const name = block.dataset.file;
      links.push(el("button", {type: "button", "data-goto": name, class: block.classList.contains("edited") ? "edited" : "",
        onclick: () => goTo(name, 0)}, name));
    }
    index.replaceChildren(...links);
  }

  function setWorld(name, text) {
    state.worldName = name || "world.yaml";
    byTestId("world-name").textContent = state.worldName;
    const textarea = byTestId("world-editor");
    textarea.value = text;
    textarea.rows = Math.max(6, Math.min(22, text.split("\n").length + 1));
    refreshGutter($("#world-block"));
    renderIndex();
  }

  // Move to a file (its name; "" for the world) and line (1-based; 0: just the file): select the
  // line, put the caret there and scroll it into view.
  function goTo(name, line) {
    const block = name ? policyBlocks().find((b) => b.dataset.file === name) : $("#world-block");
    if (!block) {
      status(`There is no editor for ${name}.`, "error");
      return;
    }
    const textarea = $("textarea", block);
    block.scrollIntoView({block: "nearest"});
    textarea.focus({preventScroll: true});
    if (line > 0) {
      const lines = textarea.value.split("\n");
      const target = Math.min(line, lines.length);
      let start = 0;
      for (let i = 0; i < target - 1; i++) start += lines[i].length + 1;
      textarea.setSelectionRange(start, start + lines[target - 1].length);
      const height = lineHeight(textarea);
      textarea.scrollTop = Math.max(0, (target - 1) * height - textarea.clientHeight / 2 + height);
      $(".gutter", block).scrollTop = textarea.scrollTop;
      const top = block.getBoundingClientRect().top;
      block.classList.remove("flash");
      void block.offsetWidth;  // restart the animation
      block.classList.add("flash");
      if (top < 0 || top > innerHeight) block.scrollIntoView({block: "start"});
    }
    activate(block);
    showCaret(block);
  }

  function policyEdited() {
    state.stale.matrix = state.stale.diff = true;
    clearTimeout(state.lintTimer);
    state.lintTimer = setTimeout(() => runTab("lint"), 500);
  }

  // ---- loading, opening and downloading files --------------------------------------------------

  async function loadServing({policy = true, world = true} = {}) {
    status("Loading from the server…");
    try {
      const serving = await api("serving");
      state.serving = {version: serving.version, files: serving.files};
      byTestId("serving-version").textContent = `serving: ${serving.version} (${serving.engine})`;
      if (policy) setPolicyFiles(serving.files);
      if (world) setWorld(serving.world.name, serving.world.text);
      for (const block of policyBlocks()) refreshGutter(block);
      renderIndex();
      status(`Loaded ${policy ? `the serving policy (version ${serving.version})` : ""}` +
        `${policy && world ? " and " : ""}${world ? `the world ${serving.world.name}` : ""}.`, "ok");
      policyEdited();
    } catch (error) {
      status(error.message, "error");
    }
  }

  async function openFiles(list) {
    const opened = [];
    for (const file of list) {
      const text = await file.text();
      if (/\.ya?ml$/.test(file.name) && file.name !== "catalogue.yaml") setWorld(file.name, text);
      else addPolicyFile(file.name, text);
      opened.push(file.name);
    }
    if (opened.length) {
      status(`Opened ${opened.join(", ")}.`, "ok");
      policyEdited();
    }
  }

  function saveBlob(name, blob) {
    const url = URL.createObjectURL(blob);
    const link = el("a", {href: url, download: name});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // A POSIX tar (ustar) of the edited files: policies/<name> for each policy file, and the world.
  function tarOf(entries) {
    const encoder = new TextEncoder();
    const blocks = [];
    const octal = (value, width) => value.toString(8).padStart(width - 1, "0") + "\0";
    const mtime = Math.floor(Date.now() / 1000);
    for (const [name, text] of entries) {
      const data = encoder.encode(text);
      const header = new Uint8Array(512);
      const put = (offset, value) => header.set(encoder.encode(value), offset);
      put(0, name.slice(0, 99));
      put(100, "0000644\0");
      put(108, "0000000\0");
      put(116, "0000000\0");
      put(124, octal(data.length, 12));
      put(136, octal(mtime, 12));
      put(148, "        ");
      put(156, "0");
      put(257, "ustar\0");
      put(263, "00");
      const sum = header.reduce((total, byte) => total + byte, 0);
      put(148, sum.toString(8).padStart(6, "0") + "\0 ");
      blocks.push(header, data, new Uint8Array((512 - (data.length % 512)) % 512));
    }
    blocks.push(new Uint8Array(1024));
    return new Blob(blocks, {type: "application/x-tar"});
  }

  function downloadAll() {
    const files = policyFiles();
    const entries = sortedNames(Object.keys(files)).map((name) => [`policies/${name}`, files[name]]);
    entries.push([state.worldName, byTestId("world-editor").value]);
    saveBlob("policies.tar", tarOf(entries));
    status(`Downloaded policies.tar: ${entries.length} files (policies/ and ${state.worldName}).`, "ok");
  }

  // ---- rendering helpers -----------------------------------------------------------------------

  // A problem (policy: {name, line, text}; world: {line, text}) as a button that moves the editor there.
  function problemItem(problem, world = false) {
    const name = world ? "" : problem.name;
    const where = world ? problem.line > 0 : Boolean(problem.name);
    return el("li", {},
      where ? el("button", {type: "button", class: "problem", "data-file": name, "data-line": problem.line,
        onclick: () => goTo(name, problem.line)}, problem.text) : el("span", {class: "problem"}, problem.text));
  }

  function renderError(box, error) {
    const detail = error.detail || {};
    const problems = detail.problems || [];
    const world = detail.error === "world";
    const heading = detail.error === "policy" ? "The edited policy does not load"
      : world ? "The world does not load" : "The request was refused";
    box.replaceChildren(el("div", {class: "error", role: "alert", "data-testid": "error"},
      el("strong", {}, heading), el("p", {class: "message"}, error.message),
      problems.length ? el("ul", {class: "problems"}, problems.map((p) => problemItem(p, world))) : null));
    box.dataset.state = "error";
  }

  const yesNo = (value) => value ? "allow" : "deny";
  const contextText = (context) => Object.entries(context || {}).map(([k, v]) => `${k}=${v}`).join(" ");

  function table(headings, rows, attrs = {}) {
    return el("table", attrs,
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }

  // ---- the tabs --------------------------------------------------------------------------------

  function renderCheck(box, answer) {
    const verdict = answer.allowed ? "ALLOWED" : "DENIED";
    box.replaceChildren(
      el("div", {class: `verdict ${answer.allowed ? "allowed" : "denied"}`, "data-testid": "check-verdict"}, verdict),
      el("p", {class: "reason"}, answer.reason),
      el("div", {class: "rules"}, "Rules: ", answer.rules.length
        ? answer.rules.map((rule) => el("span", {class: "chip", "data-testid": "check-rule"}, rule)) : "none"),
      answer.policy_lines.length ? el("div", {class: "lines"}, el("h3", {}, "Policy lines"),
        el("ul", {}, answer.policy_lines.map((line) => el("li", {},
          el("button", {type: "button", class: "problem", "data-file": line.name, "data-line": line.line,
            onclick: () => goTo(line.name, line.line)}, line.source),
          el("code", {}, line.text))))) : null,
      answer.explanation ? el("div", {class: "explain"}, el("h3", {}, "Explanation (--explain)"),
        el("pre", {"data-testid": "check-explanation"}, answer.explanation)) : null,
      el("p", {class: "meta"}, answer.policy_version === state.serving.version
        ? `policy version ${answer.policy_version} (the one serving)`
        : `policy version ${answer.policy_version} (the editors'; serving: ${state.serving.version})`));
  }

  function renderTests(box, answer) {
    const summary = `${answer.passed} passed, ${answer.failed} failed of ${answer.total}`;
    const rows = answer.results.map((r) => el("tr", {class: r.passed ? "pass" : "fail",
      title: r.reason, onclick: () => goTo("", r.line)},
      el("td", {class: "mark"}, r.passed ? "pass" : "FAIL"),
      el("td", {class: "num"}, r.line || ""),
      el("td", {}, r.subject), el("td", {}, r.action), el("td", {}, r.resource),
      el("td", {}, r.expected + (r.rule ? ` (${r.rule})` : "")),
      el("td", {}, r.got + (r.rules.length ? ` (${r.rules.join(", ")})` : "")),
      el("td", {}, contextText(r.context))));
    box.replaceChildren(
      el("p", {class: `summary ${answer.failed ? "bad" : "good"}`, "data-testid": "tests-summary"}, summary),
      answer.total ? table(["", "line", "subject", "action", "resource", "expected", "got", "context"], rows,
        {class: "grid tests"}) : el("p", {}, "The world editor has no cases: add a cases: list to run."));
  }

  function renderMatrix(box, answer) {
    const summary = answer.changed
      ? `${answer.changed} cell(s) differ from the serving policy (${answer.serving_version} → ${answer.version}).`
      : `Same as the serving policy (${answer.serving_version}).`;
    const parts = [el("p", {class: "summary", "data-testid": "matrix-summary"}, summary),
      el("p", {class: "hint"}, "X: allowed. own: only on what the subject created. Blank: denied.")];
    for (const t of answer.tables) {
      const rows = t.rows.map((row) => el("tr", {},
        el("td", {}, row.rule), el("td", {}, el("code", {}, row.action)),
        row.cells.map((cell, i) => row.was[i] === null ? el("td", {class: "cell"}, cell)
          : el("td", {class: "cell changed", "data-testid": "matrix-changed",
            title: `serving: ${row.was[i] || "blank"}`}, cell || "–"))));
      parts.push(el("h3", {}, t.title), t.note ? el("p", {class: "note"}, t.note) : null,
        table(["rule", "action", ...t.columns], rows, {class: "grid matrix"}));
    }
    box.replaceChildren(...parts.filter(Boolean));
  }

  function renderDiff(box, answer) {
    const gained = Object.values(answer.counts).reduce((n, c) => n + c.deny_to_allow, 0);
    const lost = Object.values(answer.counts).reduce((n, c) => n + c.allow_to_deny, 0);
    const summary = answer.total
      ? `${answer.total} decision(s) change: ${gained} deny → allow, ${lost} allow → deny ` +
        `(serving ${answer.serving_version} → edited ${answer.version}).`
      : answer.version === answer.serving_version ? "No edits: the policy in the editors is the one serving."
      : `No decision on this world changes (serving ${answer.serving_version} → edited ${answer.version}).`;
    const parts = [el("p", {class: `summary ${answer.total ? "bad" : "good"}`, "data-testid": "diff-summary"}, summary)];
    if (answer.total) {
      parts.push(el("h3", {}, "Per action"), table(["action", "deny → allow", "allow → deny"],
        Object.entries(answer.counts).map(([action, c]) => el("tr", {},
          el("td", {}, el("code", {}, action)), el("td", {class: "num"}, c.deny_to_allow),
          el("td", {class: "num"}, c.allow_to_deny))), {class: "grid counts", "data-testid": "diff-counts"}));
      const rules = Object.entries(answer.rules);
      if (rules.length) {
        parts.push(el("p", {class: "rules"}, "Rules cited by changed decisions: ",
          rules.map(([rule, n]) => el("span", {class: "chip"}, `${rule} ×${n}`))));
      }
      parts.push(el("h3", {}, answer.truncated ? `Examples (the first ${answer.changes.length})` : "Changes"),
        table(["subject", "action", "resource", "context", "serving", "edited"],
          answer.changes.map((c) => el("tr", {class: c.after ? "gain" : "loss"},
            el("td", {}, c.subject), el("td", {}, c.action), el("td", {}, c.resource),
            el("td", {}, contextText(c.context)),
            el("td", {}, `${yesNo(c.before)} (${c.before_rules.join(", ")})`),
            el("td", {}, `${yesNo(c.after)} (${c.after_rules.join(", ")})`))),
          {class: "grid changes", "data-testid": "diff-changes"}));
    }
    box.replaceChildren(...parts);
  }

  function renderLint(box, answer) {
    const badge = byTestId("lint-badge");
    badge.textContent = answer.ok ? "" : String(answer.problems.length);
    badge.classList.toggle("bad", !answer.ok);
    box.replaceChildren(answer.ok
      ? el("p", {class: "summary good", "data-testid": "lint-ok"}, `No problems: ${answer.summary}`)
      : el("div", {},
        el("p", {class: "summary bad", "data-testid": "lint-summary"}, answer.summary),
        el("ul", {class: "problems"}, answer.problems.map((p) => problemItem(p)))));
  }

  const TABS = {
    check: {
      request: () => {
        const body = worldBody();
        body.subject = byTestId("check-subject").value;
        body.action = byTestId("check-action").value;
        body.resource = byTestId("check-resource").value;
        body.context = byTestId("check-context").value;
        return ["check", body];
      },
      render: renderCheck,
    },
    tests: {request: () => ["tests", worldBody()], render: renderTests},
    matrix: {request: () => ["matrix", {files: policyFiles()}], render: renderMatrix},
    diff: {request: () => ["diff", worldBody()], render: renderDiff},
    lint: {request: () => ["lint", {files: policyFiles()}], render: renderLint},
  };

  async function runTab(name) {
    const tab = TABS[name];
    const box = byTestId(`${name}-result`);
    const run = (state.runs[name] || 0) + 1;
    state.runs[name] = run;
    box.dataset.state = "running";
    box.setAttribute("aria-busy", "true");
    if (!box.childElementCount) box.replaceChildren(el("p", {class: "hint"}, "Running…"));
    if (name in state.stale) state.stale[name] = false;
    try {
      const [path, body] = tab.request();
      const answer = await api(path, body);
      if (state.runs[name] !== run) return;
      tab.render(box, answer);
      box.dataset.state = "done";
    } catch (error) {
      if (state.runs[name] !== run) return;
      renderError(box, error);
      if (name === "lint") {
        byTestId("lint-badge").textContent = "!";
      }
    } finally {
      if (state.runs[name] === run) box.removeAttribute("aria-busy");
    }
  }

  function showTab(name) {
    for (const button of $$("[role=tab]")) button.setAttribute("aria-selected", String(button.dataset.tab === name));
    for (const panel of $$("[role=tabpanel]")) panel.hidden = panel.dataset.panel !== name;
    if (state.stale[name] && byTestId(`${name}-result`).dataset.state !== "running") runTab(name);
  }

  // ---- wiring ----------------------------------------------------------------------------------

  function start() {
    wireEditor($("#world-block"), () => { state.stale.diff = true; });
    for (const button of $$("[role=tab]")) button.addEventListener("click", () => showTab(button.dataset.tab));
    byTestId("check-form").addEventListener("submit", (event) => {
      event.preventDefault();
      runTab("check");
    });
    for (const name of ["tests", "matrix", "diff", "lint"]) {
      byTestId(`${name}-run`).addEventListener("click", () => runTab(name));
    }
    byTestId("load-serving").addEventListener("click", () => loadServing({world: false}));
    byTestId("load-world").addEventListener("click", () => loadServing({policy: false}));
    byTestId("download").addEventListener("click", downloadAll);
    byTestId("download-world").addEventListener("click",
      () => saveBlob(state.worldName, new Blob([byTestId("world-editor").value])));
    byTestId("open-files").addEventListener("change", (event) => {
      openFiles(Array.from(event.target.files));
      event.target.value = "";
    });
    const token = byTestId("token");
    token.value = sessionStorage.getItem(TOKEN_KEY) || "";
    token.addEventListener("change", () => {
      if (token.value.trim()) sessionStorage.setItem(TOKEN_KEY, token.value.trim());
      else sessionStorage.removeItem(TOKEN_KEY);
      if (!state.serving.version) loadServing();
    });
    setWorld("world.yaml", "");
    loadServing();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
