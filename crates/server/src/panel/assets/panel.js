// segmentd panel: plain JavaScript, no dependencies. Each page is found by
// <body data-page="…">; data comes from <script type="application/json"> blocks and
// from the session-authenticated JSON endpoints under /panel/api.
"use strict";

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function csrf() {
    const m = $('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }

  // Calls a panel endpoint; resolves to {status, body} and never throws on HTTP errors.
  async function call(method, url, body) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(url, init);
    let data = null;
    const text = await r.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (r.status === 401) window.location.assign("/panel/sign-in?next=" + encodeURIComponent(location.pathname));
    return { status: r.status, body: data };
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, "");
      else e.setAttribute(k, v);
    }
    for (const c of [].concat(children || [])) {
      if (c === null || c === undefined || c === false) continue;
      e.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return e;
  }

  function readJson(id) {
    const s = document.getElementById(id);
    return s ? JSON.parse(s.textContent) : null;
  }

  function debounce(fn, ms) {
    let t = null;
    return function () {
      clearTimeout(t);
      t = setTimeout(fn, ms);
    };
  }

  // ---------------------------------------------------------------------------------
  // Segments list: filter by name as you type.

  function segmentsPage() {
    const input = $("#segment-search");
    const status = $("#segment-search-status");
    const rows = $$("#segments tbody tr");
    const filter = () => {
      const q = input.value.trim().toLowerCase();
      let shown = 0;
      for (const r of rows) {
        const hit = !q || r.dataset.name.includes(q);
        r.hidden = !hit;
        if (hit) shown++;
      }
      status.textContent = q ? shown + " of " + rows.length + " segments match" : "";
    };
    input.addEventListener("input", filter);
    filter();
  }

  // ---------------------------------------------------------------------------------
  // The condition builder.

  const TEXT_OPS = [
    ["equals", "equals"], ["not_equals", "does not equal"], ["contains", "contains"],
    ["not_contains", "does not contain"], ["starts_with", "starts with"], ["ends_with", "ends with"],
    ["in", "is one of"], ["not_in", "is none of"], ["has_value", "has a value"], ["has_no_value", "has no value"],
  ];
  const NUMBER_OPS = [
    ["equals", "="], ["not_equals", "≠"], ["greater_than", ">"], ["greater_or_equal", "≥"],
    ["less_than", "<"], ["less_or_equal", "≤"], ["between", "between"],
    ["has_value", "has a value"], ["has_no_value", "has no value"],
  ];
  const DATE_OPS = [
    ["equals", "is on"], ["not_equals", "is not on"], ["before", "before"], ["after", "after"],
    ["between", "between"], ["anniversary_within", "anniversary within"],
    ["has_value", "has a value"], ["has_no_value", "has no value"],
  ];
  const BOOLEAN_OPS = [["is_true", "is true"], ["is_false", "is false"], ["has_value", "has a value"], ["has_no_value", "has no value"]];
  const OPS = { text: TEXT_OPS, number: NUMBER_OPS, date: DATE_OPS, boolean: BOOLEAN_OPS };
  const NO_VALUE = ["has_value", "has_no_value", "is_true", "is_false"];
  // A visit row reads as a sentence: "Visited" "a page whose URL contains" "/pricing"
  // "at least" "1" "time" "in the last" "7" "days".
  const URL_OPS = [["", "any page"]].concat(TEXT_OPS.filter(([o]) => !NO_VALUE.includes(o))
    .map(([o, text]) => [o, "a page whose URL " + text]));
  const WINDOWS = [["any", "at any time"], ["last_days", "in the last"], ["since", "since"],
    ["before", "before"], ["between", "between"]];
  // Text and number tests of a property; the value input's type shows which is which.
  const PROP_OPS = [
    ["equals", "equals"], ["not_equals", "does not equal"], ["contains", "contains"],
    ["not_contains", "does not contain"], ["starts_with", "starts with"], ["ends_with", "ends with"],
    ["in", "is one of"], ["not_in", "is none of"],
    ["n_equals", "="], ["n_not_equals", "≠"], ["greater_than", ">"], ["greater_or_equal", "≥"],
    ["less_than", "<"], ["less_or_equal", "≤"], ["between", "between"],
    ["has_value", "has a value"], ["has_no_value", "has no value"], ["is_true", "is true"], ["is_false", "is false"],
  ];
  const SYSTEM_EVENTS = [["MailOpen", "opened an e-mail (MailOpen)"], ["MailClick", "clicked in an e-mail (MailClick)"],
    ["SmsClick", "clicked in an SMS (SmsClick)"], ["PushClick", "clicked a push (PushClick)"]];
  const DATA_TYPES = [["field", "Custom field"], ["visit", "Website visit"], ["system", "System event"],
    ["custom", "Customer event"], ["segment", "Segment membership"], ["json", "Rule JSON (advanced)"]];
  const MEMBER_OPS = [["in", "is in segment"], ["not_in", "is not in segment"]];

  let uidCounter = 0;
  const uid = () => "c" + (++uidCounter);

  function newCondition(type, catalog) {
    const c = { kind: "condition", uid: uid(), type: type || "field" };
    if (c.type === "field") {
      c.field = catalog.fields.length ? catalog.fields[0].key : "email";
      c.op = OPS[fieldType(catalog, c.field)][0][0];
      c.value = ""; c.value2 = ""; c.mode = "date"; c.mode2 = "date";
    } else if (c.type === "json") {
      c.text = "";
    } else if (c.type === "segment") {
      c.member = "in";
      c.segment = catalog.segments && catalog.segments.length ? String(catalog.segments[0].id) : "";
    } else {
      c.occ = "occurred"; c.window = "last_days"; c.days = "30"; c.from = ""; c.to = "";
      c.min = "1"; c.max = "";
      if (c.type === "system") { c.event = "MailOpen"; c.campaign = ""; }
      if (c.type === "custom") { c.name = catalog.event_names[0] || ""; c.props = []; }
      if (c.type === "visit") { c.urlOp = ""; c.url = ""; }
    }
    return c;
  }

  function newGroup(catalog, match) {
    return { kind: "group", uid: uid(), match: match || "all", items: [newCondition("field", catalog)] };
  }

  function fieldType(catalog, key) {
    if (key === "email" || key === "phone") return "text";
    const f = catalog.fields.find((x) => x.key === key);
    return f ? f.type : "text";
  }

  // ----- JSON from the model ---------------------------------------------------------

  function num(v) {
    if (typeof v === "string" && v.trim() !== "" && isFinite(Number(v))) return Number(v);
    return v;
  }
  function list(v) {
    return String(v || "").split(/\n|,/).map((s) => s.trim()).filter((s) => s !== "");
  }
  function dateValue(mode, v) {
    if (mode === "today") return { relative_days: 0 };
    if (mode === "ago") return { relative_days: -num(v) };
    if (mode === "ahead") return { relative_days: num(v) };
    return v;
  }
  function ts(d) {
    return d ? d + "T00:00:00Z" : d;
  }

  function conditionJson(c) {
    if (c.type === "json") {
      try { return JSON.parse(c.text); } catch (e) { return c.text; }
    }
    if (c.type === "segment") return { segment: num(c.segment), op: c.member };
    if (c.type === "field") {
      const t = { field: c.field, op: c.op };
      const ty = fieldType(state.catalog, c.field);
      if (NO_VALUE.includes(c.op)) return t;
      if (c.op === "in" || c.op === "not_in") t.value = list(c.value);
      else if (ty === "number") t.value = c.op === "between" ? [num(c.value), num(c.value2)] : num(c.value);
      else if (ty === "date") {
        if (c.op === "anniversary_within") t.value = num(c.value);
        else if (c.op === "between") t.value = [dateValue(c.mode, c.value), dateValue(c.mode2, c.value2)];
        else t.value = dateValue(c.mode, c.value);
      } else t.value = c.value;
      return t;
    }
    const t = {};
    if (c.type === "system") t.system_event = c.event;
    if (c.type === "custom") {
      t.custom_event = c.name;
      if (c.props.length) t.where = c.props.map(propertyJson);
    }
    if (c.type === "visit" && c.urlOp) {
      t.visit_url = { op: c.urlOp, value: c.urlOp === "in" || c.urlOp === "not_in" ? list(c.url) : c.url };
    }
    t.op = c.occ;
    if (c.window === "last_days") t.within = { last_days: num(c.days) };
    else if (c.window === "since") t.within = { since: ts(c.from) };
    else if (c.window === "before") t.within = { before: ts(c.to) };
    else if (c.window === "between") t.within = { between: [ts(c.from), ts(c.to)] };
    if (c.occ === "occurred") {
      // At least once is what "occurred" means: 1 is not written out.
      if (String(c.min).trim() !== "" && num(c.min) !== 1) t.min_count = num(c.min);
      if (String(c.max).trim() !== "") t.max_count = num(c.max);
    }
    if (c.type === "system" && c.campaign.trim() !== "") t.campaign = c.campaign.trim();
    return t;
  }

  function propertyJson(p) {
    const op = p.op.startsWith("n_") ? p.op.slice(2) : p.op;
    const t = { property: p.path, op };
    if (NO_VALUE.includes(op)) return t;
    if (op === "in" || op === "not_in") t.value = list(p.value);
    else if (op === "between") t.value = [num(p.value), num(p.value2)];
    else if (p.op.startsWith("n_") || ["greater_than", "greater_or_equal", "less_than", "less_or_equal"].includes(op)) t.value = num(p.value);
    else t.value = p.value;
    return t;
  }

  // Builds the rule and records which element each JSON path belongs to, so that the
  // server's error paths (rule.any[1].all[0].value) land beside their condition.
  function ruleJson(paths) {
    const groups = state.groups;
    const groupJson = (g, path) => {
      paths.push([path, g.uid]);
      return { [g.match]: g.items.map((it, k) => itemJson(it, path + "." + g.match + "[" + k + "]")) };
    };
    const itemJson = (it, path) => {
      if (it.kind === "group") return groupJson(it, path);
      paths.push([path, it.uid]);
      return conditionJson(it);
    };
    // "and" binds tighter than "or": split into runs of and-joined groups.
    const runs = [[0]];
    for (let i = 1; i < groups.length; i++) {
      if (state.joins[i - 1] === "or") runs.push([i]);
      else runs[runs.length - 1].push(i);
    }
    const runJson = (run, path) => {
      if (run.length === 1) return groupJson(groups[run[0]], path);
      return { all: run.map((gi, j) => groupJson(groups[gi], path + ".all[" + j + "]")) };
    };
    if (runs.length === 1) return runJson(runs[0], "rule");
    return { any: runs.map((run, i) => runJson(run, "rule.any[" + i + "]")) };
  }

  // ----- the model from JSON (editing a saved segment) --------------------------------

  const isGroup = (r) => r && typeof r === "object" && (Array.isArray(r.all) || Array.isArray(r.any));

  function groupFrom(r) {
    const match = Array.isArray(r.all) ? "all" : "any";
    return { kind: "group", uid: uid(), match, items: r[match].map(itemFrom) };
  }

  function itemFrom(r) {
    return isGroup(r) ? groupFrom(r) : conditionFrom(r);
  }

  function dateFrom(v) {
    if (v && typeof v === "object" && "relative_days" in v) {
      const n = Number(v.relative_days);
      if (n === 0) return ["today", ""];
      return n < 0 ? ["ago", String(-n)] : ["ahead", String(n)];
    }
    return ["date", v == null ? "" : String(v)];
  }

  function conditionFrom(r) {
    const cat = state.catalog;
    const day = (t) => (typeof t === "string" ? t.slice(0, 10) : "");
    if (r && typeof r === "object" && typeof r.field === "string") {
      const c = newCondition("field", cat);
      c.field = r.field; c.op = r.op;
      const ty = fieldType(cat, r.field);
      const v = r.value;
      if (Array.isArray(v) && (r.op === "in" || r.op === "not_in")) c.value = v.join("\n");
      else if (Array.isArray(v)) {
        if (ty === "date") { [c.mode, c.value] = dateFrom(v[0]); [c.mode2, c.value2] = dateFrom(v[1]); }
        else { c.value = String(v[0]); c.value2 = String(v[1]); }
      } else if (ty === "date" && r.op !== "anniversary_within") [c.mode, c.value] = dateFrom(v);
      else if (v !== undefined) c.value = String(v);
      return c;
    }
    if (r && typeof r === "object" && "segment" in r && (r.op === "in" || r.op === "not_in") &&
        Object.keys(r).length === 2 && Number.isInteger(r.segment)) {
      const c = newCondition("segment", cat);
      c.member = r.op; c.segment = String(r.segment);
      return c;
    }
    const behaviour = r && typeof r === "object" && !("segment" in r) && !("not" in r) &&
      ("system_event" in r || "custom_event" in r || "visit_url" in r || r.op === "occurred" || r.op === "not_occurred");
    if (!behaviour) {
      const c = newCondition("json", cat);
      c.text = JSON.stringify(r);
      return c;
    }
    const type = "system_event" in r ? "system" : "custom_event" in r ? "custom" : "visit";
    const c = newCondition(type, cat);
    c.occ = r.op;
    const w = r.within;
    c.window = "any";
    if (w && "last_days" in w) { c.window = "last_days"; c.days = String(w.last_days); }
    else if (w && "since" in w) { c.window = "since"; c.from = day(w.since); }
    else if (w && "before" in w) { c.window = "before"; c.to = day(w.before); }
    else if (w && "between" in w) { c.window = "between"; c.from = day(w.between[0]); c.to = day(w.between[1]); }
    c.min = r.min_count != null ? String(r.min_count) : "1";
    c.max = r.max_count != null ? String(r.max_count) : "";
    if (type === "system") { c.event = r.system_event; c.campaign = r.campaign || ""; }
    if (type === "custom") {
      c.name = r.custom_event;
      c.props = (r.where || []).map((p) => {
        const numeric = typeof p.value === "number" || (Array.isArray(p.value) && typeof p.value[0] === "number");
        let op = p.op;
        if (numeric && (op === "equals" || op === "not_equals")) op = "n_" + op;
        const v = p.value;
        return {
          uid: uid(), path: p.property, op,
          value: Array.isArray(v) ? (op === "between" ? String(v[0]) : v.join("\n")) : v == null ? "" : String(v),
          value2: Array.isArray(v) && op === "between" ? String(v[1]) : "",
        };
      });
    }
    if (type === "visit" && r.visit_url) {
      c.urlOp = r.visit_url.op;
      c.url = Array.isArray(r.visit_url.value) ? r.visit_url.value.join("\n") : String(r.visit_url.value);
    }
    return c;
  }

  function modelFrom(rule) {
    if (isGroup(rule)) {
      const kids = rule.all || rule.any;
      if (rule.any && kids.length && kids.every(isGroup)) {
        const groups = [], joins = [];
        kids.forEach((k, i) => {
          const run = Array.isArray(k.all) && k.all.length && k.all.every(isGroup) ? k.all : [k];
          if (i > 0) joins.push("or");
          run.forEach((g, j) => { if (j > 0) joins.push("and"); groups.push(groupFrom(g)); });
        });
        return { groups, joins };
      }
      if (rule.all && kids.length && kids.every(isGroup)) {
        return { groups: kids.map(groupFrom), joins: kids.slice(1).map(() => "and") };
      }
      return { groups: [groupFrom(rule)], joins: [] };
    }
    return { groups: [{ kind: "group", uid: uid(), match: "all", items: [itemFrom(rule)] }], joins: [] };
  }

  // ----- rendering -------------------------------------------------------------------

  // `touched`: the conditions (and groups) left once, by uid; `submitted`: Save was
  // pressed. Problems show only for those (never on an untouched form).
  const state = { catalog: null, groups: [], joins: [], errors: {}, segment: null,
    touched: new Set(), submitted: false, problems: [], paths: [] };

  function select(id, label, options, value, onchange, cls) {
    return [
      el("label", { for: id, class: "sr" }, label),
      el("select", { id, class: cls || null, onchange },
        options.map(([v, text]) => el("option", { value: v, selected: v === value }, text))),
    ];
  }
  function input(id, label, type, value, oninput, extra) {
    return [
      el("label", { for: id, class: "sr" }, label),
      el("input", Object.assign({ id, type, value: value == null ? "" : value, oninput }, extra || {})),
    ];
  }

  // Suggested values of a field or property (the most frequent ones, from the index),
  // fetched once per field or property and kept for the page's life.
  const suggested = new Map();
  function suggestions(listId, url) {
    const list = el("datalist", { id: listId });
    let values = suggested.get(url);
    if (!values) {
      values = call("GET", url).then((r) => (r.status === 200 && r.body ? r.body.values : []));
      suggested.set(url, values);
    }
    values.then((vs) => { for (const v of vs) list.append(el("option", { value: v.value })); });
    return list;
  }
  function datalist(listId, values) {
    return el("datalist", { id: listId }, values.map((v) => el("option", { value: v })));
  }
  // As a value is typed, its list is asked again for the values starting with (URLs:
  // containing) what is typed, so that rare values are offered too (from the index).
  function typed(url, listId) {
    let timer = null;
    return (e) => {
      const text = e.target.value;
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const list = document.getElementById(listId);
        if (!list || !text.trim()) return;
        const r = await call("GET", url + encodeURIComponent(text.trim()));
        if (r.status !== 200 || !r.body) return;
        const known = new Set(r.body.values.map((v) => v.value));
        for (const o of Array.from(list.options)) if (!known.has(o.value)) o.remove();
        const have = new Set(Array.from(list.options).map((o) => o.value));
        for (const v of r.body.values) if (!have.has(v.value)) list.append(el("option", { value: v.value }));
      }, 200);
    };
  }
  function both(a, b) {
    return (e) => { a(e); b(e); };
  }
  function eventInfo(name) {
    return (state.catalog.events || []).find((e) => e.name === name);
  }

  // aria-busy on the count says a newer count is on its way (the tests wait for it too).
  function changed(structural) {
    if (structural) render();
    $("#live-count").setAttribute("aria-busy", "true");
    schedulePreview();
  }

  // A value input (or inputs) following the operator.
  function fieldValueInputs(c) {
    const ty = fieldType(state.catalog, c.field);
    const id = c.uid;
    const set = (k) => (e) => { c[k] = e.target.value; changed(false); };
    if (NO_VALUE.includes(c.op)) return [];
    if (c.op === "in" || c.op === "not_in") {
      return [el("label", { for: id + "-value", class: "sr" }, "Values, one per line"),
        el("textarea", { id: id + "-value", rows: 2, placeholder: "one value per line", oninput: set("value") }, c.value)];
    }
    if (ty === "number") {
      const a = input(id + "-value", c.op === "between" ? "From" : "Value", "number", c.value, set("value"), { step: "any" });
      if (c.op !== "between") return a;
      return a.concat([el("span", { class: "and" }, "and")], input(id + "-value2", "To", "number", c.value2, set("value2"), { step: "any" }));
    }
    if (ty === "date") {
      if (c.op === "anniversary_within") {
        return input(id + "-value", "Days", "number", c.value, set("value"), { min: 0, max: 366, step: 1 })
          .concat([el("span", { class: "unit" }, "days")]);
      }
      const one = (mk, vk, which) => {
        const modeSel = select(id + "-" + mk, which + " date kind",
          [["date", "date"], ["ago", "days ago"], ["ahead", "days ahead"], ["today", "today"]],
          c[mk], (e) => { c[mk] = e.target.value; c[vk] = ""; changed(true); });
        if (c[mk] === "today") return modeSel;
        if (c[mk] === "date") return modeSel.concat(input(id + "-" + vk, which + " date", "date", c[vk], set(vk)));
        return modeSel.concat(input(id + "-" + vk, which + " number of days", "number", c[vk], set(vk), { min: 0, step: 1 }));
      };
      if (c.op !== "between") return one("mode", "value", "Value");
      return one("mode", "value", "From").concat([el("span", { class: "and" }, "and")], one("mode2", "value2", "To"));
    }
    if (ty === "text" && c.field !== "email" && c.field !== "phone") {
      const dl = id + "-suggest";
      const url = "/panel/api/values?field=" + encodeURIComponent(c.field);
      return input(id + "-value", "Value", "text", c.value, both(set("value"), typed(url + "&prefix=", dl)), { list: dl })
        .concat([suggestions(dl, url)]);
    }
    return input(id + "-value", "Value", "text", c.value, set("value"));
  }

  // An event row in the order of a sentence: what happened (or not), how many times,
  // when. "Visited a page whose URL contains /pricing at least 1 time in the last 7 days".
  function behaviourControls(c) {
    const id = c.uid;
    const set = (k, structural) => (e) => { c[k] = e.target.value; changed(structural); };
    const parts = [];
    const occ = c.type === "visit"
      ? [["occurred", "Visited"], ["not_occurred", "Did not visit"]]
      : [["occurred", "occurred"], ["not_occurred", "did not occur"]];
    const occSelect = select(id + "-occ", "Occurred or not", occ, c.occ, set("occ", true), "occ");
    if (c.type === "system") parts.push(...select(id + "-event", "System event", SYSTEM_EVENTS, c.event, set("event")));
    if (c.type === "custom") {
      const dl = id + "-names";
      parts.push(el("label", { for: id + "-name", class: "sr" }, "Event name"),
        el("input", { id: id + "-name", type: "text", list: dl, value: c.name, placeholder: "event name", oninput: set("name") }),
        el("datalist", { id: dl }, state.catalog.event_names.map((n) => el("option", { value: n }))));
    }
    if (c.type === "visit") {
      parts.push(...occSelect);
      parts.push(...select(id + "-urlop", "Page URL", URL_OPS, c.urlOp, set("urlOp", true)));
      if (c.urlOp === "in" || c.urlOp === "not_in") {
        parts.push(el("label", { for: id + "-url", class: "sr" }, "URLs, one per line"),
          el("textarea", { id: id + "-url", rows: 2, oninput: set("url") }, c.url));
      } else if (c.urlOp) {
        const dl = id + "-urls";
        parts.push(...input(id + "-url", "URL text", "text", c.url,
          both(set("url"), typed("/panel/api/values?url=", dl)), { list: dl }),
        datalist(dl, state.catalog.url_prefixes || []));
      }
    } else parts.push(...occSelect);
    if (c.occ === "occurred") {
      const unit = el("span", { class: "unit", id: id + "-times" }, String(c.min).trim() === "1" ? "time" : "times");
      parts.push(el("label", { for: id + "-min" }, "at least"),
        el("input", { id: id + "-min", type: "number", min: 1, step: 1, class: "short", value: c.min, placeholder: "1",
          oninput: (e) => { c.min = e.target.value; unit.textContent = e.target.value.trim() === "1" ? "time" : "times"; changed(false); } }),
        unit);
    }
    parts.push(...select(id + "-window", "When", WINDOWS, c.window, set("window", true)));
    if (c.window === "last_days") parts.push(...input(id + "-days", "Number of days", "number", c.days, set("days"), { min: 1, max: 3650, step: 1 }), el("span", { class: "unit" }, "days"));
    if (c.window === "since" || c.window === "between") parts.push(...input(id + "-from", "From date", "date", c.from, set("from")));
    if (c.window === "between") parts.push(el("span", { class: "and" }, "and"));
    if (c.window === "before" || c.window === "between") parts.push(...input(id + "-to", "Until date", "date", c.to, set("to")));
    const rows = [el("div", { class: "controls sentence" }, parts)];
    const more = [];
    if (c.occ === "occurred") {
      more.push(el("label", { for: id + "-max" }, "and at most"),
        el("input", { id: id + "-max", type: "number", min: 1, step: 1, class: "short", value: c.max, placeholder: "any", oninput: set("max") }),
        el("span", { class: "unit" }, "times"));
    }
    if (c.type === "system") {
      const dl = id + "-campaigns";
      more.push(el("label", { for: id + "-campaign" }, "campaign"),
        el("input", { id: id + "-campaign", type: "text", list: dl, value: c.campaign, placeholder: "any campaign", oninput: set("campaign") }),
        el("datalist", { id: dl }, state.catalog.campaigns.map((n) => el("option", { value: n }))));
    }
    if (more.length) rows.push(el("div", { class: "controls" }, more));
    if (c.type === "custom") {
      const props = el("div", { class: "props" });
      c.props.forEach((p, k) => {
        const pid = p.uid;
        const pset = (key, structural) => (e) => { p[key] = e.target.value; changed(structural); };
        const pv = [];
        const op = p.op.startsWith("n_") ? p.op.slice(2) : p.op;
        if (!NO_VALUE.includes(op)) {
          if (op === "in" || op === "not_in") pv.push(el("label", { for: pid + "-v", class: "sr" }, "Values, one per line"), el("textarea", { id: pid + "-v", rows: 2, oninput: pset("value") }, p.value));
          else {
            const numeric = p.op.startsWith("n_") || ["greater_than", "greater_or_equal", "less_than", "less_or_equal", "between"].includes(op);
            const hint = !numeric && c.name && p.path ? { list: pid + "-suggest" } : {};
            const url = "/panel/api/values?event=" + encodeURIComponent(c.name) + "&property=" + encodeURIComponent(p.path);
            const onin = hint.list ? both(pset("value"), typed(url + "&prefix=", hint.list)) : pset("value");
            pv.push(...input(pid + "-v", "Property value", numeric ? "number" : "text", p.value, onin, Object.assign({ step: "any" }, hint)));
            if (hint.list) pv.push(suggestions(hint.list, url));
          }
          if (op === "between") pv.push(el("span", { class: "and" }, "and"), ...input(pid + "-v2", "Property value to", "number", p.value2, pset("value2"), { step: "any" }));
        }
        props.append(el("div", { class: "controls prop", "data-uid": pid }, [
          el("span", { class: "where" }, k === 0 ? "where" : "and"),
          ...input(pid + "-path", "Property path", "text", p.path, pset("path"), { placeholder: "property, e.g. amount", list: pid + "-paths" }),
          datalist(pid + "-paths", ((eventInfo(c.name) || {}).properties || []).map((x) => x.path)),
          ...select(pid + "-op", "Property operator", PROP_OPS, p.op, pset("op", true)),
          ...pv,
          el("button", { type: "button", class: "icon", "aria-label": "Remove property filter", onclick: () => { c.props.splice(k, 1); changed(true); } }, "×"),
        ]));
      });
      props.append(el("button", { type: "button", class: "link", id: id + "-add-prop", onclick: () => {
        c.props.push({ uid: uid(), path: "", op: "equals", value: "", value2: "" }); changed(true); } }, "+ property filter"));
      rows.push(props);
    }
    return rows;
  }

  function conditionView(c, parent, index) {
    const id = c.uid;
    const head = [
      ...select(id + "-type", "Data type", DATA_TYPES, c.type, (e) => {
        parent.items[index] = newCondition(e.target.value, state.catalog);
        parent.items[index].uid = c.uid;
        changed(true);
      }, "type"),
    ];
    let body = [];
    if (c.type === "field") {
      const fields = [["email", "E-mail"], ["phone", "Phone"]].concat(state.catalog.fields.map((f) => [f.key, f.label]));
      head.push(...select(id + "-field", "Field", fields, c.field, (e) => {
        c.field = e.target.value; c.op = OPS[fieldType(state.catalog, c.field)][0][0]; c.value = ""; c.value2 = "";
        changed(true);
      }));
      head.push(...select(id + "-op", "Operator", OPS[fieldType(state.catalog, c.field)], c.op, (e) => {
        c.op = e.target.value; changed(true);
      }));
      head.push(...fieldValueInputs(c));
    } else if (c.type === "segment") {
      const segs = (state.catalog.segments || []).map((x) => [String(x.id), x.name]);
      head.push(...select(id + "-member", "In or not in", MEMBER_OPS, c.member, (e) => { c.member = e.target.value; changed(false); }));
      head.push(...select(id + "-segment", "Segment", [["", "choose a segment…"]].concat(segs), c.segment,
        (e) => { c.segment = e.target.value; changed(false); }, "segment"));
    } else if (c.type === "json") {
      body = [el("label", { for: id + "-json", class: "sr" }, "Rule JSON"),
        el("textarea", { id: id + "-json", rows: 2, class: "json", oninput: (e) => { c.text = e.target.value; changed(false); } }, c.text)];
    } else {
      body = behaviourControls(c);
    }
    return el("li", { class: "condition", "data-uid": id }, [
      el("div", { class: "controls" }, head.concat([
        el("button", { type: "button", class: "icon remove", "aria-label": "Remove condition", onclick: () => {
          parent.items.splice(index, 1); changed(true); } }, "×"),
      ])),
      ...body,
      el("p", { class: "error", id: id + "-error", role: "alert" }, state.errors[id] || ""),
    ]);
  }

  function groupView(g, removable, onremove, depth, number) {
    const id = g.uid;
    const items = el("ul", { class: "items" });
    g.items.forEach((it, k) => {
      items.append(it.kind === "group"
        ? el("li", { class: "nested" }, groupView(it, true, () => { g.items.splice(k, 1); changed(true); }, depth + 1, 0))
        : conditionView(it, g, k));
    });
    const addButtons = [
      el("button", { type: "button", class: "link add-condition", onclick: () => { g.items.push(newCondition("field", state.catalog)); changed(true); } }, "+ condition"),
    ];
    if (depth < 4) {
      addButtons.push(el("button", { type: "button", class: "link add-subgroup", onclick: () => { g.items.push(newGroup(state.catalog, g.match === "all" ? "any" : "all")); changed(true); } }, "+ nested group"));
    }
    return el("fieldset", { class: "group", "data-uid": id }, [
      el("legend", {}, [
        number ? el("span", { class: "group-name" }, "Segment " + number) : null,
        el("span", {}, "Contacts matching "),
        ...select(id + "-match", "Group matches", [["all", "all"], ["any", "any"]], g.match, (e) => { g.match = e.target.value; changed(true); }, "match"),
        el("span", {}, " of these conditions"),
        removable ? el("button", { type: "button", class: "icon remove", "aria-label": "Remove group", onclick: onremove }, "×") : null,
      ]),
      items,
      el("div", { class: "add" }, addButtons),
      el("p", { class: "error", id: id + "-error", role: "alert" }, state.errors[id] || ""),
    ]);
  }

  // While the builder is rebuilt its focused element goes: that is no "leaving".
  let rendering = false;
  function render() {
    const root = $("#builder");
    const focused = document.activeElement && document.activeElement.id;
    rendering = true;
    root.replaceChildren();
    rendering = false;
    state.groups.forEach((g, i) => {
      if (i > 0) {
        const jid = "join-" + i;
        root.append(el("div", { class: "join" }, select(jid, "Join with the group above", [["and", "and"], ["or", "or"]], state.joins[i - 1], (e) => {
          state.joins[i - 1] = e.target.value; changed(true); })));
      }
      root.append(groupView(g, state.groups.length > 1, () => {
        state.groups.splice(i, 1);
        state.joins.splice(Math.max(0, i - 1), 1);
        changed(true);
      }, 0, i + 1));
    });
    root.append(el("button", { type: "button", class: "button", id: "add-group", onclick: () => {
      state.groups.push(newGroup(state.catalog)); state.joins.push("and"); changed(true);
    } }, "+ Add condition group"));
    if (focused) {
      const f = document.getElementById(focused);
      if (f) f.focus();
    }
  }

  // ----- errors beside their condition ------------------------------------------------

  // The server's problems come as sentences with the JSON path of what they concern;
  // each is put beside its condition (the deepest one whose path holds it). A problem
  // shows once its condition was left (blur) or Save pressed, never on an untouched form.
  function placeErrors(details, paths) {
    state.problems = details || [];
    state.paths = paths;
    showErrors();
  }

  function showErrors() {
    const paths = state.paths;
    const shown = (uid) => state.submitted || state.touched.has(uid);
    state.errors = {};
    const general = [];
    clearNameErrors();
    for (const d of state.problems) {
      if (d.path === "name" || d.path === "description") {
        if (!state.submitted) continue;
        const t = $("#seg-" + d.path + "-error");
        t.replaceChildren(...problemText(d));
        $("#seg-" + d.path).setAttribute("aria-invalid", "true");
        continue;
      }
      let best = null;
      for (const [p, id] of paths) {
        const under = d.path === p || d.path.startsWith(p + ".") || d.path.startsWith(p + "[");
        if (under && (!best || p.length > best[0].length)) best = [p, id];
      }
      if (best) {
        if (!shown(best[1])) continue;
        const prev = state.errors[best[1]];
        if (!prev || !prev.includes(d.message)) state.errors[best[1]] = prev ? prev + " " + d.message : d.message;
      } else if (state.submitted) general.push(d.message);
    }
    for (const e of $$("#builder .error")) e.textContent = "";
    for (const e of $$("#builder [aria-invalid]")) e.removeAttribute("aria-invalid");
    for (const [id, msg] of Object.entries(state.errors)) {
      const t = document.getElementById(id + "-error");
      if (t) {
        t.textContent = msg;
        const box = t.closest("[data-uid]");
        if (box) box.setAttribute("aria-invalid", "true");
      }
    }
    $("#rule-error").textContent = general.join(" ");
  }

  // A problem's sentence; the duplicate name's links to the segment that has it.
  function problemText(d) {
    if (d.segment && d.path === "name") {
      return ["A segment named ", el("a", { href: "/panel/segments/" + d.segment.id, id: "taken-name" }, d.segment.name),
        " already exists. Choose another name."];
    }
    return [d.message];
  }

  function clearNameErrors() {
    for (const f of ["name", "description"]) {
      $("#seg-" + f + "-error").textContent = "";
      $("#seg-" + f).removeAttribute("aria-invalid");
    }
  }

  function nameProblem() {
    if ($("#seg-name").value.trim()) return false;
    $("#seg-name-error").textContent = "Enter a name for the segment.";
    $("#seg-name").setAttribute("aria-invalid", "true");
    return true;
  }

  // "of 3,000 contacts (39%)": whole percents when exact, else one decimal (numbers.rs).
  function share(count, total) {
    const n = new Intl.NumberFormat("en");
    if (!total) return "of " + n.format(total || 0) + " contacts";
    const tenths = Math.round((count * 1000) / total);
    const pct = tenths % 10 === 0 ? String(tenths / 10) : (tenths / 10).toFixed(1);
    return "of " + n.format(total) + " contacts (" + pct + "%)";
  }

  // ----- live count ---------------------------------------------------------------

  let previewSeq = 0;
  const schedulePreview = debounce(runPreview, 350);

  async function runPreview() {
    const seq = ++previewSeq;
    const paths = [];
    const rule = ruleJson(paths);
    $("#live-status").textContent = "Counting…";
    const r = await call("POST", "/panel/api/preview", { rule, segment: state.segment ? state.segment.id : undefined });
    if (seq !== previewSeq) return;
    $("#live-count").removeAttribute("aria-busy");
    const b = r.body || {};
    if (r.status === 200 && b.valid) {
      // Formatted as the server formats counts (1,158).
      const n = new Intl.NumberFormat("en");
      $("#live-count").textContent = n.format(b.count);
      $("#reach-email").textContent = n.format(b.reachable.email);
      $("#reach-sms").textContent = n.format(b.reachable.sms);
      $("#reach-push").textContent = n.format(b.reachable.push);
      $("#live-share").textContent = share(b.count, b.total);
      $("#live-status").textContent = "";
      placeErrors([], paths);
    } else {
      $("#live-count").textContent = "–";
      for (const k of ["email", "sms", "push"]) $("#reach-" + k).textContent = "–";
      $("#live-share").textContent = "";
      $("#live-status").textContent = "Complete the conditions to see the count.";
      placeErrors(b.errors || (b.error && b.error.details) || [], paths);
    }
  }

  async function save(e) {
    e.preventDefault();
    state.submitted = true;
    showErrors();
    const name = $("#seg-name").value;
    if (nameProblem()) {
      $("#seg-name").focus();
      return;
    }
    const paths = [];
    const body = { name, description: $("#seg-description").value, rule: ruleJson(paths) };
    const seg = state.segment;
    const button = $("#save-segment");
    button.disabled = true;
    const r = seg ? await call("PUT", "/panel/api/segments/" + seg.id, body) : await call("POST", "/panel/api/segments", body);
    button.disabled = false;
    if (r.status === 200 || r.status === 201) {
      // The segment's page confirms what happened (a toast).
      window.location.assign("/panel/segments/" + r.body.id + (r.status === 201 ? "?done=created" : "?done=saved"));
      return;
    }
    const err = (r.body && r.body.error) || { message: "Saving failed (" + r.status + "). Try again.", details: [] };
    placeErrors(err.details.length ? err.details : [{ path: "rule", message: err.message }], paths);
    const first = $('[aria-invalid="true"]');
    if (first) {
      const target = first.matches("input,textarea,select") ? first : $("input,select,textarea", first);
      if (target) target.focus();
    }
  }

  function editorPage() {
    state.catalog = readJson("builder-catalog");
    state.segment = readJson("builder-segment");
    if (state.segment) {
      const m = modelFrom(state.segment.rule);
      state.groups = m.groups; state.joins = m.joins;
    } else {
      state.groups = [newGroup(state.catalog)];
      state.joins = [];
    }
    render();
    $("#segment-form").addEventListener("submit", save);
    $("#seg-name").addEventListener("input", clearNameErrors);
    $("#seg-name").addEventListener("blur", nameProblem);
    // Leaving a condition shows its problems (if any).
    $("#builder").addEventListener("focusout", (e) => {
      if (rendering) return;
      for (let box = e.target.closest("[data-uid]"); box; box = box.parentElement && box.parentElement.closest("[data-uid]")) {
        state.touched.add(box.dataset.uid);
      }
      showErrors();
    });
    $("#live-count").setAttribute("aria-busy", "true");
    runPreview();
  }

  // ---------------------------------------------------------------------------------
  // A segment's page: growth chart and "why is this contact in or out".

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Round axis steps: 1, 2, 2.5 or 5 times a power of ten, about four of them.
  function niceTicks(max) {
    if (max <= 0) return [0, 1];
    const raw = max / 4;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw && Number.isInteger(s)) || 10 * p;
    const whole = Math.max(1, step);
    const ticks = [];
    for (let v = 0; v < max + whole; v += whole) { ticks.push(v); if (v >= max) break; }
    return ticks;
  }

  const chartNumbers = new Intl.NumberFormat(document.documentElement.lang || undefined);

  function drawChart(root, series) {
    const W = Math.max(280, Math.round(root.clientWidth || 640)), H = 240, L = 56, R = 12, T = 12, B = 28;
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, class: "chart", "aria-hidden": "true" });
    const top = Math.max(1, ...series.map((p) => Math.max(p.total, p.added, p.removed)));
    const ticks = niceTicks(top);
    const max = ticks[ticks.length - 1];
    const n = series.length;
    const x = (i) => (n === 1 ? L + (W - L - R) / 2 : L + (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const computed = series.filter((p) => p.computed).length;
    if (computed) {
      // The days computed from the data, shaded and labelled.
      const end = computed < n ? (x(computed - 1) + x(computed)) / 2 : W - R;
      s.append(svg("rect", { x: L, y: T, width: Math.max(0, end - L), height: H - T - B, class: "computed-zone" }));
      s.append(svg("text", { x: L + 4, y: T + 12, class: "axis computed-label" }, "computed from data"));
    }
    for (const v of ticks) {
      s.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
      s.append(svg("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, chartNumbers.format(v)));
    }
    const bw = Math.max(1, Math.min(14, (W - L - R) / Math.max(1, n) / 3));
    series.forEach((p, i) => {
      if (p.added) s.append(svg("rect", { x: x(i) - bw, y: y(p.added), width: bw, height: y(0) - y(p.added), class: "added" }));
      if (p.removed) s.append(svg("rect", { x: x(i), y: y(p.removed), width: bw, height: y(0) - y(p.removed), class: "removed" }));
    });
    const line = (from, to, cls) => {
      if (to - from < 1) return;
      s.append(svg("polyline", { points: series.slice(from, to + 1).map((p, k) => x(from + k) + "," + y(p.total)).join(" "), class: cls }));
    };
    // Computed days dashed, joined to the first real day by the solid line.
    line(0, computed - 1, "total computed");
    line(Math.max(0, computed - 1), n - 1, "total");
    if (n <= 31) series.forEach((p, i) => s.append(svg("circle", { cx: x(i), cy: y(p.total), r: 3, class: "total-dot" })));
    const first = series[0], last = series[n - 1];
    s.append(svg("text", { x: x(0), y: H - 8, class: "axis", "text-anchor": n === 1 ? "middle" : "start" }, first.day));
    if (n > 1) s.append(svg("text", { x: x(n - 1), y: H - 8, class: "axis", "text-anchor": "end" }, last.day));
    // Hover (or touch): the day under the pointer, with its figures.
    const marker = svg("line", { x1: 0, x2: 0, y1: T, y2: H - B, class: "hover-line", visibility: "hidden" });
    s.append(marker);
    const tip = el("div", { class: "chart-tip", id: "chart-tip", role: "status", hidden: true });
    const overlay = svg("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "hover-zone" });
    s.append(overlay);
    const show = (ev) => {
      const box = s.getBoundingClientRect();
      const px = ((ev.clientX - box.left) * W) / Math.max(1, box.width);
      const i = n === 1 ? 0 : Math.max(0, Math.min(n - 1, Math.round(((px - L) * (n - 1)) / (W - L - R))));
      const p = series[i];
      marker.setAttribute("x1", x(i)); marker.setAttribute("x2", x(i)); marker.setAttribute("visibility", "visible");
      tip.replaceChildren(
        el("strong", {}, p.day), " ",
        chartNumbers.format(p.total) + " contacts · +" + chartNumbers.format(p.added) + " / −" + chartNumbers.format(p.removed),
        p.computed ? el("em", {}, " (computed)") : "",
      );
      tip.hidden = false;
      const left = (x(i) / W) * box.width;
      tip.style.left = Math.max(0, Math.min(box.width - 220, left - 110)) + "px";
    };
    overlay.addEventListener("pointermove", show);
    overlay.addEventListener("pointerdown", show);
    overlay.addEventListener("pointerleave", () => { tip.hidden = true; marker.setAttribute("visibility", "hidden"); });
    const legend = [
      el("li", { class: "k-total" }, "total"), el("li", { class: "k-added" }, "added"), el("li", { class: "k-removed" }, "removed"),
    ];
    if (computed) legend.push(el("li", { class: "k-computed" }, "computed from data"));
    root.replaceChildren(s, tip, el("ul", { class: "legend" }, legend));
  }

  function renderExplain(node) {
    const mark = node.matched ? "✓" : "✗";
    const events = node.matching_events != null ? " — " + node.matching_events + " matching event" + (node.matching_events === 1 ? "" : "s") : "";
    const li = el("li", { class: node.matched ? "yes" : "no" }, [
      el("span", { class: "mark", "aria-label": node.matched ? "true" : "false" }, mark),
      " " + node.text + events,
    ]);
    if (node.children && node.children.length) li.append(el("ul", {}, node.children.map(renderExplain)));
    return li;
  }

  function segmentPage() {
    const box = $("#growth");
    const id = box.dataset.segment;
    call("GET", "/panel/api/segments/" + id + "/history").then((r) => {
      if (r.status === 200 && Array.isArray(r.body) && r.body.length) {
        const series = r.body;
        drawChart($("#chart"), series);
        let width = $("#chart").clientWidth;
        window.addEventListener("resize", () => {
          if ($("#chart").clientWidth !== width) { width = $("#chart").clientWidth; drawChart($("#chart"), series); }
        });
        const real = series.findIndex((p) => !p.computed);
        $("#chart-note").textContent = real > 0
          ? "Before " + series[real].day + " (the day the segment was saved) each day is computed from the data: the rule as of the end of the day, with today's field values."
          : series.length === 1 ? "History starts today: one point so far." : "";
      } else $("#chart-note").textContent = "No history yet.";
    });
    const form = $("#explain-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const q = $("#explain-contact").value.trim();
      const out = $("#explain-result");
      if (!q) return;
      out.textContent = "…";
      const r = await call("GET", "/panel/api/segments/" + id + "/explain?contact=" + encodeURIComponent(q));
      if (r.status !== 200) {
        out.replaceChildren(el("p", { class: "error" }, (r.body && r.body.error && r.body.error.message) || "Not found"));
        return;
      }
      const b = r.body;
      out.replaceChildren(
        el("p", { class: "verdict " + (b.matched ? "yes" : "no") }, [
          el("a", { href: "/panel/contact?id=" + encodeURIComponent(b.external_id) }, b.external_id),
          b.email ? " (" + b.email + ")" : "",
          b.matched ? " is in this segment." : " is not in this segment.",
        ]),
        el("ul", { class: "explain" }, [renderExplain(b.tree)]),
      );
    });
  }

  // ---------------------------------------------------------------------------------
  // Custom fields: create and delete.

  function fieldsPage() {
    const form = $("#field-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      for (const k of ["key", "label", "type"]) $("#field-" + k + "-error").textContent = "";
      $("#fields-error").textContent = "";
      const body = { key: $("#field-key").value.trim(), type: $("#field-type").value };
      const label = $("#field-label").value.trim();
      if (label) body.label = label;
      const r = await call("POST", "/panel/api/fields", body);
      if (r.status === 201) { window.location.reload(); return; }
      const err = (r.body && r.body.error) || { message: "Failed (" + r.status + ")", details: [] };
      if (!err.details.length) $("#fields-error").textContent = err.message;
      for (const d of err.details) {
        const t = $("#field-" + d.path + "-error");
        if (t) t.textContent = d.message; else $("#fields-error").textContent = d.message;
      }
    });
    for (const b of $$("[data-delete]")) {
      b.addEventListener("click", async () => {
        const r = await call("DELETE", "/panel/api/fields/" + encodeURIComponent(b.dataset.delete));
        if (r.status === 204) { b.closest("tr").remove(); $("#fields-error").textContent = ""; return; }
        $("#fields-error").textContent = (r.body && r.body.error && r.body.error.message) || "Failed (" + r.status + ")";
      });
    }
  }

  const pages = { segments: segmentsPage, editor: editorPage, segment: segmentPage, fields: fieldsPage };
  function start() {
    const page = document.body.dataset.page;
    if (pages[page]) pages[page]();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
