//! Writing results, all or nothing: a command that writes files leaves every one of them in
//! place or none of them, and never leaves a temporary file, or a directory it created, behind.
//!
//! How (`commands::execute` drives it, the same for every experiment):
//!
//! 1. **Before any work**, [`Outputs::prepare`] creates `--out` (recording which levels it
//!    created) and checks every destination: `<out>/<STEM>.json`, each figure, each extra
//!    (`--save-net`). It refuses, in one line naming the flag, a destination that is an existing
//!    directory, whose directory cannot be written, whose name the file system does not accept
//!    (too long, say: the real name is created and removed again when it does not exist), or
//!    that is the same file as another destination (compared with canonical parents).
//! 2. [`export`] **stages** every file under a short temporary name in its destination's
//!    directory, `.bn-lab-PID-N.partial.EXT` ([`temp_path`]: its length does not depend on
//!    the destination's), or, for a destination that is an existing non-regular file or a
//!    symlink, keeps its bytes in memory.
//! 3. [`Staged::commit`] first **copies into** the destinations that are existing non-regular
//!    files or symlinks (`/dev/stdout`, a named pipe: written through, never replaced), because
//!    such a write can fail (`/dev/full`) and cannot be undone, and only then **renames** the
//!    staged regular files into place.
//! 4. **On an error**, the staged temporaries are removed (when [`Staged`] drops), so are the
//!    files a failed commit had already renamed into place, and the directories this run
//!    created are removed if they are empty (when [`Outputs`] drops without [`Outputs::keep`]).
//! 5. **On SIGINT, SIGTERM or SIGHUP**, at any time ([`install_signal_handler`]): the handler
//!    removes the live temporaries, the files an unfinished commit has moved into place and the
//!    directories the run created, and exits with 128 + the signal number (130, 143, 129).
//!
//! Every file and directory this module creates for a run is created while holding the lock of
//! one process-wide registry of them, and the signal handler keeps that lock from the moment it
//! starts cleaning until the process is gone, so nothing can appear after the cleanup. Figures
//! are therefore rendered in memory (a [`Figure`] returns its PNG's bytes) and written here with
//! [`write_file`].
//!
//! What cannot be undone: bytes already copied into a pipe or device, and an existing file
//! replaced by a rename of a commit that then fails (the checks make that unlikely). SIGKILL
//! cannot be caught.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::experiment::Extra;
use crate::plot::{Figure, Figures};
use rayon::prelude::*;

// ---------------------------------------------------------------------------------------------
// The registry of what this process created, for the signal handler.

/// What a signal must remove: every path this process created for its output and has not
/// handed over yet.
struct Registry {
    /// Temporary files (staged outputs, probes), created or about to be.
    temps: Vec<PathBuf>,
    /// Destinations an unfinished [`Staged::commit`] has already renamed into place.
    placed: Vec<PathBuf>,
    /// Directories created for a run, in creation order (outermost first), with the id of the
    /// [`Outputs`] that created them.
    dirs: Vec<(u64, PathBuf)>,
    /// Temporary directory trees ([`StagedDir`]), removed whole.
    trees: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    temps: Vec::new(),
    placed: Vec::new(),
    dirs: Vec::new(),
    trees: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    fn forget_temp(&mut self, path: &Path) {
        if let Some(i) = self.temps.iter().position(|t| t == path) {
            self.temps.swap_remove(i);
        }
    }

    /// Remove every registered file, then the registered directories that are empty,
    /// innermost first.
    fn remove_everything(&mut self) {
        for path in self.temps.drain(..) {
            let _ = fs::remove_file(path);
        }
        for path in self.placed.drain(..) {
            let _ = fs::remove_file(path);
        }
        for tree in self.trees.drain(..) {
            let _ = fs::remove_dir_all(tree);
        }
        for (_, dir) in self.dirs.drain(..).rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Catch SIGINT, SIGTERM and SIGHUP for the rest of the process (installed once; later calls
/// do nothing): on any of them, remove this run's temporaries, the files of an unfinished
/// commit and the directories the run created, print `Error: interrupted by SIG...` and exit
/// with 128 + the signal number. The work in progress is not waited for.
pub fn install_signal_handler() -> Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(|e| e.to_string())?;
            std::thread::Builder::new()
                .name("bn-lab-signals".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        interrupted(signal);
                    }
                })
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow!("cannot install the signal handler: {e}"))
}

/// Clean up after `signal` and exit. The registry stays locked until the process is gone, so
/// the interrupted work cannot create anything after the cleanup.
fn interrupted(signal: i32) -> ! {
    let mut registry = registry();
    registry.remove_everything();
    let name = match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    };
    let stderr = io::stderr();
    // On a terminal the progress bar (or `^C`) holds the current line.
    let newline = if stderr.is_terminal() { "\n" } else { "" };
    let _ = writeln!(stderr.lock(), "{newline}Error: interrupted by {name}");
    std::process::exit(128 + signal)
}

// ---------------------------------------------------------------------------------------------
// Creating files and directories under the registry's lock.

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// Longest extension a temporary name keeps (longer ones are dropped, so the temporary name
/// stays short whatever the destination is called).
const MAX_TEMP_EXT: usize = 8;

/// A fresh temporary name in `path`'s directory: `.bn-lab-PID-N.partial.EXT`, keeping a short
/// alphanumeric extension of `path` (plotters and image viewers go by it), independent of the
/// length of `path`'s file name.
pub fn temp_path(path: &Path) -> PathBuf {
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let ext = path.extension().and_then(|e| e.to_str()).filter(|e| {
        !e.is_empty() && e.len() <= MAX_TEMP_EXT && e.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    let name = match ext {
        Some(ext) => format!(".bn-lab-{pid}-{n}.partial.{ext}"),
        None => format!(".bn-lab-{pid}-{n}.partial"),
    };
    path.with_file_name(name)
}

/// Create `path`, which must not exist yet, as a temporary of this process: registered before
/// the lock is released, so an error or a signal removes it.
fn create_temp(path: &Path) -> io::Result<File> {
    let mut registry = registry();
    let file = File::create_new(path)?;
    registry.temps.push(path.to_path_buf());
    Ok(file)
}

/// Register `path` as a temporary that something else will create (with [`write_file`]).
fn register_temp(path: &Path) {
    registry().temps.push(path.to_path_buf());
}

/// Remove the temporary `path` and forget it.
fn remove_temp(path: &Path) {
    let mut registry = registry();
    let _ = fs::remove_file(path);
    registry.forget_temp(path);
}

/// Create (or truncate) `path` and write `bytes` into it, creating the file under the lock of
/// the registry of this process's output files: a signal handler that has started cleaning up
/// is never raced by a file appearing afterwards. Every file drawn into a path [`Staged`] hands
/// out is written this way ([`export`] writes each figure's PNG bytes with it).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = {
        let _registry = registry();
        File::create(path)?
    };
    file.write_all(bytes)
}

/// Write `bytes` to `path` all or nothing: into a registered temporary beside it, then renamed
/// into place (an error or a signal removes the temporary). For files outside an experiment's
/// own outputs (`bn-lab reproduce`'s page and summary).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let written = create_temp(&tmp).and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()));
    let renamed = written.and_then(|()| {
        let mut registry = registry();
        fs::rename(&tmp, path)?;
        registry.forget_temp(&tmp);
        Ok(())
    });
    if let Err(e) = renamed {
        remove_temp(&tmp);
        return Err(anyhow!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}

/// `path`'s directory (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Create `dir` and its missing parents one level at a time, registering each level created
/// under `owner` (when given) so a failed or interrupted run can remove it again.
fn create_levels(dir: &Path, owner: Option<u64>) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut level = Some(dir);
    while let Some(d) = level.filter(|d| !d.as_os_str().is_empty()) {
        match fs::metadata(d) {
            Ok(m) if m.is_dir() => break,
            // An existing file: `create_dir` below reports it ("File exists").
            Ok(_) => {
                missing.push(d);
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(d);
                level = d.parent();
            }
            Err(e) => return Err(e),
        }
    }
    for d in missing.iter().rev() {
        let mut registry = registry();
        match fs::create_dir(d) {
            Ok(()) => {
                if let Some(owner) = owner {
                    registry.dirs.push((owner, d.to_path_buf()));
                }
            }
            // Created meanwhile by someone else: not ours to remove.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Create `dir` (the levels created registered under `owner`) and check that a file can be
/// created in it, with a probe that is removed again.
fn make_dir(dir: &Path, flag: &str, owner: Option<u64>) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    create_levels(dir, owner)
        .map_err(|e| anyhow!("{flag}: cannot create directory '{}': {e}", dir.display()))?;
    let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
    let probe = dir.join(format!(".bn-lab-{}-{n}.probe", std::process::id()));
    create_temp(&probe)
        .map_err(|e| anyhow!("{flag}: cannot write in directory '{}': {e}", dir.display()))?;
    remove_temp(&probe);
    Ok(())
}

/// Create `dir` (and parents) and check that a file can be written in it. `flag` names the
/// option the path came from, for the error message. The directories stay whatever happens
/// next; [`Outputs::prepare`] is the variant that removes them again after a failure.
pub fn prepare_dir(dir: &Path, flag: &str) -> Result<()> {
    make_dir(dir, flag, None)
}

/// Check that `file` can be created (or replaced, or written into when it is a device or a
/// pipe), without leaving it behind; its directory is created if missing, as by
/// [`prepare_dir`].
pub fn check_file_writable(file: &Path, flag: &str) -> Result<()> {
    file_name(file, flag)?;
    prepare_dir(&parent_dir(file), flag)?;
    check_destination(file, flag, None)
}

/// `path`'s file name, or the refusal of a path that names no file (`..`, `/`).
fn file_name<'p>(path: &'p Path, flag: &str) -> Result<&'p std::ffi::OsStr> {
    path.file_name()
        .ok_or_else(|| anyhow!("{flag}: '{}' is not a file path", path.display()))
}

/// Whether `path` is written into rather than replaced: an existing symlink (written through
/// to its target) or an existing non-regular file (`/dev/stdout`, a pipe, a device).
fn is_special(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        || fs::metadata(path).is_ok_and(|m| !m.is_file())
}

/// Check one destination whose directory exists and is writable: not a directory, and, when
/// it does not exist, a name the file system accepts (proved by creating it and removing it
/// again; an existing file is never opened). `what` says, for a command's own outputs, what
/// the command writes there.
fn check_destination(path: &Path, flag: &str, what: Option<&str>) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => {
            if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
                match what {
                    Some(what) => bail!(
                        "{flag}: '{}' is a directory, where {what}; remove it or choose another {flag}",
                        path.display()
                    ),
                    None => bail!(
                        "{flag}: '{}' is a directory, expected a file path",
                        path.display()
                    ),
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            create_temp(path)
                .map_err(|e| anyhow!("{flag}: cannot create '{}': {e}", path.display()))?;
            remove_temp(path);
            Ok(())
        }
        Err(e) => bail!("{flag}: cannot create '{}': {e}", path.display()),
    }
}

/// Where `path` is, for comparing destinations: the canonical file when it exists, else its
/// canonical directory joined with its name (the directory exists once prepared).
fn identity(path: &Path, name: &std::ffi::OsStr) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| {
        fs::canonicalize(parent_dir(path))
            .unwrap_or_else(|_| parent_dir(path))
            .join(name)
    })
}

// ---------------------------------------------------------------------------------------------
// One run's destinations.

/// One file a run will write: where, from which flag, and what goes there.
struct Destination {
    path: PathBuf,
    flag: String,
    /// What the command writes there (`grad-norms writes its JSON`), for its own outputs;
    /// `None` for an extra.
    what: Option<String>,
}

static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

/// The destinations of one run, checked before any work ([`Outputs::prepare`]). Dropped
/// without [`Outputs::keep`] (the run failed), it removes the directories it created, those
/// still empty, innermost first.
#[must_use = "dropping Outputs removes the directories it created"]
pub struct Outputs {
    id: u64,
    keep: bool,
}

impl Outputs {
    /// Prepare the output directory `dir` (`--out`) and check every file experiment `E` will
    /// write: `<dir>/<STEM>.json`, each figure and each extra (their directories are created
    /// too). Errors name the flag and come before any work: see the module docs.
    pub fn prepare<E: Figures>(
        dir: &Path,
        figures: &[Figure<E::Report>],
        extras: &[Extra<E::Report>],
    ) -> Result<Self> {
        let outputs = Outputs {
            id: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            keep: false,
        };
        make_dir(dir, "--out", Some(outputs.id))?;
        let mut dests = vec![Destination {
            path: dir.join(format!("{}.json", E::STEM)),
            flag: "--out".into(),
            what: Some(format!("{} writes its JSON", E::NAME)),
        }];
        for fig in figures {
            dests.push(Destination {
                path: dir.join(fig.file),
                flag: "--out".into(),
                what: Some(format!("{} writes its figure {}", E::NAME, fig.file)),
            });
        }
        for extra in extras {
            dests.push(Destination {
                path: extra.path.clone(),
                flag: extra.flag.into(),
                what: None,
            });
        }
        outputs.check(&dests)?;
        Ok(outputs)
    }

    fn check(&self, dests: &[Destination]) -> Result<()> {
        let mut seen: Vec<(PathBuf, &Destination)> = Vec::new();
        for d in dests {
            let name = file_name(&d.path, &d.flag)?;
            if d.what.is_none() {
                make_dir(&parent_dir(&d.path), &d.flag, Some(self.id))?;
            }
            let id = identity(&d.path, name);
            if let Some((_, first)) = seen.iter().find(|(seen_id, _)| *seen_id == id) {
                let whose = match &first.what {
                    Some(what) => what.clone(),
                    None => format!("{} writes", first.flag),
                };
                bail!(
                    "{}: '{}' is where {whose}; choose another path",
                    d.flag,
                    d.path.display()
                );
            }
            check_destination(&d.path, &d.flag, d.what.as_deref())?;
            seen.push((id, d));
        }
        Ok(())
    }

    /// The run succeeded: the directories it created stay.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        let mut registry = registry();
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut registry.dirs)
            .into_iter()
            .partition(|(owner, _)| *owner == self.id);
        registry.dirs = others;
        if !self.keep {
            for (_, dir) in mine.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A whole directory, staged.

/// A directory built under a temporary name beside its destination (`.bn-lab-PID-N.partial`
/// in the same parent, so the move is a rename) and put in place whole by
/// [`StagedDir::commit`], replacing what was there. Dropped uncommitted (a failure), or on a
/// signal, the temporary tree is removed whole and the destination is as it was: `bn-lab
/// reproduce`'s `--out`.
#[must_use = "dropping a StagedDir removes what was staged in it"]
pub struct StagedDir {
    /// Where the directory goes: absolute, links resolved when it exists.
    dest: PathBuf,
    /// The temporary directory being filled.
    tmp: PathBuf,
    /// Owns the parent directories created for `dest`.
    parents: Outputs,
}

impl StagedDir {
    /// Check `dest` (from `flag`) and create the temporary directory beside it. An existing
    /// `dest` must be a directory that is empty or that `replaceable` accepts (a previous
    /// output of the same command): anything else is refused, since a commit replaces it
    /// whole. `what` says what the directory holds, for the refusal.
    pub fn create(
        dest: &Path,
        flag: &str,
        what: &str,
        replaceable: impl Fn(&Path) -> bool,
    ) -> Result<StagedDir> {
        let shown = dest.display();
        let dest = match fs::canonicalize(dest) {
            Ok(real) => {
                if !real.is_dir() {
                    bail!("{flag}: '{shown}' exists and is not a directory");
                }
                let empty = fs::read_dir(&real)
                    .map_err(|e| anyhow!("{flag}: cannot read directory '{shown}': {e}"))?
                    .next()
                    .is_none();
                if !empty && !replaceable(&real) {
                    bail!(
                        "{flag}: '{shown}' holds files that are not {what}, and this would replace it whole; choose a new or empty directory"
                    );
                }
                real
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::path::absolute(dest)
                .map_err(|e| anyhow!("{flag}: cannot use '{shown}': {e}"))?,
            Err(e) => bail!("{flag}: cannot use '{shown}': {e}"),
        };
        if dest.file_name().is_none() || dest.parent().is_none() {
            bail!(
                "{flag}: '{shown}' is not a directory this can replace; choose a directory below it"
            );
        }
        let parent = parent_dir(&dest);
        let parents = Outputs {
            id: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            keep: false,
        };
        make_dir(&parent, flag, Some(parents.id))?;
        let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".bn-lab-{}-{n}.partial", std::process::id()));
        {
            let mut registry = registry();
            fs::create_dir(&tmp).map_err(|e| {
                anyhow!(
                    "{flag}: cannot create a directory in '{}': {e}",
                    parent.display()
                )
            })?;
            registry.trees.push(tmp.clone());
        }
        Ok(StagedDir { dest, tmp, parents })
    }

    /// The temporary directory to fill.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Put the staged directory in place of the destination, replacing it whole. Done under the
    /// registry's lock, so a signal sees either the old directory or the new one.
    pub fn commit(mut self) -> Result<()> {
        let mut registry = registry();
        let old = if fs::symlink_metadata(&self.dest).is_ok() {
            let n = NEXT_NAME.fetch_add(1, Ordering::Relaxed);
            let old =
                parent_dir(&self.dest).join(format!(".bn-lab-{}-{n}.old", std::process::id()));
            fs::rename(&self.dest, &old)
                .map_err(|e| anyhow!("cannot replace '{}': {e}", self.dest.display()))?;
            Some(old)
        } else {
            None
        };
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            if let Some(old) = &old {
                let _ = fs::rename(old, &self.dest);
            }
            bail!(
                "cannot move the new '{}' into place: {e}",
                self.dest.display()
            );
        }
        registry.trees.retain(|t| *t != self.tmp);
        if let Some(old) = old {
            let _ = fs::remove_dir_all(old);
        }
        drop(registry);
        self.parents.keep = true;
        Ok(())
    }
}

impl Drop for StagedDir {
    fn drop(&mut self) {
        let mut registry = registry();
        if let Some(i) = registry.trees.iter().position(|t| *t == self.tmp) {
            registry.trees.swap_remove(i);
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Staging and committing.

/// Where a staged file's bytes are until the commit.
enum Source {
    /// A temporary file beside the destination, renamed (or copied) into place.
    Temp(PathBuf),
    /// Bytes for a destination that is written into, not replaced.
    Bytes(Vec<u8>),
    /// Renamed into place by the commit.
    Moved,
}

struct Entry {
    dest: PathBuf,
    source: Source,
    /// The flag `dest` came from, named in errors.
    flag: Option<String>,
}

/// "cannot write 'path'", after the flag the path came from when known.
fn cannot_write(flag: Option<&str>, path: &Path) -> String {
    match flag {
        Some(flag) => format!("{flag}: cannot write '{}'", path.display()),
        None => format!("cannot write '{}'", path.display()),
    }
}

impl Entry {
    fn cannot_write(&self) -> String {
        cannot_write(self.flag.as_deref(), &self.dest)
    }
}

/// Files staged under temporary names, moved into place together by [`Staged::commit`] and
/// removed if dropped uncommitted.
#[derive(Default)]
pub struct Staged {
    files: Vec<Entry>,
}

impl Staged {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stage `bytes` for `path`: in a temporary sibling, or in memory when `path` is a device,
    /// a pipe or a symlink (written into at the commit).
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.stage(None, path, bytes)
    }

    /// [`Staged::write`] for a path that came from `flag`, which errors name.
    pub fn write_flagged(&mut self, flag: &str, path: &Path, bytes: &[u8]) -> Result<()> {
        self.stage(Some(flag), path, bytes)
    }

    fn stage(&mut self, flag: Option<&str>, path: &Path, bytes: &[u8]) -> Result<()> {
        let flag = flag.map(str::to_string);
        if is_special(path) {
            self.files.push(Entry {
                dest: path.to_path_buf(),
                source: Source::Bytes(bytes.to_vec()),
                flag,
            });
            return Ok(());
        }
        let tmp = temp_path(path);
        let context = || cannot_write(flag.as_deref(), path);
        let mut file = create_temp(&tmp).with_context(context)?;
        self.files.push(Entry {
            dest: path.to_path_buf(),
            source: Source::Temp(tmp),
            flag: flag.clone(),
        });
        file.write_all(bytes).with_context(context)
    }

    /// Let `draw` write to a temporary sibling of `path`, which keeps `path`'s extension;
    /// `draw` must create it with [`write_file`].
    pub fn write_with(
        &mut self,
        path: &Path,
        draw: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        self.write_with_flagged(None, path, draw)
    }

    /// [`Staged::write_with`] for a path that came from `flag` (when given), which errors name.
    pub fn write_with_flagged(
        &mut self,
        flag: Option<&str>,
        path: &Path,
        draw: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let (tmp, context) = self.stage_temp(flag, path);
        draw(&tmp).context(context)
    }

    /// Stage `path` to be written through a temporary file; returns the temporary path to
    /// write (a caller may do so on another thread) and the context of an error writing it.
    pub fn stage_temp(&mut self, flag: Option<&str>, path: &Path) -> (PathBuf, String) {
        let tmp = temp_path(path);
        register_temp(&tmp);
        let entry = Entry {
            dest: path.to_path_buf(),
            source: Source::Temp(tmp.clone()),
            flag: flag.map(str::to_string),
        };
        let context = entry.cannot_write();
        self.files.push(entry);
        (tmp, context)
    }

    /// Move every staged file into place: first write into the destinations that exist and are
    /// not regular files (`/dev/stdout`, a pipe, a symlink), which can fail (`/dev/full`) and
    /// cannot be undone, then rename the others into place. A failed rename removes the files
    /// this commit had already renamed, so the regular destinations get all the files or none.
    pub fn commit(mut self) -> Result<()> {
        for entry in &self.files {
            let written = match &entry.source {
                Source::Bytes(bytes) => write_into(&entry.dest, |f| f.write_all(bytes)),
                Source::Temp(tmp) if is_special(&entry.dest) => write_into(&entry.dest, |f| {
                    io::copy(&mut File::open(tmp)?, f).map(drop)
                }),
                _ => continue,
            };
            written.map_err(|e| anyhow!("{}: {e}", entry.cannot_write()))?;
        }
        let mut placed: Vec<PathBuf> = Vec::new();
        let renamed = self.rename_all(&mut placed);
        {
            let mut registry = registry();
            registry.placed.retain(|p| !placed.contains(p));
            if renamed.is_err() {
                for path in &placed {
                    let _ = fs::remove_file(path);
                }
            }
        }
        renamed
    }

    /// Rename the staged temporaries of regular destinations into place, recording each one in
    /// `placed` (and, for the signal handler, in the registry) as it lands.
    fn rename_all(&mut self, placed: &mut Vec<PathBuf>) -> Result<()> {
        for entry in &mut self.files {
            let Source::Temp(tmp) = &entry.source else {
                continue;
            };
            if is_special(&entry.dest) {
                continue;
            }
            {
                let mut registry = registry();
                fs::rename(tmp, &entry.dest)
                    .map_err(|e| anyhow!("{}: {e}", entry.cannot_write()))?;
                registry.forget_temp(tmp);
                registry.placed.push(entry.dest.clone());
            }
            placed.push(entry.dest.clone());
            entry.source = Source::Moved;
            if placed.len() == 1 {
                test_pause("BN_LAB_TEST_COMMIT_PAUSE_MS");
            }
        }
        Ok(())
    }
}

/// Open the existing `dest` for writing (truncated if it is a file a symlink points to) and
/// let `write` fill it.
fn write_into(dest: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dest)?;
    write(&mut file)?;
    file.flush()
}

impl Drop for Staged {
    fn drop(&mut self) {
        for entry in &self.files {
            if let Source::Temp(tmp) = &entry.source {
                remove_temp(tmp);
            }
        }
    }
}

/// Test hook, not for users: when the environment variable `var` holds a number of
/// milliseconds, sleep that long. `BN_LAB_TEST_WRITE_PAUSE_MS` pauses [`export`] after its
/// first file is staged, `BN_LAB_TEST_COMMIT_PAUSE_MS` pauses [`Staged::commit`] after its
/// first rename, so `tests/suite/partial_output.rs` can send a signal in the middle of the write
/// phase deterministically.
fn test_pause(var: &str) {
    if let Some(ms) = std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Write everything an experiment produces, all or nothing: `<dir>/<STEM>.json` (the `json`
/// given, serialised once by the caller), every figure of [`Figures::figures`], and the
/// extras. Returns the paths in the order the summary names them: figures, JSON, extras.
/// The destinations should have been checked by [`Outputs::prepare`].
pub fn export<E: Figures>(
    report: &E::Report,
    json: &str,
    dir: &Path,
    figures: &[Figure<E::Report>],
    extras: &[Extra<E::Report>],
) -> Result<Vec<PathBuf>> {
    let mut staged = Staged::new();
    let mut written = Vec::new();
    let json_path = dir.join(format!("{}.json", E::STEM));
    staged.write_flagged("--out", &json_path, json.as_bytes())?;
    test_pause("BN_LAB_TEST_WRITE_PAUSE_MS");
    // The figures are independent: drawn side by side on rayon's pool, each PNG written into
    // its own staged file as soon as it is drawn (so only the figures being drawn are held);
    // the first failure (in figure order) is the one reported.
    let temps: Vec<(PathBuf, String)> = figures
        .iter()
        .map(|fig| {
            let path = dir.join(fig.file);
            let staged_as = staged.stage_temp(Some("--out"), &path);
            written.push(path);
            staged_as
        })
        .collect();
    let drawn: Vec<Result<()>> = figures
        .par_iter()
        .zip(temps.par_iter())
        .map(|(fig, (tmp, context))| {
            (fig.draw)(report)
                .and_then(|png| Ok(write_file(tmp, &png.bytes)?))
                .context(context.clone())
        })
        .collect();
    drawn.into_iter().collect::<Result<Vec<()>>>()?;
    written.push(json_path);
    for extra in extras {
        staged.write_flagged(extra.flag, &extra.path, &(extra.bytes)(report)?)?;
        written.push(extra.path.clone());
    }
    staged.commit()?;
    Ok(written)
}

/// `a`, `a and b`, `a, b and c`.
pub fn join_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bn-lab-output-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn temporary_names_are_short_whatever_the_destination_is_called() {
        let long = format!("{}.json", "n".repeat(244));
        let tmp = temp_path(&Path::new("d").join(&long));
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(".bn-lab-") && name.ends_with(".partial.json"));
        assert!(name.len() < 48, "{name}");
        assert_eq!(tmp.parent(), Some(Path::new("d")));
        // A long or odd extension is dropped, not copied into the temporary name.
        let odd = temp_path(Path::new(&format!("x.{}", "e".repeat(200))));
        assert!(odd.to_str().unwrap().ends_with(".partial"), "{odd:?}");
        assert_ne!(temp_path(Path::new("a.png")), temp_path(Path::new("a.png")));
    }

    #[test]
    fn a_commit_moves_every_file_and_an_uncommitted_stage_leaves_nothing() {
        let dir = scratch("commit");
        let mut staged = Staged::new();
        staged.write(&dir.join("a.json"), b"a").unwrap();
        staged
            .write_with(&dir.join("b.png"), |tmp| {
                write_file(tmp, b"b")?;
                Ok(())
            })
            .unwrap();
        assert_eq!(names(&dir).len(), 2);
        assert!(names(&dir).iter().all(|n| n.contains(".partial")));
        staged.commit().unwrap();
        assert_eq!(names(&dir), ["a.json", "b.png"]);
        assert_eq!(fs::read(dir.join("b.png")).unwrap(), b"b");

        let mut staged = Staged::new();
        staged.write(&dir.join("c.json"), b"c").unwrap();
        let failed = staged.write_with(&dir.join("d.png"), |tmp| {
            write_file(tmp, b"half")?;
            bail!("drawing failed")
        });
        let err = format!("{:#}", failed.unwrap_err());
        assert!(
            err.starts_with("cannot write '") && err.contains("d.png"),
            "{err}"
        );
        drop(staged);
        assert_eq!(names(&dir), ["a.json", "b.png"]);
        assert!(registry().temps.iter().all(|t| !t.starts_with(&dir)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_cannot_be_written_says_why_in_one_line() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let err = write_file(Path::new("/dev/full"), b"png").unwrap_err();
        assert_eq!(err.to_string(), "No space left on device (os error 28)");
        let err = write_file(Path::new("/nonexistent-bn-lab-dir/f.png"), b"png").unwrap_err();
        assert_eq!(err.to_string(), "No such file or directory (os error 2)");
    }

    #[test]
    fn a_device_is_written_before_any_rename_and_its_failure_leaves_nothing() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let dir = scratch("dev_full");
        let mut staged = Staged::new();
        staged.write(&dir.join("a.json"), b"a").unwrap();
        staged
            .write_flagged("--save-net", Path::new("/dev/full"), b"net")
            .unwrap();
        let err = format!("{:#}", staged.commit().unwrap_err());
        assert_eq!(
            err,
            "--save-net: cannot write '/dev/full': No space left on device (os error 28)"
        );
        assert_eq!(names(&dir), Vec::<String>::new());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_run_removes_only_the_empty_directories_it_created() {
        let dir = scratch("created_dirs");
        let out = dir.join("a/b/c");
        let outputs = Outputs {
            id: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            keep: false,
        };
        make_dir(&out, "--out", Some(outputs.id)).unwrap();
        fs::write(dir.join("a/keep.txt"), b"x").unwrap();
        drop(outputs);
        // b and c were empty; a holds a file someone else put there.
        assert_eq!(names(&dir.join("a")), ["keep.txt"]);

        let outputs = Outputs {
            id: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            keep: false,
        };
        make_dir(&out, "--out", Some(outputs.id)).unwrap();
        outputs.keep();
        assert!(out.is_dir());
        assert!(registry().dirs.iter().all(|(_, d)| !d.starts_with(&dir)));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_destination_is_checked_without_being_left_behind() {
        let dir = scratch("check_file");
        check_file_writable(&dir.join("net.json"), "--save-net").unwrap();
        check_file_writable(&dir.join("new/net.json"), "--save-net").unwrap();
        assert_eq!(names(&dir), ["new"]);
        assert_eq!(names(&dir.join("new")), Vec::<String>::new());
        let err = check_file_writable(&dir, "--save-net").unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        let long = dir.join("n".repeat(300));
        let err = check_file_writable(&long, "--save-net").unwrap_err();
        assert!(
            err.to_string().starts_with("--save-net: cannot create '"),
            "{err}"
        );
        let err = check_file_writable(Path::new("/"), "--save-net").unwrap_err();
        assert!(err.to_string().contains("is not a file path"), "{err}");
        // An existing file is neither opened nor truncated.
        fs::write(dir.join("old.json"), b"old").unwrap();
        check_file_writable(&dir.join("old.json"), "--save-net").unwrap();
        assert_eq!(fs::read(dir.join("old.json")).unwrap(), b"old");
        fs::remove_dir_all(&dir).unwrap();
    }
}
