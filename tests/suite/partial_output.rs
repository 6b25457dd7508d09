//! Every command writes all its files or none (issue 8, class 6): destinations are checked
//! before any work, a failed or interrupted run leaves neither temporaries nor the directories
//! it created, and stdout write errors are reported.

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bn_lab, scratch_dir};

const BIN: &str = env!("CARGO_BIN_EXE_bn-lab");

/// A grad-norms run that takes a fraction of a second.
const TINY: &[&str] = &["grad-norms", "--depth", "3", "--width", "8", "--batch", "4"];

/// A grad-norms run that takes many seconds: a refusal that comes back at once was made
/// before the work.
const SLOW: &[&str] = &[
    "grad-norms",
    "--depth",
    "200",
    "--width",
    "256",
    "--seeds",
    "1000",
];

fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// The names in `dir` (empty when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Non-zero exit (not a panic), one line on stderr starting `Error: ` that names `flag`,
/// nothing on stdout.
fn assert_one_line_error(o: &Output, flag: &str, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{what}: succeeded");
    assert_ne!(o.status.code(), Some(101), "{what}: panicked: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{what}: not one line: {stderr}"
    );
    assert!(stderr.starts_with("Error: "), "{what}: {stderr}");
    assert!(
        stderr.contains(flag),
        "{what}: does not name {flag}: {stderr}"
    );
    assert!(
        o.stdout.is_empty(),
        "{what}: stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    stderr
}

/// Run `args`, which must be refused before any work: quickly, even though `SLOW` takes long.
fn refused_before_work(args: &[&str], flag: &str, what: &str) -> String {
    let start = Instant::now();
    let o = bn_lab(args);
    let err = assert_one_line_error(&o, flag, what);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{what}: refused only after {:?}: {err}",
        start.elapsed()
    );
    err
}

// ---------------------------------------------------------------------------------------------
// Signals during the write phase.

/// Start a tiny run into `out` with the test hook `pause_var` holding it in its write phase,
/// wait until `ready(out)`, send `signal` with kill(1), and return how it ended.
fn interrupt(signal: &str, pause_var: &str, out: &Path, ready: fn(&Path) -> bool) -> Output {
    let mut child = Command::new(BIN)
        .args(TINY)
        .args(["--out", s(out)])
        .env(pause_var, "30000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bn-lab binary runs");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready(out) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before its write phase");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run never reached its write phase");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill(1) runs");
    assert!(sent.success(), "kill -{signal} failed");
    child.wait_with_output().unwrap()
}

/// A temporary of the run is in `dir`: the write phase has begun.
fn has_partial(dir: &Path) -> bool {
    names(dir).iter().any(|n| n.contains(".partial"))
}

/// The commit has moved its first file (the JSON) into place.
fn json_placed(dir: &Path) -> bool {
    dir.join("grad_norms.json").exists()
}

fn assert_interrupted(o: &Output, code: i32, name: &str) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{name}: {stderr}");
    assert_eq!(stderr.trim(), format!("Error: interrupted by {name}"));
}

#[test]
fn sigint_while_staging_removes_the_temporaries_and_the_out_dir_it_created() {
    let out = scratch_dir("sigint_staging").join("out");
    let o = interrupt("INT", "BN_LAB_TEST_WRITE_PAUSE_MS", &out, has_partial);
    assert_interrupted(&o, 130, "SIGINT");
    assert!(!out.exists(), "left {:?}", names(&out));
}

#[test]
fn sigterm_while_staging_leaves_an_existing_out_dir_as_it_was() {
    let out = scratch_dir("sigterm_staging");
    fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = interrupt("TERM", "BN_LAB_TEST_WRITE_PAUSE_MS", &out, has_partial);
    assert_interrupted(&o, 143, "SIGTERM");
    assert_eq!(names(&out), ["notes.txt"]);
}

#[test]
fn a_signal_in_the_middle_of_the_commit_removes_the_files_already_renamed() {
    for (signal, code, name) in [("TERM", 143, "SIGTERM"), ("HUP", 129, "SIGHUP")] {
        let parent = scratch_dir(&format!("signal_commit_{signal}"));
        let out = parent.join("a").join("b");
        let o = interrupt(signal, "BN_LAB_TEST_COMMIT_PAUSE_MS", &out, json_placed);
        assert_interrupted(&o, code, name);
        assert_eq!(names(&parent), Vec::<String>::new(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Destinations refused before any work.

#[test]
fn a_directory_where_a_figure_goes_is_refused_before_work() {
    let out = scratch_dir("dir_at_figure");
    fs::create_dir(out.join("grad_norms.png")).unwrap();
    let mut args = SLOW.to_vec();
    args.extend(["--out", s(&out)]);
    let err = refused_before_work(&args, "--out", "a directory named grad_norms.png");
    assert!(err.contains("grad_norms.png"), "{err}");
    assert!(err.contains("is a directory"), "{err}");
    assert_eq!(names(&out), ["grad_norms.png"]);
    assert_eq!(names(&out.join("grad_norms.png")), Vec::<String>::new());
}

#[test]
fn save_net_onto_a_file_the_command_writes_is_refused_before_work() {
    let parent = scratch_dir("save_net_collision");
    let out = parent.join("d");
    let same = [
        (out.join("grad_norms.json"), "its JSON"),
        (out.join(".").join("grad_norms.json"), "its JSON"),
        (parent.join("d/../d/grad_norms.png"), "its figure"),
    ];
    for (save, what) in &same {
        let mut args = SLOW.to_vec();
        args.extend(["--out", s(&out), "--save-net", s(save)]);
        let err = refused_before_work(&args, "--save-net", &format!("--save-net {save:?}"));
        assert!(err.contains("is where grad-norms writes"), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(!out.exists(), "--out {} was left behind", out.display());
    }
    // The same with an --out that exists: it stays as it was.
    fs::create_dir(&out).unwrap();
    let mut args = SLOW.to_vec();
    let save = out.join("grad_norms.json");
    args.extend(["--out", s(&out), "--save-net", s(&save)]);
    refused_before_work(
        &args,
        "--save-net",
        "--save-net onto the JSON, existing --out",
    );
    assert_eq!(names(&out), Vec::<String>::new());
}

#[test]
fn a_file_name_the_file_system_refuses_is_refused_before_work() {
    let out = scratch_dir("name_too_long");
    let long = out.join(format!("{}.json", "n".repeat(300)));
    let mut args = SLOW.to_vec();
    args.extend(["--out", s(&out), "--save-net", s(&long)]);
    let err = refused_before_work(&args, "--save-net", "a 305-byte --save-net name");
    assert!(err.to_lowercase().contains("too long"), "{err}");
    assert_eq!(names(&out), Vec::<String>::new());
}

#[test]
fn a_save_net_path_that_is_a_directory_or_names_none_is_refused_before_work() {
    let out = scratch_dir("save_net_dir");
    for save in [out.clone(), out.join("..")] {
        let mut args = SLOW.to_vec();
        args.extend(["--out", s(&out), "--save-net", s(&save)]);
        refused_before_work(&args, "--save-net", &format!("--save-net {save:?}"));
        assert_eq!(names(&out), Vec::<String>::new());
    }
}

// ---------------------------------------------------------------------------------------------
// Successful and failed runs.

#[test]
fn a_249_character_save_net_name_is_written() {
    let out = scratch_dir("long_save_net");
    let name = format!("{}.json", "n".repeat(244));
    assert_eq!(name.len(), 249);
    let save = out.join(&name);
    let mut args = TINY.to_vec();
    args.extend(["--out", s(&out), "--save-net", s(&save)]);
    let o = bn_lab(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let saved: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&save).unwrap()).unwrap();
    assert_eq!(saved["format"], "bn-lab-net-v1");
    let mut want = vec![
        "grad_norms.json".to_string(),
        "grad_norms.png".to_string(),
        "grad_norms_detail.png".to_string(),
        "grad_norms_theory.png".to_string(),
        name,
    ];
    want.sort();
    assert_eq!(names(&out), want);
}

#[test]
fn save_net_into_dev_full_fails_and_leaves_nothing() {
    if !Path::new("/dev/full").exists() {
        eprintln!("/dev/full not available; skipped");
        return;
    }
    // An --out the run creates disappears again; an existing one keeps only what it had.
    let parent = scratch_dir("dev_full");
    let created = parent.join("new").join("out");
    let existing = scratch_dir("dev_full_existing");
    for out in [&created, &existing] {
        let mut args = TINY.to_vec();
        args.extend(["--out", s(out), "--save-net", "/dev/full"]);
        let o = bn_lab(&args);
        let err = assert_one_line_error(&o, "--save-net", "--save-net /dev/full");
        assert!(err.contains("/dev/full"), "{err}");
        assert!(err.contains("No space left on device"), "{err}");
    }
    assert_eq!(names(&parent), Vec::<String>::new());
    assert_eq!(names(&existing), Vec::<String>::new());
}

#[test]
fn a_failed_run_removes_the_directories_it_created_and_only_those() {
    let parent = scratch_dir("failed_run_dirs");
    let kept = parent.join("kept");
    fs::create_dir(&kept).unwrap();
    let out = kept.join("x/y/z");
    let run = |save: &Path| {
        let mut args = TINY.to_vec();
        args.extend(["--out", s(&out), "--save-net", s(save)]);
        bn_lab(&args)
    };
    // Refused before work: --save-net onto the figure, with --out three levels deep.
    let o = run(&out.join("grad_norms.png"));
    assert_one_line_error(&o, "--save-net", "collision");
    assert_eq!(names(&kept), Vec::<String>::new());
    // Refused before work after --save-net's own new directories were made.
    let nets = kept.join("nets/deep");
    let o = run(&nets.join(format!("{}.json", "n".repeat(300))));
    assert_one_line_error(&o, "--save-net", "name too long");
    assert_eq!(names(&kept), Vec::<String>::new());
    // Failed at run time, writing into /dev/full.
    if Path::new("/dev/full").exists() {
        let o = run(Path::new("/dev/full"));
        assert_one_line_error(&o, "--save-net", "/dev/full");
        assert_eq!(names(&kept), Vec::<String>::new());
    }
    // A successful run keeps them.
    let o = run(&nets.join("net.json"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(nets.join("net.json").exists() && out.join("grad_norms.json").exists());
}

/// A figure that does not fit on the file system: one line naming the PNG, and nothing left.
/// Needs a private mount namespace with a 64 KiB tmpfs (unshare(1) as root); skipped without.
#[test]
fn a_full_file_system_gives_one_line_and_leaves_nothing() {
    let base = scratch_dir("full_fs");
    let mnt = base.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let stderr_file = base.join("stderr");
    let script = r#"mount -t tmpfs -o size=64k tmpfs "$1" || exit 97
"$2" grad-norms --depth 3 --width 8 --batch 4 --out "$1/out" 2>"$3"
echo "rc=$?"
ls -A "$1""#;
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            script,
            "sh",
            s(&mnt),
            BIN,
            s(&stderr_file),
        ])
        .stderr(Stdio::null())
        .output();
    let Ok(o) = o else {
        eprintln!("unshare not available; skipped");
        return;
    };
    if o.status.code() != Some(0) {
        eprintln!("no private tmpfs here ({}); skipped", o.status);
        return;
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = fs::read_to_string(&stderr_file).unwrap();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("rc=1"), "{stdout} / {stderr}");
    assert_eq!(
        lines.next(),
        None,
        "files left on the full file system: {stdout}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("Error: --out: cannot write '"),
        "{stderr}"
    );
    assert!(stderr.contains("grad_norms.png"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        !stderr.contains("Os {") && !stderr.contains("Error("),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// stdout.

fn run_with_stdout(args: &[&str], stdout: Stdio) -> Output {
    Command::new(BIN)
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .expect("the bn-lab binary runs")
}

#[test]
fn a_stdout_that_cannot_be_written_is_an_error() {
    if !Path::new("/dev/full").exists() {
        eprintln!("/dev/full not available; skipped");
        return;
    }
    let out = scratch_dir("stdout_full");
    let full = || Stdio::from(fs::File::create("/dev/full").unwrap());
    let bench = [
        "bench", "--json", "--steps", "1", "--warmup", "0", "--depth", "2", "--width", "4",
        "--batch", "4",
    ];
    let mut grad_norms = TINY.to_vec();
    grad_norms.extend(["--out", s(&out)]);
    let gradcheck = ["gradcheck"];
    for args in [&bench[..], &grad_norms, &gradcheck] {
        let o = run_with_stdout(args, full());
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            "Error: cannot write to stdout: No space left on device (os error 28)",
            "{args:?}"
        );
    }
}

#[test]
fn a_closed_pipe_on_stdout_exits_quietly() {
    let out = scratch_dir("stdout_closed");
    let mut args: Vec<&str> = TINY.to_vec();
    args.extend(["--out", s(&out)]);
    let mut child = Command::new(BIN)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let status: ExitStatus = o.status;
    assert!(status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.join("grad_norms.json").exists());
}
