//! Upstream keys: list with filters, paging and sorting; paste to add; delete;
//! enable and disable; verify now; full scans with progress; reveal one key.

use super::AdminTag;
use crate::admin::AdminContext;
use crate::admin::backups;
use crate::admin::error::{ApiError, ApiResult};
use crate::admin::files;
use crate::admin::security::AdminAuth;
use crate::key_state::{DisableReason, KeySnapshot, KeyStatus, ScanVerdict, StatusCounts};
use crate::keys::Fingerprint;
use crate::pool::{KeySlot, ScanReport};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

pub struct KeysApi {
    pub ctx: Arc<AdminContext>,
}

/// What a key can do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
enum KeyStateName {
    /// Serving.
    Active,
    /// Resting on some models (their quota); serves the others.
    Partial,
    /// Resting on every model; frees up by itself.
    Cooling,
    /// Taken out of service (dead, or by hand).
    Disabled,
}

/// A rest of a key.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct CooldownView {
    /// The model, or none for every model.
    model: Option<String>,
    /// Unix milliseconds when it ends.
    until_ms: i64,
    /// Why.
    reason: String,
    /// Where its length came from: `retry_delay` (Google's), `daily_quota`
    /// (until midnight Pacific), `configured` (`[cooldown]`), `script` (the
    /// policy script) or `pacing` (the limits declared in `[models]`).
    source: String,
}

/// Successes and failures in five minutes.
#[derive(Object)]
struct OutcomeBucket {
    /// Unix milliseconds when the five minutes start.
    start_ms: i64,
    /// Attempts that succeeded.
    ok: u32,
    /// Attempts charged as failures.
    failed: u32,
}

/// A key as the admin sees it (never in clear).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct KeyView {
    /// Stable id (12 hex digits of the key's SHA-256).
    fingerprint: String,
    /// `AIza…wxyz`.
    masked: String,
    /// The key file's name.
    group: String,
    /// State now.
    state: KeyStateName,
    /// Why it is disabled.
    disabled_reason: Option<String>,
    /// How the disable ends: `scan` (when a health scan finds the key alive)
    /// or `operator` (when an operator enables it).
    disabled_until: Option<String>,
    /// Unix milliseconds since when.
    disabled_since_ms: Option<i64>,
    /// Rests still running.
    cooldowns: Vec<CooldownView>,
    /// When the last running rest ends (Unix milliseconds).
    cooling_until_ms: Option<i64>,
    /// Attempts made with the key.
    requests: u64,
    /// Attempts that succeeded.
    successes: u64,
    /// Attempts charged as failures.
    failures: u64,
    /// Failures in a row.
    consecutive_failures: u32,
    /// Mean attempt latency, milliseconds.
    mean_latency_ms: Option<u64>,
    /// Tokens served.
    tokens: u64,
    /// Unix milliseconds of the last attempt.
    last_used_ms: Option<i64>,
    /// The last failure, in words.
    last_error: Option<String>,
    /// The last (up to 64) attempts, oldest first: `o` succeeded, `x`
    /// failed (since the process started).
    recent: String,
    /// The last hour in five-minute buckets, oldest first (since the
    /// process started).
    hour: Vec<OutcomeBucket>,
}

/// Keys in each state, over the whole pool.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct StateCounts {
    active: u64,
    partial: u64,
    cooling: u64,
    disabled: u64,
}

/// A page of keys.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct KeyPage {
    /// Keys matching the filter.
    total: u64,
    /// This page (1-based).
    page: u32,
    /// Page size.
    per_page: u32,
    /// The keys.
    items: Vec<KeyView>,
    /// Every key of the pool by state (ignores the filter).
    counts: StateCounts,
    /// Every group with its key count.
    groups: Vec<GroupCount>,
}

/// A group and its size.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct GroupCount {
    name: String,
    keys: u64,
}

/// Sort order of the key list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
enum KeySort {
    Fingerprint,
    Group,
    State,
    Requests,
    Failures,
    LastUsed,
    CoolingUntil,
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
enum Order {
    Asc,
    Desc,
}

/// Text to take keys from.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ImportRequest {
    /// Any text: keys are found by Google's key pattern anywhere in it, or
    /// one per line (non-standard keys, when `keys.allow_nonstandard`).
    #[oai(validator(max_length = 5000000))]
    text: String,
    /// The group (key file `keys/<group>.txt`); default `added`.
    #[oai(validator(pattern = "^[A-Za-z0-9_-]{1,40}$"))]
    group: Option<String>,
}

/// A key that was added.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct AddedKey {
    fingerprint: String,
    masked: String,
}

/// A line with no key on it.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RejectedLine {
    /// 1-based line of the pasted text.
    line: u64,
    /// Why.
    reason: String,
}

/// What the import did.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ImportReport {
    /// The key file written (empty when nothing was added).
    file: String,
    /// Keys new to the pool.
    added: Vec<AddedKey>,
    /// Fingerprints of keys the pool already had.
    already_present: Vec<String>,
    /// Keys repeated within the text.
    duplicates_in_text: u64,
    /// Lines with no key.
    rejected: Vec<RejectedLine>,
}

/// Keys to act on.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Selection {
    /// Fingerprints.
    #[oai(validator(min_items = 1, max_items = 10000, pattern = "^[0-9a-fA-F]{12}$"))]
    fingerprints: Vec<String>,
}

/// What a bulk action did.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct BulkReport {
    /// Keys changed.
    changed: u64,
    /// Fingerprints not in the pool.
    not_found: Vec<String>,
    /// After a delete: the backup that `POST /keys/restore` puts back.
    backup: Option<String>,
}

/// Which keys to export.
#[derive(Object)]
struct ExportRequest {
    /// Only keys in this state.
    state: Option<KeyStateName>,
    /// Only keys of this group.
    #[oai(validator(max_length = 64))]
    group: Option<String>,
}

/// Keys in clear, one per line as a key file holds them (with weights).
#[derive(ApiResponse)]
enum ExportedKeys {
    /// The keys.
    #[oai(status = 200)]
    Ok(PlainText<String>, #[oai(header = "content-disposition")] String),
}

/// A backup of deleted keys to put back.
#[derive(Object)]
struct RestoreRequest {
    /// The `backup` a delete answered with.
    #[oai(validator(max_length = 40))]
    backup: String,
}

/// The verdict of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
enum Verdict {
    Alive,
    Invalid,
    PermissionDenied,
    Unknown,
}

/// One key's check.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct VerifyResult {
    fingerprint: String,
    masked: String,
    /// What the check found; the pool applies it (dead keys disabled, live
    /// ones re-enabled unless disabled by hand).
    verdict: Verdict,
}

/// Checks of the selected keys.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct VerifyReport {
    results: Vec<VerifyResult>,
    not_found: Vec<String>,
}

/// Progress of the current or last health scan.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ScanView {
    running: bool,
    total: u64,
    done: u64,
    alive: u64,
    dead: u64,
    unknown: u64,
    started_at_ms: Option<u64>,
    finished_at_ms: Option<u64>,
}

impl From<ScanReport> for ScanView {
    fn from(r: ScanReport) -> Self {
        Self {
            running: r.running,
            total: r.total,
            done: r.done,
            alive: r.alive,
            dead: r.dead,
            unknown: r.unknown,
            started_at_ms: r.started_at_ms,
            finished_at_ms: r.finished_at_ms,
        }
    }
}

#[derive(ApiResponse)]
enum ScanStarted {
    /// The scan started; follow it with GET /scan.
    #[oai(status = 202)]
    Accepted(Json<ScanView>),
}

/// A key in clear, for the deliberate "copy key" action.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RevealedKey {
    fingerprint: String,
    key: String,
}

impl From<KeyStatus> for KeyStateName {
    fn from(status: KeyStatus) -> Self {
        match status {
            KeyStatus::Active => Self::Active,
            KeyStatus::Partial => Self::Partial,
            KeyStatus::Cooling => Self::Cooling,
            KeyStatus::Disabled => Self::Disabled,
        }
    }
}

impl From<StatusCounts> for StateCounts {
    fn from(c: StatusCounts) -> Self {
        Self { active: c.active, partial: c.partial, cooling: c.cooling, disabled: c.disabled }
    }
}

fn ms(time: SystemTime) -> i64 {
    crate::store::to_ms(time)
}

/// Pacing waits by key.
type PacingWaits = std::collections::HashMap<Fingerprint, Vec<crate::pool::PacingWait>>;

/// A key's view; waits from gemgate's own pacing (`[models]` limits) show
/// among its rests with the reason `pacing_rpm` or `pacing_rpd`.
fn view(slot: &KeySlot, snapshot: &KeySnapshot, pacing: &PacingWaits, now: SystemTime) -> KeyView {
    let paced = pacing.get(&slot.record.fingerprint).into_iter().flatten().map(|wait| CooldownView {
        model: Some(wait.model.to_string()),
        until_ms: ms(wait.until),
        reason: format!("pacing_{}", wait.limit),
        source: "pacing".to_string(),
    });
    let cooldowns: Vec<CooldownView> = snapshot
        .active_cooldowns(now)
        .map(|c| CooldownView {
            model: c.model.as_deref().map(String::from),
            until_ms: ms(c.until),
            reason: c.reason.clone(),
            source: c.source.as_str().to_string(),
        })
        .chain(paced)
        .collect();
    KeyView {
        fingerprint: slot.record.fingerprint.to_string(),
        masked: slot.record.key.masked(),
        group: slot.record.group.to_string(),
        state: snapshot.status(now).into(),
        disabled_reason: snapshot.disabled.map(|d| d.reason.as_str().to_string()),
        disabled_until: snapshot.disabled.map(|d| d.reason.ends().to_string()),
        disabled_since_ms: snapshot.disabled.map(|d| ms(d.since)),
        cooling_until_ms: cooldowns.iter().map(|c| c.until_ms).max(),
        cooldowns,
        requests: snapshot.requests,
        successes: snapshot.successes,
        failures: snapshot.failures,
        consecutive_failures: snapshot.consecutive_failures,
        mean_latency_ms: (snapshot.requests > 0).then(|| snapshot.latency_ms_total / snapshot.requests),
        tokens: snapshot.tokens,
        last_used_ms: snapshot.last_used.map(ms),
        last_error: snapshot.last_error.clone(),
        recent: snapshot.outcomes.last().into_iter().map(|failed| if failed { 'x' } else { 'o' }).collect(),
        hour: snapshot
            .outcomes
            .hour(now)
            .into_iter()
            .map(|(start, ok, failed)| OutcomeBucket { start_ms: ms(start), ok, failed })
            .collect(),
    }
}

/// Parses fingerprints (sorted, each once), answering 400 for one that is
/// not 12 hex digits.
fn parse_fingerprints(list: &[String]) -> ApiResult<Vec<Fingerprint>> {
    let mut parsed = list
        .iter()
        .map(|text| {
            Fingerprint::parse(text.trim()).ok_or_else(|| {
                ApiError::bad_request(format!("`{text}` is not a key fingerprint (12 hex digits)"))
                    .with_id("not_fingerprint", &[("text", text)])
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    parsed.sort_unstable();
    parsed.dedup();
    Ok(parsed)
}

impl KeysApi {
    async fn slot_by_fingerprint(&self, wanted: Fingerprint) -> Option<Arc<KeySlot>> {
        self.ctx.pool().slots().into_iter().find(|s| s.record.fingerprint == wanted)
    }

    /// Makes a disable or enable durable before it is acknowledged: waits
    /// until each key's actor has taken it (and queued the key for the
    /// store), then flushes the store.
    async fn persist_now(&self, wanted: &[Fingerprint]) {
        self.ctx.pool().settled(wanted.to_vec()).await;
        self.ctx.reloader.store_writer.flush().await;
    }

    async fn set_disabled(&self, body: &Selection, reason: Option<DisableReason>) -> ApiResult<Json<BulkReport>> {
        let wanted = parse_fingerprints(&body.fingerprints)?;
        let count = wanted.len();
        let missing = self.ctx.pool().set_disabled_many(wanted.clone(), reason);
        let changed = (count - missing.len()) as u64;
        self.persist_now(&wanted).await;
        Ok(Json(BulkReport { changed, not_found: missing.iter().map(ToString::to_string).collect(), backup: None }))
    }
}

#[OpenApi(tag = "AdminTag::Keys")]
impl KeysApi {
    /// Keys with their state, per-model cooldowns, counters and last error.
    /// `search` matches a fingerprint (start), the key's first or last
    /// characters (four or more), or the last error's text (three or more).
    /// Sorted by state by default (disabled first, then most failures);
    /// counts and times sort largest first unless `order` says otherwise.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/keys", method = "get")]
    async fn list(
        &self,
        _auth: AdminAuth,
        state: Query<Option<KeyStateName>>,
        group: Query<Option<String>>,
        #[oai(validator(max_length = 64))] search: Query<Option<String>>,
        /// Only keys disabled for this reason (`invalid`, `permission_denied`, `manual`, `policy`).
        #[oai(validator(max_length = 32))]
        reason: Query<Option<String>>,
        sort: Query<Option<KeySort>>,
        order: Query<Option<Order>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))] page: Query<Option<u32>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))] per_page: Query<Option<u32>>,
    ) -> ApiResult<Json<KeyPage>> {
        let now = SystemTime::now();
        let slots = self.ctx.pool().slots();
        let mut counts = StatusCounts::default();
        let mut groups: BTreeMap<String, u64> = BTreeMap::new();
        let search = search.0.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        // Fingerprints and error texts match without regard to case.
        let lowered = search.as_deref().map(str::to_lowercase);
        let mut rows: Vec<(Arc<KeySlot>, KeySnapshot, KeyStateName)> = Vec::new();
        for slot in slots {
            let snapshot = slot.snapshot();
            let status = snapshot.status(now);
            counts.add(status);
            let key_state = KeyStateName::from(status);
            *groups.entry(slot.record.group.to_string()).or_default() += 1;
            if state.0.is_some_and(|s| s != key_state) || group.0.as_deref().is_some_and(|g| g != &*slot.record.group) {
                continue;
            }
            if let Some(wanted) = reason.0.as_deref()
                && snapshot.disabled.as_ref().is_none_or(|d| d.reason.as_str() != wanted)
            {
                continue;
            }
            if let (Some(needle), Some(lowered)) = (&search, &lowered) {
                let by_fingerprint = slot.record.fingerprint.to_string().starts_with(lowered.as_str());
                let key = slot.record.key.expose();
                let by_key = needle.len() >= 4 && (key.ends_with(needle.as_str()) || key.starts_with(needle.as_str()));
                let by_error = needle.len() >= 3
                    && snapshot.last_error.as_deref().is_some_and(|e| e.to_lowercase().contains(lowered.as_str()));
                if !by_fingerprint && !by_key && !by_error {
                    continue;
                }
            }
            rows.push((slot, snapshot, key_state));
        }
        // By default the keys that need a look come first: disabled, then
        // cooling, resting on some models, active; within a state the latest
        // trouble first. Counts and times run largest first unless asked.
        let sort = sort.0.unwrap_or(KeySort::State);
        let descending = match order.0 {
            Some(order) => order == Order::Desc,
            None => matches!(sort, KeySort::Requests | KeySort::Failures | KeySort::LastUsed | KeySort::CoolingUntil),
        };
        let trouble = |s: &KeySnapshot| s.disabled.map(|d| d.since).or(s.last_failure);
        let cooling_until =
            |s: &KeySnapshot| s.active_cooldowns(now).map(|c| c.until).max().unwrap_or(SystemTime::UNIX_EPOCH);
        rows.sort_by(|a, b| {
            let primary = match sort {
                KeySort::Fingerprint => std::cmp::Ordering::Equal,
                KeySort::Group => a.0.record.group.cmp(&b.0.record.group),
                // Disabled first (the enum runs from active to disabled).
                // Within a state, the latest trouble first: disabled keys by
                // when, the others by their last failure, then by failures.
                KeySort::State => (b.2 as u8)
                    .cmp(&(a.2 as u8))
                    .then_with(|| trouble(&b.1).cmp(&trouble(&a.1)))
                    .then_with(|| b.1.failures.cmp(&a.1.failures)),
                KeySort::Requests => a.1.requests.cmp(&b.1.requests),
                KeySort::Failures => a.1.failures.cmp(&b.1.failures),
                KeySort::LastUsed => a.1.last_used.cmp(&b.1.last_used),
                KeySort::CoolingUntil => cooling_until(&a.1).cmp(&cooling_until(&b.1)),
            };
            let primary = if descending { primary.reverse() } else { primary };
            // Ties stay in one order whichever way the sort runs.
            primary.then_with(|| a.0.record.fingerprint.cmp(&b.0.record.fingerprint))
        });
        let (page, per_page) = (page.0.unwrap_or(1), per_page.0.unwrap_or(50));
        let total = rows.len() as u64;
        let mut pacing = PacingWaits::new();
        for (fingerprint, wait) in self.ctx.pool().pacing() {
            pacing.entry(fingerprint).or_default().push(wait);
        }
        let items = rows
            .iter()
            .skip((page as usize - 1).saturating_mul(per_page as usize))
            .take(per_page as usize)
            .map(|(slot, snapshot, _)| view(slot, snapshot, &pacing, now))
            .collect();
        let groups = groups.into_iter().map(|(name, keys)| GroupCount { name, keys }).collect();
        Ok(Json(KeyPage { total, page, per_page, items, counts: counts.into(), groups }))
    }

    /// Paste text to add keys: they are extracted, deduplicated, appended to
    /// `keys/<group>.txt` and loaded at once.
    #[oai(path = "/keys/import", method = "post")]
    async fn import(&self, _auth: AdminAuth, body: Json<ImportRequest>) -> ApiResult<Json<ImportReport>> {
        let _writing = self.ctx.file_writes.lock().await;
        let loaded = self.ctx.reloader.current();
        let group = body.group.clone().unwrap_or_else(|| "added".into());
        if !files::is_group_name(&group) {
            return Err(ApiError::bad_request("group: use 1 to 40 letters, digits, - or _").with_id("bad_group", &[]));
        }
        let extracted = files::extract_keys(&body.text, loaded.config.keys.allow_nonstandard);
        let present: HashSet<Fingerprint> = self.ctx.pool().slots().iter().map(|s| s.record.fingerprint).collect();
        let (old, new): (Vec<String>, Vec<String>) =
            extracted.keys.into_iter().partition(|k| present.contains(&Fingerprint::of(k)));
        let mut file = String::new();
        if !new.is_empty() {
            let path = files::append_keys(&loaded.keys_dir(), &group, &new)
                .map_err(|e| ApiError::internal(format!("cannot write the key file: {e}")))?;
            file = path.display().to_string();
            self.ctx.reloader.reload_keys_edited().await;
            tracing::info!(added = new.len(), file = %file, "admin added keys");
        }
        Ok(Json(ImportReport {
            file,
            added: new
                .iter()
                .map(|k| AddedKey { fingerprint: Fingerprint::of(k).to_string(), masked: crate::keys::mask_secret(k) })
                .collect(),
            already_present: old.iter().map(|k| Fingerprint::of(k).to_string()).collect(),
            duplicates_in_text: extracted.duplicates as u64,
            rejected: extracted
                .rejected
                .into_iter()
                .map(|(line, reason)| RejectedLine { line: line as u64, reason })
                .collect(),
        }))
    }

    /// Deletes keys: their lines are removed from the key files and the pool
    /// lets them go (attempts in flight finish).
    #[oai(path = "/keys/delete", method = "post")]
    async fn delete(&self, _auth: AdminAuth, body: Json<Selection>) -> ApiResult<Json<BulkReport>> {
        let wanted: HashSet<Fingerprint> = parse_fingerprints(&body.fingerprints)?.into_iter().collect();
        let _writing = self.ctx.file_writes.lock().await;
        let dir = self.ctx.reloader.current().keys_dir();
        let lines = files::remove_keys(&dir, &wanted)
            .map_err(|e| ApiError::internal(format!("cannot rewrite the key files: {e}")))?;
        let removed: HashSet<Fingerprint> = lines.iter().map(files::RemovedLine::fingerprint).collect();
        let not_found = wanted.difference(&removed).map(|fp| fp.to_string()).collect();
        if lines.is_empty() {
            return Ok(Json(BulkReport { changed: 0, not_found, backup: None }));
        }
        let data_dir = self.ctx.reloader.current().data_dir();
        // The keys are out of the files already: a failed backup is said, not hidden.
        let backup = backups::save(&data_dir, lines)
            .map_err(|e| ApiError::internal(format!("keys deleted, but their backup could not be written: {e}")))?;
        self.ctx.reloader.reload_keys_edited().await;
        tracing::info!(removed = removed.len(), backup = %backup, "admin deleted keys");
        Ok(Json(BulkReport { changed: removed.len() as u64, not_found, backup: Some(backup) }))
    }

    /// Puts deleted keys back into the files they came from (undo of a
    /// delete), except keys the folder holds again meanwhile.
    #[oai(path = "/keys/restore", method = "post")]
    async fn restore(&self, _auth: AdminAuth, body: Json<RestoreRequest>) -> ApiResult<Json<BulkReport>> {
        let _writing = self.ctx.file_writes.lock().await;
        let loaded = self.ctx.reloader.current();
        let data_dir = loaded.data_dir();
        let backup = backups::load(&data_dir, &body.backup)
            .map_err(|e| ApiError::internal(format!("cannot read the backup: {e}")))?
            .ok_or_else(|| {
                ApiError::not_found(format!("no backup `{}` (the newest 50 are kept)", body.backup))
                    .with_id("no_backup", &[("name", &body.backup)])
            })?;
        let restored = files::restore_lines(&loaded.keys_dir(), &backup.lines)
            .map_err(|e| ApiError::internal(format!("cannot write the key files: {e}")))?;
        backups::remove(&data_dir, &body.backup);
        if !restored.is_empty() {
            self.ctx.reloader.reload_keys_edited().await;
        }
        tracing::info!(restored = restored.len(), backup = %body.backup, "admin restored deleted keys");
        Ok(Json(BulkReport { changed: restored.len() as u64, not_found: Vec::new(), backup: None }))
    }

    /// Disables keys by hand; only an operator re-enables them (scans do not).
    #[oai(path = "/keys/disable", method = "post")]
    async fn disable(&self, _auth: AdminAuth, body: Json<Selection>) -> ApiResult<Json<BulkReport>> {
        self.set_disabled(&body, Some(DisableReason::Manual)).await
    }

    /// Enables keys (whatever disabled them).
    #[oai(path = "/keys/enable", method = "post")]
    async fn enable(&self, _auth: AdminAuth, body: Json<Selection>) -> ApiResult<Json<BulkReport>> {
        self.set_disabled(&body, None).await
    }

    /// Checks the selected keys against Google now; dead keys are disabled and
    /// live ones re-enabled, as a scan would.
    #[oai(path = "/keys/verify", method = "post")]
    async fn verify(&self, _auth: AdminAuth, body: Json<Selection>) -> ApiResult<Json<VerifyReport>> {
        let wanted = parse_fingerprints(&body.fingerprints)?;
        let verdicts = self.ctx.pool().verify(&wanted).await;
        // The pool answers for the keys it has; the rest are not in it.
        let checked: HashSet<Fingerprint> = verdicts.iter().map(|(slot, _)| slot.record.fingerprint).collect();
        let not_found = wanted.iter().filter(|fp| !checked.contains(fp)).map(ToString::to_string).collect();
        let results = verdicts
            .into_iter()
            .map(|(slot, verdict)| VerifyResult {
                fingerprint: slot.record.fingerprint.to_string(),
                masked: slot.record.key.masked(),
                verdict: match verdict {
                    ScanVerdict::Alive => Verdict::Alive,
                    ScanVerdict::Dead(DisableReason::Invalid) => Verdict::Invalid,
                    ScanVerdict::Dead(_) => Verdict::PermissionDenied,
                    ScanVerdict::Unknown => Verdict::Unknown,
                },
            })
            .collect();
        Ok(Json(VerifyReport { results, not_found }))
    }

    /// The keys in clear, by state and/or group, one per line as a key file
    /// holds them (`KEY weight=N` where the weight is not 1). Logged.
    #[oai(path = "/keys/export", method = "post")]
    async fn export(&self, _auth: AdminAuth, body: Json<ExportRequest>) -> ApiResult<ExportedKeys> {
        let now = SystemTime::now();
        let mut lines = String::new();
        let mut count = 0;
        for slot in self.ctx.pool().slots() {
            let key_state = KeyStateName::from(slot.snapshot().status(now));
            let group_differs = body.group.as_deref().is_some_and(|g| g != &*slot.record.group);
            if body.state.is_some_and(|s| s != key_state) || group_differs {
                continue;
            }
            lines.push_str(slot.record.key.expose());
            if slot.record.weight != 1 {
                lines.push_str(&format!(" weight={}", slot.record.weight));
            }
            lines.push('\n');
            count += 1;
        }
        tracing::warn!(keys = count, state = ?body.state, group = ?body.group, "admin exported keys in clear");
        Ok(ExportedKeys::Ok(PlainText(lines), "attachment; filename=\"gemgate-keys.txt\"".into()))
    }

    /// Shows one key in clear, for copying. Logged.
    #[oai(path = "/keys/:fingerprint/reveal", method = "post")]
    async fn reveal(
        &self,
        _auth: AdminAuth,
        #[oai(validator(pattern = "^[0-9a-fA-F]{12}$"))] fingerprint: Path<String>,
    ) -> ApiResult<Json<RevealedKey>> {
        let wanted = parse_fingerprints(std::slice::from_ref(&fingerprint.0))?;
        let slot = match wanted.first() {
            Some(fp) => self.slot_by_fingerprint(*fp).await,
            None => None,
        }
        .ok_or_else(|| ApiError::not_found("no key with that fingerprint in the pool").with_id("no_key", &[]))?;
        tracing::warn!(key = %slot.record.fingerprint, "admin revealed a key in clear");
        Ok(Json(RevealedKey { fingerprint: slot.record.fingerprint.to_string(), key: slot.record.key.expose().into() }))
    }

    /// Starts a health scan of every key (disabled ones included).
    #[oai(path = "/scan", method = "post")]
    async fn start_scan(&self, _auth: AdminAuth) -> ApiResult<ScanStarted> {
        self.ctx
            .pool()
            .start_scan()
            .await
            .map_err(|e| ApiError::conflict(e.to_string()).with_id("scan_running", &[]))?;
        Ok(ScanStarted::Accepted(Json(self.ctx.pool().scan_report().into())))
    }

    /// Progress of the current or last scan.
    #[oai(path = "/scan", method = "get")]
    async fn scan(&self, _auth: AdminAuth) -> ApiResult<Json<ScanView>> {
        Ok(Json(self.ctx.pool().scan_report().into()))
    }
}
