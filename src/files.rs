//! Files a user names for bn-lab to read (an experiment file, an IDX file): regular files
//! only, opened without waiting, since a named pipe or a device can block or never end.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Open `path` for reading without waiting on it: `Ok(Err(what it is))` for anything but a
/// regular file. Opening a FIFO for reading blocks until a writer appears, so on Unix it is
/// opened with `O_NONBLOCK` (which changes nothing for a regular file) and the opened file's own
/// metadata is checked, so nothing can be swapped in between.
pub fn open_regular(path: &Path) -> io::Result<Result<File, &'static str>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(Ok(file));
    }
    if kind.is_dir() {
        return Ok(Err("a directory"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Ok(Err("a FIFO"));
        }
        if kind.is_char_device() {
            return Ok(Err("a character device"));
        }
        if kind.is_block_device() {
            return Ok(Err("a block device"));
        }
        if kind.is_socket() {
            return Ok(Err("a socket"));
        }
    }
    Ok(Err("not a file"))
}
