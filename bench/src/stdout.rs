//! Keeping the server's log lines out of a bench's figures: herald writes one JSON log line
//! and one EMF line per request to stdout, so while an in-process server runs, file
//! descriptor 1 points elsewhere and the figures go to the saved original.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

/// Points fd 1 at `path` and returns a handle on the original stdout.
pub fn redirect_stdout(path: &Path) -> io::Result<File> {
    io::stdout().flush()?;
    // SAFETY: dup and dup2 on descriptors this process owns; the duplicate becomes a File
    // that owns it.
    let saved = unsafe { libc::dup(1) };
    if saved < 0 {
        return Err(io::Error::last_os_error());
    }
    let saved = unsafe { File::from_raw_fd(saved) };
    let target = OpenOptions::new().create(true).append(true).open(path)?;
    if unsafe { libc::dup2(target.as_raw_fd(), 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(saved)
}
