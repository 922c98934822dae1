//! The page's libp2p identity, kept in `localStorage` so a browser is one scout
//! across reloads: the titan's peer book, its drafted/accepted counts and the
//! credits they will earn (DESIGN.md §4) follow a peer id, and a tab that got a new
//! one on every reload would start from nothing each time.
//!
//! The key is stored as its libp2p protobuf encoding (a JSON array of bytes) under
//! [`STORAGE_KEY`]; it is as private as anything else of this origin's storage.
//! Without storage (private windows may refuse it) the page runs on a fresh
//! identity and says nothing: scouting works the same, only the history is lost.

use libp2p::identity::Keypair;

/// Versioned, so a future key format does not misread this one.
const STORAGE_KEY: &str = "shard-scout-identity-v1";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The stored keypair, or a new Ed25519 one, stored for the next load. A stored
/// value that does not decode (edited by hand, another format) is replaced.
pub(crate) fn load_or_create() -> Keypair {
    let store = storage();
    let stored = store
        .as_ref()
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
        .and_then(|text| serde_json::from_str::<Vec<u8>>(&text).ok())
        .and_then(|bytes| Keypair::from_protobuf_encoding(&bytes).ok());
    if let Some(key) = stored {
        return key;
    }
    let key = Keypair::generate_ed25519();
    if let (Some(store), Ok(bytes)) = (store, key.to_protobuf_encoding())
        && let Ok(text) = serde_json::to_string(&bytes)
        && store.set_item(STORAGE_KEY, &text).is_err()
    {
        crate::js::log(
            "could not keep the scout's identity: this page will have a new one after a reload",
        );
    }
    key
}
