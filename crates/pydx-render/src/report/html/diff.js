// Draws `pydx diff` from the JSON data embedded in the page. Names from
// the profiled program are put on the page as text, never as markup.
(function () {
  const data = JSON.parse(document.getElementById("pydx-data").textContent);
  const diff = data.diff;
  const main = document.getElementById("report");

  const h = pydxElement;
  const unit = diff.basis === "per_request" ? "ms per request" : "ms per second";
  const ms = (value) => value.toFixed(value < 10 ? 2 : 1);
  function change(before, after) {
    if (before <= 0) return after > 0 ? "new" : "0%";
    const percent = (after / before - 1) * 100;
    return (percent >= 0 ? "+" : "") + percent.toFixed(0) + "%";
  }
  const place = (file, line) => (line ? file + ":" + line : file);

  main.append(
    h("h1", null, "pydx diff"),
    h("div", { class: "muted" }, data.tool + " · " + diff.before.file + " → " + diff.after.file),
    h("div", { class: "cards" },
      h("div", { class: "card" }, h("b", null, ms(diff.before.cpu_ms_per_unit)), "CPU " + unit + " before"),
      h("div", { class: "card" }, h("b", null, ms(diff.after.cpu_ms_per_unit)), "CPU " + unit + " after"),
      h("div", { class: "card" }, h("b", { id: "cpu-change" }, change(diff.before.cpu_ms_per_unit, diff.after.cpu_ms_per_unit)), "change")),
    h("p", { class: "muted" }, diff.basis === "per_request"
      ? "Per request served: both recordings counted the requests their servers answered."
      : "Per second of recording: the recordings did not both count requests."));

  // Findings.
  const findings = diff.findings;
  const findingRow = (kind, finding, extra) => h("li", { class: "finding-" + kind },
    h("b", null, kind + " "), "[" + finding.severity + "] " + finding.code + " " + finding.title +
    " (" + place(finding.file, finding.line) + ")" + (extra || ""));
  main.append(h("h2", { id: "findings" }, "Findings"), h("ul", null,
    findings.gone.map((f) => findingRow("gone", f)),
    findings.new.map((f) => findingRow("new", f)),
    findings.remaining.map((pair) => findingRow("remaining", pair.after,
      pair.before.cost_ms_per_unit || pair.after.cost_ms_per_unit
        ? ", cost " + ms(pair.before.cost_ms_per_unit) + " → " + ms(pair.after.cost_ms_per_unit) + " " + unit +
          " (" + change(pair.before.cost_ms_per_unit, pair.after.cost_ms_per_unit) + ")"
        : ""))));
  if (!findings.gone.length && !findings.new.length && !findings.remaining.length) {
    main.append(h("p", null, "No finding in either recording."));
  }

  // Differential flamegraph.
  const flameBox = h("div", { id: "flame" });
  const flameInfo = h("div", { id: "flame-info", class: "muted" });
  const state = { zoom: [], search: "" };
  const ROW = 18;
  function colour(before, after) {
    if (before <= 0) return "hsl(0, 80%, 62%)";
    const ratio = Math.max(-1, Math.min(1, (after - before) / Math.max(before, after)));
    if (Math.abs(ratio) < 0.05) return "hsl(40, 10%, 85%)";
    return ratio > 0 ? "hsl(0, 80%, " + (90 - 30 * ratio) + "%)" : "hsl(215, 80%, " + (90 + 30 * ratio) + "%)";
  }
  function drawFlame() {
    let top = data.flame;
    for (const index of state.zoom) top = top[4][index] || top;
    flameBox.textContent = "";
    const total = Math.max(top[2], top[3]);
    const needle = state.search.toLowerCase();
    let drawn = 0, matched = 0, grew = 0, shrank = 0, depthMax = 0;
    const visit = (node, depth, x, path) => {
      const [name, file, before, after, children] = node;
      const width = Math.max(before, after);
      if (total <= 0 || width / total < 0.001) return;
      depthMax = Math.max(depthMax, depth);
      const title = name + (file ? " (" + file + ")" : "") + "\n" + ms(before) + " → " + ms(after) + " " + unit +
        " (" + change(before, after) + ")";
      const box = h("div", {
        class: "frame", title,
        style: "left:" + (x * 100) + "%;width:" + (width / total * 100) + "%;top:" + (depth * ROW) + "px;background:" + colour(before, after),
      }, name);
      if (after > before * 1.05) { box.classList.add("grew"); grew++; }
      if (after < before * 0.95) { box.classList.add("shrank"); shrank++; }
      if (needle && title.toLowerCase().includes(needle)) { box.classList.add("match"); matched++; }
      if (node === top) box.classList.add("zoomed");
      box.addEventListener("click", () => { state.zoom = path; drawFlame(); });
      flameBox.append(box);
      drawn++;
      let childX = x;
      children.forEach((child, index) => {
        visit(child, depth + 1, childX, path.concat([index]));
        childX += Math.max(child[2], child[3]) / total;
      });
    };
    visit(top, 0, 0, state.zoom.slice());
    flameBox.style.height = (depthMax + 1) * ROW + 4 + "px";
    Object.assign(flameBox.dataset, { drawn, matched, grew, shrank });
    flameInfo.textContent = "Width: the larger of the two CPU times (" + unit + "); red: more after, blue: less after." +
      (needle ? " " + matched + " frames match." : "");
  }
  const searchBox = h("input", { id: "flame-search", type: "search", placeholder: "search functions and files",
    oninput: (event) => { state.search = event.target.value; drawFlame(); } });
  main.append(h("h2", { id: "flamegraph" }, "Differential flamegraph (CPU)"),
    h("div", { class: "controls" }, searchBox,
      h("button", { id: "flame-reset", onclick: () => { state.zoom = []; drawFlame(); } }, "Reset zoom")),
    flameBox, flameInfo);
  drawFlame();

  // Endpoints and functions.
  const table = (id, headers, rows) => h("table", { id },
    h("tr", null, headers.map(([text, numeric]) => h("th", { class: numeric ? "num" : "" }, text))), rows);
  if (diff.endpoints.length) {
    main.append(h("h2", { id: "endpoints" }, "Endpoints (" + unit + ")"), table("endpoint-table",
      [["endpoint"], ["time before", 1], ["time after", 1], ["change", 1], ["CPU before", 1], ["CPU after", 1]],
      diff.endpoints.map((e) => h("tr", null, h("td", { class: "name" }, e.endpoint),
        h("td", { class: "num" }, ms(e.time_before)), h("td", { class: "num" }, ms(e.time_after)),
        h("td", { class: "num" }, change(e.time_before, e.time_after)),
        h("td", { class: "num" }, ms(e.cpu_before)), h("td", { class: "num" }, ms(e.cpu_after))))));
  }
  main.append(h("h2", { id: "functions" }, "Functions whose CPU time changed most (" + unit + ")"),
    diff.functions.length ? table("function-table",
      [["function"], ["total before", 1], ["total after", 1], ["change", 1], ["self before", 1], ["self after", 1]],
      diff.functions.map((f) => h("tr", null,
        h("td", { class: "name mono" }, f.function + " (" + place(f.file, f.line) + ")"),
        h("td", { class: "num" }, ms(f.total_before)), h("td", { class: "num" }, ms(f.total_after)),
        h("td", { class: "num" }, change(f.total_before, f.total_after)),
        h("td", { class: "num" }, ms(f.self_before)), h("td", { class: "num" }, ms(f.self_after)))))
      : h("p", null, "None changed by 1% of the CPU time or more."));

  // Self-test for the browser tests: `diff.html#selftest=NEEDLE`.
  if (location.hash.startsWith("#selftest")) {
    const needle = decodeURIComponent(location.hash.split("=")[1] || "");
    const result = { drawn: Number(flameBox.dataset.drawn), grew: Number(flameBox.dataset.grew),
      shrank: Number(flameBox.dataset.shrank) };
    searchBox.value = needle;
    searchBox.dispatchEvent(new Event("input"));
    result.matched = Number(flameBox.dataset.matched);
    const match = flameBox.querySelector(".frame.match");
    if (match) {
      result.matchShrank = match.classList.contains("shrank");
      match.click();
      result.zoomedInto = flameBox.querySelector(".frame.zoomed").textContent;
      document.getElementById("flame-reset").click();
      result.drawnAfterReset = Number(flameBox.dataset.drawn);
    }
    result.gone = document.querySelectorAll(".finding-gone").length;
    result.cpuChange = document.getElementById("cpu-change").textContent;
    result.errors = pydxPageErrors;
    document.body.append(h("pre", { id: "pydx-selftest" }, JSON.stringify(result)));
  }
})();
