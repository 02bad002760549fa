//! `forkexec N`: fork, exec `/bin/true` in the child, wait for it; N times. fork(2) rather than
//! std's Command, which may use posix_spawn/vfork: a real fork copies the address space and makes
//! the parent and child take copy-on-write faults.

use std::ffi::CStr;

const TRUE: &CStr = c"/bin/true";

pub fn run(n: u32) -> Result<(), String> {
    let mut ok = 0;
    for _ in 0..n {
        // SAFETY: the child only calls execv and _exit (async-signal-safe), as fork requires of
        // a program that may have other threads (this one has none).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            let argv = [TRUE.as_ptr(), std::ptr::null()];
            unsafe {
                libc::execv(TRUE.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child just created.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            ok += 1;
        }
    }
    println!("forkexec: {ok} of {n} children exec'd /bin/true and exited 0");
    if ok == n {
        Ok(())
    } else {
        Err(format!("forkexec: {} children failed", n - ok))
    }
}
