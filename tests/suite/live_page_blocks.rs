//! The live page's block and SkipInit controls (issue 31): the server refuses a bad
//! combination with exactly the CLI's one line (the page sends the command line; the CLI's
//! validation is the only judge), a block request answers with block arms, `/api/arms` carries
//! the figures' styles of block arms and of `train`'s SkipInit, and in headless Chromium the
//! form's preact + SkipInit redraws the charts with block arms, a bad combination shows the
//! CLI's error, and a training chart draws SkipInit in its own colour.

use std::time::Duration;

use serde_json::json;

use crate::browser::{ONE_AT_A_TIME, Session};
use crate::common::{bn_lab_within, scratch_dir};
use crate::live_page::{shown, wait_for};
use crate::server::{Server, encode};

/// Combinations the CLI refuses: the server's error must be the CLI's line, word for word.
const REFUSED: &[&str] = &[
    "grad-norms --skip-init",
    "grad-norms --block residual --skip-init",
    "grad-norms --residual --skip-init",
    "grad-norms --block preact --placement post",
    "grad-norms --block basic --depth 0",
    "grad-norms --block plain --residual-scale 0.5",
    "grad-norms --skips off,preact --block basic",
    "grad-norms --skips off,on --skip-init",
    "grad-norms --histograms --block preact",
    "ics --block preact",
    "input-shift --block basic",
    "landscape --block basic",
    "nonlinearity --block preact",
    "shattered --block preact",
    "train --block plain --configs off,skip-init",
];

/// The first line the CLI prints on stderr for `line` (without `Error: `); its `--out` is the
/// scratch directory `dir` (one per test), where nothing is written.
fn cli_error(line: &str, dir: &str) -> String {
    let out = scratch_dir(dir);
    let mut args: Vec<&str> = line.split_whitespace().collect();
    let out_arg = out.display().to_string();
    args.extend(["--out", &out_arg]);
    let o = bn_lab_within(&args, Duration::from_secs(60)).expect("the CLI answers at once");
    assert!(!o.status.success(), "{line}: the CLI accepted it");
    let err = String::from_utf8_lossy(&o.stderr);
    let first = err.lines().next().unwrap_or_default();
    first.strip_prefix("Error: ").unwrap_or(first).to_string()
}

#[test]
fn the_server_refuses_a_bad_block_combination_in_the_clis_own_line() {
    let server = Server::start(&[]);
    for line in REFUSED {
        let a = server.get(&format!("/api/run?args={}", encode(line)));
        assert_eq!(a.status, 400, "{line}: {}", a.body);
        let message = a.json()["error"].as_str().expect("an error").to_string();
        assert!(!message.contains('\n'), "{line}: not one line: {message:?}");
        assert_eq!(
            message,
            cli_error(line, "live-page-blocks-cli"),
            "{line}: not the CLI's line"
        );
        assert!(message.contains("--"), "{line}: {message:?} names no flag");
    }
    // A good one: block arms with per-block norms and their stream.
    let line = "grad-norms --depth 4 --width 16 --batch 16 --skips off,preact-skipinit";
    let a = server.get(&format!("/api/run?args={}", encode(line)));
    assert_eq!(a.status, 200, "{}", a.body);
    let report = a.json()["report"].clone();
    let arms = report["arms"].as_array().expect("arms");
    let labels: Vec<&str> = arms.iter().filter_map(|a| a["label"].as_str()).collect();
    assert_eq!(
        labels,
        [
            "BN off, no skips",
            "BN off, preact+SkipInit",
            "BN on, no skips",
            "BN on, preact+SkipInit"
        ]
    );
    let block = &arms[1];
    assert_eq!(
        (&block["block"], &block["skip_init"]),
        (&json!("preact"), &json!(true))
    );
    assert_eq!(
        block["seeds"][0]["block_weight_grad_norm"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    assert_eq!(
        block["stream"]["predicted_std"].as_array().map(Vec::len),
        Some(5)
    );
    // The styles the page draws them with, from the figures' code.
    let styles = server.get("/api/arms").json();
    assert_eq!(
        styles["blocks"]["preact-skipinit"]["off"]["color"],
        styles["configs"]["skip-init"]["color"],
        "grad-norms' SkipInit arm in train's SkipInit colour: {styles}"
    );
    assert_eq!(
        styles["blocks"]["preact"]["on"]["marker"], "diamond",
        "{styles}"
    );
    assert_eq!(
        styles["configs"]["skip-init"]["label"], "SkipInit",
        "{styles}"
    );
    assert_ne!(
        styles["configs"]["skip-init"]["color"], styles["norms"]["off"]["color"],
        "train's SkipInit arm has its own colour"
    );
}

/// Set the form's block (and SkipInit, vs plain) and fire the form's `input` event.
fn pick(session: &Session, block: &str, skip_init: bool, vs_plain: bool) {
    session.call(
        "POST",
        "/execute/sync",
        Some(&json!({ "script": "
            document.getElementById('block').value = arguments[0];
            document.getElementById('skipinit').checked = arguments[1];
            const v = document.getElementById('vsplain');
            v.checked = arguments[2];
            v.dispatchEvent(new Event('input', { bubbles: true }));
            return 0;", "args": [block, skip_init, vs_plain] })),
    );
}

/// The drawn charts: each line's label, colour and marker path's presence, per chart.
const CHARTS: &str = "return Array.from(document.querySelectorAll('#charts svg')).map(svg => ({
    title: svg.querySelector('title').textContent,
    lines: Array.from(svg.querySelectorAll('g.line')).map(g => {
        const p = g.querySelector('path');
        return { label: g.dataset.label, color: p ? p.getAttribute('stroke') : null,
                 dash: p ? p.getAttribute('stroke-dasharray') : null,
                 marker: !!g.querySelector('path.marker') };
    }),
}));";

/// The solid (measured, not fitted or predicted) lines of one chart in [`CHARTS`]: each one's
/// label and whether it has markers.
fn solid_lines(lines: &serde_json::Value) -> Vec<(String, bool)> {
    lines
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| !l["color"].is_null() && l["dash"] == "none")
        .map(|l| {
            (
                l["label"].as_str().unwrap_or("").to_string(),
                l["marker"] == true,
            )
        })
        .collect()
}

#[test]
fn the_form_picks_preact_with_skipinit_and_the_charts_draw_block_arms_in_chromium() {
    let server = Server::start(&[]);
    let origin = format!("http://127.0.0.1:{}", server.port);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("live-page-blocks");
    session.set_viewport(1280, 800);
    let start = "grad-norms --depth 12 --width 64 --batch 64";
    let url = format!("{origin}/?args={}", encode(start));
    session.call("POST", "/url", Some(&json!({ "url": url })));
    shown(&session, start);

    pick(&session, "preact", true, false);
    let line = format!("{start} --block preact --skip-init");
    // SkipInit's branch weights get exactly 0: no weight line, and the page says why (in the
    // empty chart and under the table).
    let at = wait_for(
        &session,
        "preact + SkipInit drawn",
        &format!(
            "if (document.body.dataset.shown !== {line:?} || !document.getElementById('skipinit-note')) return null; \
             return {{ search: location.search, \
               empty: document.querySelector('#charts svg text.empty').textContent, \
               note: document.getElementById('skipinit-note').textContent }};"
        ),
    );
    assert_eq!(at["search"], format!("?args={}", encode(&line)), "{at}");
    assert!(
        at["empty"]
            .as_str()
            .is_some_and(|t| t.contains("exactly 0")),
        "{at}"
    );
    assert!(
        at["note"].as_str().is_some_and(|n| n.contains("alpha")),
        "{at}"
    );
    let charts = session.run(CHARTS);
    assert!(
        charts[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("per block")),
        "{charts}"
    );
    // The forward spread: the stream per block in SkipInit's colours, and its prediction.
    let forward = &charts[2]["lines"];
    let drawn: Vec<(&str, &str)> = forward
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| Some((l["label"].as_str()?, l["color"].as_str()?)))
        .collect();
    assert_eq!(
        drawn,
        [
            ("BN off", "#009e73"),
            ("BN on", "#cc79a7"),
            ("BN off predicted", "#009e73"),
            ("BN on predicted", "#cc79a7")
        ],
        "{charts}"
    );

    // Beside a plain stack, without SkipInit: per-block weight lines, the block's diamonds.
    pick(&session, "preact", false, true);
    let line = format!("{start} --skips off,preact");
    shown(&session, &line);
    let charts = session.run(CHARTS);
    let weight = solid_lines(&charts[0]["lines"]);
    assert_eq!(weight.len(), 4, "{charts}");
    assert!(weight.iter().any(|(l, _)| l == "BN on, preact"), "{charts}");
    let shots = scratch_dir("live-page-blocks");
    session.screenshot(&shots.join("preact_vs_plain.png"));
    pick(&session, "preact", true, true);
    shown(&session, &format!("{start} --skips off,preact-skipinit"));
    session.screenshot(&shots.join("preact_skipinit_vs_plain.png"));

    // A bad combination from the form: the CLI's line on the page, the charts left as they were.
    pick(&session, "plain", true, false);
    let error = wait_for(
        &session,
        "the error of SkipInit without a block",
        "const t = document.getElementById('error').textContent; return t ? t : null;",
    );
    assert_eq!(
        error,
        json!(cli_error(
            &format!("{start} --skip-init"),
            "live-page-blocks-form-cli"
        )),
        "{error}"
    );
}

#[test]
fn a_training_chart_draws_skipinit_in_its_own_colour_in_chromium() {
    let server = Server::start(&[]);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("live-page-blocks-train");
    let line =
        "train --block preact --depth 3 --width 16 --configs off,skip-init --lr 0.01 --steps 20";
    let url = format!("http://127.0.0.1:{}/?args={}", server.port, encode(line));
    session.call("POST", "/url", Some(&json!({ "url": url })));
    let legend = wait_for(
        &session,
        "the training chart's legend",
        &format!(
            "if (document.body.dataset.shown !== {line:?}) return null; \
             return Array.from(document.querySelectorAll('#charts ul.legend li')).map(li => \
             [li.textContent.trim(), getComputedStyle(li.querySelector('.swatch')).color]);"
        ),
    );
    assert_eq!(
        legend,
        json!([
            ["■ BN off, lr 0.01", "rgb(213, 94, 0)"],
            ["▲ SkipInit, lr 0.01", "rgb(0, 158, 115)"]
        ]),
        "{legend}"
    );
}
