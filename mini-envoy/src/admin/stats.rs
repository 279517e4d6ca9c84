//! `/stats` and `/stats/prometheus`: the store read and merged over every
//! worker's shard, filtered, then rendered by [`crate::stats::format`].

use bytes::Bytes;

use super::{AdminState, Reply};
use crate::stats::format::{self, StatsQuery};

/// `GET /stats` (`?filter=`, `?usedonly`, `?type=`, `?format=json|prometheus`).
pub(super) fn stats(state: &AdminState, params: &[(String, String)]) -> Reply {
    let query = match StatsQuery::parse(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(q) => q,
        Err(e) => return Reply::text(400, format!("{e}\n")),
    };
    let format = params.iter().find(|(k, _)| k == "format").map(|(_, v)| v.as_str());
    state.refresh_server_stats();
    let stats = query.select(state.store.values());
    match format {
        None | Some("text") => Reply::text(200, format::text(&stats)),
        Some("json") => {
            let body = serde_json::to_string_pretty(&format::json(&stats)).unwrap_or_default();
            Reply { status: 200, content_type: "application/json", body: Bytes::from(body + "\n") }
        }
        Some("prometheus") => prometheus_reply(format::prometheus(&stats)),
        Some(other) => {
            Reply::text(400, format!("usage: /stats?format=json|prometheus|text (got {other:?})\n"))
        }
    }
}

/// `GET /stats/prometheus` (`?filter=`, `?usedonly`, `?type=` as `/stats`).
pub(super) fn prometheus(state: &AdminState, params: &[(String, String)]) -> Reply {
    let query = match StatsQuery::parse(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        Ok(q) => q,
        Err(e) => return Reply::text(400, format!("{e}\n")),
    };
    state.refresh_server_stats();
    prometheus_reply(format::prometheus(&query.select(state.store.values())))
}

fn prometheus_reply(body: String) -> Reply {
    Reply { status: 200, content_type: "text/plain; version=0.0.4", body: Bytes::from(body) }
}
