//! The platform's default roster of agents, loaded by `helix agents seed`.

use helix_store::agents::NewAgent;

/// (agent id, name, role, capabilities)
const ROSTER: [(&str, &str, &str, &[&str]); 14] = [
    (
        "kael",
        "Kael",
        "ethics and reflection",
        &["reflection", "ethics"],
    ),
    (
        "lumina",
        "Lumina",
        "empathy and emotional insight",
        &["empathy", "support"],
    ),
    (
        "vega",
        "Vega",
        "strategy and guidance",
        &["planning", "strategy"],
    ),
    (
        "gemini",
        "Gemini",
        "dual perspectives and synthesis",
        &["analysis", "synthesis"],
    ),
    (
        "agni",
        "Agni",
        "transformation and change",
        &["transformation"],
    ),
    (
        "kavach",
        "Kavach",
        "security and protection",
        &["security", "monitoring"],
    ),
    (
        "sanghacore",
        "SanghaCore",
        "community and collective harmony",
        &["community"],
    ),
    (
        "shadow",
        "Shadow",
        "archives and hidden patterns",
        &["archival", "pattern-analysis"],
    ),
    (
        "echo",
        "Echo",
        "resonance and reflection of voices",
        &["voice", "resonance"],
    ),
    (
        "phoenix",
        "Phoenix",
        "renewal and recovery",
        &["recovery", "renewal"],
    ),
    (
        "oracle",
        "Oracle",
        "foresight and prediction",
        &["forecasting", "prediction"],
    ),
    (
        "claude",
        "Claude",
        "reasoning and conversation",
        &["reasoning", "writing", "code"],
    ),
    (
        "manus",
        "Manus",
        "execution and operations",
        &["execution", "automation"],
    ),
    (
        "discord-bridge",
        "Discord Bridge",
        "relay between Discord and the platform",
        &["discord", "relay"],
    ),
];

/// The roster as new agents.
pub fn default_roster() -> Vec<NewAgent> {
    ROSTER
        .iter()
        .map(|(id, name, role, capabilities)| NewAgent {
            agent_id: (*id).into(),
            name: (*name).into(),
            role: (*role).into(),
            description: format!("{name}: {role}."),
            capabilities: capabilities.iter().map(|c| (*c).into()).collect(),
        })
        .collect()
}
