//! Numbered chunks of work done on several threads, their results consumed
//! in chunk order on the caller's thread, with a bounded number in flight.
//!
//! This is how goat decodes and formats 100k goroutines: each worker takes
//! the next chunk of goroutines, decodes and formats it into a buffer, and
//! the caller writes the buffers out in order. The caller hands out chunk
//! numbers itself, at most a few per worker ahead of the one it waits for,
//! so a slow chunk (or a slow output) never lets finished results pile up:
//! memory stays bounded by `window` results, whatever the number of chunks.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// Results a worker may be ahead of the consumer, per worker.
const AHEAD_PER_WORKER: usize = 4;

/// State that outlives a chunk (a scanner's per-pc facts, say), lent to
/// each chunk on whichever thread takes it: a chunk takes one, or a new
/// one, and gives it back when done, so what one chunk learnt serves the
/// next, and no two chunks share one.
pub struct Pool<T>(Mutex<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool(Mutex::new(Vec::new()))
    }
}

impl<T: Default> Pool<T> {
    pub fn take(&self) -> T {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default()
    }

    pub fn give(&self, t: T) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(t);
    }
}

/// The number of worker threads to use for `work_items` items, when fewer
/// than `min_parallel` items are not worth a second thread: the machine's
/// parallelism, at most 8.
pub fn threads_for(work_items: usize, min_parallel: usize) -> usize {
    if work_items < min_parallel {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// `work(part, slots)` fills the slots of each of `threads` contiguous
/// parts of `items` (the slot at an item's place), each part on a scoped
/// thread of its own at the background priority; what a part left
/// unfilled (its thread panicked: a bug) is worked out again on this
/// thread. The results in `items`' order, moved out of their slots in
/// place: a million answers (over 100 MB) are never copied.
pub fn fill_in_parts<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&[T], &mut [Option<R>]) + Sync,
) -> Vec<R> {
    let mut out: Vec<Option<R>> = Vec::new();
    out.resize_with(items.len(), || None);
    if threads <= 1 {
        work(items, &mut out);
    } else {
        let per = items.len().div_ceil(threads).max(1);
        let work = &work;
        std::thread::scope(|s| {
            let parts: Vec<_> = items
                .chunks(per)
                .zip(out.chunks_mut(per))
                .map(|(part, slots)| {
                    s.spawn(move || {
                        crate::background::lower_this_thread();
                        work(part, slots)
                    })
                })
                .collect();
            // Joined here, not by the scope, which would pass a panic on:
            // a panic leaves its part's slots empty.
            for p in parts {
                let _ = p.join();
            }
        });
    }
    if out.iter().any(Option::is_none) {
        work(items, &mut out);
    }
    // `filter_map` collects in place (`flatten` would copy).
    #[allow(clippy::filter_map_identity)]
    out.into_iter().filter_map(|r| r).collect()
}

/// Runs `work(state, i)` for every chunk `i` in `0..chunks` on `threads`
/// threads (each with its own `state` from `init`) and passes the results
/// to `consume` in order of `i`. A chunk whose work panics yields
/// `on_panic(i)` instead (and its thread starts over with a fresh state).
/// The first error of `consume` stops the work and is returned; chunks
/// already started are finished and dropped. The worker threads run at a
/// lower priority (`background.rs`): `work` reads copies, never the
/// target.
pub fn map_ordered<S, T, E>(
    chunks: usize,
    threads: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> T + Sync,
    on_panic: impl Fn(usize) -> T + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
{
    let guarded = |state: &mut S, i: usize| {
        catch_unwind(AssertUnwindSafe(|| work(state, i))).unwrap_or_else(|_| {
            *state = init();
            on_panic(i)
        })
    };
    if threads <= 1 || chunks <= 1 {
        let mut state = init();
        for i in 0..chunks {
            consume(guarded(&mut state, i))?;
        }
        return Ok(());
    }
    let window = threads * AHEAD_PER_WORKER;
    let (job_tx, job_rx) = crossbeam_channel::unbounded::<usize>();
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<(usize, T)>();
    let mut handed_out = window.min(chunks);
    for i in 0..handed_out {
        // The receiver is alive: it is held right here.
        let _ = job_tx.send(i);
    }
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (jobs, done, guarded, init) = (job_rx.clone(), done_tx.clone(), &guarded, &init);
            s.spawn(move || {
                crate::background::lower_this_thread();
                let mut state = init();
                for i in jobs {
                    if done.send((i, guarded(&mut state, i))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut waiting: BTreeMap<usize, T> = BTreeMap::new();
        let mut next = 0;
        let mut result = Ok(());
        'collect: while next < chunks {
            // Every worker gone with chunks outstanding cannot happen (a
            // panic is caught per chunk), but must not hang.
            let Ok((i, r)) = done_rx.recv() else { break };
            waiting.insert(i, r);
            while let Some(r) = waiting.remove(&next) {
                next += 1;
                if handed_out < chunks {
                    let _ = job_tx.send(handed_out);
                    handed_out += 1;
                }
                if let Err(e) = consume(r) {
                    result = Err(e);
                    break 'collect;
                }
            }
        }
        // No more jobs: the workers finish what they hold and exit.
        drop(job_tx);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn parts_fill_in_order_and_a_panicking_part_is_done_again() {
        let items: Vec<u32> = (0..1000).collect();
        let panicked = std::sync::atomic::AtomicBool::new(false);
        for threads in [1, 2, 3, 8] {
            let got = fill_in_parts(&items, threads, |part, slots| {
                // The part holding 500 panics once, on a worker.
                if threads > 1
                    && part.contains(&500)
                    && part.len() < items.len()
                    && !panicked.swap(true, Ordering::SeqCst)
                {
                    panic!("a bug");
                }
                for (i, s) in part.iter().zip(slots) {
                    *s = Some(i * 2);
                }
            });
            let want: Vec<u32> = items.iter().map(|i| i * 2).collect();
            assert_eq!(got, want, "{threads} threads");
        }
        assert!(panicked.load(Ordering::SeqCst));
    }

    #[test]
    fn results_arrive_in_order_whatever_order_they_finish_in() {
        for threads in [1, 2, 3, 7] {
            let mut seen = Vec::new();
            map_ordered(
                50,
                threads,
                || (),
                |_, i| {
                    // Early chunks finish last.
                    std::thread::sleep(Duration::from_micros(((50 - i) * 20) as u64));
                    i * 10
                },
                |_| usize::MAX,
                |r| {
                    seen.push(r);
                    Ok::<(), ()>(())
                },
            )
            .unwrap();
            assert_eq!(seen, (0..50).map(|i| i * 10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn workers_run_at_most_a_window_ahead_of_the_consumer() {
        let started = AtomicUsize::new(0);
        let mut consumed = 0;
        map_ordered(
            200,
            2,
            || (),
            |_, i| {
                started.fetch_add(1, Ordering::SeqCst);
                i
            },
            |_| 0,
            |_| {
                consumed += 1;
                // A slow writer: the workers must wait for it.
                std::thread::sleep(Duration::from_micros(200));
                let ahead = started.load(Ordering::SeqCst) - consumed;
                assert!(ahead <= 2 * AHEAD_PER_WORKER, "{ahead} ahead");
                Ok::<(), ()>(())
            },
        )
        .unwrap();
        assert_eq!(consumed, 200);
    }

    #[test]
    fn a_consumer_error_stops_the_work() {
        let started = AtomicUsize::new(0);
        let mut seen = 0;
        let r = map_ordered(
            10_000,
            3,
            || (),
            |_, i| {
                started.fetch_add(1, Ordering::SeqCst);
                i
            },
            |_| 0,
            |i| {
                seen += 1;
                if i == 5 {
                    Err("broken pipe")
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err("broken pipe"));
        assert_eq!(seen, 6);
        assert!(started.load(Ordering::SeqCst) <= 6 + 3 * AHEAD_PER_WORKER);
    }

    #[test]
    fn a_panicking_chunk_yields_its_fallback_and_the_rest_goes_on() {
        let inits = AtomicUsize::new(0);
        let mut seen = Vec::new();
        map_ordered(
            20,
            2,
            || inits.fetch_add(1, Ordering::SeqCst),
            |_, i| {
                assert!(i != 7, "chunk 7 is hostile");
                i
            },
            |i| 1000 + i,
            |r| {
                seen.push(r);
                Ok::<(), ()>(())
            },
        )
        .unwrap();
        let mut want: Vec<usize> = (0..20).collect();
        want[7] = 1007;
        assert_eq!(seen, want);
        assert_eq!(
            inits.load(Ordering::SeqCst),
            3,
            "a fresh state after the panic"
        );
    }
}
