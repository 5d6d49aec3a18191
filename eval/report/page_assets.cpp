// The fixed parts of the report page: head, style sheet, navigation and the inline script.
#include "eval/report/page_assets.h"

#include "eval/report/html_text.h"

namespace chorus::eval::report {
namespace {

constexpr const char* kStyle = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 0; color: #1d1d1f; background: #fff; }
main { max-width: 1240px; margin: 0 auto; padding: 0 20px 40px; }
nav { position: sticky; top: 0; background: #f5f5f7; border-bottom: 1px solid #ddd; padding: 8px 20px; z-index: 1; }
nav a { margin-right: 16px; color: #0b57d0; text-decoration: none; }
h1 { font-size: 1.6em; margin: 18px 0 8px; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.facts dt, dl.definitions dt { font-weight: 600; }
dl.definitions dd { margin: 0 0 6px 18px; }
table { border-collapse: collapse; margin: 10px 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f5f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.text { font-family: "DejaVu Sans Mono", monospace; white-space: pre-wrap; word-break: break-word; max-width: 320px; }
small, .note { color: #555; }
.absent { color: #6b4e00; background: #fff8e1; border-left: 3px solid #f0c040; padding: 6px 10px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 6px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
svg.chart { background: #fff; border: 1px solid #eee; }
tr.wrong { background: #fdf0ef; }
tr.wrong td.verdict { color: #c5221f; font-weight: bold; }
tr.right td.verdict { color: #188038; font-weight: bold; }
mark { background: #ffc9c5; }
.controls { margin: 8px 0; }
.controls label { margin-right: 12px; }
tr.significant td { font-weight: 600; }
#page-errors { color: #c5221f; background: #fdf0ef; padding: 8px; }
pre { background: #f5f5f7; padding: 10px; overflow-x: auto; }
)css";

// Installed first so that an error anywhere in the page is visible in it (and to a headless check).
constexpr const char* kErrorTrap = R"js(
window.chorusPageErrors = [];
window.addEventListener('error', function (event) {
  window.chorusPageErrors.push(String(event.message));
  document.documentElement.setAttribute('data-errors', String(window.chorusPageErrors.length));
  var box = document.getElementById('page-errors');
  if (box) { box.hidden = false; box.textContent = window.chorusPageErrors.join('\n'); }
});
)js";

constexpr const char* kScript = R"js(
(function () {
  'use strict';
  var system = document.getElementById('example-system');
  var set = document.getElementById('example-set');
  var wrongOnly = document.getElementById('example-wrong');
  var count = document.getElementById('example-count');
  function filterExamples() {
    var rows = document.querySelectorAll('tr.example');
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var visible = (!system.value || row.getAttribute('data-system') === system.value) &&
                    (!set.value || row.getAttribute('data-set') === set.value) &&
                    (!wrongOnly.checked || row.classList.contains('wrong'));
      row.hidden = !visible;
      if (visible) shown++;
    }
    count.textContent = shown + ' of ' + rows.length + ' shown';
  }
  if (system && set && wrongOnly && count) {
    system.addEventListener('change', filterExamples);
    set.addEventListener('change', filterExamples);
    wrongOnly.addEventListener('change', filterExamples);
    filterExamples();
  }
  var pickers = document.querySelectorAll('select.attention-picker');
  function showMap() {
    var maps = document.querySelectorAll('.attention-map');
    var found = false;
    for (var i = 0; i < maps.length; i++) {
      var match = !found;
      for (var j = 0; j < pickers.length && match; j++) {
        match = maps[i].getAttribute('data-' + pickers[j].getAttribute('data-field')) === pickers[j].value;
      }
      maps[i].hidden = !match;
      found = found || match;
    }
    document.getElementById('attention-none').hidden = found;
  }
  for (var p = 0; p < pickers.length; p++) pickers[p].addEventListener('change', showMap);
  if (pickers.length) showMap();
  var box = document.getElementById('page-errors');
  if (box && window.chorusPageErrors.length) { box.hidden = false; box.textContent = window.chorusPageErrors.join('\n'); }
  document.documentElement.setAttribute('data-rendered', 'ok');
})();
)js";

}  // namespace

void write_page_start(std::ostream& out, const std::string& title) {
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
         "'unsafe-inline'; "
      << "script-src 'unsafe-inline'; img-src data:\">"
      << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      << "<meta name=\"generator\" content=\"chorus\"><title>" << html_escape(title)
      << "</title><style>" << kStyle << "</style><script>" << kErrorTrap
      << "</script></head>\n<body>"
      << "<nav><a href=\"#overview\">Overview</a><a href=\"#scores\">Scores</a><a "
         "href=\"#cost\">Accuracy and cost</a>"
      << "<a href=\"#training\">Training</a><a href=\"#examples\">Examples</a><a "
         "href=\"#attention\">Attention</a>"
      << "<a href=\"#config\">Configuration</a></nav><main><pre id=\"page-errors\" hidden></pre>\n";
}

void write_page_end(std::ostream& out) {
  out << "</main><script>" << kScript << "</script></body></html>\n";
}

}  // namespace chorus::eval::report
