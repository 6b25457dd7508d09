//! Writing results: output directories checked before any work starts, and files written to a
//! temporary name and renamed into place, so a failure never leaves a half-written file.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use crate::plot::Figures;

/// Create `dir` (and parents) and check that a file can be written in it. `flag` names the
/// option the path came from, for the error message.
pub fn prepare_dir(dir: &Path, flag: &str) -> Result<()> {
    fs::create_dir_all(dir)
        .map_err(|e| anyhow!("{flag}: cannot create directory '{}': {e}", dir.display()))?;
    let probe = dir.join(format!(".bn-lab-write-test-{}", std::process::id()));
    fs::write(&probe, b"")
        .map_err(|e| anyhow!("{flag}: cannot write in directory '{}': {e}", dir.display()))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Check that `file` can be created, without leaving it behind.
pub fn check_file_writable(file: &Path, flag: &str) -> Result<()> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if file.is_dir() {
        return Err(anyhow!(
            "{flag}: '{}' is a directory, expected a file path",
            file.display()
        ));
    }
    prepare_dir(&dir, flag)
}

/// A temporary sibling of `path` that keeps its extension (plotters picks the image format from it).
pub fn temp_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!(
            ".{stem}.partial-{}.{}",
            std::process::id(),
            ext.to_string_lossy()
        ),
        None => format!(".{stem}.partial-{}", std::process::id()),
    };
    path.with_file_name(name)
}

/// Files staged under temporary names, moved into place together by [`Staged::commit`] and
/// removed if dropped uncommitted.
#[derive(Default)]
pub struct Staged {
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    pub fn new() -> Self {
        Self::default()
    }

    /// Write `bytes` to a temporary sibling of `path`.
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = temp_path(path);
        self.files.push((tmp.clone(), path.to_path_buf()));
        fs::write(&tmp, bytes).with_context(|| format!("cannot write '{}'", path.display()))
    }

    /// Let `draw` write to a temporary sibling of `path`.
    pub fn write_with(
        &mut self,
        path: &Path,
        draw: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<()> {
        let tmp = temp_path(path);
        self.files.push((tmp.clone(), path.to_path_buf()));
        draw(&tmp).with_context(|| format!("cannot write '{}'", path.display()))
    }

    /// Move every staged file into place: a rename, or, where the destination exists and is not
    /// a regular file (`/dev/stdout`, a named pipe), a copy into it, so such a path is written to
    /// and never replaced.
    pub fn commit(mut self) -> Result<()> {
        for (tmp, dest) in std::mem::take(&mut self.files) {
            let special = fs::metadata(&dest).is_ok_and(|m| !m.is_file());
            let moved = if special {
                fs::copy(&tmp, &dest).and_then(|_| fs::remove_file(&tmp))
            } else {
                fs::rename(&tmp, &dest)
            };
            if let Err(e) = moved {
                let _ = fs::remove_file(&tmp);
                return Err(anyhow!("cannot write '{}': {e}", dest.display()));
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// A file written beside an experiment's JSON and figures (`--save-net`): its path and how to
/// make its bytes from the report.
pub struct Extra<'a, R> {
    pub path: PathBuf,
    /// The flag the path came from, for error messages.
    pub flag: &'a str,
    pub bytes: &'a (dyn Fn(&R) -> Result<Vec<u8>> + Sync),
}

/// Write everything an experiment produces, all or nothing: `<dir>/<STEM>.json` (the `json`
/// given, serialised once by the caller), every figure of [`Figures::figures`], and the
/// extras. Returns the paths in the order the summary names them: figures, JSON, extras.
pub fn export<E: Figures>(
    report: &E::Report,
    json: &str,
    dir: &Path,
    extras: &[Extra<'_, E::Report>],
) -> Result<Vec<PathBuf>> {
    let mut staged = Staged::new();
    let mut written = Vec::new();
    let json_path = dir.join(format!("{}.json", E::STEM));
    staged.write(&json_path, json.as_bytes())?;
    for fig in E::figures() {
        let path = dir.join(fig.file);
        staged.write_with(&path, |tmp| (fig.draw)(report, tmp))?;
        written.push(path);
    }
    written.push(json_path);
    for extra in extras {
        staged.write(&extra.path, &(extra.bytes)(report)?)?;
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
