// The exam list: click a column header to sort by it (probabilities high to low first; again to reverse).
// The hash can name the sort (sort=<column>&order=asc|desc), which the browser tests use.
"use strict";

const table = document.getElementById("exams");

function sortBy(key, order) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const numeric = key !== "case";
  const value = (row) => (numeric ? Number(row.dataset[key]) : row.dataset.case);
  rows.sort((a, b) => {
    const x = value(a), y = value(b);
    const cmp = numeric ? (Number.isNaN(x) ? -Infinity : x) - (Number.isNaN(y) ? -Infinity : y) : String(x).localeCompare(String(y));
    return order === "asc" ? cmp : -cmp;
  });
  body.append(...rows);
  for (const th of table.tHead.rows[0].cells) {
    if (th.dataset.key === key) th.setAttribute("aria-sort", order === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  table.dataset.sort = key;
  table.dataset.order = order;
  table.dataset.first = rows.length ? rows[0].dataset.case : "";
}

for (const th of table.tHead.querySelectorAll("th[data-key]")) {
  th.querySelector("button").addEventListener("click", () => {
    const key = th.dataset.key;
    const fresh = key === "case" ? "asc" : "desc";
    const order = table.dataset.sort === key ? (table.dataset.order === "asc" ? "desc" : "asc") : fresh;
    sortBy(key, order);
  });
}

const params = new URLSearchParams(location.hash.slice(1));
if (params.has("sort")) sortBy(params.get("sort"), params.get("order") === "asc" ? "asc" : "desc");
document.body.dataset.ready = "1";
