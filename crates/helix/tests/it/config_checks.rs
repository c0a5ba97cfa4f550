//! `helix check`'s findings, in process: each kind of problem is found, named by service and
//! variable, and placed at its line in helix.toml; resolution follows the documented precedence.

use std::collections::BTreeMap;

use helix::config::resolve::{Mode, Source};
use helix::config::{Config, Problem};
use helix::platform::deployment::{Deployment, Generate};
use tempfile::TempDir;

struct Checked {
    deployment: Deployment,
    _dir: TempDir,
}

fn plan(manifest: &str, env: &[(&str, &str)], mode: Mode) -> Checked {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("helix.toml");
    std::fs::write(&path, manifest).expect("write");
    let mut env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    env.insert(
        "HELIX_DATA_DIR".into(),
        dir.path().join("data").display().to_string(),
    );
    let config = Config::from_parts(env, Some(&path), None).expect("manifest parses");
    let deployment = match &mode {
        Mode::Up => Deployment::plan_all(&config, mode, Generate::ReadOnly),
        Mode::Serve(name) => {
            let spec = helix::platform::catalog::find(name).expect("service");
            Deployment::plan(
                &config,
                mode.clone(),
                BTreeMap::new(),
                &[spec],
                Generate::ReadOnly,
            )
        }
    };
    Checked {
        deployment,
        _dir: dir,
    }
}

impl Checked {
    fn find(&self, var: &str, fragment: &str) -> &Problem {
        self.deployment
            .problems
            .iter()
            .find(|p| p.var.as_deref() == Some(var) && p.message.contains(fragment))
            .unwrap_or_else(|| {
                panic!(
                    "no problem on {var} containing `{fragment}`: {:#?}",
                    self.deployment.problems
                )
            })
    }

    fn line_of(&self, var: &str, fragment: &str) -> usize {
        self.find(var, fragment)
            .at
            .as_ref()
            .map(|at| at.line)
            .expect("a location")
    }

    fn value(&self, service: &str, var: &str) -> (Option<String>, Source) {
        let planned = self
            .deployment
            .services
            .iter()
            .find(|p| p.env.spec.name == service)
            .expect(service);
        let resolved = planned.env.resolved(var).expect(var);
        (resolved.value.clone(), resolved.source.clone())
    }
}

const PG: &str = "[plugins.postgres]\nDATABASE_URL = \"postgres://postgres@127.0.0.1:5432/test\"\n";

#[test]
fn unknown_reference_is_an_error_at_its_line() {
    let c = plan(
        &format!("{PG}\n[shared]\nJWT_SECRET = \"${{{{vault.JWT}}}}\"\n"),
        &[],
        Mode::Up,
    );
    let p = c.find("JWT_SECRET", "unknown namespace vault");
    assert!(p.is_error());
    assert_eq!(c.line_of("JWT_SECRET", "unknown namespace vault"), 5);
    // Reported once, at its line, not once per service that reads it.
    assert_eq!(
        c.deployment
            .problems
            .iter()
            .filter(|p| p.message.contains("vault"))
            .count(),
        1
    );
}

#[test]
fn unknown_variable_of_a_service_is_an_error() {
    let c = plan(
        "[services.discord-bot]\nCLAUDE_API_URL = \"http://127.0.0.1:${{claude-api.NOPE}}\"\n",
        &[],
        Mode::Up,
    );
    let p = c.find("CLAUDE_API_URL", "claude-api neither reads nor sets NOPE");
    assert_eq!(p.service.as_deref(), Some("discord-bot"));
    assert_eq!(p.at.as_ref().map(|a| a.line), Some(2));
}

#[test]
fn reference_cycles_are_errors_naming_the_chain() {
    let manifest = "\
[services.backend-api]
PORT = \"${{discord-bot.PORT}}\"

[services.discord-bot]
PORT = \"${{backend-api.PORT}}\"
";
    let c = plan(manifest, &[], Mode::Up);
    let p = c.find("PORT", "reference cycle");
    assert!(p.is_error());
    assert!(
        p.message.contains("backend-api.PORT") && p.message.contains("discord-bot.PORT"),
        "{p}"
    );
}

#[test]
fn required_variable_missing_outside_the_embedded_default() {
    let c = plan(PG, &[], Mode::Up);
    let p = c.find("JWT_SECRET", "required variable JWT_SECRET is not set");
    assert!(p.is_error());
    let services = p.service.as_deref().unwrap_or_default();
    assert!(
        services.contains("backend-api") && services.contains("agent-orchestration"),
        "one line names every service: {p}"
    );
    // On the embedded default the same secret is generated instead.
    let embedded = plan("", &[], Mode::Up);
    assert!(
        embedded.deployment.errors().is_empty(),
        "{:#?}",
        embedded.deployment.problems
    );
}

#[test]
fn scoped_secret_in_shared_or_on_another_service_is_an_error() {
    let manifest = "\
[shared]
DISCORD_BOT_TOKEN = \"abc\"

[services.claude-api]
DISCORD_BOT_TOKEN = \"def\"

[services.discord-bot]
DISCORD_BOT_TOKEN = \"fine-here\"
";
    let c = plan(manifest, &[], Mode::Up);
    assert_eq!(
        c.line_of("DISCORD_BOT_TOKEN", "must not be set in [shared]"),
        2
    );
    assert_eq!(
        c.line_of(
            "DISCORD_BOT_TOKEN",
            "must not be set in [services.claude-api]"
        ),
        5
    );
    let errors = c.deployment.errors();
    assert_eq!(
        errors
            .iter()
            .filter(|p| p.var.as_deref() == Some("DISCORD_BOT_TOKEN"))
            .count(),
        2,
        "{errors:#?}"
    );
}

#[test]
fn scoped_secret_in_another_services_environment_is_an_error() {
    let c = plan(
        "",
        &[("DISCORD_BOT_TOKEN", "abc")],
        Mode::Serve("backend-api".into()),
    );
    let p = c.find("DISCORD_BOT_TOKEN", "scoped to discord-bot");
    assert!(p.is_error());
    let ok = plan(
        "",
        &[("DISCORD_BOT_TOKEN", "abc")],
        Mode::Serve("discord-bot".into()),
    );
    assert!(
        ok.deployment.errors().is_empty(),
        "{:#?}",
        ok.deployment.problems
    );
}

#[test]
fn unread_variables_and_unneeded_databases_are_warnings() {
    let manifest = format!(
        "{PG}
[shared]
NOBODY_READS_ME = \"x\"

[services.backend-api]
TYPO_PORTT = \"1\"

[services.dashboard]
DATABASE_URL = \"${{{{postgres.DATABASE_URL}}}}\"
"
    );
    let c = plan(
        &manifest,
        &[("JWT_SECRET", "jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj")],
        Mode::Up,
    );
    let unread = c.find("NOBODY_READS_ME", "no service reads");
    assert!(!unread.is_error());
    assert_eq!(unread.at.as_ref().map(|a| a.line), Some(5));
    let typo = c.find("TYPO_PORTT", "backend-api does not read TYPO_PORTT");
    assert!(!typo.is_error());
    let db = c.find(
        "DATABASE_URL",
        "dashboard is given a database it does not need",
    );
    assert!(!db.is_error());
    assert_eq!(db.at.as_ref().map(|a| a.line), Some(11));
    assert!(
        c.deployment.errors().is_empty(),
        "{:#?}",
        c.deployment.errors()
    );
}

#[test]
fn unknown_services_and_plugins_are_errors() {
    let c = plan(
        "[services.backend]\nPORT = 1\n\n[plugins.mysql]\nURL = \"x\"\n",
        &[],
        Mode::Up,
    );
    let service = c
        .deployment
        .problems
        .iter()
        .find(|p| p.message.contains("unknown service `backend`"))
        .expect("service");
    assert!(
        service.message.contains("backend-api"),
        "valid names are listed: {service}"
    );
    assert_eq!(service.at.as_ref().map(|a| a.line), Some(1));
    assert!(c
        .deployment
        .problems
        .iter()
        .any(|p| p.is_error() && p.message.contains("unknown plugin `mysql`")));
}

#[test]
fn port_collisions_under_up_are_errors() {
    let c = plan("[services.backend-api]\nPORT = 8001\n", &[], Mode::Up);
    let p = c.find("PORT", "also used by");
    assert!(p.is_error());
}

#[test]
fn precedence_is_env_then_service_then_shared_then_plugin() {
    let manifest = format!(
        "{PG}
[shared]
JWT_SECRET = \"from-shared\"
CLAUDE_API_URL = \"http://shared\"

[services.discord-bot]
CLAUDE_API_URL = \"http://service:${{{{claude-api.PORT}}}}\"
"
    );
    let c = plan(&manifest, &[("JWT_SECRET", "from-env")], Mode::Up);
    assert_eq!(
        c.value("backend-api", "JWT_SECRET"),
        (Some("from-env".into()), Source::Env)
    );
    let (url, source) = c.value("discord-bot", "CLAUDE_API_URL");
    assert_eq!(url.as_deref(), Some("http://service:8002"));
    assert!(matches!(source, Source::Service(at) if at.line == 9));
    let (db, source) = c.value("backend-api", "DATABASE_URL");
    assert_eq!(
        db.as_deref(),
        Some("postgres://postgres@127.0.0.1:5432/test")
    );
    assert_eq!(source, Source::Plugin("postgres".into()));
    // PORT from the environment belongs to the served service only, never to `up`.
    let up = plan("", &[("PORT", "9999")], Mode::Up);
    assert_eq!(up.value("backend-api", "PORT").0.as_deref(), Some("8000"));
    let serve = plan("", &[("PORT", "9999")], Mode::Serve("backend-api".into()));
    assert_eq!(
        serve.value("backend-api", "PORT").0.as_deref(),
        Some("9999")
    );
}

#[test]
fn tier_limits_take_a_whole_number_or_unlimited() {
    let serve = || Mode::Serve("backend-api".into());
    let checked = plan(
        "",
        &[
            ("HELIX_TIER_FREE_MESSAGES_PER_DAY", "lots"),
            ("HELIX_TIER_PRO_TOKENS_PER_MONTH", "-1"),
            ("HELIX_USAGE_FLUSH_MS", "0"),
        ],
        serve(),
    );
    checked.find(
        "HELIX_TIER_FREE_MESSAGES_PER_DAY",
        "or \"unlimited\", got \"lots\"",
    );
    checked.find("HELIX_TIER_PRO_TOKENS_PER_MONTH", "got \"-1\"");
    checked.find("HELIX_USAGE_FLUSH_MS", "from 1 to 60000");

    let fine = plan(
        "",
        &[
            ("HELIX_TIER_FREE_MESSAGES_PER_DAY", "Unlimited"),
            ("HELIX_TIER_ENTERPRISE_TOKENS_PER_MONTH", "0"),
        ],
        serve(),
    );
    let errors = fine
        .deployment
        .problems
        .iter()
        .filter(|p| p.severity == helix::config::Severity::Error);
    assert_eq!(errors.count(), 0, "{:#?}", fine.deployment.problems);
}
