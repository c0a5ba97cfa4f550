//! backend-api's OpenAPI 3.1 document, generated from the handlers' annotations and the body
//! types, served at `/openapi.json`, and read by the page at `/docs`.

use axum::response::Html;
use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    accounts, admin, conversations, jobs, keys, me, quota, schedules, schema, stripe, ucf, usage,
};
use crate::shared::maintenance;

#[derive(OpenApi)]
#[openapi(
    info(title = "Helix backend-api", description = "Accounts, sessions, API keys, conversations, metrics, usage and billing, and administration of the Helix platform."),
    paths(
        accounts::signup, accounts::login, accounts::refresh, accounts::logout, crate::services::common::introspect,
        me::get, me::patch, me::delete,
        keys::create, keys::list, keys::revoke,
        admin::audit, admin::set_role, admin::maintenance_status, admin::set_maintenance,
        conversations::create, conversations::list, conversations::get, conversations::rename,
        conversations::delete, conversations::append, conversations::messages,
        ucf::record, ucf::record_batch, ucf::latest, ucf::history,
        usage::record, usage::summary, quota::get, stripe::webhook,
        jobs::enqueue, jobs::list, jobs::stats, jobs::get, jobs::retry, jobs::cancel,
        schedules::add, schedules::list, schedules::get, schedules::change, schedules::remove,
        schedules::pause, schedules::resume,
    ),
    components(schemas(
        accounts::Signup, accounts::Login, accounts::Refresh, me::Patch, me::Delete, keys::Create,
        admin::RoleChange, admin::MaintenanceChange, maintenance::Switch,
        crate::shared::auth::remote::Introspection,
        schema::UserOut, schema::ProfileOut, schema::Me, schema::ProfileBody, schema::TokenResponse,
        schema::SignedUp, schema::KeyOut, schema::KeyCreated, schema::KeyList, schema::AuditEntryOut,
        schema::AuditPage, schema::ErrorBody, schema::ErrorDetail,
        conversations::CreateConversation, conversations::RenameConversation, conversations::SendMessage,
        schema::ConversationOut, schema::ConversationPage, schema::MessageOut, schema::MessagePageOut,
        ucf::Gauges, ucf::Sample, ucf::Batch, ucf::Recorded, ucf::Point, ucf::History,
        usage::ReportUsage, usage::UsageAccepted, usage::UsageDayOut, usage::UsageTotals,
        usage::UsageSummary, quota::Allowance, quota::QuotaOut, stripe::WebhookAck,
        jobs::EnqueueBody, schedules::AddSchedule, schedules::ChangeSchedule,
    )),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Signup, login, token refresh, logout"),
        (name = "me", description = "The caller's own account"),
        (name = "keys", description = "The caller's API keys"),
        (name = "admin", description = "Administration (admins only)"),
        (name = "jobs", description = "Background jobs: enqueue, inspect, retry, cancel, stats (admins only)"),
        (name = "conversations", description = "The caller's conversations and messages, in sync across clients"),
        (name = "metrics", description = "The platform's UCF gauges: report, latest, history"),
        (name = "usage", description = "Metered calls, tiers and their quotas"),
        (name = "billing", description = "Stripe's subscription events"),
    )
)]
struct ApiDoc;

/// The two ways to authenticate.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or hx_ API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document as pretty JSON (what `/openapi.json` serves and docs/openapi/ keeps).
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.to_pretty_json()
        .expect("the OpenAPI document serialises")
        + "\n"
}

pub async fn json() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&document()).expect("the document is JSON"))
}

pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
