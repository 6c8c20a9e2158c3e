// The kbtools hub page: a hub's shares, a share's files, a dataset's summary and probe.
// Plain JavaScript, no build step. Every view is chosen by the query string, so every view has a
// link that can be shared: ?node_id=ID (or share=ID, hub=ID: the first present wins) and &path=REL.
// The DOM is built with textContent only: names come from the network and are never parsed as HTML.
"use strict";

(() => {
  const PAGE_SIZE = 500;            // rows rendered at once; "Show more" renders the next page
  const DETAIL_CONCURRENCY = 4;     // nodeinfo requests in flight for the children of a hub
  const SVG_NS = "http://www.w3.org/2000/svg";

  const query = new URLSearchParams(location.search);
  // A private share's grant, from a browse link's fragment (#token=…: never sent to a server, never in
  // a Referer). The page sends it with every request for that share (the hub passes it on as the
  // X-Kbucket-Token header) and puts it in its copy lines and download links.
  const grantToken = new URLSearchParams(location.hash.replace(/^#/, "")).get("token");
  const apiRoot = chooseApiRoot();
  const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
  const numberFormat = new Intl.NumberFormat("en-US");

  // ---- small helpers ---------------------------------------------------------------------------

  /** Create an element: h("a", {href: "…", class: "x"}, "text", child, …). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttributes(el, attrs);
    appendAll(el, children);
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttributes(el, attrs);
    appendAll(el, children);
    return el;
  }

  function setAttributes(el, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
  }

  function appendAll(el, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
  }

  /** The hub whose API the page reads: the serving hub, or `kbucket_url=` as in the original. */
  function chooseApiRoot() {
    const other = query.get("kbucket_url");
    if (other && /^https?:\/\/[^/]/i.test(other)) return new URL(other.replace(/\/*$/, "/"));
    return new URL("./", location.href);
  }

  /** The node to show: the first of node_id=, share=, hub= present in the query string. */
  function requestedNode() {
    for (const [key, value] of query) {
      if ((key === "node_id" || key === "share" || key === "hub") && value.trim()) {
        return value.trim();
      }
    }
    return null;
  }

  function pathSegments(path) {
    return (path || "").split("/").filter((s) => s !== "" && s !== ".");
  }

  function encodePath(segments) {
    return segments.map(encodeURIComponent).join("/");
  }

  /** An API URL on the chosen hub: apiUrl(id, "api/nodeinfo") or apiUrl(id, "download/", segs). */
  function apiUrl(id, route, segments = []) {
    const url = new URL(encodeURIComponent(id) + "/" + route + encodePath(segments), apiRoot);
    if (grantToken) url.searchParams.set("token", grantToken);
    return url.href;
  }

  /** A kbucket:// URL for kb-get and kb-url, with the grant's token when the page has one. */
  function kbucketLink(id, here) {
    return "kbucket://" + id + "/" + here + (grantToken ? "?token=" + grantToken : "");
  }

  /** A link to another view of this page, keeping `kbucket_url`. */
  function viewHref(kind, id, segments = []) {
    const q = new URLSearchParams();
    q.set(kind, id);
    if (segments.length) q.set("path", segments.join("/"));
    if (query.get("kbucket_url")) q.set("kbucket_url", query.get("kbucket_url"));
    return "?" + q.toString() + (grantToken ? "#token=" + encodeURIComponent(grantToken) : "");
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function getJson(url) {
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (err) {
      throw new ApiError(0, "The hub does not answer (" + err.message + ").");
    }
    const text = await response.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch (err) {
      body = null;
    }
    if (!response.ok || body === null) {
      const message = body && typeof body.error === "string"
        ? body.error : text.trim().slice(0, 200) || response.statusText;
      throw new ApiError(response.status, message || "HTTP " + response.status);
    }
    return body;
  }

  function formatBytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "";
    if (n < 1024) return n + " B";
    const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let value = n;
    let unit = -1;
    do {
      value /= 1024;
      unit += 1;
    } while (value >= 1024 && unit < units.length - 1);
    return (value < 10 ? value.toFixed(1) : Math.round(value).toString()) + " " + units[unit];
  }

  function formatDuration(seconds) {
    if (typeof seconds !== "number" || !isFinite(seconds)) return "unknown";
    const exact = numberFormat.format(Number(seconds.toFixed(seconds < 10 ? 3 : 1))) + " s";
    if (seconds < 60) return exact;
    const total = Math.round(seconds);
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const secs = total % 60;
    const parts = hours ? [hours + " h", minutes + " min", secs + " s"] : [minutes + " min", secs + " s"];
    return parts.join(" ") + " (" + exact + ")";
  }

  function plural(n, one, many) {
    return numberFormat.format(n) + " " + (n === 1 ? one : many);
  }

  function nodeIdOf(info) {
    return (info && (info.node_id || info.kbnode_id)) || "";
  }

  const main = document.getElementById("main");
  const crumbs = document.getElementById("crumbs");

  function show(...children) {
    main.replaceChildren(...children.flat().filter(Boolean));
    main.setAttribute("aria-busy", "false");
  }

  function setCrumbs(items) {
    // items: [{label, href}] with the current view last (no href).
    const list = h("ol");
    items.forEach((item, i) => {
      const last = i === items.length - 1;
      list.append(h("li", null, last || !item.href
        ? h("span", { "aria-current": last ? "page" : null }, item.label)
        : h("a", { href: item.href }, item.label)));
    });
    crumbs.replaceChildren(list);
  }

  /** A <pre> line with a Copy button (falls back to selecting the text when the clipboard is closed). */
  function copyBlock(text, label) {
    const pre = h("pre", { class: "copy-text", tabindex: "0" }, h("code", null, text));
    const button = h("button", { type: "button", class: "copy", "aria-label": "Copy " + label }, "Copy");
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        button.textContent = "Copied";
      } catch (err) {
        const range = document.createRange();
        range.selectNodeContents(pre);
        const selection = getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
      setTimeout(() => { button.textContent = "Copy"; }, 2500);
    });
    return h("div", { class: "copy-block" }, pre, button);
  }

  function metaList(rows) {
    const dl = h("dl", { class: "meta" });
    for (const [term, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(h("div", null, h("dt", null, term), h("dd", null, value)));
    }
    return dl;
  }

  function ownerLine(info) {
    if (!info.owner && !info.owner_email) return null;
    const email = info.owner_email && /^[^\s@]+@[^\s@]+$/.test(info.owner_email)
      ? h("a", { href: "mailto:" + info.owner_email }, info.owner_email) : info.owner_email;
    return h("span", null, info.owner || "", info.owner && email ? " · " : "", email || "");
  }

  // ---- paged table: the first PAGE_SIZE rows at once, then on request --------------------------

  /**
   * Renders items into a table body PAGE_SIZE at a time, with "Show more" / "Show all" buttons and
   * an optional name filter, so a folder of 10,000 files is usable at once.
   */
  function pagedTable({ columns, items, renderRow, filterLabel, nameOf, caption }) {
    let matching = items;
    let shown = 0;
    const tbody = h("tbody");
    const status = h("p", { class: "count", "aria-live": "polite" });
    const more = h("button", { type: "button", class: "more" });
    const all = h("button", { type: "button", class: "more" });
    const buttons = h("div", { class: "more-row" }, more, all);

    function renderNext(count) {
      const end = Math.min(matching.length, shown + count);
      const fragment = document.createDocumentFragment();
      for (let i = shown; i < end; i++) fragment.append(renderRow(matching[i]));
      tbody.append(fragment);
      shown = end;
      update();
    }

    function update() {
      const left = matching.length - shown;
      status.textContent = matching.length === items.length
        ? "Showing " + numberFormat.format(shown) + " of " + plural(items.length, "entry", "entries")
        : "Showing " + numberFormat.format(shown) + " of " + plural(matching.length, "match", "matches")
          + " (" + plural(items.length, "entry", "entries") + " in all)";
      more.textContent = "Show " + numberFormat.format(Math.min(left, PAGE_SIZE)) + " more";
      all.textContent = "Show all " + numberFormat.format(matching.length);
      status.hidden = left <= 0 && matching.length === items.length;
      buttons.hidden = left <= 0;
      all.hidden = left <= PAGE_SIZE;
    }

    more.addEventListener("click", () => renderNext(PAGE_SIZE));
    all.addEventListener("click", () => renderNext(matching.length));

    const table = h("table", { class: "listing" },
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", null, h("tr", null, columns.map(([label, cls]) => h("th", { scope: "col", class: cls }, label)))),
      tbody);

    let filter = null;
    if (filterLabel && items.length > 20) {
      const input = h("input", { type: "search", id: "filter", autocomplete: "off", spellcheck: "false" });
      input.addEventListener("input", () => {
        const needle = input.value.trim().toLowerCase();
        matching = needle ? items.filter((item) => nameOf(item).toLowerCase().includes(needle)) : items;
        tbody.replaceChildren();
        shown = 0;
        renderNext(PAGE_SIZE);
      });
      filter = h("div", { class: "filter" }, h("label", { for: "filter" }, filterLabel), input);
    }

    renderNext(PAGE_SIZE);
    return h("div", { class: "paged" }, filter, status, h("div", { class: "table-wrap" }, table), buttons);
  }

  // ---- hub view --------------------------------------------------------------------------------

  function renderHub(id, nodeinfo) {
    const info = nodeinfo.info || {};
    const name = info.name || id;
    document.title = name + " · kbtools hub";
    setCrumbs([{ label: name }]);

    const parent = nodeinfo.parent_hub_info;
    const parentLink = parent && parent.listen_url && /^https?:\/\//i.test(parent.listen_url)
      ? h("a", { href: parent.listen_url.replace(/\/*$/, "/") + "?hub=" + encodeURIComponent(nodeIdOf(parent)) },
        parent.name || nodeIdOf(parent))
      : parent ? (parent.name || nodeIdOf(parent)) : null;

    const shares = childList(nodeinfo.child_leaf_nodes || nodeinfo.child_shares);
    const hubs = childList(nodeinfo.child_hubs);

    show(
      h("section", { class: "node-head" },
        h("h1", null, name, " ", h("span", { class: "badge hub" }, "hub")),
        info.description ? h("p", { class: "description" }, info.description) : null,
        metaList([
          ["Owner", ownerLine(info)],
          ["Node id", h("code", null, id)],
          ["Listen URL", info.listen_url],
          ["Parent hub", parentLink],
        ])),
      h("section", { class: "children", "aria-labelledby": "shares-title" },
        h("h2", { id: "shares-title" }, "Shares ", h("span", { class: "n" }, "(" + shares.length + ")")),
        shares.length
          ? childTable(shares, "share", "Shares connected to this hub")
          : h("p", { class: "empty" }, "No share is connected to this hub yet. Start one with ",
            h("code", null, "kb-host DIR"), ", giving this hub's URL as its parent hub.")),
      hubs.length ? h("section", { class: "children", "aria-labelledby": "hubs-title" },
        h("h2", { id: "hubs-title" }, "Child hubs ", h("span", { class: "n" }, "(" + hubs.length + ")")),
        childTable(hubs, "hub", "Hubs connected to this hub")) : null,
    );
  }

  function childList(map) {
    if (!map || typeof map !== "object") return [];
    return Object.entries(map)
      .map(([id, entry]) => ({ id, ...(entry && typeof entry === "object" ? entry : {}) }))
      .sort((a, b) => collator.compare(a.name || a.id, b.name || b.id));
  }

  function childTable(children, kind, caption) {
    const queue = detailQueue();
    return pagedTable({
      caption,
      columns: [["Name", "name"], ["Description", "description"], ["Owner", "owner"], ["Status", "status"]],
      items: children,
      filterLabel: kind === "share" ? "Filter shares" : "Filter hubs",
      nameOf: (child) => (child.name || "") + " " + child.id,
      renderRow: (child) => {
        const description = h("td", { class: "description" });
        const owner = h("td", { class: "owner" });
        const connected = child.connected !== false;
        const status = h("td", { class: "status" },
          h("span", { class: connected ? "state on" : "state off" }, connected ? "connected" : "not connected"),
          reachMarker(child.kbtools_reachable));
        const row = h("tr", { "data-node-id": child.id },
          h("td", { class: "name" },
            h("a", { href: viewHref(kind, child.id) }, child.name || child.id),
            h("div", { class: "id" }, child.id)),
          description, owner, status);
        const fill = (source) => {
          description.textContent = source.description || "";
          owner.replaceChildren(ownerLine(source) || "");
        };
        // A kbtools hub lists description and owner with each child; an original hub lists only the
        // name, so the rest is read from the child's own nodeinfo when its row comes into view.
        if ("description" in child || "owner" in child || !connected) fill(child);
        else queue.watch(row, child.id, (nodeinfo) => fill(nodeinfo.info || {}), (err) => {
          status.replaceChildren(h("span", { class: "state off", title: err.message }, "not reachable"));
        });
        return row;
      },
    });
  }

  /** Whether the hub reached a child's own URL (a kbtools hub's probe): downloads go direct or through it. */
  function reachMarker(reachable) {
    if (reachable === true) {
      return h("span", { class: "reach direct", title: "The hub reached its own URL: clients can download from it directly" }, "direct");
    }
    if (reachable === false) {
      return h("span", { class: "reach hub-only", title: "The hub could not reach its own URL: downloads go through the hub" }, "via hub only");
    }
    return null;
  }

  /** Reads children's nodeinfo a few at a time, for rows that are on screen. */
  function detailQueue() {
    const waiting = [];
    let running = 0;
    const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        waiting.push(entry.target.kbJob);
      }
      pump();
    }) : null;

    function pump() {
      while (running < DETAIL_CONCURRENCY && waiting.length) {
        const job = waiting.shift();
        running += 1;
        getJson(apiUrl(job.id, "api/nodeinfo")).then(job.ok, job.fail).finally(() => {
          running -= 1;
          pump();
        });
      }
    }

    return {
      watch(row, id, ok, fail) {
        row.kbJob = { id, ok, fail };
        if (observer) observer.observe(row);
        else { waiting.push(row.kbJob); pump(); }
      },
    };
  }

  // ---- share view ------------------------------------------------------------------------------

  async function renderShare(id, nodeinfo, segments) {
    const info = nodeinfo.info || {};
    const name = info.name || id;
    const parent = nodeinfo.parent_hub_info;
    const here = segments.join("/");
    document.title = (here ? here + " · " : "") + name + " · kbtools";

    const trail = [];
    if (parent && nodeIdOf(parent)) trail.push({ label: parent.name || nodeIdOf(parent), href: viewHref("hub", nodeIdOf(parent)) });
    trail.push({ label: name, href: viewHref("share", id) });
    segments.forEach((segment, i) => trail.push({ label: segment, href: viewHref("share", id, segments.slice(0, i + 1)) }));
    setCrumbs(trail);

    const listing = await getJson(apiUrl(id, "api/readdir/", segments));
    const dirs = (Array.isArray(listing.dirs) ? listing.dirs : [])
      .filter((d) => d && typeof d.name === "string")
      .sort((a, b) => collator.compare(a.name, b.name));
    const files = (Array.isArray(listing.files) ? listing.files : [])
      .filter((f) => f && typeof f.name === "string")
      .sort((a, b) => collator.compare(a.name, b.name));
    const kbucketUrl = kbucketLink(id, here);
    const rawMda = files.find((f) => f.name === "raw.mda");

    const totalBytes = files.reduce((sum, f) => sum + (typeof f.size === "number" ? f.size : 0), 0);
    const unindexed = files.filter((f) => !(f.prv && f.prv.original_checksum)).length;
    const datasetSection = rawMda ? h("section", { class: "dataset", "aria-labelledby": "dataset-title" },
      h("h2", { id: "dataset-title" }, "Dataset"), h("p", { class: "status" }, "Reading the dataset…")) : null;

    show(
      h("section", { class: "node-head" },
        h("h1", null, here ? segments[segments.length - 1] : name, " ",
          h("span", { class: "badge share" }, rawMda ? "dataset" : here ? "folder" : "share")),
        !here && info.description ? h("p", { class: "description" }, info.description) : null,
        metaList([
          ["Share", here ? h("a", { href: viewHref("share", id) }, name) : null],
          ["Owner", ownerLine(info)],
          ["Node id", h("code", null, id)],
          ["Hub", parent && nodeIdOf(parent)
            ? h("a", { href: viewHref("hub", nodeIdOf(parent)) }, parent.name || nodeIdOf(parent)) : null],
        ]),
        copyBlock(kbucketUrl, "kbucket URL")),
      datasetSection,
      h("section", { class: "contents", "aria-labelledby": "contents-title" },
        h("h2", { id: "contents-title" }, "Contents"),
        h("p", { class: "totals" },
          plural(dirs.length, "folder", "folders"), ", ", plural(files.length, "file", "files"),
          " (" + formatBytes(totalBytes) + ")",
          unindexed ? ", " + numberFormat.format(unindexed) + " still indexing" : ""),
        listingTable(id, segments, dirs, files)),
    );

    if (rawMda) await renderDataset(datasetSection, id, segments, rawMda, files);
  }

  function listingTable(id, segments, dirs, files) {
    const items = [];
    for (const dir of dirs) items.push({ kind: "dir", entry: dir });
    for (const file of files) items.push({ kind: "file", entry: file });
    const table = pagedTable({
      caption: "Folders and files",
      columns: [["Name", "name"], ["Size", "size"], ["SHA-1", "sha1"]],
      items,
      filterLabel: "Filter names",
      nameOf: (item) => item.entry.name,
      renderRow: (item) => {
        const entry = item.entry;
        if (item.kind === "dir") {
          return h("tr", { class: "dir" },
            h("td", { class: "name" }, h("a", { href: viewHref("share", id, [...segments, entry.name]) }, entry.name + "/")),
            h("td", { class: "size" }, "folder"), h("td", { class: "sha1" }));
        }
        const sha1 = entry.prv && entry.prv.original_checksum;
        return h("tr", { class: "file" },
          h("td", { class: "name" }, h("a", {
            href: apiUrl(id, "download/", [...segments, entry.name]),
            download: entry.name,
            title: "Download " + entry.name,
          }, entry.name)),
          h("td", { class: "size", title: typeof entry.size === "number" ? numberFormat.format(entry.size) + " bytes" : null },
            formatBytes(entry.size)),
          h("td", { class: "sha1" }, sha1 ? h("code", null, sha1) : h("span", { class: "pending" }, "indexing…")));
      },
    });
    const up = segments.length
      ? h("p", { class: "up" }, h("a", { href: viewHref("share", id, segments.slice(0, -1)) },
        "↑ Up to " + (segments.length > 1 ? segments[segments.length - 2] : "the share's top folder")))
      : null;
    return h("div", null, up, table);
  }

  // ---- dataset view ----------------------------------------------------------------------------

  async function renderDataset(section, id, segments, rawMda, files) {
    let answer;
    let checked = true;
    try {
      answer = await getJson(apiUrl(id, "api/dataset/", segments));
    } catch (err) {
      // An original KBucket share has no dataset route: read the header and the two small files.
      checked = false;
      try {
        answer = await describeFromFiles(id, segments, files);
      } catch (err2) {
        section.replaceChildren(h("h2", { id: "dataset-title" }, "Dataset"),
          h("p", { class: "error" }, "This dataset cannot be described: " + err2.message),
          usage(id, segments));
        return;
      }
    }
    const dataset = answer.dataset || {};
    const summary = dataset.summary || {};
    const findings = Array.isArray(dataset.findings) ? dataset.findings : [];
    const errors = findings.filter((f) => f.severity === "error").length;
    const warnings = findings.filter((f) => f.severity === "warning").length;
    const valid = dataset.valid === true;

    const verdict = checked
      ? h("p", { class: "verdict " + (valid ? "ok" : "bad") },
        h("strong", null, valid ? "✓ Valid" : "✗ Not valid"),
        " (kb-check): ", plural(errors, "error", "errors"), ", ", plural(warnings, "warning", "warnings"))
      : h("p", { class: "verdict unknown" }, h("strong", null, "Not checked"),
        ": this share does not run kb-check; the figures below are read from the files.");

    const channels = summary.num_channels;
    const samples = summary.num_timepoints;
    const dims = typeof channels === "number" && typeof samples === "number"
      ? numberFormat.format(channels) + " × " + numberFormat.format(samples) : "unknown";

    const tracesFigure = h("figure", { class: "traces", "aria-labelledby": "traces-title" },
      h("h3", { id: "traces-title" }, "Traces (raw.mda)"), h("p", { class: "status" }, "Reading the traces…"));
    section.replaceChildren();
    appendAll(section, [
      h("h2", { id: "dataset-title" }, "Dataset"),
      verdict,
      metaList([
        ["Channels × samples", dims],
        ["Data type", summary.dtype || "unknown"],
        ["Sample rate", typeof summary.samplerate === "number" ? numberFormat.format(summary.samplerate) + " Hz" : "unknown"],
        ["Duration", formatDuration(summary.duration_sec)],
        ["raw.mda", formatBytes(rawMda.size) + (typeof rawMda.size === "number" ? " (" + numberFormat.format(rawMda.size) + " bytes)" : "")],
      ]),
      findings.length ? findingList(findings) : null,
      h("div", { class: "dataset-grid" },
        h("figure", { class: "probe" },
          h("h3", null, "Probe (geom.csv)"),
          Array.isArray(answer.geom) && answer.geom.length
            ? probeDrawing(answer.geom)
            : h("p", { class: "empty" }, files.some((f) => f.name === "geom.csv") ? "geom.csv could not be read." : "No geom.csv.")),
        h("div", { class: "params" },
          h("h3", null, "params.json"),
          answer.params && typeof answer.params === "object"
            ? h("pre", { class: "json", tabindex: "0" }, JSON.stringify(answer.params, null, 2))
            : h("p", { class: "empty" }, files.some((f) => f.name === "params.json") ? "params.json could not be read." : "No params.json."))),
      tracesFigure,
      usage(id, segments),
    ]);
    await renderTraces(tracesFigure, apiUrl(id, "download/", [...segments, "raw.mda"]), summary,
      answer.params && typeof answer.params === "object" ? answer.params : {});
  }

  const MDA_TYPES = { "-2": "byte", "-3": "float32", "-4": "int16", "-5": "int32", "-6": "uint16", "-7": "float64", "-8": "uint32" };

  /** The first bytes of a download (a Range request; the rest is never read if it is ignored). */
  async function downloadHead(url, count) {
    const response = await fetch(url, { headers: { Range: "bytes=0-" + (count - 1) } });
    if (!response.ok) throw new ApiError(response.status, "HTTP " + response.status);
    const reader = response.body.getReader();
    const bytes = new Uint8Array(count);
    let length = 0;
    while (length < count) {
      const { done, value } = await reader.read();
      if (done) break;
      const part = value.subarray(0, count - length);
      bytes.set(part, length);
      length += part.length;
    }
    reader.cancel().catch(() => {});
    return bytes.subarray(0, length);
  }

  /** raw.mda header (spec mda-format §1.1): data type and dims, 32- or 64-bit. */
  function parseMdaHeader(bytes) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < 12) throw new Error("raw.mda is shorter than its header");
    const code = view.getInt32(0, true);
    const numDims = view.getInt32(8, true);
    const wide = numDims < 0;
    const count = Math.abs(numDims);
    if (count < 1 || count > 6 || bytes.length < 12 + count * (wide ? 8 : 4)) throw new Error("raw.mda has an invalid header");
    const dims = [];
    for (let i = 0; i < count; i++) {
      dims.push(wide ? Number(view.getBigInt64(12 + 8 * i, true)) : view.getInt32(12 + 4 * i, true));
    }
    return { dtype: MDA_TYPES[code] || null, dims, headerSize: 12 + count * (wide ? 8 : 4) };
  }

  async function describeFromFiles(id, segments, files) {
    const byName = (name) => files.find((f) => f.name === name);
    const small = (name, limit) => {
      const file = byName(name);
      if (!file || !(file.size <= limit)) return Promise.resolve(null);
      return fetch(apiUrl(id, "download/", [...segments, name])).then((r) => (r.ok ? r.text() : null));
    };
    const [header, paramsText, geomText] = await Promise.all([
      downloadHead(apiUrl(id, "download/", [...segments, "raw.mda"]), 64).then(parseMdaHeader),
      small("params.json", 1 << 20),
      small("geom.csv", 4 << 20),
    ]);
    let params = null;
    try {
      params = paramsText === null ? null : JSON.parse(paramsText);
    } catch (err) {
      params = null;
    }
    const geom = geomText === null ? null : geomText.split(/\r?\n/).filter((line) => line.trim())
      .map((line) => line.split(","));
    const samplerate = params && typeof params.samplerate === "number" ? params.samplerate : null;
    const [channels, samples] = header.dims.length >= 2 ? header.dims : [null, null];
    return {
      dataset: {
        summary: {
          num_channels: channels, num_timepoints: samples, dtype: header.dtype, samplerate,
          duration_sec: samples !== null && samplerate ? samples / samplerate : null,
        },
      },
      geom, params,
    };
  }

  // ---- traces: a window of raw.mda, read by Range through the hub ------------------------------

  const MAX_VIEW_BYTES = 4 * 1024 * 1024;   // at most this much of raw.mda per view
  const MAX_CHANNELS_SHOWN = 64;            // channels drawn at once; the others are a page away
  const MIN_WINDOW = 16;                    // samples: the deepest zoom
  const MDA_READERS = {
    byte: [1, (v, o) => v.getUint8(o)],
    int16: [2, (v, o) => v.getInt16(o, true)],
    uint16: [2, (v, o) => v.getUint16(o, true)],
    int32: [4, (v, o) => v.getInt32(o, true)],
    uint32: [4, (v, o) => v.getUint32(o, true)],
    float32: [4, (v, o) => v.getFloat32(o, true)],
    float64: [8, (v, o) => v.getFloat64(o, true)],
  };

  /** Samples [start, start + length) of every channel: one Range request of raw.mda. MDA keeps the
   *  channels of one sample together, so a window of time is one contiguous run of bytes. */
  async function fetchWindow(url, layout, start, length) {
    const first = layout.headerSize + start * layout.frameBytes;
    const count = length * layout.frameBytes;
    const response = await fetch(url, { headers: { Range: "bytes=" + first + "-" + (first + count - 1) } });
    if (response.status !== 206) throw new ApiError(response.status, "the hub answered HTTP " + response.status + " to a Range request");
    const buffer = await response.arrayBuffer();
    if (buffer.byteLength !== count) throw new Error("raw.mda ended early (" + buffer.byteLength + " of " + count + " bytes)");
    return new DataView(buffer);
  }

  /** Median of (up to 4096 evenly spread) values. */
  function median(values, map = (x) => x) {
    const step = Math.max(1, Math.floor(values.length / 4096));
    const picked = [];
    for (let i = 0; i < values.length; i += step) picked.push(map(values[i]));
    picked.sort((a, b) => a - b);
    return picked.length ? picked[picked.length >> 1] : 0;
  }

  /** A channel's centre (median) and the deviation drawn as half a lane: 8 noise standard
   *  deviations (estimated from the median absolute deviation, so spikes do not inflate it), the
   *  largest deviation when the channel has no noise. Spikes bigger than that run over the lane. */
  function channelScale(values) {
    const centre = median(values);
    const noise = median(values, (x) => Math.abs(x - centre)) / 0.6745;
    let largest = 0;
    for (let i = 0; i < values.length; i++) largest = Math.max(largest, Math.abs(values[i] - centre));
    return { centre, half: noise > 0 ? 8 * noise : largest };
  }

  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function formatNumber(value, digits) {
    return Number(value.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 6 });
  }

  async function renderTraces(figure, url, summary, params) {
    const title = figure.querySelector("h3");
    let header;
    try {
      header = parseMdaHeader(await downloadHead(url, 64));
    } catch (err) {
      figure.replaceChildren(title, h("p", { class: "error" }, "The traces cannot be read: " + err.message));
      return;
    }
    const reader = MDA_READERS[header.dtype];
    const [channels, samples] = header.dims;
    if (!reader || header.dims.length !== 2 || !(channels >= 1) || !(samples >= 1)) {
      figure.replaceChildren(title, h("p", { class: "empty" }, "No traces to draw (raw.mda is not channels × samples of a known type)."));
      return;
    }
    const rate = typeof params.samplerate === "number" && params.samplerate > 0 ? params.samplerate
      : typeof summary.samplerate === "number" && summary.samplerate > 0 ? summary.samplerate : null;
    const sign = params.spike_sign;
    const layout = { headerSize: header.headerSize, frameBytes: channels * reader[0] };
    const maxLength = Math.max(1, Math.min(samples, Math.floor(MAX_VIEW_BYTES / layout.frameBytes)));
    const state = { start: 0, length: Math.min(maxLength, rate ? Math.round(rate) : 30000), first: 0, serial: 0 };
    let shown = null;  // what is drawn: kept to redraw on resize

    const canvas = h("canvas", { class: "traces-canvas", role: "img" });
    const where = h("p", { class: "traces-where", "aria-live": "polite" });
    const button = (label, title2, onclick) => h("button", { type: "button", title: title2, onclick }, label);
    const earlier = button("◀ Earlier", "Move back by half a window", () => move(-0.5));
    const later = button("Later ▶", "Move on by half a window", () => move(0.5));
    const zoomIn = button("Zoom in", "Half the time", () => zoom(0.5));
    const zoomOut = button("Zoom out", "Twice the time (at most " + formatBytes(MAX_VIEW_BYTES) + " a view)", () => zoom(2));
    const prevChannels = button("◀ Channels", "The previous " + MAX_CHANNELS_SHOWN + " channels", () => page(-1));
    const nextChannels = button("Channels ▶", "The next " + MAX_CHANNELS_SHOWN + " channels", () => page(1));
    const controls = h("div", { class: "traces-controls" }, earlier, later, zoomIn, zoomOut,
      channels > MAX_CHANNELS_SHOWN ? [prevChannels, nextChannels] : null);
    const signText = sign === -1 ? "spike_sign −1: spikes point down" : sign === 1 ? "spike_sign +1: spikes point up"
      : sign === 0 ? "spike_sign 0: spikes either way" : null;
    const caption = h("figcaption", null,
      "Raw " + header.dtype + " values read in place by Range requests through this hub, nothing downloaded. "
      + "Each channel is centred on its median and scaled to its own noise: half a lane is 8 noise"
      + " standard deviations (± at the right, in raw units); larger peaks run over."
      + (signText ? " " + signText + "." : "") + (rate ? "" : " No sample rate in params.json: time in samples."));
    figure.replaceChildren(title, controls, where, h("div", { class: "traces-box" }, canvas), caption);

    const clampStart = (start) => Math.max(0, Math.min(samples - state.length, Math.round(start)));
    function move(fraction) {
      state.start = clampStart(state.start + fraction * state.length);
      load();
    }
    function zoom(factor) {
      const centre = state.start + state.length / 2;
      state.length = Math.max(Math.min(MIN_WINDOW, maxLength), Math.min(maxLength, Math.round(state.length * factor)));
      state.start = clampStart(centre - state.length / 2);
      load();
    }
    function page(direction) {
      state.first = Math.max(0, Math.min(state.first + direction * MAX_CHANNELS_SHOWN,
        Math.floor((channels - 1) / MAX_CHANNELS_SHOWN) * MAX_CHANNELS_SHOWN));
      load();
    }
    function timeText(sample) {
      return rate ? formatNumber(sample / rate, 6) + " s" : "sample " + numberFormat.format(sample);
    }

    async function load() {
      const serial = ++state.serial;
      const { start, length, first } = state;
      const count = Math.min(MAX_CHANNELS_SHOWN, channels - first);
      for (const b of [earlier, later, zoomIn, zoomOut, prevChannels, nextChannels]) b.disabled = true;
      figure.setAttribute("aria-busy", "true");
      let view;
      try {
        view = await fetchWindow(url, layout, start, length);
      } catch (err) {
        if (serial !== state.serial) return;
        figure.removeAttribute("aria-busy");
        where.textContent = "The traces cannot be read: " + err.message;
        where.classList.add("error");
        return;
      }
      if (serial !== state.serial) return;  // a later view was asked for meanwhile
      const values = [];
      for (let c = first; c < first + count; c++) {
        const column = new Float64Array(length);
        for (let i = 0; i < length; i++) column[i] = reader[1](view, (i * channels + c) * reader[0]);
        values.push(column);
      }
      shown = { start, length, first, count, values };
      // The drawn samples, for scripts and tests: window.kbTraces.values[k][i] is channel first+k
      // (0-based) at sample start+i, exactly as stored in raw.mda.
      window.kbTraces = { url, dtype: header.dtype, channels, samples, samplerate: rate, start, length,
        firstChannel: first, channelCount: count, bytes: length * layout.frameBytes, values };
      where.classList.remove("error");
      where.textContent = timeText(start) + " – " + timeText(start + length) + " of "
        + (rate ? formatDuration(samples / rate) : numberFormat.format(samples) + " samples")
        + " · channels " + (first + 1) + "–" + (first + count) + " of " + channels
        + " · " + formatBytes(length * layout.frameBytes) + " read";
      draw();
      earlier.disabled = start <= 0;
      later.disabled = start + length >= samples;
      zoomIn.disabled = length <= Math.min(MIN_WINDOW, maxLength);
      zoomOut.disabled = length >= maxLength;
      prevChannels.disabled = first <= 0;
      nextChannels.disabled = first + count >= channels;
      figure.removeAttribute("aria-busy");
      figure.dataset.ready = String(serial);
    }

    function draw() {
      if (!shown) return;
      const { start, length, first, count, values } = shown;
      const style = getComputedStyle(figure);
      const colour = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
      const width = Math.max(320, canvas.parentElement.clientWidth);
      const lane = Math.max(12, Math.min(80, Math.floor(560 / count)));
      const margin = { left: 64, right: 72, top: 8, bottom: 44 };
      const height = margin.top + lane * count + margin.bottom;
      const ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = width + "px";
      canvas.style.height = height + "px";
      canvas.setAttribute("aria-label", "Traces of channels " + (first + 1) + " to " + (first + count)
        + ", " + timeText(start) + " to " + timeText(start + length));
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      const plot = width - margin.left - margin.right;
      const fg = colour("--fg", "#1b1f24");
      const muted = colour("--muted", "#5a6572");
      const line = colour("--line", "#d8dee4");
      const accent = colour("--accent", "#1f5f8b");
      const font = colour("--mono", "monospace");
      ctx.font = (lane < 16 ? "10px " : "12px ") + font;
      ctx.textBaseline = "middle";

      // time axis: ticks at round times (or samples), gridlines behind the traces
      const span = rate ? length / rate : length;
      const offset = rate ? start / rate : start;
      const step = niceStep(span, Math.max(2, Math.floor(plot / 110)));
      ctx.strokeStyle = line;
      ctx.fillStyle = muted;
      ctx.textAlign = "center";
      ctx.lineWidth = 1;
      const bottom = margin.top + lane * count;
      for (let t = Math.ceil(offset / step) * step; t <= offset + span + step * 1e-9; t += step) {
        const x = margin.left + ((t - offset) / span) * plot;
        ctx.beginPath();
        ctx.moveTo(x + 0.5, margin.top);
        ctx.lineTo(x + 0.5, bottom + 4);
        ctx.stroke();
        ctx.fillText(formatNumber(t, 6), x, bottom + 13);
      }
      ctx.fillStyle = fg;
      ctx.fillText(rate ? "Time (s)" : "Sample", margin.left + plot / 2, bottom + 32);

      // channel axis label
      ctx.save();
      ctx.translate(14, margin.top + (lane * count) / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText("Channel", 0, 0);
      ctx.restore();

      ctx.lineWidth = 1;
      ctx.lineJoin = "round";
      for (let k = 0; k < count; k++) {
        const data = values[k];
        const { centre, half: deviation } = channelScale(data);
        const scale = deviation > 0 ? (lane * 0.5) / deviation : 0;
        const mid = margin.top + lane * k + lane / 2;
        ctx.fillStyle = muted;
        ctx.textAlign = "right";
        ctx.fillText(String(first + k + 1), margin.left - 8, mid);
        ctx.textAlign = "left";
        ctx.fillText("±" + formatNumber(deviation, 3), margin.left + plot + 6, mid);
        ctx.strokeStyle = accent;
        ctx.save();
        ctx.beginPath();
        ctx.rect(margin.left, margin.top, plot, lane * count);
        ctx.clip();
        ctx.beginPath();
        const perPixel = length / plot;
        if (perPixel <= 1) {
          for (let i = 0; i < length; i++) {
            const x = margin.left + ((i + 0.5) / length) * plot;
            const y = mid - (data[i] - centre) * scale;
            if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
          }
        } else {  // min and max of the samples under each pixel column
          for (let px = 0; px < plot; px++) {
            const i0 = Math.floor(px * perPixel);
            const i1 = Math.max(i0 + 1, Math.floor((px + 1) * perPixel));
            let lo = Infinity;
            let hi = -Infinity;
            for (let i = i0; i < i1 && i < length; i++) {
              if (data[i] < lo) lo = data[i];
              if (data[i] > hi) hi = data[i];
            }
            const x = margin.left + px + 0.5;
            if (px === 0) ctx.moveTo(x, mid - (hi - centre) * scale); else ctx.lineTo(x, mid - (hi - centre) * scale);
            ctx.lineTo(x, mid - (lo - centre) * scale);
          }
        }
        ctx.stroke();
        ctx.restore();
      }
    }

    let resizeTimer = 0;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(draw, 100);
    });
    await load();
  }

  function findingList(findings) {
    const order = { error: 0, warning: 1, info: 2 };
    const sorted = [...findings].sort((a, b) => (order[a.severity] ?? 3) - (order[b.severity] ?? 3));
    return h("div", { class: "findings" },
      h("h3", null, "Findings"),
      h("ul", null, sorted.map((f) => {
        const where = [f.path, f.line !== undefined ? "line " + f.line : null,
          f.column !== undefined ? "column " + f.column : null, f.field ? "field " + f.field : null]
          .filter(Boolean).join(", ");
        return h("li", { class: "finding " + (f.severity || "") },
          h("span", { class: "severity" }, f.severity || "?"), " ",
          h("code", null, f.code || ""), " ", f.message || "",
          where ? h("div", { class: "where" }, where) : null,
          f.hint ? h("div", { class: "hint" }, "Fix: " + f.hint) : null);
      })));
  }

  /** The probe as SVG: one numbered circle per channel (1-based, the geom.csv row), y upward. */
  function probeDrawing(geom) {
    // A coordinate is a JSON number, or the text of a geom.csv field; null (a NaN in the file) is not.
    const coordinate = (v) => (typeof v === "number" ? v
      : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN);
    const points = geom.map((row) => {
      const r = Array.isArray(row) ? row : [row];
      return [coordinate(r[0]), r.length > 1 ? coordinate(r[1]) : 0];
    });
    if (points.some(([x, y]) => !isFinite(x) || !isFinite(y))) {
      return h("p", { class: "empty" }, "geom.csv has positions that are not numbers.");
    }
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);

    // Circle radius from the closest pair of distinct positions (checked on at most 2,000 channels).
    let closest = Infinity;
    const n = Math.min(points.length, 2000);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const d = Math.hypot(points[i][0] - points[j][0], points[i][1] - points[j][1]);
        if (d > 0 && d < closest) closest = d;
      }
    }
    const span = Math.max(maxX - minX, maxY - minY);
    const radius = isFinite(closest) ? closest * 0.42 : (span > 0 ? span / 20 : 10);
    const pad = radius * 1.8;
    const tip = pad * 1.5;   // room below the lowest channel for the shank's tip
    const width = maxX - minX + 2 * pad;
    const height = maxY - minY + 2 * pad + tip;

    // About 20 px per radius, then shrunk to fit 900 × 640 px; CSS shrinks it further on phones.
    let scale = 20 / radius;
    scale = Math.min(scale, 900 / width, 640 / height);
    const digits = String(points.length).length;
    const fontSize = Math.min(radius * 1.1, (radius * 3) / digits);

    const drawing = svg("svg", {
      class: "probe-drawing",
      viewBox: [minX - pad, -(maxY + pad), width, height].join(" "),
      width: Math.max(1, Math.round(width * scale)),
      height: Math.max(1, Math.round(height * scale)),
      role: "img",
      "aria-label": "Probe with " + points.length + " channels",
    }, svg("title", null, "Probe with " + points.length + " channels"));
    // The shank: the channels' bounding box, inset from the edges, ending in a point (y is drawn as -y).
    const inset = pad * 0.35;
    const left = minX - pad + inset, right = maxX + pad - inset;
    const top = -(maxY + pad - inset), bottom = -(minY - pad + inset);
    drawing.append(svg("path", {
      class: "shank",
      d: `M${left} ${top} H${right} V${bottom} L${(left + right) / 2} ${bottom + tip} L${left} ${bottom} Z`,
    }));
    points.forEach(([x, y], i) => {
      drawing.append(svg("g", { class: "channel" },
        svg("title", null, "Channel " + (i + 1) + ": x = " + x + ", y = " + y),
        svg("circle", { cx: x, cy: -y, r: radius }),
        svg("text", { x, y: -y, "font-size": fontSize, "text-anchor": "middle", "dominant-baseline": "central" }, i + 1)));
    });
    return h("div", { class: "probe-box" }, drawing,
      h("figcaption", null, plural(points.length, "channel", "channels"),
        "; x " + minX + " to " + maxX + ", y " + minY + " to " + maxY + " (geom.csv units, usually µm; y upward)."));
  }

  /** A word for a POSIX shell: as it is when it needs no quoting, else in single quotes. */
  function shellWord(text) {
    return /^[A-Za-z0-9_.,:/@%+=-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
  }

  /** The hub the page reads, as `kb-get --hub` takes it: it resolves the node on any machine. */
  function hubUrl() {
    return apiRoot.href.replace(/\/+$/, "");
  }

  function usage(id, segments) {
    const here = segments.join("/");
    const folder = segments.length ? segments[segments.length - 1] : id;
    const quote = (s) => JSON.stringify(s);
    const kbGet = ["kb-get", "--hub", hubUrl(), kbucketLink(id, here), "-o", folder]
      .map(shellWord).join(" ");
    return h("div", { class: "usage" },
      h("h3", null, "Use it"),
      h("p", null, "Download and verify the dataset, on any machine that reaches this hub:"),
      copyBlock(kbGet, "kb-get command"),
      h("p", null, "Then read it with SpikeInterface:"),
      copyBlock("import spikeinterface.extractors as se\n"
        + "recording = se.read_mda_recording(" + quote(folder) + ", raw_fname=\"raw.mda\", "
        + "params_fname=\"params.json\", geom_fname=\"geom.csv\")", "SpikeInterface lines"),
      h("p", null, "Or read it in place, nothing downloaded first (Range requests through this hub):"),
      copyBlock("from kbtools.spikeinterface import read_recording\n"
        + "recording = read_recording(" + quote("kbucket://" + id + "/" + here) + ", hub=" + quote(hubUrl()) + ")",
        "kbtools lines"));
  }

  // ---- start -----------------------------------------------------------------------------------

  async function renderError(err, id) {
    const notHere = /Unable to locate node/i.test(err.message);
    // The top bar names the hub (the brand beside it already says "kbtools").
    let hub = null;
    try {
      hub = (await getJson(new URL("api/self", apiRoot).href)).info || null;
    } catch (err2) {
      hub = null;  // an original hub has no /api/self, or the hub is down
    }
    const hubName = hub && (hub.name || nodeIdOf(hub));
    const trail = [];
    if (hubName) {
      trail.push({ label: hubName, href: query.get("kbucket_url") ? viewHref("hub", nodeIdOf(hub)) : "./" });
    }
    trail.push({ label: id || "Not available" });
    setCrumbs(trail);
    document.title = "Not available · " + (hubName ? hubName + " · " : "") + "kbtools";
    show(h("section", { class: "problem" },
      h("h1", null, id ? "Cannot show node " + id : "Cannot show this hub"),
      h("p", { class: "error", role: "alert" }, err.message),
      notHere ? h("p", null, "This node is not connected to this hub now. A share appears here while its ",
        h("code", null, "kb-host"), " is running.") : null,
      h("p", null, h("a", { href: "./" }, "Back to this hub's page")),
      nodeForm()));
  }

  function nodeForm() {
    const form = h("form", { class: "node-form", method: "get", action: "" },
      h("label", { for: "node-id" }, "Show a node by id"),
      h("input", { id: "node-id", name: "node_id", required: true, pattern: "[A-Za-z0-9_\\-]{1,64}", autocomplete: "off" }),
      h("button", { type: "submit" }, "Show"));
    return form;
  }

  async function start() {
    const id = requestedNode();
    const segments = pathSegments(query.get("path"));
    try {
      const nodeinfo = id ? await getJson(apiUrl(id, "api/nodeinfo")) : await getJson(new URL("api/self", apiRoot).href);
      const nodeId = id || nodeIdOf(nodeinfo.info);
      const type = nodeinfo.info && nodeinfo.info.node_type;
      if (type === "hub") renderHub(nodeId, nodeinfo);
      else await renderShare(nodeId, nodeinfo, segments);
    } catch (err) {
      await renderError(err, id);
    }
  }

  start();
})();
