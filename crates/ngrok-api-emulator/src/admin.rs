//! The admin surface under `/__admin/` (no API key, not recorded, not rate limited), and
//! the operations behind it, shared with the in-process [`EmulatorHandle`](crate::EmulatorHandle).
//! They see and change the objects of every account alike.
//!
//! | Method and path                 | Effect                                                     |
//! |---------------------------------|------------------------------------------------------------|
//! | `GET /__admin/requests`         | request log: `[RecordedRequest]`, oldest first             |
//! | `DELETE /__admin/requests`      | clear the request log                                      |
//! | `GET /__admin/counts`           | `[RouteCount]` by method, route and status                 |
//! | `POST /__admin/reset`           | forget objects, log, rate windows; faults back to start    |
//! | `GET /__admin/faults`           | current `Faults`                                           |
//! | `PUT /__admin/faults`           | change faults (`FaultsUpdate`, partial), answers `Faults`  |
//! | `GET /__admin/objects/{id}`     | the stored object, secrets included                        |
//! | `PATCH /__admin/objects/{id}`   | JSON merge patch (RFC 7396) of the stored object           |
//! | `DELETE /__admin/objects/{id}`  | delete, ignoring references (as a person in the dashboard) |
//! | `POST /__admin/raw_objects`     | store raw JSON in an account's list (`RawObject`), answers `{"id"}` |
//! | `PUT /__admin/objects/{id}/raw` | replace the stored object by the body, kept raw            |
//! | `GET /__admin/scripted_answers` | the `[ScriptedAnswer]` still to come                       |
//! | `POST /__admin/scripted_answers`| spoil the next answers to a path (`ScriptedAnswer`)        |
//! | `DELETE /__admin/scripted_answers` | forget them                                             |
//!
//! A raw object is answered by `GET` and list calls exactly as stored, without validation or
//! normalizing: what ngrok might send one day (a target type no client knows yet, `null`
//! where a string is expected, no `id` at all). Its `id` is the object's own `id` when that is
//! a string, else a new one (not written into the object).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};

use crate::failure::Failure;
use crate::ids::new_id;
use crate::resources::{Kind, destination_fields, subscription_fields};
use crate::state::{
    Faults, FaultsUpdate, RecordedRequest, RouteCount, ScriptedAnswer, Shared, Stored,
};

/// Body of `POST /__admin/raw_objects`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RawObject {
    /// An API key of the account whose list gets the object.
    pub api_key: String,
    /// `event_destinations` or `event_subscriptions`.
    pub collection: String,
    /// A JSON object; answered as is.
    pub object: Value,
}

/// Path prefix of the admin surface.
pub const ADMIN_PREFIX: &str = "/__admin";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/__admin/requests",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.lock().requests.clone()) }).delete(
                |State(s): State<Arc<Shared>>| async move {
                    s.lock().requests.clear();
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route(
            "/__admin/counts",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.lock().counts()) }),
        )
        .route(
            "/__admin/reset",
            post(|State(s): State<Arc<Shared>>| async move {
                reset(&s);
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/__admin/faults",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.lock().faults.clone()) }).put(
                |State(s): State<Arc<Shared>>, Json(update): Json<FaultsUpdate>| async move {
                    set_faults(&s, &update).map(Json).map_err(Failure::bad_request)
                },
            ),
        )
        .route(
            "/__admin/objects/{id}",
            get(|State(s): State<Arc<Shared>>, Path(id): Path<String>| async move {
                object(&s, &id).map(Json).ok_or_else(Failure::not_found)
            })
            .patch(
                |State(s): State<Arc<Shared>>, Path(id): Path<String>, Json(patch): Json<Value>| async move {
                    patch_object(&s, &id, &patch).map(Json)
                },
            )
            .delete(|State(s): State<Arc<Shared>>, Path(id): Path<String>| async move {
                if delete_object(&s, &id) {
                    Ok(StatusCode::NO_CONTENT)
                } else {
                    Err(Failure::not_found())
                }
            }),
        )
        .route(
            "/__admin/objects/{id}/raw",
            axum::routing::put(
                |State(s): State<Arc<Shared>>, Path(id): Path<String>, Json(object): Json<Map<String, Value>>| async move {
                    if set_raw_object(&s, &id, object) {
                        Ok(StatusCode::NO_CONTENT)
                    } else {
                        Err(Failure::not_found())
                    }
                },
            ),
        )
        .route(
            "/__admin/raw_objects",
            post(|State(s): State<Arc<Shared>>, Json(raw): Json<RawObject>| async move {
                insert_raw_object(&s, &raw)
                    .map(|id| (StatusCode::CREATED, Json(serde_json::json!({"id": id}))))
                    .map_err(Failure::bad_request)
            }),
        )
        .route(
            "/__admin/scripted_answers",
            get(|State(s): State<Arc<Shared>>| async move { Json(s.lock().scripted.clone()) })
                .post(
                    |State(s): State<Arc<Shared>>, Json(answer): Json<ScriptedAnswer>| async move {
                        script_answer(&s, answer)
                            .map(|()| StatusCode::NO_CONTENT)
                            .map_err(Failure::bad_request)
                    },
                )
                .delete(|State(s): State<Arc<Shared>>| async move {
                    s.lock().scripted.clear();
                    StatusCode::NO_CONTENT
                }),
        )
        .with_state(shared)
}

/// Stores `raw.object` verbatim in the list of `raw.collection` of the account of
/// `raw.api_key`; answers its id.
pub(crate) fn insert_raw_object(shared: &Shared, raw: &RawObject) -> Result<String, String> {
    let kind = Kind::of_collection(&raw.collection)
        .ok_or("collection must be event_destinations or event_subscriptions")?;
    let account = shared
        .account_of_authorization(Some(&format!("Bearer {}", raw.api_key)))
        .ok_or("api_key is the key of no account")?;
    let id = match raw.object.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => new_id(kind.id_prefix()),
    };
    let Value::Object(fields) = &raw.object else {
        return Err("object must be a JSON object".into());
    };
    let fields = fields.clone();
    let mut state = shared.lock();
    let collection = state.collection(kind);
    if collection.contains_key(&id) {
        return Err("an object with this id exists".into());
    }
    collection.insert(
        id.clone(),
        Stored {
            account,
            fields,
            raw: true,
        },
    );
    Ok(id)
}

/// Replaces the stored object `id` by `object`, kept raw; `false` if there is none.
pub(crate) fn set_raw_object(shared: &Shared, id: &str, object: Map<String, Value>) -> bool {
    let Some(kind) = Kind::of_id(id) else {
        return false;
    };
    let mut state = shared.lock();
    let Some(stored) = state.collection(kind).get_mut(id) else {
        return false;
    };
    stored.fields = object;
    stored.raw = true;
    true
}

pub(crate) fn script_answer(shared: &Shared, answer: ScriptedAnswer) -> Result<(), String> {
    if answer.times == 0 {
        return Err("times must be at least 1".into());
    }
    if let crate::state::Spoiled::ErrorPage { status } = answer.answer
        && !(400..=599).contains(&status)
    {
        return Err("an error page's status must lie between 400 and 599".into());
    }
    shared.lock().scripted.push(answer);
    Ok(())
}

pub(crate) fn reset(shared: &Shared) {
    shared.lock().reset(shared.initial_faults.clone());
}

pub(crate) fn set_faults(shared: &Shared, update: &FaultsUpdate) -> Result<Faults, String> {
    let mut state = shared.lock();
    let mut faults = state.faults.clone();
    faults.apply(update)?;
    state.faults = faults.clone();
    Ok(faults)
}

pub(crate) fn object(shared: &Shared, id: &str) -> Option<Value> {
    shared
        .lock()
        .find(id)
        .map(|stored| Value::Object(stored.fields.clone()))
}

pub(crate) fn delete_object(shared: &Shared, id: &str) -> bool {
    let Some(kind) = Kind::of_id(id) else {
        return false;
    };
    shared.lock().collection(kind).remove(id).is_some()
}

/// Merges `patch` into the stored object and re-validates it as a create would, in the
/// object's account: a subscription may only name destinations of its own account.
pub(crate) fn patch_object(shared: &Shared, id: &str, patch: &Value) -> Result<Value, Failure> {
    let kind = Kind::of_id(id).ok_or_else(Failure::not_found)?;
    let mut state = shared.lock();
    let stored = state
        .collection(kind)
        .get(id)
        .ok_or_else(Failure::not_found)?;
    let account = stored.account;
    let mut merged = Value::Object(stored.fields.clone());
    merge_patch(&mut merged, patch);
    let Value::Object(mut merged) = merged else {
        return Err(Failure::bad_request("The patch must be a JSON object."));
    };
    let (id_value, created_at) = (merged.remove("id"), merged.remove("created_at"));
    let mut fields: Map<String, Value> = match kind {
        Kind::Destination => destination_fields(merged, None)?,
        Kind::Subscription => subscription_fields(merged, None, |dest| {
            state.owned(Kind::Destination, account, dest).is_some()
        })?,
    };
    fields.insert(
        "id".into(),
        id_value.unwrap_or_else(|| Value::String(id.to_owned())),
    );
    fields.insert("created_at".into(), created_at.unwrap_or(Value::Null));
    state.collection(kind).insert(
        id.to_owned(),
        Stored {
            account,
            fields: fields.clone(),
            raw: false,
        },
    );
    Ok(Value::Object(fields))
}

/// RFC 7396 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A client of the admin surface over HTTP, for an emulator running in another process.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base_url: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// `base_url` is the emulator's root, e.g. `http://127.0.0.1:8080`.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{ADMIN_PREFIX}/{path}", self.base_url)
    }

    /// The request log, oldest first.
    pub async fn requests(&self) -> reqwest::Result<Vec<RecordedRequest>> {
        self.http
            .get(self.url("requests"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// Clears the request log.
    pub async fn clear_requests(&self) -> reqwest::Result<()> {
        self.http
            .delete(self.url("requests"))
            .send()
            .await?
            .error_for_status()
            .map(drop)
    }

    /// Request counts by method, route and status.
    pub async fn counts(&self) -> reqwest::Result<Vec<RouteCount>> {
        self.http
            .get(self.url("counts"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// Forgets all objects, the log and rate windows; restores the start-up faults.
    pub async fn reset(&self) -> reqwest::Result<()> {
        self.http
            .post(self.url("reset"))
            .send()
            .await?
            .error_for_status()
            .map(drop)
    }

    /// Current fault settings.
    pub async fn faults(&self) -> reqwest::Result<Faults> {
        self.http
            .get(self.url("faults"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// Changes fault settings; returns the result.
    pub async fn set_faults(&self, update: &FaultsUpdate) -> reqwest::Result<Faults> {
        self.http
            .put(self.url("faults"))
            .json(update)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// The stored object with secrets, or `None` if there is none.
    pub async fn object(&self, id: &str) -> reqwest::Result<Option<Value>> {
        let response = self
            .http
            .get(self.url(&format!("objects/{id}")))
            .send()
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        response.error_for_status()?.json().await.map(Some)
    }

    /// Deletes an object out of band; `false` if there was none.
    pub async fn delete_object(&self, id: &str) -> reqwest::Result<bool> {
        let response = self
            .http
            .delete(self.url(&format!("objects/{id}")))
            .send()
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        response.error_for_status().map(|_| true)
    }

    /// Stores raw JSON in an account's list (see the module docs); answers its id.
    pub async fn insert_raw_object(&self, raw: &RawObject) -> reqwest::Result<String> {
        let answer: Value = self
            .http
            .post(self.url("raw_objects"))
            .json(raw)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Replaces a stored object by raw JSON; `false` if there is none.
    pub async fn set_raw_object(
        &self,
        id: &str,
        object: &Map<String, Value>,
    ) -> reqwest::Result<bool> {
        let response = self
            .http
            .put(self.url(&format!("objects/{id}/raw")))
            .json(object)
            .send()
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        response.error_for_status().map(|_| true)
    }

    /// Spoils the next answers to a path (see [`ScriptedAnswer`]).
    pub async fn script_answer(&self, answer: &ScriptedAnswer) -> reqwest::Result<()> {
        self.http
            .post(self.url("scripted_answers"))
            .json(answer)
            .send()
            .await?
            .error_for_status()
            .map(drop)
    }

    /// Forgets the scripted answers still to come.
    pub async fn clear_scripted_answers(&self) -> reqwest::Result<()> {
        self.http
            .delete(self.url("scripted_answers"))
            .send()
            .await?
            .error_for_status()
            .map(drop)
    }

    /// Edits an object out of band with a JSON merge patch; answers the stored result.
    pub async fn patch_object(&self, id: &str, patch: &Value) -> reqwest::Result<Value> {
        self.http
            .patch(self.url(&format!("objects/{id}")))
            .json(patch)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }
}
