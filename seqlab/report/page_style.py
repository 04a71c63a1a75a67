"""The page's inline stylesheet and its one small script (click a header to sort)."""

from __future__ import annotations

PAGE_CSS = """
:root { --ink: #1d2330; --muted: #5b6472; --line: #e3e6eb; --bg: #f7f8fa; --accent: #2456a6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--bg); }
header { position: sticky; top: 0; z-index: 10; background: #fff; border-bottom: 1px solid var(--line);
         padding: 10px 24px 6px; }
header h1 { font-size: 18px; margin: 0 0 4px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; font-size: 13px; }
nav a:hover { text-decoration: underline; }
main { max-width: 1320px; margin: 0 auto; padding: 8px 24px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 4px 20px 16px;
          margin: 16px 0; scroll-margin-top: 80px; }
h2 { font-size: 17px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { font-size: 14.5px; margin: 18px 0 6px; }
p { margin: 6px 0; }
.note, .method { color: var(--muted); font-size: 13px; }
tr.secondary td { color: var(--muted); }
.warning { background: #fff3cd; border: 2px solid #d39e00; color: #6b4e00; font-weight: 600;
           padding: 10px 24px; margin: 12px auto 0; max-width: 1320px; border-radius: 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12.5px; margin: 6px 0; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
thead th { background: #f0f2f5; white-space: normal; vertical-align: bottom; min-width: 44px; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable thead th { cursor: pointer; }
table.sortable thead th:hover { background: #e4e8ee; }
tr.beats td[data-col="rmse_ratio"] { color: #1a7f37; font-weight: 600; }
tr.loses td[data-col="rmse_ratio"] { color: #b42318; font-weight: 600; }
table.kv th { background: none; width: 210px; color: var(--muted); font-weight: 500; }
table.kv td { white-space: normal; }
td.observed { white-space: normal; max-width: 520px; color: var(--muted); }
tr.bad td { background: #fdecea; }
tr.warn td { background: #fff6dd; }
ul.headline { padding-left: 18px; }
ul.headline li { margin: 3px 0; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
        margin: 2px 4px 2px 0; text-decoration: none; border: 1px solid transparent; }
.supported { color: #1a7f37; } .contradicted { color: #b42318; }
.inconclusive { color: #8a6100; } .not-tested { color: var(--muted); }
.chip.supported { background: #e6f4ea; border-color: #b7dfc2; }
.chip.contradicted { background: #fdecea; border-color: #f4c0ba; }
.chip.inconclusive { background: #fff6dd; border-color: #f0d890; }
.chip.not-tested { background: #eef0f3; border-color: #d6dae0; }
td.supported, td.contradicted, td.inconclusive, td.not-tested { font-weight: 600; }
.claim { border-top: 1px solid var(--line); margin-top: 10px; }
.reading { margin: 2px 0 6px; }
.claim-table th { white-space: nowrap; }
.claim-table td { white-space: normal; vertical-align: top; }
.claim-table td.num { white-space: nowrap; }
#operational-tests td { white-space: normal; vertical-align: top; min-width: 110px; }
#operational-tests td:first-child { min-width: 150px; }
.unit { color: var(--muted); font-size: 11.5px; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); }
pre { background: #f4f5f7; padding: 8px; border-radius: 4px; font-size: 12px; overflow-x: auto; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 18px; }
code { font-size: 12px; }
"""

# Sorts a table by the clicked header, numerically by each cell's data-value when it has one.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, index) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.dataset.order !== "asc";
      th.dataset.order = ascending ? "asc" : "desc";
      function key(row) {
        var cell = row.cells[index];
        var raw = cell.dataset.value;
        var number = parseFloat(raw);
        return raw !== "" && !isNaN(number) ? number : cell.textContent;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { return typeof x === "number" ? -1 : 1; }
        return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""
