//! The Lua scripts, one per backend step (`lua/*.lua`), each prefixed with the helpers it uses:
//! `lua/common.lua` (which also documents the key layout) always, `lua/batch.lua` and
//! `lua/errors.lua` where needed, since every helper costs each call a closure. Run by SHA
//! (`EVALSHA`); the driver loads a script again when the server has forgotten it (a restart,
//! `SCRIPT FLUSH`).

use redis::Script;

use crate::model::MAX_ATTEMPTS_LIMIT;

const COMMON: &str = include_str!("lua/common.lua");
const BATCH: &str = include_str!("lua/batch.lua");
const ERRORS: &str = include_str!("lua/errors.lua");

pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) fetch: Script,
    pub(super) extend: Script,
    pub(super) finish: Script,
    pub(super) release: Script,
    pub(super) get: Script,
    pub(super) list: Script,
    pub(super) cancel: Script,
    pub(super) retry: Script,
    pub(super) stats: Script,
    pub(super) prune: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let build = |parts: &[&str]| {
            let mut source = format!("local MAX_ERRORS = {MAX_ATTEMPTS_LIMIT}\n{COMMON}");
            for part in parts {
                source.push('\n');
                source.push_str(part);
            }
            Script::new(&source)
        };
        Self {
            enqueue: build(&[include_str!("lua/enqueue.lua")]),
            fetch: build(&[BATCH, ERRORS, include_str!("lua/fetch.lua")]),
            extend: build(&[BATCH, include_str!("lua/extend.lua")]),
            finish: build(&[BATCH, ERRORS, include_str!("lua/finish.lua")]),
            release: build(&[BATCH, include_str!("lua/release.lua")]),
            get: build(&[include_str!("lua/get.lua")]),
            list: build(&[include_str!("lua/list.lua")]),
            cancel: build(&[include_str!("lua/cancel.lua")]),
            retry: build(&[include_str!("lua/retry.lua")]),
            stats: build(&[include_str!("lua/stats.lua")]),
            prune: build(&[BATCH, include_str!("lua/prune.lua")]),
        }
    }
}
