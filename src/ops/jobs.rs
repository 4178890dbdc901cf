//! Work items done by N threads at once, stopping at the first failure: a
//! database dump or restore runs one program per table this way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Run `work` on every item, `jobs` at a time (at least one). After a
/// failure no new item starts; the first error is returned.
pub fn run_jobs<T: Send>(
    items: impl IntoIterator<Item = T, IntoIter: Send>,
    jobs: usize,
    work: impl Fn(T) -> Result<()> + Sync,
) -> Result<()> {
    let queue = Mutex::new(items.into_iter());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let worker = || {
        while !failed.load(Ordering::Relaxed) {
            let Some(item) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                return;
            };
            if let Err(e) = work(item) {
                failed.store(true, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(worker);
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_item_runs_once() {
        let sum = AtomicUsize::new(0);
        run_jobs(1..=100usize, 3, |i| {
            sum.fetch_add(i, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(sum.into_inner(), 5050);
    }

    #[test]
    fn a_failure_stops_new_items_and_is_returned() {
        let started = AtomicUsize::new(0);
        let err = run_jobs(0..1000, 1, |i| {
            started.fetch_add(1, Ordering::Relaxed);
            if i == 5 {
                Err(Error::invalid("item 5"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.context(), "item 5");
        assert_eq!(started.into_inner(), 6);
    }
}
