//! Scheduling of the calling thread: nice value, SCHED_BATCH, CPU pinning.

use std::io;

/// The calling thread's nice value (0 if it cannot be read).
pub fn thread_nice() -> i32 {
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    // getpriority returns the nice value, and -1 both as a value and as an
    // error: clear errno first to tell them apart.
    nix::errno::Errno::clear();
    // SAFETY: getpriority takes plain integers and touches no memory of ours.
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    if v == -1 && nix::errno::Errno::last_raw() != 0 {
        return 0;
    }
    v
}

/// Sets the calling thread's nice value (Linux keeps one per thread; new
/// threads inherit their creator's). Lowering it needs CAP_SYS_NICE.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts the calling thread under SCHED_BATCH (allowed without privileges):
/// the scheduler then never preempts a running thread to run this one when
/// it wakes up, and treats it as CPU-bound.
pub fn set_thread_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0
    // is the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to CPU `n % cores`.
pub fn pin_to_cpu(n: usize) -> io::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut set = nix::sched::CpuSet::new();
    set.set(n % cores).map_err(io::Error::from)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(io::Error::from)
}
