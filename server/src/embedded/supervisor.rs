//! Child processes the demo owns (the broker, the shipper): started, restarted when they
//! die, and stopped with SIGTERM (then SIGKILL after a grace period).

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const RESTART_DELAY: Duration = Duration::from_secs(1);
const STOP_GRACE: Duration = Duration::from_secs(15);

pub struct Supervised {
    name: &'static str,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Supervised {
    /// Starts `make()` now and again whenever it exits, appending its output to `log`.
    pub fn start<F>(name: &'static str, log: PathBuf, make: F) -> Supervised
    where
        F: Fn() -> Command + Send + 'static,
    {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let child =
                    open_log(&log).and_then(|(out, err)| make().stdout(out).stderr(err).spawn());
                let mut child = match child {
                    Ok(child) => child,
                    Err(e) => {
                        tracing::error!(process = name, error = %e, "cannot start");
                        tokio::select! {
                            _ = tokio::time::sleep(RESTART_DELAY * 5) => continue,
                            _ = stopped.changed() => return,
                        }
                    }
                };
                tracing::info!(process = name, pid = child.id(), log = %log.display(), "started");
                tokio::select! {
                    status = child.wait() => {
                        tracing::warn!(process = name, status = ?status, "exited; restarting");
                        tokio::select! {
                            _ = tokio::time::sleep(RESTART_DELAY) => {}
                            _ = stopped.changed() => return,
                        }
                    }
                    _ = stopped.changed() => {
                        if let Some(pid) = child.id() {
                            // SAFETY: plain kill(2) on our own child's pid.
                            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                        }
                        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
                            tracing::warn!(process = name, "did not stop in time; killing");
                            let _ = child.kill().await;
                        }
                        tracing::info!(process = name, "stopped");
                        return;
                    }
                }
            }
        });
        Supervised { name, stop, task }
    }

    /// Stops the process and waits until it is gone.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(process = self.name, error = %e, "supervisor failed");
        }
    }
}

fn open_log(path: &PathBuf) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok((file.try_clone()?, file))
}
