//! Policies as rhai scripts, behind the same [`Policy`] seam. A script is
//! compiled once; each failed attempt calls its `on_error(ctx)` (and a scan
//! its `on_scan(ctx)`). Scripts run sandboxed: bounded operations, call
//! depth, string, array and map sizes; no modules, no `eval`, no I/O. A script
//! that throws, hits a limit or returns nonsense falls back to the built-in
//! decision for that call; the fault is logged with file and line and counted.
//!
//! Operation limits do not bound time (one operation on a 64 KiB string is
//! slow), so every call also has a wall-clock limit, checked as the script
//! runs, and runs outside the async workers' way (`block_in_place`), so a
//! slow script delays neither other requests nor `/healthz` and the admin.

use super::{Cooldown, CooldownScope, Decision, DefaultPolicy, EmptyReply, NextStep, Outcome, Policy};
use crate::key_state::{DisableReason, RestSource, ScanVerdict};
use crate::keys::Fingerprint;
use rhai::{AST, Dynamic, Engine, EvalAltResult, Map, Position, Scope};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A script that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScriptError {
    /// The script's file.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A compiled policy script.
pub struct ScriptPolicy {
    engine: Engine,
    ast: AST,
    file: String,
    fallback: DefaultPolicy,
    faults: Arc<AtomicU64>,
    has_on_error: bool,
    has_on_scan: bool,
    has_on_empty_reply: bool,
    time_limit: Duration,
}

/// Operations a call may take before it is stopped (an endless loop).
const MAX_OPERATIONS: u64 = 200_000;

/// The wall-clock limit of one call unless config says otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_millis(10);

thread_local! {
    /// When the script call running on this thread must stop.
    static CALL_DEADLINE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Stops a call that runs past its thread's deadline (checked every 32 operations).
fn stop_when_late(operations: u64) -> Option<Dynamic> {
    if operations % 32 != 0 {
        return None;
    }
    let late = CALL_DEADLINE.with(|deadline| deadline.get()).is_some_and(|deadline| Instant::now() >= deadline);
    late.then(|| Dynamic::from("the script ran past its time limit (policy.time_limit_ms)"))
}

/// Runs blocking work without holding an async worker when on tokio's
/// multi-threaded runtime.
fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn sandboxed_engine() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(64 * 1024)
        .set_max_array_size(10_000)
        .set_max_map_size(10_000)
        .set_max_modules(0)
        .disable_symbol("eval");
    engine.on_progress(stop_when_late);
    engine.on_print(|text| tracing::info!(target: "gemgate::policy::script", "{text}"));
    engine.on_debug(|text, _, position| tracing::debug!(target: "gemgate::policy::script", "{position:?}: {text}"));
    engine
}

impl ScriptPolicy {
    /// Reads and compiles `path`.
    pub fn load(path: &Path, fallback: DefaultPolicy, faults: Arc<AtomicU64>) -> Result<Self, ScriptError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|err| ScriptError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read the script: {err}"),
        })?;
        Self::compile(&file, &source, fallback, faults)
    }

    /// Compiles `source` (named `file` in messages).
    pub fn compile(
        file: &str,
        source: &str,
        fallback: DefaultPolicy,
        faults: Arc<AtomicU64>,
    ) -> Result<Self, ScriptError> {
        let engine = sandboxed_engine();
        let ast = engine.compile(source).map_err(|err| ScriptError {
            file: file.to_string(),
            line: err.1.line().unwrap_or(0),
            message: err.0.to_string(),
        })?;
        let has = |name: &str| ast.iter_functions().any(|f| f.name == name && f.params.len() == 1);
        let (has_on_error, has_on_scan, has_on_empty_reply) = (has("on_error"), has("on_scan"), has("on_empty_reply"));
        if !has_on_error && !has_on_scan && !has_on_empty_reply {
            return Err(ScriptError {
                file: file.to_string(),
                line: 0,
                message: "the script defines none of `fn on_error(ctx)`, `fn on_scan(ctx)`, `fn on_empty_reply(ctx)`"
                    .into(),
            });
        }
        Ok(Self {
            engine,
            ast,
            file: file.to_string(),
            fallback,
            faults,
            has_on_error,
            has_on_scan,
            has_on_empty_reply,
            time_limit: DEFAULT_TIME_LIMIT,
        })
    }

    /// The same script with another wall-clock limit per call.
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    fn call(&self, function: &str, ctx: Map) -> Result<Dynamic, Box<EvalAltResult>> {
        off_the_workers(|| {
            CALL_DEADLINE.with(|deadline| deadline.set(Some(Instant::now() + self.time_limit)));
            let result = self.engine.call_fn::<Dynamic>(&mut Scope::new(), &self.ast, function, (ctx,));
            CALL_DEADLINE.with(|deadline| deadline.set(None));
            result
        })
    }

    fn fault(&self, function: &str, message: &str, position: Position) {
        self.faults.fetch_add(1, Ordering::Relaxed);
        let line = position.line().map_or(String::new(), |l| format!(":{l}"));
        tracing::warn!("policy script {}{line}: {function} failed, using the built-in decision: {message}", self.file);
    }
}

impl Policy for ScriptPolicy {
    fn checks_empty_replies(&self) -> bool {
        self.has_on_empty_reply || self.fallback.checks_empty_replies()
    }

    fn on_empty_reply(&self, reply: &EmptyReply) -> bool {
        if !self.has_on_empty_reply {
            return self.fallback.on_empty_reply(reply);
        }
        let mut ctx = Map::new();
        ctx.insert("empty_retries".into(), i64::from(reply.empty_retries).into());
        ctx.insert("builtin".into(), self.fallback.on_empty_reply(reply).into());
        ctx.insert("model".into(), reply.model.to_string().into());
        ctx.insert("attempt".into(), i64::from(reply.attempt).into());
        ctx.insert("finish_reason".into(), reply.finish_reason.clone().map_or(Dynamic::UNIT, Dynamic::from));
        ctx.insert("key_group".into(), reply.key_group.to_string().into());
        ctx.insert("key_fingerprint".into(), reply.key_fingerprint.to_string().into());
        match self.call("on_empty_reply", ctx) {
            Ok(value) => value.as_bool().unwrap_or_else(|_| {
                self.fault(
                    "on_empty_reply",
                    "on_empty_reply must return true (retry) or false (accept)",
                    Position::NONE,
                );
                false
            }),
            Err(err) => {
                self.fault("on_empty_reply", &err.to_string(), err.position());
                false
            }
        }
    }

    fn decide(&self, outcome: &Outcome) -> Decision {
        let default = self.fallback.decide(outcome);
        if !self.has_on_error {
            return default;
        }
        let ctx = outcome_map(outcome, &default);
        match self.call("on_error", ctx) {
            Ok(value) => match parse_decision(&value, outcome, &default) {
                Ok(decision) => decision,
                Err(message) => {
                    self.fault("on_error", &message, Position::NONE);
                    default
                }
            },
            Err(err) => {
                self.fault("on_error", &err.to_string(), err.position());
                default
            }
        }
    }

    fn on_scan(&self, verdict: ScanVerdict, fingerprint: Fingerprint) -> ScanVerdict {
        if !self.has_on_scan {
            return verdict;
        }
        let mut ctx = Map::new();
        let (name, reason) = match verdict {
            ScanVerdict::Alive => ("alive", ""),
            ScanVerdict::Dead(reason) => ("dead", reason.as_str()),
            ScanVerdict::Unknown => ("unknown", ""),
        };
        ctx.insert("verdict".into(), name.into());
        ctx.insert("reason".into(), reason.into());
        ctx.insert("key_fingerprint".into(), fingerprint.to_string().into());
        let result = self.call("on_scan", ctx);
        let parsed = match &result {
            Ok(value) => match value.clone().into_string().ok().as_deref() {
                Some("alive") => Some(ScanVerdict::Alive),
                Some("unknown") => Some(ScanVerdict::Unknown),
                Some("dead") => Some(match verdict {
                    ScanVerdict::Dead(reason) => ScanVerdict::Dead(reason),
                    _ => ScanVerdict::Dead(DisableReason::Policy),
                }),
                _ => None,
            },
            Err(_) => None,
        };
        parsed.unwrap_or_else(|| {
            let (message, position) = match result {
                Err(err) => (err.to_string(), err.position()),
                Ok(_) => ("on_scan must return \"alive\", \"dead\" or \"unknown\"".to_string(), Position::NONE),
            };
            self.fault("on_scan", &message, position);
            verdict
        })
    }
}

/// The context a script sees for one failed attempt.
pub fn outcome_map(outcome: &Outcome, default: &Decision) -> Map {
    let mut ctx = Map::new();
    let mut put = |key: &str, value: Dynamic| {
        ctx.insert(key.into(), value);
    };
    put("kind", outcome.kind.as_str().into());
    put("status", i64::from(outcome.http_status).into());
    put("google_status", outcome.google_status.clone().into());
    put("reason", outcome.reason.clone().map_or(Dynamic::UNIT, Dynamic::from));
    put("quota_id", outcome.quota_id.clone().map_or(Dynamic::UNIT, Dynamic::from));
    put("retry_delay_secs", outcome.retry_delay.map_or(Dynamic::UNIT, |d| Dynamic::from(d.as_secs_f64())));
    put("model", outcome.model.to_string().into());
    put("attempt", i64::from(outcome.attempt).into());
    put("elapsed_ms", (outcome.elapsed.as_millis() as i64).into());
    put("bytes_sent", (outcome.bytes_sent as i64).into());
    put("streaming", outcome.streaming.into());
    put("key_group", outcome.key_group.to_string().into());
    put("key_fingerprint", outcome.key_fingerprint.to_string().into());
    put("recent_failures", i64::from(outcome.recent_failures).into());
    put("consecutive_failures", i64::from(outcome.consecutive_failures).into());
    put("builtin", decision_map(default).into());
    ctx
}

/// A decision as a map, in the shape scripts return.
pub fn decision_map(decision: &Decision) -> Map {
    let mut map = Map::new();
    let (action, delay) = match decision.next {
        NextStep::RetryOtherKey { after } => ("retry_other_key", after),
        NextStep::RetrySameKey { after } => ("retry_same_key", after),
        NextStep::Fail => ("fail", Duration::ZERO),
    };
    map.insert("action".into(), action.into());
    map.insert("delay_ms".into(), (delay.as_millis() as i64).into());
    if let Some(cooldown) = &decision.cooldown {
        map.insert("cooldown_secs".into(), cooldown.duration.as_secs_f64().into());
        let scope = match &cooldown.scope {
            CooldownScope::AllModels => "all".to_string(),
            CooldownScope::Model(model) => model.to_string(),
        };
        map.insert("cooldown_model".into(), scope.into());
    }
    if let Some(reason) = decision.disable {
        map.insert("disable_key".into(), reason.as_str().into());
    }
    map.insert("charge_key".into(), decision.charge_key.into());
    map
}

fn number(value: &Dynamic) -> Option<f64> {
    value.as_float().ok().or_else(|| value.as_int().ok().map(|i| i as f64))
}

/// Reads a script's returned map; anything unexpected is an error (and the
/// caller falls back). Fields left out keep the built-in decision's value.
pub fn parse_decision(value: &Dynamic, outcome: &Outcome, default: &Decision) -> Result<Decision, String> {
    let map = value.clone().try_cast::<Map>().ok_or("on_error must return a map such as #{ action: \"fail\" }")?;
    if let Some(unknown) = map.keys().find(|k| {
        !["action", "delay_ms", "cooldown_secs", "cooldown_model", "disable_key", "charge_key"].contains(&k.as_str())
    }) {
        return Err(format!("unknown field `{unknown}` in the returned map"));
    }
    let mut decision = default.clone();
    let delay = match map.get("delay_ms") {
        Some(value) => {
            let ms = number(value).filter(|ms| (0.0..=600_000.0).contains(ms)).ok_or("delay_ms must be 0..600000")?;
            Duration::from_millis(ms as u64)
        }
        None => match default.next {
            NextStep::RetryOtherKey { after } | NextStep::RetrySameKey { after } => after,
            NextStep::Fail => Duration::ZERO,
        },
    };
    if let Some(action) = map.get("action") {
        decision.next = match action.clone().into_string().as_deref() {
            Ok("retry_other_key") => NextStep::RetryOtherKey { after: delay },
            Ok("retry_same_key") => NextStep::RetrySameKey { after: delay },
            Ok("fail") => NextStep::Fail,
            _ => return Err("action must be \"retry_other_key\", \"retry_same_key\" or \"fail\"".into()),
        };
    }
    if outcome.bytes_sent > 0 {
        decision.next = NextStep::Fail; // bytes reached the client: no retry whatever the script says
    }
    if let Some(secs) = map.get("cooldown_secs") {
        let secs =
            number(secs).filter(|s| (0.0..=7.0 * 86_400.0).contains(s)).ok_or("cooldown_secs must be 0..604800")?;
        let scope = match map.get("cooldown_model").map(|m| m.clone().into_string()) {
            None => CooldownScope::Model(outcome.model.clone()),
            Some(Ok(model)) if model == "all" => CooldownScope::AllModels,
            Some(Ok(model)) if model == "this" || model.is_empty() => CooldownScope::Model(outcome.model.clone()),
            Some(Ok(model)) => CooldownScope::Model(Arc::from(model)),
            Some(Err(_)) => return Err("cooldown_model must be a string".into()),
        };
        let duration = Duration::from_secs_f64(secs);
        // The built-in rest passed back unchanged keeps its source.
        let builtin =
            default.cooldown.as_ref().filter(|c| c.scope == scope && c.duration.abs_diff(duration).as_millis() < 1);
        let source = builtin.map_or(RestSource::Script, |c| c.source);
        decision.cooldown = (secs > 0.0).then_some(Cooldown { scope, duration, source });
    }
    if let Some(disable) = map.get("disable_key") {
        decision.disable = if disable.is_unit() || disable.as_bool() == Ok(false) {
            None
        } else {
            Some(match disable.clone().into_string().as_deref() {
                Ok("invalid") => DisableReason::Invalid,
                Ok("permission_denied") => DisableReason::PermissionDenied,
                _ => DisableReason::Policy,
            })
        };
    }
    if let Some(charge) = map.get("charge_key") {
        decision.charge_key = charge.as_bool().map_err(|_| "charge_key must be true or false")?;
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CooldownConfig, RetryConfig};
    use crate::policy::case::outcome_from_case;
    use serde_json::json;

    fn script(source: &str) -> (ScriptPolicy, Arc<AtomicU64>) {
        let faults = Arc::new(AtomicU64::new(0));
        let fallback = DefaultPolicy::new(&CooldownConfig::default(), &RetryConfig::default());
        (ScriptPolicy::compile("test.rhai", source, fallback, faults.clone()).unwrap(), faults)
    }

    fn rate_limit() -> Outcome {
        outcome_from_case(&json!({"status": 429, "model": "gemini-2.5-pro", "retry_delay_secs": 9})).unwrap()
    }

    fn builtin(outcome: &Outcome) -> Decision {
        DefaultPolicy::new(&CooldownConfig::default(), &RetryConfig::default()).decide(outcome)
    }

    #[test]
    fn every_decision_kind_can_be_returned() {
        let (policy, faults) = script(
            r#"fn on_error(ctx) {
                if ctx.attempt == 1 { return #{ action: "retry_same_key", delay_ms: 50 }; }
                if ctx.attempt == 2 { return #{ action: "fail", cooldown_secs: 0, charge_key: false }; }
                #{ disable_key: "enough", cooldown_secs: 30, cooldown_model: "all" }
            }"#,
        );
        let mut outcome = rate_limit();
        let first = policy.decide(&outcome);
        assert_eq!(first.next, NextStep::RetrySameKey { after: Duration::from_millis(50) });
        assert_eq!(first.cooldown, builtin(&outcome).cooldown, "left-out fields keep the built-in decision");
        outcome.attempt = 2;
        let second = policy.decide(&outcome);
        assert_eq!((second.next, second.cooldown.clone(), second.charge_key), (NextStep::Fail, None, false));
        outcome.attempt = 3;
        let third = policy.decide(&outcome);
        assert_eq!(third.disable, Some(DisableReason::Policy));
        let rest = third.cooldown.unwrap();
        assert_eq!((rest.scope, rest.source), (CooldownScope::AllModels, RestSource::Script), "the script's own rest");
        assert_eq!(faults.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn loops_errors_and_nonsense_fall_back_and_count_as_faults() {
        let outcome = rate_limit();
        for source in [
            "fn on_error(ctx) { loop { } }",
            "fn on_error(ctx) { throw \"boom\"; }",
            "fn on_error(ctx) { ctx.nope.deeper }",
            "fn on_error(ctx) { 42 }",
            "fn on_error(ctx) { #{ action: \"teleport\" } }",
            "fn on_error(ctx) { #{ cooldown_secs: -5 } }",
            "fn on_error(ctx) { #{ surprise: true } }",
            "fn on_error(ctx) { let s = \"x\"; loop { s += s; } }",
        ] {
            let (policy, faults) = script(source);
            assert_eq!(policy.decide(&outcome), builtin(&outcome), "{source}");
            assert_eq!(faults.load(Ordering::Relaxed), 1, "{source}");
        }
    }

    #[test]
    fn slow_string_work_is_stopped_by_the_wall_clock() {
        // Within the operation limit, but each operation copies 64 KiB.
        let source = r#"fn on_error(ctx) {
            let s = "x"; while s.len() < 60000 { s += s; }
            let n = 0; while n < 100000 { let t = s; t.replace("x", "y"); n += 1; }
            #{ action: "fail" }
        }"#;
        let (policy, faults) = script(source);
        let policy = policy.with_time_limit(Duration::from_millis(20));
        let outcome = rate_limit();
        let started = Instant::now();
        assert_eq!(policy.decide(&outcome), builtin(&outcome));
        assert_eq!(faults.load(Ordering::Relaxed), 1);
        assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    }

    #[test]
    fn syntax_errors_and_missing_hooks_are_rejected_with_file_and_line() {
        let compile = |source: &str| {
            let fallback = DefaultPolicy::new(&CooldownConfig::default(), &RetryConfig::default());
            ScriptPolicy::compile("broken.rhai", source, fallback, Arc::default()).err().map(|e| e.to_string())
        };
        let error = compile("fn on_error(ctx) {\n  let x = ;\n}").unwrap();
        assert!(error.starts_with("broken.rhai:2:"), "{error}");
        assert!(compile("fn something_else(ctx) { 1 }").unwrap().contains("on_error"));
    }

    #[test]
    fn no_retry_once_bytes_reached_the_client() {
        let (policy, _) = script(r#"fn on_error(ctx) { #{ action: "retry_other_key" } }"#);
        let mut outcome = rate_limit();
        outcome.bytes_sent = 10;
        assert_eq!(policy.decide(&outcome).next, NextStep::Fail);
    }

    #[test]
    fn scan_hook_turns_verdicts() {
        let (policy, faults) =
            script(r#"fn on_scan(ctx) { if ctx.verdict == "dead" { "unknown" } else { ctx.verdict } }"#);
        let fp = Fingerprint::of("k");
        assert_eq!(policy.on_scan(ScanVerdict::Dead(DisableReason::Invalid), fp), ScanVerdict::Unknown);
        assert_eq!(policy.on_scan(ScanVerdict::Alive, fp), ScanVerdict::Alive);
        let (bad, bad_faults) = script(r#"fn on_scan(ctx) { 7 }"#);
        assert_eq!(bad.on_scan(ScanVerdict::Alive, fp), ScanVerdict::Alive);
        assert_eq!((faults.load(Ordering::Relaxed), bad_faults.load(Ordering::Relaxed)), (0, 1));
    }

    #[test]
    fn the_shipped_default_script_reproduces_the_builtin_policy() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.rhai");
        let fallback = DefaultPolicy::new(&CooldownConfig::default(), &RetryConfig::default());
        let faults = Arc::new(AtomicU64::new(0));
        let policy = ScriptPolicy::load(&path, fallback, faults.clone()).unwrap();
        for case in [
            json!({"status": 429}),
            json!({"status": 400, "reason": "API_KEY_INVALID"}),
            json!({"status": 503, "attempt": 3}),
            json!({"status": 500, "consecutive_failures": 9}),
            json!({"status": 400}),
            json!({"kind": "stream_cut", "bytes_sent": 5}),
        ] {
            let outcome = outcome_from_case(&case).unwrap();
            let mut expected = builtin(&outcome);
            let mut got = policy.decide(&outcome);
            // Durations pass through the script as floats: compare to the millisecond.
            for d in [&mut expected, &mut got] {
                if let Some(c) = d.cooldown.as_mut() {
                    c.duration = Duration::from_millis(c.duration.as_millis() as u64);
                }
            }
            assert_eq!(got, expected, "{case}");
        }
        assert_eq!(faults.load(Ordering::Relaxed), 0);
    }
}
