//! zapier-integration under load: `hooks-in` (signed events received, stored and queued) and
//! `hooks-out` (deliveries from the worker to local endpoints, healthy and timing out).

pub mod inbound;
pub mod outbound;
