// Draws the pydx doctor report from the JSON data embedded in the page.
// Every name from the profiled program is put on the page as text nodes
// or attribute values, never parsed as markup.
(function () {
  const data = JSON.parse(document.getElementById("pydx-data").textContent);
  const S = data.strings;
  const report = data.report;
  const main = document.getElementById("report");

  const h = pydxElement;
  const pct = (share) => (share * 100).toFixed(share < 0.1 ? 1 : 0) + "%";
  function seconds(s) {
    if (s >= 1) return s.toFixed(2) + " s";
    if (s >= 0.001) return (s * 1000).toFixed(1) + " ms";
    return (s * 1e6).toFixed(0) + " µs";
  }
  const place = (file, line) => (line ? file + ":" + line : file);

  // Header and summary.
  const summary = report.summary;
  main.append(
    h("h1", null, "pydx doctor report"),
    h("div", { class: "muted" }, data.tool + " · " + summary.processes.join(" · ")),
    h("nav", null,
      h("a", { href: "#findings" }, "Findings"),
      h("a", { href: "#flamegraph" }, "Flamegraph"),
      h("a", { href: "#timeline" }, "Timeline"),
      report.endpoints.length ? h("a", { href: "#endpoints" }, "Endpoints") : null,
      h("a", { href: "#functions" }, "Functions"),
      h("a", { href: "#source" }, "Source")),
  );
  const card = (label, value) => h("div", { class: "card" }, h("b", null, value), label);
  const cards = h("div", { class: "cards" },
    card("recorded", seconds(summary.duration_seconds)),
    card("thread samples", summary.samples.toLocaleString("en")),
    card("threads", summary.threads),
    card("on a CPU", pct(summary.on_cpu_share)),
    card("waiting for the GIL", pct(summary.gil_wait_share)),
    card("idle (I/O, sleep, locks)", pct(summary.idle_share)));
  if (summary.cpu_wait_share > 0) cards.append(card("waiting for a CPU", pct(summary.cpu_wait_share)));
  if (summary.requests) {
    cards.append(card("requests served", summary.requests.count.toLocaleString("en") +
      " (" + summary.requests.per_second.toFixed(1) + "/s)"));
  }
  main.append(cards);
  for (const gap of summary.gaps || []) main.append(h("p", { class: "muted" }, "Not seen: " + gap));

  // Findings.
  const shareOf = {
    cpu_time: "of CPU time", threads_busy_time: "of the threads' busy time",
    event_loop_time: "of event-loop time", request_time: "of request time",
    endpoint_cpu_time: "of the endpoint's CPU time", worker_time: "of worker time",
  };
  const unitName = { seconds: "s", thread_seconds: "thread-seconds", cpu_seconds: "CPU seconds" };
  main.append(h("h2", { id: "findings" }, "Findings (" + report.findings.length + ")"));
  if (!report.findings.length) main.append(h("p", null, "No problem found."));
  for (const finding of report.findings) {
    const cost = finding.cost;
    const costText = (cost.share ? pct(cost.share) + " " + (shareOf[cost.share_of] || cost.share_of) + ", " : "") +
      cost.seconds.toFixed(2) + " " + (unitName[cost.unit] || cost.unit);
    const where = finding.location;
    const fix = h("pre", { class: "fix" }, finding.fix);
    main.append(h("section", { class: "finding " + finding.severity },
      h("h3", null, h("span", { class: "badge " + finding.severity }, finding.severity), finding.code + " " + finding.title),
      h("div", { class: "mono" }, where.function
        ? h("a", { href: "#flamegraph", class: "finding-link", title: "show " + where.function + " in the flamegraph",
            onclick: () => { searchBox.value = where.function; flame.search = where.function; drawFlame(); } },
          where.function + " at " + place(where.file, where.line))
        : place(where.file, where.line)),
      where.source ? h("pre", null, where.line + " | " + where.source) : null,
      h("div", null, h("b", null, "Cost: "), costText),
      h("ul", null, finding.evidence.map((line) => h("li", null, line))),
      h("div", null, h("b", null, "Fix:")), fix));
  }

  // Flamegraph.
  const views = { cpu: [0], gil: [1], wall: [0, 1, 2, 5] };
  const flame = { view: "cpu", process: -1, thread: -1, endpoint: -1, task: -1, zoom: [], search: "" };
  const pathCache = new Map();
  function pathOf(stack) {
    if (stack < 0) return [];
    let path = pathCache.get(stack);
    if (!path) {
      const [frame, parent] = data.stacks[stack];
      path = pathOf(parent).concat([frame]);
      pathCache.set(stack, path);
    }
    return path;
  }
  const frameKey = (frame) => data.frames[frame][0] + "/" + data.frames[frame][1];
  function buildTree() {
    const root = { frame: -1, value: 0, children: new Map() };
    const states = views[flame.view];
    for (const [stack, thread, state, endpoint, task, , nanos] of data.samples) {
      if (!states.includes(state)) continue;
      if (flame.process >= 0 && data.threads[thread][1] !== flame.process) continue;
      if (flame.thread >= 0 && thread !== flame.thread) continue;
      if (flame.endpoint >= 0 && endpoint !== flame.endpoint) continue;
      if (flame.task >= 0 && task !== flame.task) continue;
      let node = root;
      root.value += nanos;
      for (const frame of pathOf(stack)) {
        const key = frameKey(frame);
        let child = node.children.get(key);
        if (!child) {
          child = { frame, value: 0, children: new Map() };
          node.children.set(key, child);
        }
        child.value += nanos;
        node = child;
      }
    }
    return root;
  }
  function frameName(frame) {
    return frame < 0 ? "all" : S[data.frames[frame][0]];
  }
  function frameTitle(frame) {
    if (frame < 0) return "all samples";
    const [fn, file, line] = data.frames[frame];
    return S[fn] + " (" + place(S[file], line) + ")";
  }
  const colour = (name) => {
    let hash = 0;
    for (let i = 0; i < Math.min(name.length, 64); i++) hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
    return "hsl(" + (20 + (hash % 40)) + ", 85%, " + (62 + (hash % 16)) + "%)";
  };
  const flameBox = h("div", { id: "flame" });
  const flameInfo = h("div", { id: "flame-info", class: "muted" });
  const ROW = 18;
  function drawFlame() {
    const tree = buildTree();
    let top = tree;
    for (const key of flame.zoom) {
      const next = top.children.get(key);
      if (!next) break;
      top = next;
    }
    flameBox.textContent = "";
    const needle = flame.search.toLowerCase();
    let drawn = 0, matched = 0, depthMax = 0;
    const total = top.value;
    const visit = (node, depth, x, path) => {
      if (total <= 0 || node.value / total < 0.001) return;
      depthMax = Math.max(depthMax, depth);
      const name = frameName(node.frame);
      const title = frameTitle(node.frame);
      const share = node.value / total;
      const box = h("div", {
        class: "frame", title: title + "\n" + seconds(node.value / 1e9) + ", " + pct(share),
        style: "left:" + (x * 100) + "%;width:" + (share * 100) + "%;top:" + (depth * ROW) + "px;background:" + colour(name),
      }, name);
      box.dataset.path = JSON.stringify(path);
      if (needle && title.toLowerCase().includes(needle)) {
        box.classList.add("match");
        matched++;
      }
      if (node === top) box.classList.add("zoomed");
      box.addEventListener("click", () => {
        flame.zoom = JSON.parse(box.dataset.path);
        drawFlame();
      });
      flameBox.append(box);
      drawn++;
      let childX = x;
      const children = [...node.children.entries()].sort((a, b) => b[1].value - a[1].value);
      for (const [key, child] of children) {
        visit(child, depth + 1, childX, path.concat([key]));
        childX += child.value / total;
      }
    };
    visit(top, 0, 0, flame.zoom.slice());
    flameBox.style.height = (depthMax + 1) * ROW + 4 + "px";
    flameBox.dataset.drawn = drawn;
    flameBox.dataset.matched = matched;
    flameInfo.textContent = total > 0
      ? seconds(total / 1e9) + " of " + (flame.view === "cpu" ? "on-CPU" : flame.view === "gil" ? "GIL-wait" : "wall") +
        " time drawn" + (flame.zoom.length ? " (zoomed: click the top frame's parent row or Reset)" : "") +
        (needle ? "; " + matched + " frames match" : "") +
        (data.omitted.sample_keys ? "; " + seconds(data.omitted.nanos / 1e9) + " of rarely seen stacks (" +
          data.omitted.sample_keys.toLocaleString("en") + ") counted in \u201call\u201d without their frames" : "")
      : "No samples in this view.";
  }
  const select = (label, options, onChange) => h("label", null, label + " ",
    h("select", { id: "flame-" + label, onchange: (event) => { onChange(Number(event.target.value)); flame.zoom = []; drawFlame(); } },
      h("option", { value: "-1" }, "all"),
      options.map(([value, text]) => h("option", { value: String(value) }, text))));
  const pids = [...new Set(data.threads.map(([, pid]) => pid))].sort((a, b) => a - b);
  const processName = (pid) => {
    const command = (data.processes || {})[pid];
    return "pid " + pid + (command === undefined ? "" : " " + S[command]);
  };
  const distinct = (column) => [...new Set(data.samples.map((s) => s[column]).filter((v) => v >= 0))];
  const viewSelect = h("select", { id: "flame-view", onchange: (event) => { flame.view = event.target.value; flame.zoom = []; drawFlame(); } },
    h("option", { value: "cpu" }, "on-CPU time"),
    h("option", { value: "gil" }, "GIL-wait time"),
    h("option", { value: "wall" }, "wall time (every thread, idle included)"));
  const searchBox = h("input", { id: "flame-search", type: "search", placeholder: "search functions and files",
    oninput: (event) => { flame.search = event.target.value; drawFlame(); } });
  const controls = h("div", { class: "controls" },
    h("label", null, "Show ", viewSelect),
    pids.length > 1 ? select("process", pids.map((pid) => [pid, processName(pid)]), (v) => { flame.process = v; }) : null,
    select("thread", data.threads.map(([name, pid], i) => [i, S[name] + " (" + pid + ")"]), (v) => { flame.thread = v; }),
    distinct(3).length ? select("endpoint", distinct(3).map((v) => [v, S[v]]), (v) => { flame.endpoint = v; }) : null,
    distinct(4).length ? select("task", distinct(4).map((v) => [v, S[v]]), (v) => { flame.task = v; }) : null,
    searchBox,
    h("button", { id: "flame-reset", onclick: () => { flame.zoom = []; drawFlame(); } }, "Reset zoom"));
  main.append(h("h2", { id: "flamegraph" }, "Flamegraph"),
    h("p", { class: "muted" }, "Callers on top, callees below; width is time. Click a frame to zoom into it."),
    controls, flameBox, flameInfo);
  drawFlame();

  // Timeline.
  const stateNames = ["on a CPU", "waiting for the GIL", "idle", "task waiting", "event loop blocked in a call",
    "waiting for a CPU"];
  const stateClasses = ["cpu", "gil", "idle", "idle", "blocked", "cpuwait"];
  const timeline = h("div", { id: "timeline-rows" });
  const bucketSeconds = data.timeline_bucket_ns / 1e9;
  for (const [thread, segments] of data.timeline) {
    const [name, pid] = data.threads[thread];
    const track = h("div", { class: "track" });
    for (const [first, count, state, frame] of segments) {
      const from = first * bucketSeconds, to = (first + count) * bucketSeconds;
      track.append(h("div", {
        class: "segment " + stateClasses[state],
        style: "left:" + (first / 8) + "%;width:" + (count / 8) + "%",
        title: stateNames[state] + ", " + from.toFixed(2) + "–" + to.toFixed(2) + " s" +
          (frame >= 0 ? "\n" + frameTitle(frame) : ""),
      }));
    }
    timeline.append(h("div", { class: "timeline-row" },
      h("div", { class: "timeline-name", title: S[name] + " (" + pid + ")" }, S[name]), track));
  }
  main.append(h("h2", { id: "timeline" }, "Timeline"),
    h("p", { class: "muted" }, "What each thread did when, from the start of the recording (" +
      seconds(bucketSeconds * 800) + "). Hover a stretch for the code it ran."),
    h("div", { class: "legend" }, [0, 5, 1, 2, 4].map((state) =>
      h("span", null, h("span", { class: "segment-key " + stateClasses[state] }), stateNames[state]))),
    timeline);

  // Endpoints.
  if (report.endpoints.length) {
    main.append(h("h2", { id: "endpoints" }, "Endpoints"));
    const endpointIds = new Map(distinct(3).map((v) => [S[v], v]));
    main.append(h("table", null,
      h("tr", null, h("th", null, "endpoint"), h("th", { class: "num" }, "share"), h("th", { class: "num" }, "time"),
        h("th", { class: "num" }, "on CPU"), h("th", null, "mostly in")),
      report.endpoints.map((e) => h("tr", null,
        h("td", { class: "name" }, endpointIds.has(e.endpoint)
          ? h("a", { href: "#flamegraph", class: "endpoint-link", onclick: () => {
              flame.endpoint = endpointIds.get(e.endpoint); flame.view = "wall"; flame.zoom = [];
              viewSelect.value = "wall";
              document.getElementById("flame-endpoint").value = String(flame.endpoint);
              drawFlame(); } }, e.endpoint)
          : e.endpoint),
        h("td", { class: "num" }, pct(e.share)),
        h("td", { class: "num" }, seconds(e.seconds)),
        h("td", { class: "num" }, pct(e.on_cpu_share)),
        h("td", { class: "name mono" }, e.top_functions.slice(0, 2)
          .map((f) => f.function + " (" + place(f.file, f.line) + ") " + pct(f.share)).join(", "))))));
  }

  // Function table, sortable.
  main.append(h("h2", { id: "functions" }, "Functions (on-CPU time)"));
  const columns = [
    ["function", (f) => S[f.function], false], ["file", (f) => place(S[f.file], f.line), false],
    ["self", (f) => f.self_ns, true], ["total", (f) => f.total_ns, true],
    ["self samples", (f) => f.self_samples, true], ["total samples", (f) => f.total_samples, true],
  ];
  const cpuTotal = data.functions.reduce((sum, f) => sum + f.self_ns, 0) || 1;
  const body = h("tbody");
  let order = { column: 2, descending: true };
  function drawFunctions() {
    const [, key, numeric] = columns[order.column];
    const rows = data.functions.slice().sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      const compared = numeric ? x - y : String(x).localeCompare(String(y));
      return order.descending ? -compared : compared;
    });
    body.textContent = "";
    for (const f of rows) {
      body.append(h("tr", null,
        h("td", { class: "name mono" }, S[f.function]),
        h("td", { class: "name mono" }, place(S[f.file], f.line)),
        h("td", { class: "num" }, seconds(f.self_ns / 1e9) + " (" + pct(f.self_ns / cpuTotal) + ")"),
        h("td", { class: "num" }, seconds(f.total_ns / 1e9) + " (" + pct(f.total_ns / cpuTotal) + ")"),
        h("td", { class: "num" }, f.self_samples), h("td", { class: "num" }, f.total_samples)));
    }
  }
  main.append(h("table", { id: "function-table" },
    h("thead", null, h("tr", null, columns.map(([name, , numeric], index) => h("th", {
      class: "sortable" + (numeric ? " num" : ""),
      onclick: () => {
        order = { column: index, descending: order.column === index ? !order.descending : numeric };
        drawFunctions();
      },
    }, name)))), body));
  drawFunctions();

  // Source of the hottest functions.
  main.append(h("h2", { id: "source" }, "Hottest functions, line by line"));
  if (!data.annotated.length) main.append(h("p", null, "No on-CPU samples of the program's own code."));
  for (const f of data.annotated) {
    const whole = f.total_ns || 1;
    main.append(h("div", { class: "annotated" },
      h("h3", null, S[f.function] + " (" + place(S[f.file], f.line) + ")"),
      h("div", { class: "muted" }, seconds(f.total_ns / 1e9) + " of on-CPU time in " + f.total_samples +
        " samples, " + seconds(f.self_ns / 1e9) + " in the function itself" +
        (f.source_found ? "" : " (source not found)")),
      h("table", null,
        h("tr", null, h("th", { class: "num" }, "line"), h("th", { class: "num" }, "samples"),
          h("th", { class: "num" }, "time"), h("th", { class: "num" }, "% func"), h("th", null, ""), h("th", null, "source")),
        f.lines.map(([number, text, samples, total, own]) => h("tr", { class: samples ? "hot" : "" },
          h("td", { class: "num" }, number),
          h("td", { class: "num" }, samples || ""),
          h("td", { class: "num" }, samples ? seconds(total / 1e9) : ""),
          h("td", { class: "num" }, samples ? pct(total / whole) : ""),
          h("td", null, samples ? h("span", { class: "bar", style: "width:" + Math.round(total / whole * 80) + "px" }) : ""),
          h("td", { class: "src" }, S[text]))))));
  }

  // A self-test for the browser tests: `report.html#selftest=NEEDLE`
  // zooms into the first frame under the root, searches NEEDLE, tries each
  // view and writes what it saw into #pydx-selftest.
  if (location.hash.startsWith("#selftest")) {
    const needle = decodeURIComponent(location.hash.split("=")[1] || "");
    // Milliseconds from the start of navigation to the page drawn.
    const result = { drawn: Number(flameBox.dataset.drawn), drawnAfterMs: Math.round(performance.now()) };
    const first = flameBox.querySelectorAll(".frame")[1];
    if (first) {
      first.click();
      result.zoomedInto = flameBox.querySelector(".frame.zoomed").textContent;
      result.drawnZoomed = Number(flameBox.dataset.drawn);
      document.getElementById("flame-reset").click();
      result.drawnAfterReset = Number(flameBox.dataset.drawn);
    }
    searchBox.value = needle;
    searchBox.dispatchEvent(new Event("input"));
    result.matched = Number(flameBox.dataset.matched);
    result.views = {};
    for (const view of ["cpu", "gil", "wall"]) {
      viewSelect.value = view;
      viewSelect.dispatchEvent(new Event("change"));
      result.views[view] = Number(flameBox.dataset.drawn);
    }
    const processSelect = document.getElementById("flame-process");
    if (processSelect) {
      viewSelect.value = "cpu";
      viewSelect.dispatchEvent(new Event("change"));
      result.processes = {};
      for (const option of processSelect.options) {
        processSelect.value = option.value;
        processSelect.dispatchEvent(new Event("change"));
        result.processes[option.textContent] =
          { drawn: Number(flameBox.dataset.drawn), matched: Number(flameBox.dataset.matched) };
      }
      processSelect.value = "-1";
      processSelect.dispatchEvent(new Event("change"));
    }
    const endpointSelect = document.getElementById("flame-endpoint");
    if (endpointSelect) {
      viewSelect.value = "wall";
      viewSelect.dispatchEvent(new Event("change"));
      result.endpoints = {};
      for (const option of endpointSelect.options) {
        endpointSelect.value = option.value;
        endpointSelect.dispatchEvent(new Event("change"));
        result.endpoints[option.textContent] = Number(flameBox.dataset.drawn);
      }
      endpointSelect.value = "-1";
      endpointSelect.dispatchEvent(new Event("change"));
      const endpointLink = document.querySelector(".endpoint-link");
      if (endpointLink) {
        endpointLink.click();
        result.endpointLink = {
          selected: endpointSelect.options[endpointSelect.selectedIndex].textContent,
          drawn: Number(flameBox.dataset.drawn),
        };
      }
      endpointSelect.value = "-1";
      endpointSelect.dispatchEvent(new Event("change"));
      viewSelect.value = "cpu";
      viewSelect.dispatchEvent(new Event("change"));
    }
    const headers = document.querySelectorAll("#function-table th");
    headers[3].click();
    headers[2].click();
    result.firstBySelf = document.querySelector("#function-table tbody td").textContent;
    result.findings = document.querySelectorAll(".finding").length;
    const link = document.querySelector(".finding-link");
    if (link) {
      link.click();
      result.findingLinkMatched = Number(flameBox.dataset.matched);
    }
    result.timelineRows = document.querySelectorAll(".timeline-row").length;
    result.timelineOnCpu = document.querySelectorAll(".segment.cpu").length;
    result.errors = pydxPageErrors;
    document.body.append(h("pre", { id: "pydx-selftest" }, JSON.stringify(result)));
  }
})();
