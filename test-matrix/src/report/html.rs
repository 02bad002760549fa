//! The report as one self-contained HTML page: inline CSS, no scripts, no external assets.

use super::grid::code;
use super::markdown::{percent, LEGEND};
use super::Report;
use crate::matrix::invariants::INVARIANTS;
use crate::matrix::model::Delivering;
use crate::matrix::OutcomeClass;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
table.grid td{width:1.8em;text-align:center;font:12px monospace;padding:2px}
.D{background:#b9e4b0}.DF{background:#f7c873}.X0{background:#9cc3f0}.X1{background:#c9a9ef}
.X2{background:#ef8f8f}.none{background:#eee}.bad{color:#b00;font-weight:bold}
code{font-size:12px}";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders `report`.
pub fn render(report: &Report) -> String {
    let t = &report.tally;
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Event-routing matrix report</title><style>{STYLE}</style></head><body>\n\
         <h1>Event-routing matrix report</h1>\n<p>Written by <code>cargo run --release -p \
         test-matrix -- report</code>; see docs/matrix.md.</p>\n<h2>Model</h2>\n<p>{} scenarios \
         routed by <code>nvmx::route::route</code> and checked in {:.2} s.</p>\n",
        t.total,
        t.elapsed.as_secs_f64()
    );
    out += "<table><tr><th class=\"l\">outcome</th><th>scenarios</th></tr>\n";
    for (class, n) in &t.by_outcome {
        out += &format!(
            "<tr><td class=\"l {}\">{}</td><td>{n}</td></tr>\n",
            code(*class),
            escape(&class.label())
        );
    }
    out += "</table>\n";
    let classes: Vec<OutcomeClass> = t.by_outcome.keys().copied().collect();
    out += "<table><tr><th class=\"l\">event being delivered</th>";
    for class in &classes {
        out += &format!("<th>{}</th>", escape(&class.label()));
    }
    out += "</tr>\n";
    for (row, delivering) in Delivering::ALL.iter().enumerate() {
        out += &format!("<tr><td class=\"l\">{}</td>", escape(delivering.label()));
        for class in &classes {
            out += &format!(
                "<td>{}</td>",
                t.by_delivering.get(&(row, *class)).copied().unwrap_or(0)
            );
        }
        out += "</tr>\n";
    }
    out += "</table>\n<table><tr><th class=\"l\">invariant</th><th class=\"l\">result</th></tr>\n";
    for (i, invariant) in INVARIANTS.iter().enumerate() {
        let result = match t.violations[i] {
            0 => "holds".to_string(),
            n => format!("<span class=\"bad\">violated in {n} scenarios</span>"),
        };
        out += &format!(
            "<tr><td class=\"l\"><code>{}</code> — {}</td><td class=\"l\">{result}</td></tr>\n",
            invariant.name,
            escape(invariant.rule)
        );
    }
    out += &format!(
        "</table>\n<h2>Grids</h2>\n<p>Rows: event being delivered · new event type; columns: new \
         vector. PFEC mask = match = 0, #PF error code 0x2, protected mode, nothing injected. \
         Hover a cell for its scenario id and outcome.</p>\n<p>{}</p>\n",
        escape(LEGEND)
    );
    for grid in &report.grids {
        out += &format!(
            "<h3>{}</h3>\n<table class=\"grid\"><tr><th class=\"l\"></th>",
            escape(grid.setting.name)
        );
        for v in 0..32 {
            out += &format!("<th>{v}</th>");
        }
        out += "</tr>\n";
        for row in &grid.rows {
            out += &format!("<tr><td class=\"l\">{}</td>", escape(&row.label));
            for cell in &row.cells {
                out += &match cell {
                    Some(c) => format!(
                        "<td class=\"{0}\" title=\"{1}: {2}\">{0}</td>",
                        code(c.class),
                        escape(&c.id),
                        escape(&c.detail)
                    ),
                    None => "<td class=\"none\"></td>".to_string(),
                };
            }
            out += "</tr>\n";
        }
        out += "</table>\n";
    }
    out += "<h2>System runs</h2>\n";
    if report.system.iter().all(|r| !r.present) {
        let paths: Vec<String> = report
            .system
            .iter()
            .map(|r| format!("<code>{}</code>", escape(&r.path.display().to_string())))
            .collect();
        return out
            + &format!(
                "<p>No system results: none of {} exists. Only the model's figures above are \
                 real; nothing has been compared with l1-hv yet.</p>\n</body></html>\n",
                paths.join(", ")
            );
    }
    out += "<table><tr><th class=\"l\">mode</th><th>observed</th><th>agree</th><th>disagree</th>\
            <th>agreement</th><th>problem lines</th></tr>\n";
    for r in &report.system {
        if r.present {
            out += &format!(
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                r.mode,
                r.observed,
                r.agree,
                r.disagreements.len(),
                percent(r.agree, r.observed),
                r.problems.len()
            );
        } else {
            out += &format!(
                "<tr><td class=\"l\">{}</td><td class=\"l\" colspan=\"5\">no results ({} not found)</td></tr>\n",
                r.mode,
                escape(&r.path.display().to_string())
            );
        }
    }
    out += "</table>\n";
    for r in report.system.iter().filter(|r| r.present) {
        if !r.disagreements.is_empty() {
            out += &format!(
                "<h3>Disagreements, {0}</h3>\n<table><tr><th class=\"l\">scenario</th>\
                 <th class=\"l\">model</th><th class=\"l\">{0}</th></tr>\n",
                r.mode
            );
            for d in &r.disagreements {
                out += &format!(
                    "<tr><td class=\"l\"><code>{}</code></td><td class=\"l\"><code>{}</code></td>\
                     <td class=\"l\"><code>{}</code></td></tr>\n",
                    escape(&d.id),
                    escape(&d.model),
                    escape(&d.observed)
                );
            }
            out += "</table>\n";
        }
        if !r.problems.is_empty() {
            out += &format!("<h3>Unusable lines, {}</h3>\n<ul>\n", r.mode);
            for p in &r.problems {
                out += &format!("<li>{}</li>\n", escape(p));
            }
            out += "</ul>\n";
        }
    }
    out + "</body></html>\n"
}
