//! `/v1/system/*`: the titan's place in the mesh.
//!
//! - `GET /v1/system/topology`: PeerId, role, listen multiaddrs (with the
//!   webrtc-direct certhash), model and layer range.
//! - `GET /v1/system/peers`: every known peer with role, addresses, RTT,
//!   connection time, work pulls, drafted/accepted tokens, reputation
//!   (placeholder).
//! - `DELETE /v1/system/peers/{peer_id}`: closes the connections to that peer
//!   (it may dial again); 404 when it is not connected.
//! - `GET /v1/system/gossip`: the last gossip messages received.
//! - `POST /v1/system/gossip` `{"text": "..."}`: publishes a note on
//!   `shard-ledger` (at most 1 KiB; diagnostics until the ledger issue).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared_protocol::wire::gossip::{GossipMessage, MAX_NOTE, TOPIC_LEDGER};

use super::AppState;
use super::error::ApiError;
use crate::mesh::node::MeshShared;
use crate::mesh::work::ToMesh;

fn mesh(app: &AppState) -> Result<&Arc<MeshShared>, ApiError> {
    app.mesh.as_ref().ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        ..ApiError::bad_json("this titan runs without a mesh node")
    })
}

pub(super) async fn topology(State(app): State<Arc<AppState>>) -> Response {
    match mesh(&app) {
        Ok(m) => axum::Json(m.topology()).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn peers(State(app): State<Arc<AppState>>) -> Response {
    match mesh(&app) {
        Ok(m) => {
            let peers = m.book.lock().map(|b| b.list()).unwrap_or_default();
            axum::Json(json!({ "peer_id": m.peer_id.to_string(), "peers": peers })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub(super) async fn disconnect(
    State(app): State<Arc<AppState>>,
    Path(peer): Path<String>,
) -> Response {
    let m = match mesh(&app) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let Ok(peer_id) = peer.parse::<libp2p::PeerId>() else {
        return ApiError::invalid(format!("{peer:?} is not a PeerId"), "peer_id").into_response();
    };
    let connected = m
        .book
        .lock()
        .map(|b| b.is_connected(&peer_id))
        .unwrap_or(false);
    if !connected {
        return ApiError {
            status: StatusCode::NOT_FOUND,
            ..ApiError::invalid(format!("peer {peer_id} is not connected"), "peer_id")
        }
        .into_response();
    }
    match m.to_mesh.try_send(ToMesh::Disconnect { peer: peer_id }) {
        Ok(()) => axum::Json(json!({ "disconnecting": peer_id.to_string() })).into_response(),
        Err(_) => ApiError::busy(1).into_response(),
    }
}

pub(super) async fn gossip(State(app): State<Arc<AppState>>) -> Response {
    match mesh(&app) {
        Ok(m) => {
            let log: Vec<_> = m
                .book
                .lock()
                .map(|b| b.gossip.iter().cloned().collect())
                .unwrap_or_default();
            axum::Json(json!({ "messages": log })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Note {
    text: String,
}

pub(super) async fn publish(State(app): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let m = match mesh(&app) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let note: Note = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return ApiError::bad_json(format!("body: {e}")).into_response(),
    };
    if note.text.len() > MAX_NOTE {
        return ApiError::invalid(format!("text is longer than {MAX_NOTE} bytes"), "text")
            .into_response();
    }
    let msg = ToMesh::Publish {
        topic: TOPIC_LEDGER,
        message: GossipMessage::Note { text: note.text },
    };
    match m.to_mesh.try_send(msg) {
        Ok(()) => axum::Json(json!({ "published": true })).into_response(),
        Err(_) => ApiError::busy(1).into_response(),
    }
}
