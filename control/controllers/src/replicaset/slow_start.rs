//! Slow-start batches (upstream `slowStartBatch`): creations go out in batches of 1, 2, 4, 8, …
//! each batch in parallel, and the first batch with a failure stops the rest.
//!
//! Why: a template the API server refuses (quota, admission, a missing service account) fails
//! on the first pod instead of on 500 parallel requests, while a good template still reaches
//! large counts in a logarithmic number of round trips.

use std::future::Future;

/// The sizes of the batches for `count` items starting at `initial`.
pub fn batch_sizes(count: usize, initial: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut remaining = count;
    let mut size = initial.max(1);
    while remaining > 0 {
        let batch = remaining.min(size);
        sizes.push(batch);
        remaining -= batch;
        size = size.saturating_mul(2);
    }
    sizes
}

/// Runs `f` `count` times in slow-start batches. Returns how many succeeded and the first
/// error, after which no further batch starts.
pub async fn run<F, Fut, E>(count: usize, initial: usize, f: F) -> (usize, Option<E>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut succeeded = 0;
    for size in batch_sizes(count, initial) {
        let results = futures::future::join_all((0..size).map(|_| f())).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => succeeded += 1,
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
        }
        if first_error.is_some() {
            return (succeeded, first_error);
        }
    }
    (succeeded, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn batches_double() {
        assert_eq!(batch_sizes(10, 1), [1, 2, 4, 3]);
        assert_eq!(batch_sizes(1, 1), [1]);
        assert_eq!(batch_sizes(0, 1), Vec::<usize>::new());
        assert_eq!(batch_sizes(500, 1), [1, 2, 4, 8, 16, 32, 64, 128, 245]);
    }

    #[tokio::test]
    async fn first_failing_batch_stops_the_rest() {
        let calls = AtomicUsize::new(0);
        // Calls 1..=3 succeed (batches 1 and 2); the 4th fails, in the batch of 4.
        let (ok, err) = run(10, 1, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 4 {
                    Err("refused")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(err, Some("refused"));
        assert_eq!(ok, 6, "the rest of the failing batch still ran");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            7,
            "no batch after the failing one"
        );
    }
}
