//! Wide answers off the runtime's workers (issue 15: `/healthz` within 50 ms during the attacks).
//! A document estimated wide (`limits::estimated_values`) is executed, and a large answer
//! serialised, in `block_in_place`: the worker's other tasks — among them the one its LIFO slot
//! holds, which the other worker cannot steal — go on in another thread at once.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Values in an answer above which it is written out off the workers: ~36,000 slot objects take
/// tens of milliseconds to serialise.
const RENDER_INLINE_MAX_VALUES: usize = 4_096;

/// `block_in_place` needs the multi-thread runtime (the binary's); on a current-thread runtime
/// (tests) the work runs where it is.
fn multi_thread() -> bool {
    Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread
}

/// Runs `fut` to its end with this worker's queue handed to another thread.
pub(crate) async fn off_the_workers<F: std::future::Future>(fut: F) -> F::Output {
    if multi_thread() {
        let handle = Handle::current();
        tokio::task::block_in_place(move || handle.block_on(fut))
    } else {
        fut.await
    }
}

/// The answer as JSON bytes; a large one is serialised (and dropped) off the runtime's workers.
pub(crate) fn render(resp: async_graphql::Response) -> Result<Vec<u8>, String> {
    let small = count_values(&resp.data, RENDER_INLINE_MAX_VALUES) < RENDER_INLINE_MAX_VALUES;
    let to_json = move || serde_json::to_vec(&resp).map_err(|e| e.to_string());
    if small || !multi_thread() {
        to_json()
    } else {
        tokio::task::block_in_place(to_json)
    }
}

/// The number of values in `v`, counting no further than `limit`.
fn count_values(v: &async_graphql::Value, limit: usize) -> usize {
    let mut n = 0;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        n += 1;
        if n >= limit {
            return n;
        }
        match v {
            async_graphql::Value::List(items) => stack.extend(items.iter()),
            async_graphql::Value::Object(fields) => stack.extend(fields.values()),
            _ => {}
        }
    }
    n
}
