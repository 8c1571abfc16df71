//! A fixed set of threads that run the PKCS#11 calls of `serve` and `proxy`.
//!
//! PKCS#11 calls block, so they never run on the async workers. Handing each
//! call to tokio's blocking pool costs a thread wake-up per request (a futex
//! wait and wake on both sides): under load on 2 cores that was ~25 µs of
//! CPU per request, close to the ~29 µs of the HMAC itself. Here `size` threads take jobs from one queue back to back:
//! while requests are waiting, a worker goes from one job to the next without
//! sleeping. `size` is also the most PKCS#11 calls in flight at once.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

type Job = Box<dyn FnOnce() + Send>;

/// Why a job produced no result.
#[derive(Debug)]
pub(crate) enum JobError {
    /// The workers are gone (the server is stopping).
    Stopped,
    /// The job panicked; the worker survived.
    Panicked,
}

/// The worker threads and their queue.
pub(crate) struct Workers {
    queue: mpsc::Sender<Job>,
    /// Held shared by every job, exclusively by [`Workers::exclusive`].
    gate: Arc<RwLock<()>>,
    running: Arc<AtomicUsize>,
    size: usize,
}

impl Workers {
    /// Starts `size` (at least one) worker threads; they end when `self` is
    /// dropped and the queue is empty.
    pub(crate) fn start(size: usize) -> std::io::Result<Self> {
        let size = size.max(1);
        let (queue, jobs) = mpsc::channel::<Job>();
        let jobs = Arc::new(Mutex::new(jobs));
        let gate = Arc::new(RwLock::new(()));
        let running = Arc::new(AtomicUsize::new(0));
        for i in 0..size {
            let (jobs, gate, running) = (jobs.clone(), gate.clone(), running.clone());
            std::thread::Builder::new()
                .name(format!("hsm-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job.
                    let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = next else { return };
                    let _shared = gate.read().unwrap_or_else(PoisonError::into_inner);
                    running.fetch_add(1, Ordering::Relaxed);
                    job();
                    running.fetch_sub(1, Ordering::Relaxed);
                })?;
        }
        Ok(Self {
            queue,
            gate,
            running,
            size,
        })
    }

    /// Runs `f` on a worker and waits for its result. A caller that gives up
    /// (its client went away) before a worker picks the job up costs no
    /// PKCS#11 call.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if done.is_closed() {
                return;
            }
            let _ = done.send(catch_unwind(AssertUnwindSafe(f)));
        });
        self.queue.send(job).map_err(|_| JobError::Stopped)?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_panic)) => Err(JobError::Panicked),
            Err(_) => Err(JobError::Stopped),
        }
    }

    /// Runs `f` once no job is running, with new jobs held back until it
    /// returns (used to re-initialize the module).
    pub(crate) async fn exclusive<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let _all = gate.write().unwrap_or_else(PoisonError::into_inner);
            f()
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                JobError::Panicked
            } else {
                JobError::Stopped
            }
        })
    }

    /// Jobs running now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Number of worker threads.
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn results_come_back_to_their_callers() {
        let rt = runtime();
        let workers = Arc::new(Workers::start(3).unwrap());
        let sums: Vec<u64> = rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..200u64 {
                let w = workers.clone();
                tasks.push(tokio::spawn(async move {
                    w.run(move || (0..=i).sum::<u64>()).await.unwrap()
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        for (i, s) in sums.iter().enumerate() {
            let i = i as u64;
            assert_eq!(*s, i * (i + 1) / 2);
        }
    }

    #[test]
    fn at_most_size_jobs_run_at_once() {
        let rt = runtime();
        let workers = Arc::new(Workers::start(2).unwrap());
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (w, now, peak) = (workers.clone(), now.clone(), peak.clone());
                tasks.push(tokio::spawn(async move {
                    w.run(move || {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(5));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(workers.running(), 0);
    }

    #[test]
    fn a_panicking_job_is_reported_and_the_worker_survives() {
        let rt = runtime();
        let workers = Workers::start(1).unwrap();
        rt.block_on(async {
            let r = workers.run(|| -> u8 { panic!("boom") }).await;
            assert!(matches!(r, Err(JobError::Panicked)));
            assert_eq!(workers.run(|| 7u8).await.unwrap(), 7);
        });
    }

    #[test]
    fn a_job_whose_caller_gave_up_does_not_run() {
        let rt = runtime();
        let workers = Arc::new(Workers::start(1).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let w = workers.clone();
            let busy = tokio::spawn(async move {
                w.run(|| std::thread::sleep(Duration::from_millis(50)))
                    .await
                    .unwrap();
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            let r = ran.clone();
            let gave_up = tokio::time::timeout(
                Duration::from_millis(10),
                workers.run(move || r.fetch_add(1, Ordering::SeqCst)),
            )
            .await;
            assert!(
                gave_up.is_err(),
                "the worker was busy: the call must time out"
            );
            busy.await.unwrap();
            // The queue is drained in order: this runs after the abandoned job.
            workers.run(|| ()).await.unwrap();
        });
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn exclusive_waits_for_running_jobs_and_holds_back_new_ones() {
        let rt = runtime();
        let workers = Arc::new(Workers::start(2).unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let (w, l) = (workers.clone(), log.clone());
            let slow = tokio::spawn(async move {
                w.run(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    l.lock().unwrap().push("slow job");
                })
                .await
                .unwrap();
            });
            tokio::time::sleep(Duration::from_millis(10)).await;
            let l = log.clone();
            let exclusive = workers.exclusive(move || {
                std::thread::sleep(Duration::from_millis(30));
                l.lock().unwrap().push("exclusive");
            });
            let (w, l) = (workers.clone(), log.clone());
            let after = async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                w.run(move || l.lock().unwrap().push("later job"))
                    .await
                    .unwrap();
            };
            let (e, ()) = tokio::join!(exclusive, after);
            e.unwrap();
            slow.await.unwrap();
        });
        assert_eq!(*log.lock().unwrap(), ["slow job", "exclusive", "later job"]);
    }
}
