//! The remembered answers of `/graphql` ([`crate::web`]): rendered public availability answers,
//! keyed by the normalised query, the operation name, the variables and the language, each with
//! the venue entries it was rendered from; bounded by entries and by bytes (oldest out first), and
//! also found by a small body as sent.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use platform::booking::availability::SlotAvailability;
use platform::i18n::Lang;
use tenants::TenantId;
use uuid::Uuid;

/// Most remembered answers (distinct normalised requests × languages); the oldest goes first.
pub const MAX_REMEMBERED: usize = 2_000;
/// Most bytes of remembered answers and their keys together; the oldest go first.
pub const MAX_REMEMBERED_BYTES: usize = 32 * 1024 * 1024;
/// A request whose key (normalised query, operation name, variables) is longer is not remembered.
pub const MAX_REMEMBERED_KEY: usize = 4 * 1024;

pub(crate) type Dep = (TenantId, Uuid, Arc<Vec<SlotAvailability>>);

/// The venue slots a request's answer was rendered from (filled by the `availability` resolver).
#[derive(Default)]
pub struct AvailabilityDeps(pub(crate) Mutex<Vec<Dep>>);

impl AvailabilityDeps {
    pub fn record(&self, tenant: TenantId, venue: Uuid, slots: Arc<Vec<SlotAvailability>>) {
        if let Ok(mut d) = self.0.lock() {
            d.push((tenant, venue, slots));
        }
    }
}

struct Rendered {
    deps: Vec<Dep>,
    body: Bytes,
}

pub(crate) type Key = (Lang, String);

#[derive(Default)]
struct Answers {
    map: HashMap<Key, Rendered>,
    /// Keys in the order they were remembered (the front goes first).
    order: VecDeque<Key>,
    bytes: usize,
    /// Small bodies as sent → the key of their answer in `map` (at most [`MAX_REMEMBERED`], each at
    /// most [`MAX_REMEMBERED_KEY`] bytes; the oldest goes first).
    aliases: HashMap<Key, Key>,
    alias_order: VecDeque<Key>,
}

fn cost(key: &Key, r: &Rendered) -> usize {
    key.1.len() + r.body.len() + r.deps.len() * std::mem::size_of::<Dep>() + 64
}

/// Remembered answers of public availability requests, bounded by [`MAX_REMEMBERED`] entries and
/// [`MAX_REMEMBERED_BYTES`]. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct AnswerCache(Arc<RwLock<Answers>>);

/// What an [`AnswerCache`] holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerCacheStats {
    pub entries: usize,
    /// Bytes of the remembered answers and their keys.
    pub bytes: usize,
    /// Bodies as sent that lead to a remembered answer.
    pub aliases: usize,
}

impl AnswerCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> AnswerCacheStats {
        self.0
            .read()
            .map(|a| AnswerCacheStats {
                entries: a.map.len(),
                bytes: a.bytes,
                aliases: a.aliases.len(),
            })
            .unwrap_or_default()
    }

    pub(crate) fn get(&self, key: &Key) -> Option<(Vec<Dep>, Bytes)> {
        let a = self.0.read().ok()?;
        let hit = a.map.get(key)?;
        Some((hit.deps.clone(), hit.body.clone()))
    }

    /// The answer remembered for a body as sent (see [`Self::alias`]).
    pub(crate) fn get_alias(&self, raw: &Key) -> Option<(Vec<Dep>, Bytes)> {
        let a = self.0.read().ok()?;
        let hit = a.map.get(a.aliases.get(raw)?)?;
        Some((hit.deps.clone(), hit.body.clone()))
    }

    /// Remembers that the body `raw` (as sent) is answered by the entry `key`.
    pub(crate) fn alias(&self, raw: Key, key: Key) {
        if raw.1.len() > MAX_REMEMBERED_KEY + 1 {
            return;
        }
        let Ok(mut a) = self.0.write() else {
            return;
        };
        if a.aliases.insert(raw.clone(), key).is_none() {
            a.alias_order.push_back(raw);
        }
        while a.aliases.len() > MAX_REMEMBERED {
            let Some(oldest) = a.alias_order.pop_front() else {
                break;
            };
            a.aliases.remove(&oldest);
        }
    }

    pub(crate) fn insert(&self, key: Key, deps: Vec<Dep>, body: Bytes) {
        let r = Rendered { deps, body };
        let size = cost(&key, &r);
        if key.1.len() > MAX_REMEMBERED_KEY || size > MAX_REMEMBERED_BYTES / 4 {
            return;
        }
        let Ok(mut a) = self.0.write() else {
            return;
        };
        if let Some(old) = a.map.remove(&key) {
            a.bytes -= cost(&key, &old);
            a.order.retain(|k| k != &key);
        }
        while a.map.len() >= MAX_REMEMBERED || a.bytes + size > MAX_REMEMBERED_BYTES {
            let Some(oldest) = a.order.pop_front() else {
                break;
            };
            if let Some(old) = a.map.remove(&oldest) {
                a.bytes -= cost(&oldest, &old);
            }
        }
        a.bytes += size;
        a.order.push_back(key.clone());
        a.map.insert(key, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_cache_is_bounded_by_entries_and_bytes() {
        let cache = AnswerCache::new();
        for i in 0..MAX_REMEMBERED + 100 {
            cache.insert(
                (Lang::default(), format!("q{i}")),
                Vec::new(),
                Bytes::from("{}"),
            );
        }
        assert_eq!(cache.stats().entries, MAX_REMEMBERED);
        assert!(
            cache.get(&(Lang::default(), "q0".into())).is_none(),
            "oldest out first"
        );
        assert!(
            cache
                .get(&(Lang::default(), format!("q{}", MAX_REMEMBERED + 99)))
                .is_some()
        );

        let big = Bytes::from(vec![b' '; MAX_REMEMBERED_BYTES / 5]);
        for i in 0..20 {
            cache.insert(
                (Lang::default(), format!("big{i}")),
                Vec::new(),
                big.clone(),
            );
            assert!(cache.stats().bytes <= MAX_REMEMBERED_BYTES);
        }
        assert!(cache.get(&(Lang::default(), "big19".into())).is_some());

        // too long a key or too big an answer is not remembered
        let before = cache.stats();
        cache.insert(
            (Lang::default(), "x".repeat(MAX_REMEMBERED_KEY + 1)),
            Vec::new(),
            Bytes::from("{}"),
        );
        cache.insert(
            (Lang::default(), "huge".into()),
            Vec::new(),
            Bytes::from(vec![b' '; MAX_REMEMBERED_BYTES / 3]),
        );
        assert_eq!(cache.stats(), before);

        // bodies as sent lead to remembered answers, bounded by entries and key length
        let target = (Lang::default(), "big19".to_owned());
        for i in 0..MAX_REMEMBERED + 10 {
            cache.alias((Lang::default(), format!("\0body{i}")), target.clone());
        }
        assert_eq!(cache.stats().aliases, MAX_REMEMBERED);
        assert!(
            cache
                .get_alias(&(Lang::default(), "\0body0".into()))
                .is_none()
        );
        assert!(
            cache
                .get_alias(&(Lang::default(), format!("\0body{}", MAX_REMEMBERED + 9)))
                .is_some()
        );
        cache.alias(
            (Lang::default(), "x".repeat(MAX_REMEMBERED_KEY + 2)),
            target,
        );
        assert_eq!(cache.stats().aliases, MAX_REMEMBERED);
    }
}
