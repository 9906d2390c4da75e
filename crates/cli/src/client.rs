//! The CLI's view of a database: Chroma's HTTP API v2, spoken either to a running server
//! (`--url`) or to the server's own router in this process over a data directory (`--path`).
//!
//! One code path for both: `ochre ingest` and `ochre query` build the same JSON requests, and a
//! local data directory gets exactly the validation and semantics a server gives.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

/// An error answer of the API: Chroma's error name and message.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {message}")]
pub struct ApiFailure {
    pub status: u16,
    pub name: String,
    pub message: String,
}

/// The largest JSON answer the client reads (a page of 1,000 records with 4,096-float
/// embeddings is ~80 MiB as JSON).
const MAX_ANSWER: u64 = 1 << 30;

impl ApiFailure {
    /// The failure an error answer describes: Chroma's `{"error", "message"}` body, or the
    /// status and whatever else came.
    fn from_answer(status: u16, value: &Value) -> ApiFailure {
        let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
        ApiFailure {
            status,
            name: field("error").unwrap_or_else(|| format!("HTTP {status}")),
            message: field("message").unwrap_or_else(|| value.to_string()),
        }
    }
}

enum Transport {
    /// The server's router over an open data directory, called in process.
    Local {
        runtime: tokio::runtime::Runtime,
        app: axum::Router,
        /// The database the router serves, for what only the engine offers (bulk loads).
        db: ochre::Ochre,
    },
    /// A running server.
    Remote {
        agent: ureq::Agent,
        base: String,
        token: Option<String>,
    },
}

/// A client of one tenant and database.
pub struct Client {
    transport: Transport,
    tenant: String,
    database: String,
    /// The server's `max_batch_size`.
    pub max_batch_size: usize,
}

/// A collection as the client needs it.
#[derive(Debug, Clone)]
pub struct CollectionRef {
    pub id: String,
    pub json: Value,
}

/// Where the CLI's commands find the database.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// Data directory to work on directly (the server must not be running on it).
    #[arg(long, conflicts_with = "url")]
    pub path: Option<std::path::PathBuf>,
    /// URL of a running Ochre server, e.g. http://localhost:8000.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for a server with token auth.
    #[arg(long, env = "OCHRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Tenant.
    #[arg(long, default_value = "default_tenant")]
    pub tenant: String,
    /// Database.
    #[arg(long, default_value = "default_database")]
    pub database: String,
}

/// Where an operator command works: a data directory or a running server, one of them named.
#[derive(Debug, Clone, clap::Args)]
pub struct Endpoint {
    /// Data directory to work on directly (the server must not be running on it).
    #[arg(long, conflicts_with = "url")]
    pub path: Option<std::path::PathBuf>,
    /// URL of a running Ochre server, e.g. http://localhost:8000.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for a server with token auth.
    #[arg(long, env = "OCHRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Endpoint {
    /// The target in `tenant`/`database`; an error when neither --path nor --url was given
    /// (these commands never fall back to `./chroma`, Chroma's own default directory).
    pub fn target(&self, tenant: &str, database: &str) -> anyhow::Result<Target> {
        if self.path.is_none() && self.url.is_none() {
            anyhow::bail!("name the database: --path DATA_DIR or --url http://HOST:PORT");
        }
        Ok(Target {
            path: self.path.clone(),
            url: self.url.clone(),
            token: self.token.clone(),
            tenant: tenant.to_owned(),
            database: database.to_owned(),
        })
    }
}

impl Client {
    /// Connects to `target`: opens the data directory (default `./chroma`, as `ochre run`) or
    /// checks that the server answers.
    pub fn connect(target: &Target) -> anyhow::Result<Client> {
        let transport = match &target.url {
            Some(url) => Transport::Remote {
                agent: ureq::AgentBuilder::new()
                    .timeout_connect(Duration::from_secs(10))
                    .timeout_read(Duration::from_secs(600))
                    .build(),
                base: url.trim_end_matches('/').to_string(),
                token: target.token.clone(),
            },
            None => open_local(&data_dir(target))?,
        };
        let mut client = Client {
            transport,
            tenant: target.tenant.clone(),
            database: target.database.clone(),
            max_batch_size: 1000,
        };
        let checks = client
            .call("GET", "/api/v2/pre-flight-checks", None)
            .context("checking the server")?;
        if let Some(n) = checks.get("max_batch_size").and_then(Value::as_u64) {
            client.max_batch_size = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        Ok(client)
    }

    /// Calls the API: `path` from `/api/v2`, a JSON body or none; the JSON answer.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, text) = match &self.transport {
            Transport::Local { runtime, app, .. } => {
                let request = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("content-type", "application/json")
                    .body(match body {
                        Some(b) => Body::from(serde_json::to_vec(b)?),
                        None => Body::empty(),
                    })
                    .context("building a request")?;
                runtime.block_on(async {
                    let response = app
                        .clone()
                        .oneshot(request)
                        .await
                        .context("calling the engine")?;
                    let status = response.status();
                    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                        .await
                        .context("reading the answer")?;
                    anyhow::Ok((
                        status.as_u16(),
                        String::from_utf8_lossy(&bytes).into_owned(),
                    ))
                })?
            }
            Transport::Remote { agent, base, token } => {
                let mut request = agent.request(method, &format!("{base}{path}"));
                if let Some(t) = token {
                    request = request.set("Authorization", &format!("Bearer {t}"));
                }
                let result = match body {
                    Some(b) => request.send_json(b),
                    None => request.call(),
                };
                match result {
                    // Not `into_string`: it refuses answers over 10 MiB, and a page of
                    // records with large embeddings is more.
                    Ok(r) => {
                        let status = r.status();
                        let mut text = String::new();
                        std::io::Read::read_to_string(
                            &mut std::io::Read::take(r.into_reader(), MAX_ANSWER),
                            &mut text,
                        )
                        .context("reading the answer")?;
                        (status, text)
                    }
                    Err(ureq::Error::Status(code, r)) => {
                        (code, r.into_string().unwrap_or_default())
                    }
                    Err(e) => return Err(e).with_context(|| format!("{method} {base}{path}")),
                }
            }
        };
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if StatusCode::from_u16(status).is_ok_and(|s| s.is_success()) {
            return Ok(value);
        }
        Err(ApiFailure::from_answer(status, &value).into())
    }

    /// The engine's handle of a collection, when this client works on a data directory (not a
    /// server): for bulk loads, which only the engine offers.
    pub fn local_collection(&self, id: &str) -> anyhow::Result<Option<ochre::Collection>> {
        let Transport::Local { db, .. } = &self.transport else {
            return Ok(None);
        };
        let uuid = uuid::Uuid::parse_str(id).with_context(|| format!("collection id {id:?}"))?;
        Ok(Some(db.collection(ochre::CollectionId(uuid))?))
    }

    /// Points the client at another tenant and database.
    pub fn set_scope(&mut self, tenant: &str, database: &str) {
        tenant.clone_into(&mut self.tenant);
        database.clone_into(&mut self.database);
    }

    /// Calls a route of a running server whose answer is a byte stream (not JSON): the body to
    /// read, or the server's error.
    pub fn download(&self, method: &str, path: &str) -> anyhow::Result<Box<dyn std::io::Read>> {
        let Transport::Remote { base, token, .. } = &self.transport else {
            anyhow::bail!("{path} is a server route; pass --url");
        };
        // No read timeout: the server answers once its copy is made, which takes as long as
        // the data is large.
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .build();
        let mut request = agent.request(method, &format!("{base}{path}"));
        if let Some(t) = token {
            request = request.set("Authorization", &format!("Bearer {t}"));
        }
        match request.call() {
            Ok(r) => Ok(Box::new(r.into_reader())),
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Err(ApiFailure::from_answer(status, &value).into())
            }
            Err(e) => Err(e).with_context(|| format!("{method} {base}{path}")),
        }
    }

    /// `/api/v2/tenants/{tenant}/databases/{database}` of the current scope.
    pub fn db_path(&self) -> String {
        format!(
            "/api/v2/tenants/{}/databases/{}",
            self.tenant, self.database
        )
    }

    fn collection_path(&self, c: &CollectionRef, op: &str) -> String {
        format!("{}/collections/{}/{op}", self.db_path(), c.id)
    }

    fn collection_ref(json: Value) -> anyhow::Result<CollectionRef> {
        let field = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(CollectionRef {
            id: field("id").context("the collection has no id")?,
            json,
        })
    }

    /// The collection named `name`, or `None`.
    pub fn find_collection(&self, name: &str) -> anyhow::Result<Option<CollectionRef>> {
        match self.call(
            "GET",
            &format!("{}/collections/{name}", self.db_path()),
            None,
        ) {
            Ok(v) => Ok(Some(Self::collection_ref(v)?)),
            Err(e) => match e.downcast_ref::<ApiFailure>() {
                Some(f) if f.status == 404 => Ok(None),
                _ => Err(e),
            },
        }
    }

    /// Creates a collection with a schema (or returns the existing one, unchanged).
    pub fn get_or_create_collection(
        &self,
        name: &str,
        schema: Value,
    ) -> anyhow::Result<CollectionRef> {
        let body = json!({
            "name": name,
            "schema": schema,
            "get_or_create": true,
        });
        Self::collection_ref(self.call(
            "POST",
            &format!("{}/collections", self.db_path()),
            Some(&body),
        )?)
    }

    /// `POST .../{op}` of a collection.
    pub fn post(&self, c: &CollectionRef, op: &str, body: &Value) -> anyhow::Result<Value> {
        self.call("POST", &self.collection_path(c, op), Some(body))
    }

    /// Every record matching `where_` (in pages), with `include`.
    pub fn get_all(
        &self,
        c: &CollectionRef,
        where_: &Value,
        include: &[&str],
    ) -> anyhow::Result<Vec<Value>> {
        let page = self.max_batch_size.clamp(1, 1000);
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let got = self.post(
                c,
                "get",
                &json!({"where": where_, "include": include, "limit": page, "offset": offset}),
            )?;
            let ids = got["ids"].as_array().cloned().unwrap_or_default();
            let n = ids.len();
            for (i, id) in ids.into_iter().enumerate() {
                let mut row = json!({"id": id});
                for key in include {
                    row[*key] = got[*key][i].clone();
                }
                out.push(row);
            }
            if n < page {
                return Ok(out);
            }
            offset += n;
        }
    }
}

/// The data directory of a `--path` target: `--path`, else `./chroma` (as `ochre run`).
pub fn data_dir(target: &Target) -> std::path::PathBuf {
    target
        .path
        .clone()
        .unwrap_or_else(|| ochre_server::ServerConfig::default().persist_path)
}

fn open_local(path: &Path) -> anyhow::Result<Transport> {
    let db = ochre::Ochre::open(path).with_context(|| {
        format!(
            "opening {} (if `ochre run` serves it, pass --url instead of --path)",
            path.display()
        )
    })?;
    let config = ochre_server::ServerConfig {
        persist_path: path.to_path_buf(),
        ..Default::default()
    };
    let state = ochre_server::AppState::new(db.clone(), config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(Transport::Local {
        runtime,
        app: ochre_server::app(state),
        db,
    })
}
