//! The forwarding plane: TUN devices, worker threads each with its own
//! io_uring ring (`sys::uring`), steering, counters.
//!
//! [`Dataplane::start`] takes the devices (created with [`TunDevice::create`]
//! and configured with [`netns::configure`]) and any [`Processor`], and runs
//! one worker per queue: worker `w` reads queue `w` of every device and writes
//! what it forwards to queue `w` of the egress device. Each packet is
//! processed by the worker that read it, in the buffer it was read into.

pub mod housekeeping;
pub mod netns;
pub mod stats;
mod steer;
pub mod tun;
mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use stats::{IfStats, Stats, WorkerStats};
pub use tun::TunDevice;

use crate::pipeline::Processor;

/// Cheap, cloneable reader of the running dataplane's counters (for the
/// control socket).
#[derive(Clone)]
pub struct StatsHandle {
    names: Arc<Vec<String>>,
    workers: Arc<Vec<Arc<WorkerStats>>>,
}

impl StatsHandle {
    /// All counters, summed over workers.
    pub fn snapshot(&self) -> Stats {
        Stats::collect(&self.names, &self.workers)
    }

    /// One snapshot per worker (index = worker), e.g. to see queue balance.
    pub fn per_worker(&self) -> Vec<Stats> {
        self.workers
            .iter()
            .map(|w| Stats::collect(&self.names, std::slice::from_ref(w)))
            .collect()
    }
}

/// Tuning knobs of [`Dataplane::start_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Pin worker `w` to CPU `w % cores`.
    pub pin_workers: bool,
    /// Run the workers under SCHED_BATCH.
    pub batch: bool,
    /// Nice value each worker sets for itself at its start (the thread that
    /// spawns them may run at the control threads' priority).
    pub nice: Option<i32>,
}

/// Running workers over a set of devices.
pub struct Dataplane {
    devices: Arc<Vec<TunDevice>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<std::io::Result<()>>>,
    stats: StatsHandle,
}

/// Why the dataplane stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum WorkerFailure {
    #[error("worker {worker} panicked: {message}")]
    Panicked { worker: usize, message: String },
    #[error("worker {worker} failed: {error}")]
    Failed {
        worker: usize,
        error: std::io::Error,
    },
    #[error("worker {worker} exited unexpectedly")]
    Exited { worker: usize },
}

impl Dataplane {
    /// Starts one worker per queue (every device must have the same number
    /// of queues, at least one).
    pub fn start<P: Processor + 'static>(
        devices: Vec<TunDevice>,
        processor: Arc<P>,
    ) -> std::io::Result<Dataplane> {
        Dataplane::start_with(devices, processor, Options::default())
    }

    /// [`Dataplane::start`] with options.
    pub fn start_with<P: Processor + 'static>(
        devices: Vec<TunDevice>,
        processor: Arc<P>,
        options: Options,
    ) -> std::io::Result<Dataplane> {
        // No devices: no workers (a gateway that only serves its control
        // socket). Otherwise every device has the same queues, one a worker.
        let nq = devices.first().map_or(0, |d| d.queues.len());
        if !devices.is_empty() && (nq == 0 || devices.iter().any(|d| d.queues.len() != nq)) {
            return Err(std::io::Error::other(
                "every device needs the same, non-zero, number of queues",
            ));
        }
        let names = Arc::new(devices.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
        let devices = Arc::new(devices);
        let stop = Arc::new(AtomicBool::new(false));
        let wstats: Vec<Arc<WorkerStats>> = (0..nq)
            .map(|_| Arc::new(WorkerStats::new(devices.len())))
            .collect();
        let mut workers = Vec::with_capacity(nq);
        for (index, st) in wstats.iter().enumerate() {
            let args = worker::WorkerArgs {
                index,
                devices: devices.clone(),
                processor: processor.clone(),
                stats: st.clone(),
                stop: stop.clone(),
                pin_cpu: options.pin_workers.then_some(index),
                batch: options.batch,
                nice: options.nice,
            };
            let h = std::thread::Builder::new()
                .name(format!("tg-worker-{index}"))
                .spawn(move || worker::run(args))?;
            workers.push(h);
        }
        tracing::info!(workers = nq, devices = devices.len(), "dataplane started");
        Ok(Dataplane {
            devices,
            stop,
            workers,
            stats: StatsHandle {
                names,
                workers: Arc::new(wstats),
            },
        })
    }

    pub fn stats(&self) -> Stats {
        self.stats.snapshot()
    }

    pub fn stats_handle(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// `Err` as soon as any worker has stopped before [`Dataplane::shutdown`]
    /// (panic, I/O error or unexpected exit); the caller should exit non-zero.
    pub fn check(&mut self) -> Result<(), WorkerFailure> {
        let Some(i) = self.workers.iter().position(|h| h.is_finished()) else {
            return Ok(());
        };
        let h = self.workers.remove(i);
        Err(match h.join() {
            Err(p) => WorkerFailure::Panicked {
                worker: i,
                message: p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into()),
            },
            Ok(Err(error)) => WorkerFailure::Failed { worker: i, error },
            Ok(Ok(())) => WorkerFailure::Exited { worker: i },
        })
    }

    /// Stops the workers, then closes every queue, which removes the devices.
    pub fn shutdown(mut self) -> Result<(), WorkerFailure> {
        self.stop_workers()
    }

    fn stop_workers(&mut self) -> Result<(), WorkerFailure> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first = Ok(());
        for (i, h) in self.workers.drain(..).enumerate() {
            let r = match h.join() {
                Err(_) => Err(WorkerFailure::Panicked {
                    worker: i,
                    message: "during shutdown".into(),
                }),
                Ok(Err(error)) => Err(WorkerFailure::Failed { worker: i, error }),
                Ok(Ok(())) => Ok(()),
            };
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    pub fn device_names(&self) -> Vec<String> {
        self.devices.iter().map(|d| d.name.clone()).collect()
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        let _ = self.stop_workers();
    }
}
