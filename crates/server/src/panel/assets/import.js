// The contact import page: upload a CSV file, match its columns to fields (creating new
// ones with a type), preview the first rows with their problems, start, and follow the
// progress. Our own code, no library; the server does every check again.
(function () {
  "use strict";
  if (document.body.dataset.page !== "import") return;

  const $ = (s) => document.querySelector(s);
  const csrf = () => $('meta[name="csrf-token"]').content;
  const fields = JSON.parse($("#import-fields").textContent);
  const nf = new Intl.NumberFormat(document.documentElement.lang || undefined);

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (v === true) e.setAttribute(k, "");
      else e.setAttribute(k, v);
    }
    for (const c of [].concat(children === undefined ? [] : children)) {
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  async function call(method, url, body, contentType) {
    const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") init.headers["X-CSRF-Token"] = csrf();
    if (body !== undefined) {
      init.headers["Content-Type"] = contentType || "application/json";
      init.body = contentType ? body : JSON.stringify(body);
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

  function message(r) {
    const err = r.body && r.body.error;
    if (!err) return "Something went wrong (" + r.status + ").";
    if (!err.details || !err.details.length) return err.message;
    return err.details.map((d) => sentence(d)).join(" ");
  }

  // "columns[\"Age\"]: unknown field …" → "Column “Age”: unknown field …".
  function sentence(d) {
    const m = /^columns\["(.*)"\]$/.exec(d.path);
    const where = m ? "Column “" + m[1] + "”" : d.path === "columns" ? "" : d.path;
    const text = d.message.charAt(0).toUpperCase() + d.message.slice(1);
    return (where ? where + ": " + d.message : text) + (/[.!?]$/.test(d.message) ? "" : ".");
  }

  const ATTRIBUTES = [
    ["external_id", "External id"],
    ["email", "E-mail"],
    ["phone", "Phone"],
    ["email_status", "E-mail status"],
    ["sms_status", "SMS status"],
  ];
  const TYPES = ["text", "number", "date", "boolean"];

  let importId = null;
  let columns = [];

  function keyFor(column) {
    let k = column.toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
    if (!/^[a-z]/.test(k)) k = "f_" + k;
    return k.slice(0, 64) || "field";
  }

  // A column's first guess: an attribute's name or a field's key, as the server does.
  function guess(column) {
    if (ATTRIBUTES.some(([v]) => v === column)) return column;
    const f = fields.find((x) => x.key === column);
    return f ? "fields." + f.key : "";
  }

  function renderColumns() {
    const body = $("#import-columns tbody");
    body.replaceChildren(...columns.map((column, i) => {
      const select = el("select", { id: "map-" + i, "aria-label": "Where column " + column + " goes", "data-column": column }, [
        el("option", { value: "" }, "Skip this column"),
        ...ATTRIBUTES.map(([v, label]) => el("option", { value: v }, label)),
        ...fields.map((f) => el("option", { value: "fields." + f.key }, f.label)),
        el("option", { value: "new" }, "New field…"),
      ]);
      select.value = guess(column);
      const key = el("input", { id: "new-key-" + i, value: keyFor(column), "aria-label": "Key of the new field for " + column, size: 14 });
      const type = el("select", { id: "new-type-" + i, "aria-label": "Type of the new field for " + column },
        TYPES.map((t) => el("option", { value: t }, t)));
      const extra = el("span", { class: "new-field", hidden: true }, [key, " ", type]);
      select.addEventListener("change", () => { extra.hidden = select.value !== "new"; hidePreview(); });
      key.addEventListener("input", hidePreview);
      type.addEventListener("change", hidePreview);
      return el("tr", {}, [el("th", { scope: "row" }, column), el("td", {}, select), el("td", {}, extra)]);
    }));
  }

  function mapping() {
    const out = { columns: {}, new_fields: [] };
    columns.forEach((column, i) => {
      const v = $("#map-" + i).value;
      if (v === "new") {
        const key = $("#new-key-" + i).value.trim();
        out.columns[column] = "fields." + key;
        out.new_fields.push({ key, label: column, type: $("#new-type-" + i).value });
      } else out.columns[column] = v || null;
    });
    return out;
  }

  function hidePreview() { $("#import-preview").hidden = true; }

  async function upload(e) {
    e.preventDefault();
    const file = $("#import-file").files[0];
    const status = $("#import-upload-status");
    if (!file) { status.textContent = "Choose a CSV file first."; return; }
    status.textContent = "Uploading " + file.name + "…";
    $("#import-upload-button").disabled = true;
    const r = await call("POST", "/panel/api/imports?file_name=" + encodeURIComponent(file.name), file, "text/csv");
    $("#import-upload-button").disabled = false;
    if (r.status !== 201) { status.textContent = message(r); return; }
    importId = r.body.id;
    columns = r.body.columns;
    status.textContent = file.name + ": " + nf.format(columns.length) + " columns, " + nf.format(r.body.file_bytes) + " bytes.";
    renderColumns();
    $("#import-mapping").hidden = false;
    hidePreview();
    $("#import-run").hidden = true;
  }

  async function preview() {
    $("#import-mapping-errors").textContent = "";
    const r = await call("POST", "/panel/api/imports/" + importId + "/preview", mapping());
    if (r.status !== 200) { $("#import-mapping-errors").textContent = message(r); hidePreview(); return; }
    const rows = r.body.rows;
    const bad = rows.filter((row) => row.errors.length).length;
    $("#import-preview-summary").textContent = "The first " + nf.format(rows.length) + " rows: " +
      (bad ? nf.format(bad) + " would be rejected (shown in red); the others would be imported." : "all would be imported.");
    const head = el("tr", {}, [el("th", { scope: "col" }, "Row"), ...columns.map((c) => el("th", { scope: "col" }, c)), el("th", { scope: "col" }, "Problems")]);
    const body = rows.map((row) => el("tr", { class: row.errors.length ? "rejected" : null }, [
      el("td", {}, String(row.row)),
      ...columns.map((c, i) => el("td", { class: row.errors.some((x) => x.column === c) ? "bad" : null }, row.cells[i] === undefined ? "" : row.cells[i])),
      el("td", {}, row.errors.map((x) => (x.column ? "“" + x.column + "”: " : "") + x.message).join("; ")),
    ]));
    $("#import-rows").replaceChildren(el("thead", {}, head), el("tbody", {}, body));
    $("#import-preview").hidden = false;
  }

  function showProgress(imp) {
    const bar = $("#import-progress");
    bar.value = imp.progress;
    bar.textContent = Math.round(imp.progress * 100) + "%";
    const done = nf.format(imp.rows_imported) + " imported, " + nf.format(imp.rows_rejected) + " rejected";
    const text = {
      running: "Importing… " + Math.round(imp.progress * 100) + "% of the file read: " + done + ".",
      done: "Done: " + done + ".",
      failed: "Stopped: " + (imp.error || "the import failed") + " (" + done + ").",
    }[imp.status] || done;
    $("#import-progress-text").textContent = text;
    const link = $("#import-rejected");
    if (imp.status !== "running" && imp.rows_rejected > 0) {
      link.href = "/panel/imports/" + imp.id + "/rejected.csv";
      link.hidden = false;
    }
  }

  async function follow() {
    const r = await call("GET", "/panel/api/imports/" + importId);
    if (r.status !== 200) { $("#import-progress-text").textContent = message(r); return; }
    showProgress(r.body);
    if (r.body.status === "running") setTimeout(follow, 500);
  }

  async function start() {
    $("#import-start").disabled = true;
    const r = await call("POST", "/panel/api/imports/" + importId + "/start", mapping());
    if (r.status !== 202) {
      $("#import-start").disabled = false;
      $("#import-mapping-errors").textContent = message(r);
      return;
    }
    $("#import-mapping").hidden = true;
    $("#import-preview").hidden = true;
    $("#import-run").hidden = false;
    showProgress(r.body);
    follow();
  }

  $("#import-file-form").addEventListener("submit", upload);
  $("#import-preview-button").addEventListener("click", preview);
  $("#import-start").addEventListener("click", start);
})();
