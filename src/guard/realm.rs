//! The realm of challenges, kept as a `&'static str`: the guard leaves it on every request it
//! admits, and a static string is copied there without a reference count that two cores would
//! contend on. A realm is a fixed configuration value, so each distinct one is kept once for the
//! life of the process (guards built again with the same realm reuse it); memory grows only with
//! the number of distinct realm strings ever configured.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// `realm` as a `&'static str`, the same one for every guard configured with this string.
pub(super) fn intern(realm: String) -> &'static str {
    static REALMS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut realms = REALMS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = realms.get(realm.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(realm.into_boxed_str());
    realms.insert(leaked);
    leaked
}
