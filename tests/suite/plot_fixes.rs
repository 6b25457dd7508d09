//! Small plot fixes (issue 31's "noticed and left alone"): `grad-norms` with every
//! architecture beside three normalisers (eighteen arms) draws every figure clear, its
//! slides' panels wide enough to read; and on the live page a note beside a line stays inside
//! the plot, clear of the tick labels, however narrow the chart.

use bn_lab::experiment::grad_norms::{GradNorms, GradNormsConfig};
use bn_lab::plot::Figures;
use serde_json::json;

use crate::browser::{ONE_AT_A_TIME, Session};
use crate::common;
use crate::live_page::shown;
use crate::server::{Server, encode};

fn grad_norms(args: &[&str]) -> GradNormsConfig {
    common::small_grad_norms("6", args)
}

/// Eighteen arms need more legend than a column beside the panels holds: on the theory and
/// stream slides the notes go under the panels, so the panels keep room for their captions
/// (which the layout check would find running together) and for a readable plot.
#[test]
fn eighteen_grad_norms_arms_draw_every_figure_clear_with_panels_to_read() {
    let skips = "off,on,basic,preact,basic-skipinit,preact-skipinit";
    let c = grad_norms(&["--skips", skips, "--norm", "none,batch,layer"]);
    let (report, layouts) = common::assert_figures_clear::<GradNorms>(&c, "eighteen arms");
    assert_eq!(report.arms.len(), 18);
    assert_eq!(GradNorms::figures_for(&c).len(), layouts.len());
    // The slides whose notes go under the panels (the headline's legend is all samples).
    for (file, layout) in &layouts {
        if !matches!(
            file.as_str(),
            "grad_norms_theory.png" | "grad_norms_stream.png"
        ) {
            continue;
        }
        for p in &layout.panels {
            let w = p.plot.x1 - p.plot.x0;
            // 3 panels and a 2-column legend left them 170-210 pixels wide.
            assert!(w >= 280, "{file}: \"{}\" is {w} pixels wide", p.caption);
        }
    }
}

/// A chart narrow for its notes (five arms' long per-matrix notes, a 1000-pixel window): each
/// note within the plot's left and right edges and overlapping no tick label or other note.
#[test]
fn live_page_notes_keep_clear_of_the_tick_labels_in_chromium() {
    let server = Server::start(&[]);
    let origin = format!("http://127.0.0.1:{}", server.port);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("plot-fixes");
    session.set_viewport(1000, 900);
    let line =
        "grad-norms --depth 12 --width 16 --batch 16 --skips off,preact,basic --norm none,batch";
    let url = format!("{origin}/?args={}", encode(line));
    session.call("POST", "/url", Some(&json!({ "url": url })));
    let at = shown(&session, line);
    assert_eq!(at["notes"].as_array().map(Vec::len), Some(6), "{at}");
    let found = session.run(
        "const svg = document.querySelector('#charts svg');
         const frame = svg.querySelector('g.axes rect').getBBox();
         const box = (e) => { const b = e.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; };
         const meets = (a, b) => a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
         const notes = Array.from(svg.querySelectorAll('text.note')).map(box);
         const ticks = Array.from(svg.querySelectorAll('text.ytick, text.xtick')).map(box);
         const out = [];
         notes.forEach((n, i) => {
           if (n[0] < frame.x || n[2] > frame.x + frame.width) out.push(`note ${i} ${n} leaves the plot ${frame.x}..${frame.x + frame.width}`);
           ticks.forEach((t) => { if (meets(n, t)) out.push(`note ${i} ${n} covers a tick label ${t}`); });
           notes.slice(i + 1).forEach((m, j) => { if (meets(n, m)) out.push(`note ${i} ${n} meets note ${i + j + 1} ${m}`); });
         });
         return out;",
    );
    assert_eq!(found, json!([]), "{at}");
    let shots = common::scratch_dir("plot-fixes");
    session.screenshot(&shots.join("narrow_notes.png"));
}
