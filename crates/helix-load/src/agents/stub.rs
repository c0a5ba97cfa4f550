//! A stand-in for backend-api and agent-orchestration on one loopback port, for tests: keep-alive
//! HTTP/1.1, in-memory agents and tasks with the real transitions (one compare-and-set each),
//! and the newest-first listing with `next_before`. `racy` breaks the compare-and-set of claims, so
//! concurrent claims can all win.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

#[derive(Default)]
struct State {
    racy: bool,
    agents: HashSet<String>,
    tasks: BTreeMap<Uuid, Value>,
}

type Shared = Arc<Mutex<State>>;

/// Serve on an ephemeral port; its address.
pub async fn start(racy: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state: Shared = Arc::new(Mutex::new(State {
        racy,
        ..State::default()
    }));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, state.clone()));
        }
    });
    addr
}

async fn serve(socket: TcpStream, state: Shared) {
    let mut socket = BufReader::new(socket);
    while let Some((method, target, body)) = read_request(&mut socket).await {
        let (status, reply) = route(&state, &method, &target, &body);
        let reply = reply.map_or_else(String::new, |v| v.to_string());
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        let sent = socket.get_mut().write_all((head + &reply).as_bytes()).await;
        if sent.is_err() {
            return;
        }
    }
}

async fn read_request(socket: &mut BufReader<TcpStream>) -> Option<(String, String, Value)> {
    let mut line = String::new();
    socket.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut header = String::new();
        socket.read_line(&mut header).await.ok()?;
        let header = header.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(value) = header.strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    socket.read_exact(&mut body).await.ok()?;
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some((method, target, body))
}

fn route(state: &Shared, method: &str, target: &str, body: &Value) -> (u16, Option<Value>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut state = state.lock().unwrap();
    match (method, &segments[..]) {
        ("POST", ["api", "auth", "signup"]) => (201, Some(json!({"access_token": "admin"}))),
        ("GET", ["api", "keys"]) => (200, Some(json!({"keys": []}))),
        ("POST", ["api", "keys"]) => {
            let agent = body["scopes"][1]
                .as_str()
                .unwrap_or("")
                .replace("agent:", "");
            (
                201,
                Some(json!({"id": Uuid::new_v4(), "key": format!("hx_{agent}")})),
            )
        }
        ("DELETE", ["api", "keys", _]) => (204, None),
        ("POST", ["api", "agents"]) => {
            let fresh = state
                .agents
                .insert(body["agent_id"].as_str().unwrap().to_owned());
            (if fresh { 201 } else { 409 }, Some(json!({})))
        }
        ("POST", ["api", "agents", _, "heartbeat"]) => (200, Some(json!({}))),
        ("POST", ["api", "tasks"]) => create(&mut state, body),
        ("POST", ["api", "tasks", id, action]) => act(&mut state, id, action, body),
        ("GET", ["api", "tasks"]) => (200, Some(list(&state, query))),
        _ => (404, Some(json!({"error": {"code": "not_found"}}))),
    }
}

fn create(state: &mut State, body: &Value) -> (u16, Option<Value>) {
    let id = Uuid::now_v7();
    let task = json!({"id": id, "agent_id": body["agent_id"], "task_type": body["task_type"],
                      "task_data": body["task_data"], "status": "pending", "result": null});
    state.tasks.insert(id, task.clone());
    (201, Some(task))
}

fn act(state: &mut State, id: &str, action: &str, body: &Value) -> (u16, Option<Value>) {
    let racy = state.racy;
    let Some(task) = Uuid::parse_str(id)
        .ok()
        .and_then(|id| state.tasks.get_mut(&id))
    else {
        return (404, None);
    };
    let current = task["status"].as_str().unwrap_or("").to_owned();
    let (from, to) = match action {
        "claim" if racy => (vec!["pending", "claimed"], "claimed"),
        "claim" => (vec!["pending"], "claimed"),
        "start" => (vec!["claimed"], "running"),
        _ => (vec!["running"], "completed"),
    };
    if !from.contains(&current.as_str()) {
        let error = json!({"error": {"code": "illegal_transition", "message": "no",
                                     "fields": {"status": current}}});
        return (409, Some(error));
    }
    task["status"] = json!(to);
    if let Some(result) = body.get("result") {
        task["result"] = result.clone();
    }
    (200, Some(task.clone()))
}

fn list(state: &State, query: &str) -> Value {
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
    };
    let before = param("before").map(|id| Uuid::parse_str(id).unwrap());
    let limit: usize = param("limit").map_or(50, |l| l.parse().unwrap());
    let tasks: Vec<&Value> = state
        .tasks
        .range(..before.unwrap_or(Uuid::max()))
        .rev()
        .map(|(_, task)| task)
        .filter(|task| param("agent_id").is_none_or(|a| task["agent_id"] == a))
        .filter(|task| param("status").is_none_or(|s| task["status"] == s))
        .take(limit)
        .collect();
    let next = (tasks.len() == limit).then(|| tasks.last().map(|t| t["id"].clone()));
    json!({"tasks": tasks, "next_before": next.flatten()})
}
