//! Moving data in and out of Ochre: the export format (docs/format/export.md), `ochre export`,
//! and the import pipeline every source feeds (`ochre import FILE.jsonl`,
//! `ochre import --from-chroma DIR`).
//!
//! Everything goes through Chroma's HTTP API (the server's router in process for `--path`, a
//! running server for `--url`), so imported data gets exactly the validation a client's writes
//! get. An import reads its source twice: a first pass checks all of it (structure, totals, name
//! clashes with the target) before anything is written; the second writes in batches. Should
//! the target still refuse a batch, the collections and databases the import created are
//! deleted again, so a failed import leaves the target as it was, but for the tenants it
//! created (the API cannot delete one), empty.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use ochre::RecordBatch;
use serde_json::{json, Map, Value};

use crate::client::{ApiFailure, Client, CollectionRef};

/// The header key and version of the export format.
pub const FORMAT: &str = "ochre_export";
pub const VERSION: u64 = 1;

/// The longest line an export file may have (a record with a 40 MiB document, its metadata and
/// embedding fits); a longer one is refused rather than read into memory.
const MAX_LINE: u64 = 64 << 20;

/// A collection to create.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionSpec {
    pub tenant: String,
    pub database: String,
    pub name: String,
    pub metadata: Option<Value>,
    /// As `configuration_json` of Chroma's collection model; `None` leaves the defaults.
    pub configuration: Option<Value>,
    /// As `schema` of Chroma's collection model.
    pub schema: Option<Value>,
}

/// A record of the last collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub embedding: Vec<f32>,
    pub document: Option<String>,
    pub uri: Option<String>,
    pub metadata: Option<Value>,
}

/// One item of a data set on the move, in order: a collection's records follow it.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Tenant(String),
    Database {
        tenant: String,
        name: String,
    },
    Collection(CollectionSpec),
    /// The vector-index graph of the collection just named, built by the source's own index
    /// (Chroma's HNSW files), for a local import to adopt instead of building one; before the
    /// collection's records. Not part of the export format.
    Graph(Box<ochre::ImportedGraph>),
    Record(Record),
}

/// Where an import reads from.
pub trait Source {
    /// What to call it in messages.
    fn describe(&self) -> String;
    /// Calls `f` with every item in order. Each call reads the source anew (an import reads
    /// twice: to check, then to write).
    fn items(&mut self, f: &mut dyn FnMut(Item) -> anyhow::Result<()>) -> anyhow::Result<()>;
    /// While set, `items` may give records zero vectors of the right length and leave out index
    /// graphs, as long as every check the import makes still sees what it would see (the check
    /// pass reads nothing it does not need).
    fn skim(&mut self, _skim: bool) {}
}

fn b64(v: &[f32]) -> String {
    let mut bytes = Vec::with_capacity(v.len() * 4);
    for x in v {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> anyhow::Result<Vec<f32>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .context("the embedding is not base64")?;
    if bytes.len() % 4 != 0 {
        bail!(
            "the embedding has {} bytes, not a multiple of 4",
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The line of an item in the export format.
pub fn item_line(item: &Item) -> Value {
    match item {
        Item::Tenant(name) => json!({"tenant": {"name": name}}),
        Item::Database { tenant, name } => json!({"database": {"tenant": tenant, "name": name}}),
        Item::Collection(c) => json!({"collection": {
            "tenant": c.tenant, "database": c.database, "name": c.name,
            "metadata": c.metadata, "configuration": c.configuration, "schema": c.schema,
        }}),
        Item::Record(r) => json!({"record": {
            "id": r.id, "embedding": b64(&r.embedding), "document": r.document,
            "uri": r.uri, "metadata": r.metadata,
        }}),
        // Not in the format: an export never writes one (see `export`).
        Item::Graph(_) => Value::Null,
    }
}

/// Totals of a data set, as an export's last line states them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub tenants: u64,
    pub databases: u64,
    pub collections: u64,
    pub records: u64,
    /// Collections whose source index graph an import adopted (not part of the format).
    pub adopted_graphs: u64,
}

impl Totals {
    fn count(&mut self, item: &Item) {
        match item {
            Item::Tenant(_) => self.tenants += 1,
            Item::Database { .. } => self.databases += 1,
            Item::Collection(_) => self.collections += 1,
            Item::Record(_) => self.records += 1,
            Item::Graph(_) => {}
        }
    }

    fn json(&self) -> Value {
        json!({"tenants": self.tenants, "databases": self.databases,
               "collections": self.collections, "records": self.records})
    }
}

fn string_field(o: &Map<String, Value>, k: &str) -> anyhow::Result<String> {
    o.get(k)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("\"{k}\" is missing or not a string"))
}

fn optional_string(o: &Map<String, Value>, k: &str) -> anyhow::Result<Option<String>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => bail!("\"{k}\" is not a string or null"),
    }
}

fn optional_object(o: &Map<String, Value>, k: &str) -> anyhow::Result<Option<Value>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => bail!("\"{k}\" is not an object or null"),
    }
}

/// Parses one line of an export (after the header) into an item, or the end totals.
fn parse_line(line: &str) -> anyhow::Result<Result<Item, Totals>> {
    let v: Value = serde_json::from_str(line).context("not a JSON line")?;
    let Value::Object(top) = v else {
        bail!("not a JSON object");
    };
    if top.len() != 1 {
        bail!("a line holds exactly one key (tenant, database, collection, record or end)");
    }
    let Some((kind, Value::Object(o))) = top.into_iter().next() else {
        bail!("the line's value is not an object");
    };
    Ok(Ok(match kind.as_str() {
        "tenant" => Item::Tenant(string_field(&o, "name")?),
        "database" => Item::Database {
            tenant: string_field(&o, "tenant")?,
            name: string_field(&o, "name")?,
        },
        "collection" => Item::Collection(CollectionSpec {
            tenant: string_field(&o, "tenant")?,
            database: string_field(&o, "database")?,
            name: string_field(&o, "name")?,
            metadata: optional_object(&o, "metadata")?,
            configuration: optional_object(&o, "configuration")?,
            schema: optional_object(&o, "schema")?,
        }),
        "record" => Item::Record(Record {
            id: string_field(&o, "id")?,
            embedding: unb64(&string_field(&o, "embedding")?)?,
            document: optional_string(&o, "document")?,
            uri: optional_string(&o, "uri")?,
            metadata: optional_object(&o, "metadata")?,
        }),
        "end" => {
            let n = |k: &str| {
                o.get(k)
                    .and_then(Value::as_u64)
                    .with_context(|| format!("\"{k}\" is missing or not a count"))
            };
            return Ok(Err(Totals {
                tenants: n("tenants")?,
                databases: n("databases")?,
                collections: n("collections")?,
                records: n("records")?,
                adopted_graphs: 0,
            }));
        }
        other => bail!("unknown line type {other:?}"),
    }))
}

/// An export file as a source.
pub struct ExportFile {
    pub path: PathBuf,
}

/// Reads one line of at most [`MAX_LINE`] bytes (without its newline); `None` at the end.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> anyhow::Result<Option<()>> {
    buf.clear();
    let n = reader.by_ref().take(MAX_LINE + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if n as u64 > MAX_LINE {
        bail!("the line is longer than {} MiB", MAX_LINE >> 20);
    } else {
        // The last line of the file ends without a newline: the file was cut short.
        bail!("the line is cut short (the file ends without a newline)");
    }
    Ok(Some(()))
}

impl Source for ExportFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn items(&mut self, f: &mut dyn FnMut(Item) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let file = std::fs::File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::new();
        let mut number = 0u64;
        let at = |number: u64| format!("{} line {number}", self.path.display());
        number += 1;
        if read_line(&mut reader, &mut buf)
            .with_context(|| at(number))?
            .is_none()
        {
            bail!(
                "{} is empty; an Ochre export starts with a {{\"{FORMAT}\": ...}} header",
                self.path.display()
            );
        }
        let header: Value = serde_json::from_slice(&buf).unwrap_or(Value::Null);
        match header.get(FORMAT).and_then(|h| h.get("version")).and_then(Value::as_u64) {
            Some(VERSION) => {}
            Some(v) => bail!(
                "{} is an Ochre export of format version {v}; this Ochre reads version {VERSION}",
                self.path.display()
            ),
            None => bail!(
                "{} is not an Ochre export (its first line is not a {{\"{FORMAT}\": {{\"version\": ...}}}} header)",
                self.path.display()
            ),
        }
        let mut totals = Totals::default();
        let mut in_collection = false;
        loop {
            number += 1;
            if read_line(&mut reader, &mut buf)
                .with_context(|| at(number))?
                .is_none()
            {
                bail!(
                    "{} is cut short: it ends at line {} without its \"end\" line",
                    self.path.display(),
                    number - 1
                );
            }
            let line = std::str::from_utf8(&buf)
                .map_err(|_| anyhow::anyhow!("not UTF-8"))
                .with_context(|| at(number))?;
            match parse_line(line).with_context(|| at(number))? {
                Ok(item) => {
                    match &item {
                        Item::Collection(_) => in_collection = true,
                        Item::Record(_) if !in_collection => {
                            bail!("{}: a record before any collection", at(number))
                        }
                        Item::Record(_) | Item::Graph(_) => {}
                        Item::Tenant(_) | Item::Database { .. } => in_collection = false,
                    }
                    totals.count(&item);
                    f(item).with_context(|| at(number))?;
                }
                Err(stated) => {
                    if stated != totals {
                        bail!(
                            "{}: the end line states {} but the file holds {}",
                            at(number),
                            stated.json(),
                            totals.json()
                        );
                    }
                    number += 1;
                    if read_line(&mut reader, &mut buf)
                        .with_context(|| at(number))?
                        .is_some()
                    {
                        bail!("{}: data after the end line", at(number));
                    }
                    return Ok(());
                }
            }
        }
    }
}

// ----- export -----

/// Arguments of `ochre export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The file to write (JSON Lines; `-` for standard output). It is written under a temporary
    /// name and renamed when complete.
    #[arg(long)]
    pub out: PathBuf,
    /// Collections to export (repeat for several; default: every collection). Names are looked
    /// up in --tenant / --database.
    #[arg(long = "collection", value_name = "NAME")]
    pub collections: Vec<String>,
    /// Only this tenant (default: all of them).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this database (default: all of them).
    #[arg(long)]
    pub database: Option<String>,
    /// The database to export.
    #[command(flatten)]
    pub from: crate::client::Endpoint,
}

fn progress(len: u64, unit: &str) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:30}} {{pos}}/{{len}} {unit} {{elapsed_precise}} eta {{eta}} {{msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn as_array(v: Value, what: &str) -> anyhow::Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        other => bail!("{what}: expected a list, got {other}"),
    }
}

/// The tenants a client can see: every one on an Ochre server, else (a server without the
/// listing route) the one given.
fn tenants(client: &Client, fallback: &str) -> anyhow::Result<Vec<String>> {
    match client.call("GET", "/api/v2/tenants", None) {
        Ok(v) => Ok(as_array(v, "tenants")?
            .into_iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()),
        // A server without the route (Chroma's), or a credential scoped to one tenant: the
        // caller's own tenant.
        Err(e)
            if e.downcast_ref::<ApiFailure>()
                .is_some_and(|f| matches!(f.status, 403..=405)) =>
        {
            let identity = client.call("GET", "/api/v2/auth/identity", None).ok();
            let tenant = identity
                .as_ref()
                .and_then(|i| i.get("tenant"))
                .and_then(Value::as_str)
                .unwrap_or(fallback);
            Ok(vec![tenant.to_owned()])
        }
        Err(e) => Err(e),
    }
}

/// The collections of the client's scope, in the server's order.
fn collections(client: &Client) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let page = 100;
    loop {
        let got = as_array(
            client.call(
                "GET",
                &format!(
                    "{}/collections?limit={page}&offset={}",
                    client.db_path(),
                    out.len()
                ),
                None,
            )?,
            "collections",
        )?;
        let n = got.len();
        out.extend(got);
        if n < page {
            return Ok(out);
        }
    }
}

/// One collection's records from the client, page by page, as items.
fn export_records(
    client: &Client,
    c: &CollectionRef,
    f: &mut dyn FnMut(Item) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let page = client.max_batch_size.clamp(1, 1000);
    let mut offset = 0usize;
    loop {
        let got = client.post(
            c,
            "get",
            &json!({"include": ["embeddings", "documents", "metadatas", "uris"],
                    "limit": page, "offset": offset}),
        )?;
        let ids = got["ids"].as_array().cloned().unwrap_or_default();
        let n = ids.len();
        for (i, id) in ids.into_iter().enumerate() {
            let id = id.as_str().context("an id is not a string")?.to_owned();
            let embedding = got["embeddings"][i]
                .as_array()
                .with_context(|| format!("record {id} has no embedding"))?
                .iter()
                .map(|x| x.as_f64().map(|x| x as f32))
                .collect::<Option<Vec<f32>>>()
                .with_context(|| format!("record {id}: an embedding value is not a number"))?;
            let text = |k: &str| got[k][i].as_str().map(str::to_owned);
            let metadata = match &got["metadatas"][i] {
                v @ Value::Object(_) => Some(v.clone()),
                _ => None,
            };
            f(Item::Record(Record {
                id,
                embedding,
                document: text("documents"),
                uri: text("uris"),
                metadata,
            }))?;
        }
        if n < page {
            return Ok(());
        }
        offset += n;
    }
}

/// A database (a data directory or a server) as a source of items, optionally narrowed.
pub struct Live<'a> {
    pub client: &'a mut Client,
    pub tenant: Option<String>,
    pub database: Option<String>,
    pub collections: Vec<String>,
}

impl Source for Live<'_> {
    fn describe(&self) -> String {
        "the database".into()
    }

    fn items(&mut self, f: &mut dyn FnMut(Item) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let tenants = match &self.tenant {
            Some(t) => vec![t.clone()],
            None => tenants(self.client, "default_tenant")?,
        };
        let mut wanted: BTreeSet<&str> = self.collections.iter().map(String::as_str).collect();
        for t in tenants {
            let dbs: Vec<String> = match &self.database {
                Some(d) => vec![d.clone()],
                None => as_array(
                    self.client
                        .call("GET", &format!("/api/v2/tenants/{t}/databases"), None)?,
                    "databases",
                )?
                .into_iter()
                .filter_map(|d| d.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            };
            f(Item::Tenant(t.clone()))?;
            for d in dbs {
                self.client.set_scope(&t, &d);
                f(Item::Database {
                    tenant: t.clone(),
                    name: d.clone(),
                })?;
                let mut listed = collections(self.client)?;
                // By name: an export of the same data is the same file.
                listed.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                for c in listed {
                    let name = c["name"]
                        .as_str()
                        .context("a collection has no name")?
                        .to_owned();
                    if !self.collections.is_empty() && !wanted.remove(name.as_str()) {
                        continue;
                    }
                    let object = |k: &str| match &c[k] {
                        v @ Value::Object(_) => Some(v.clone()),
                        _ => None,
                    };
                    f(Item::Collection(CollectionSpec {
                        tenant: t.clone(),
                        database: d.clone(),
                        name,
                        metadata: object("metadata"),
                        configuration: object("configuration_json"),
                        schema: object("schema"),
                    }))?;
                    let r = CollectionRef {
                        id: c["id"]
                            .as_str()
                            .context("a collection has no id")?
                            .to_owned(),
                        json: c.clone(),
                    };
                    export_records(self.client, &r, f)?;
                }
            }
        }
        if let Some(missing) = wanted.first() {
            bail!("no collection named {missing:?} (in the tenants and databases exported)");
        }
        Ok(())
    }
}

/// `ochre export`.
pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let target = args.from.target(
        args.tenant.as_deref().unwrap_or("default_tenant"),
        args.database.as_deref().unwrap_or("default_database"),
    )?;
    let mut client = Client::connect(&target)?;
    let to_stdout = args.out.as_os_str() == "-";
    let partial = partial_path(&args.out);
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        if args.out.exists() {
            bail!(
                "{} exists; choose a new file (an export never overwrites one)",
                args.out.display()
            );
        }
        Box::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&partial)
                .with_context(|| {
                    format!(
                        "cannot create {} (another export to the same file running, or left by one that was stopped?)",
                        partial.display()
                    )
                })?,
        )
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 20, sink);
    let bar = progress(0, "records");
    let mut totals = Totals::default();
    let result = (|| -> anyhow::Result<()> {
        let created_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        writeln!(
            out,
            "{}",
            json!({FORMAT: {"version": VERSION,
                            "created_by": format!("ochre {}", env!("CARGO_PKG_VERSION")),
                            "created_at_ms": created_at_ms}})
        )?;
        let mut source = Live {
            client: &mut client,
            tenant: args.tenant.clone(),
            database: args.database.clone(),
            collections: args.collections.clone(),
        };
        source.items(&mut |item| {
            if let Item::Graph(_) = item {
                return Ok(());
            }
            totals.count(&item);
            if let Item::Collection(c) = &item {
                bar.set_message(c.name.clone());
            } else if let Item::Record(_) = &item {
                bar.inc(1);
            }
            writeln!(out, "{}", item_line(&item))?;
            Ok(())
        })?;
        writeln!(out, "{}", json!({"end": totals.json()}))?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        drop(file);
        Ok(())
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        if !to_stdout {
            let _ = std::fs::remove_file(&partial);
        }
        return Err(e);
    }
    if !to_stdout {
        // A hard link fails if the name was taken meanwhile: an export never replaces a file.
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::hard_link(&partial, &args.out))
            .and_then(|()| std::fs::remove_file(&partial))
            .with_context(|| format!("cannot finish {}", args.out.display()))?;
        eprintln!(
            "exported {} collections, {} records to {}",
            totals.collections,
            totals.records,
            args.out.display()
        );
    }
    Ok(())
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
}

// ----- import -----

/// What an import does with a collection whose name is taken in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnConflict {
    /// Refuse the whole import before writing anything.
    Fail,
    /// Leave the existing collection as it is and skip the imported one with its records.
    Skip,
}

/// What the first pass learned.
struct Plan {
    /// Per collection in order: its spec, records, and whether it is skipped.
    collections: Vec<(CollectionSpec, u64, bool)>,
    tenants: Vec<String>,
    databases: Vec<(String, String)>,
    records: u64,
}

fn exists(client: &Client, path: &str) -> anyhow::Result<bool> {
    match client.call("GET", path, None) {
        Ok(_) => Ok(true),
        Err(e) => match e.downcast_ref::<ApiFailure>() {
            Some(f) if f.status == 404 => Ok(false),
            // Chroma answers a missing database of an existing tenant with 400 at times.
            Some(f) if f.status == 400 && f.message.contains("does not exist") => Ok(false),
            _ => Err(e),
        },
    }
}

/// Checks all of `source` and the target for clashes.
fn plan(
    source: &mut dyn Source,
    client: &mut Client,
    on_conflict: OnConflict,
) -> anyhow::Result<Plan> {
    let mut collections: Vec<(CollectionSpec, u64, bool)> = Vec::new();
    let mut tenants = Vec::new();
    let mut databases = Vec::new();
    let mut records = 0u64;
    let mut dimension: Option<usize> = None;
    let mut ids = std::collections::HashSet::new();
    source.items(&mut |item| {
        match item {
            Item::Tenant(t) => tenants.push(t),
            Item::Database { tenant, name } => databases.push((tenant, name)),
            Item::Graph(_) => {}
            Item::Collection(c) => {
                if collections.iter().any(|(o, _, _)| {
                    (&o.tenant, &o.database, &o.name) == (&c.tenant, &c.database, &c.name)
                }) {
                    bail!("collection {} appears twice", c.name);
                }
                dimension = None;
                ids.clear();
                collections.push((c, 0, false));
            }
            Item::Record(r) => {
                let Some((c, n, _)) = collections.last_mut() else {
                    bail!("a record before any collection");
                };
                if r.embedding.is_empty() {
                    bail!("record {:?} of {} has an empty embedding", r.id, c.name);
                }
                match dimension {
                    None => dimension = Some(r.embedding.len()),
                    Some(d) if d != r.embedding.len() => bail!(
                        "record {:?} of {} has {} dimensions, the collection's others {d}",
                        r.id,
                        c.name,
                        r.embedding.len()
                    ),
                    Some(_) => {}
                }
                // Ids are kept per collection only while it is read (memory: ids, not records).
                if !ids.insert(r.id.clone()) {
                    bail!("record {:?} appears twice in {}", r.id, c.name);
                }
                *n += 1;
                records += 1;
            }
        }
        Ok(())
    })?;
    let declared: BTreeSet<(&str, &str)> = databases
        .iter()
        .map(|(t, d)| (t.as_str(), d.as_str()))
        .collect();
    for (c, _, _) in &collections {
        ochre::validate_collection_name(&c.name)
            .map_err(|e| anyhow::anyhow!("collection {:?}: {e}", c.name))?;
        if !declared.contains(&(c.tenant.as_str(), c.database.as_str()))
            && !exists(
                client,
                &format!("/api/v2/tenants/{}/databases/{}", c.tenant, c.database),
            )?
        {
            bail!(
                "collection {} belongs to database {}/{}, which neither the source declares nor the target has",
                c.name,
                c.tenant,
                c.database
            );
        }
    }
    let mut clashes = Vec::new();
    for (c, _, skip) in &mut collections {
        client.set_scope(&c.tenant, &c.database);
        if exists(
            client,
            &format!("{}/collections/{}", client.db_path(), c.name),
        )? {
            match on_conflict {
                OnConflict::Fail => clashes.push(format!("{}/{}/{}", c.tenant, c.database, c.name)),
                OnConflict::Skip => *skip = true,
            }
        }
    }
    if !clashes.is_empty() {
        bail!(
            "the target already has {} collection(s) of these names: {} (nothing was imported; \
             pass --on-conflict skip to keep them and import the rest)",
            clashes.len(),
            clashes.join(", ")
        );
    }
    Ok(Plan {
        collections,
        tenants,
        databases,
        records,
    })
}

/// Items handed from the reading thread to the writing one at a time.
const READ_AHEAD_CHUNK: usize = 256;
/// Chunks read ahead of the writer at most: 2,048 items (with Chroma's vectors of a few KiB,
/// a few MiB; records with large documents take more).
const READ_AHEAD_CHUNKS: usize = 8;

/// Calls `f` with every item of `source`, in order, reading them on a second thread while `f`
/// writes: decoding the source (SQLite rows, JSON lines) and writing the records each take about
/// half of an import's time, and overlap this way. A bounded channel keeps the reader at most
/// [`READ_AHEAD_CHUNKS`] chunks ahead. The first error wins: the writer's stops the reader at its
/// next chunk, and the reader's ends the writing once what was read before it is written.
fn read_ahead(
    source: &mut (dyn Source + Send),
    f: &mut dyn FnMut(Item) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(READ_AHEAD_CHUNKS);
    std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("ochre-import-read".into())
            .spawn_scoped(scope, move || {
                let mut chunk = Vec::with_capacity(READ_AHEAD_CHUNK);
                source.items(&mut |item| {
                    chunk.push(item);
                    if chunk.len() >= READ_AHEAD_CHUNK {
                        let full =
                            std::mem::replace(&mut chunk, Vec::with_capacity(READ_AHEAD_CHUNK));
                        tx.send(full)
                            .map_err(|_| anyhow!("the import stopped writing"))?;
                    }
                    Ok(())
                })?;
                if !chunk.is_empty() {
                    tx.send(chunk)
                        .map_err(|_| anyhow!("the import stopped writing"))?;
                }
                Ok::<(), anyhow::Error>(())
            })
            .context("cannot start the thread that reads the source")?;
        let mut written = Ok(());
        'chunks: for chunk in &rx {
            for item in chunk {
                written = f(item);
                if written.is_err() {
                    break 'chunks;
                }
            }
        }
        // A reader blocked on a full channel sees it closed and stops.
        drop(rx);
        let read = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written.and(read)
    })
}

/// What the second pass created, to delete again should it fail.
#[derive(Default)]
struct Created {
    databases: Vec<(String, String)>,
    collections: Vec<(String, String, String)>,
}

struct Writer<'a> {
    client: &'a mut Client,
    current: Option<CollectionRef>,
    batch: Vec<Record>,
    batch_bytes: usize,
    batch_limit: usize,
    /// On a data directory, the engine's handle of the current collection, which is bulk
    /// loaded: its vectors are linked into the index once, at its end, or indexed by the
    /// source's own graph.
    bulk: Option<ochre::Collection>,
    graph: Option<Box<ochre::ImportedGraph>>,
    /// Collections whose source graph was adopted, and those whose graph did not fit.
    adopted: u64,
    refused: Vec<(String, String)>,
}

/// Bytes of records sent in one request at most (well inside the server's 40 MiB default).
const BATCH_BYTES: usize = 8 << 20;

impl Writer<'_> {
    /// Ends the current collection: writes what is batched and, for a bulk load, indexes it.
    fn finish_collection(&mut self, bar: &ProgressBar) -> anyhow::Result<()> {
        self.flush(bar)?;
        let graph = self.graph.take();
        if let Some(c) = self.bulk.take() {
            let name = c.info().name;
            if graph.is_some() {
                bar.set_message(format!("{name}: adopting the source's index"));
            } else {
                bar.set_message(format!("{name}: indexing"));
            }
            let report = c
                .finish_bulk_load(graph.map(|g| *g))
                .with_context(|| format!("indexing collection {name}"))?;
            if report.adopted {
                self.adopted += 1;
            }
            if let Some(why) = report.refused {
                self.refused.push((name, why));
            }
        }
        Ok(())
    }

    fn flush(&mut self, bar: &ProgressBar) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let Some(c) = &self.current else {
            self.batch.clear();
            return Ok(());
        };
        let batch = std::mem::take(&mut self.batch);
        let n = batch.len() as u64;
        if let Some(bulk) = &self.bulk {
            // On a data directory: straight into the engine, through the server's write path
            // (metadata checks, BM25 vectors, schema keys) without a request's JSON and base64.
            self.batch_bytes = 0;
            let mut metadatas = Vec::with_capacity(batch.len());
            let mut records = RecordBatch {
                ids: Vec::with_capacity(batch.len()),
                embeddings: Some(Vec::with_capacity(batch.len())),
                documents: Some(Vec::with_capacity(batch.len())),
                uris: Some(Vec::with_capacity(batch.len())),
                metadatas: None,
            };
            for r in batch {
                metadatas.push(match r.metadata {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(m)) => Some(m),
                    Some(_) => bail!("record {:?}: its metadata is not an object", r.id),
                });
                records.ids.push(r.id);
                if let Some(e) = records.embeddings.as_mut() {
                    e.push(Some(r.embedding));
                }
                if let Some(d) = records.documents.as_mut() {
                    d.push(r.document);
                }
                if let Some(u) = records.uris.as_mut() {
                    u.push(r.uri);
                }
            }
            ochre_server::write_records(
                bulk,
                ochre::WriteKind::Add,
                records,
                Some(&metadatas),
                None,
            )
            .map_err(|e| ApiFailure {
                status: e.status.as_u16(),
                name: e.name.as_str().to_owned(),
                message: e.message,
            })
            .with_context(|| format!("adding {n} records to {}", c.id))?;
            bar.inc(n);
            return Ok(());
        }
        let body = json!({
            "ids": batch.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            "embeddings": batch.iter().map(|r| b64(&r.embedding)).collect::<Vec<_>>(),
            "documents": batch.iter().map(|r| r.document.clone()).collect::<Vec<_>>(),
            "uris": batch.iter().map(|r| r.uri.clone()).collect::<Vec<_>>(),
            "metadatas": batch.iter().map(|r| r.metadata.clone()).collect::<Vec<_>>(),
        });
        self.batch_bytes = 0;
        self.client
            .post(c, "add", &body)
            .with_context(|| format!("adding {n} records to {}", c.id))?;
        bar.inc(n);
        Ok(())
    }
}

/// Imports `source` into the target: checks everything, then writes; a failure while writing
/// deletes what this import created.
pub fn import(
    source: &mut (dyn Source + Send),
    client: &mut Client,
    on_conflict: OnConflict,
) -> anyhow::Result<Totals> {
    source.skim(true);
    let plan = plan(source, client, on_conflict);
    source.skim(false);
    let plan = plan?;
    let mut created = Created::default();
    let bar = progress(plan.records, "records");
    let result = write(source, client, &plan, &mut created, &bar);
    bar.finish_and_clear();
    match result {
        Ok(totals) => Ok(totals),
        Err(e) => {
            let undone = undo(client, &created);
            Err(match undone {
                Ok(()) => e.context("the import failed; what it had written was removed"),
                Err(u) => e.context(format!(
                    "the import failed, and removing what it had written failed too ({u:#})"
                )),
            })
        }
    }
}

fn write(
    source: &mut (dyn Source + Send),
    client: &mut Client,
    plan: &Plan,
    created: &mut Created,
    bar: &ProgressBar,
) -> anyhow::Result<Totals> {
    for t in &plan.tenants {
        if !exists(client, &format!("/api/v2/tenants/{t}"))? {
            client.call("POST", "/api/v2/tenants", Some(&json!({"name": t})))?;
        }
    }
    for (t, d) in &plan.databases {
        if !exists(client, &format!("/api/v2/tenants/{t}/databases/{d}"))? {
            client.call(
                "POST",
                &format!("/api/v2/tenants/{t}/databases"),
                Some(&json!({"name": d})),
            )?;
            created.databases.push((t.clone(), d.clone()));
        }
    }
    let batch_limit = client.max_batch_size.clamp(1, 1000);
    let skip: HashMap<(String, String, String), (u64, bool)> = plan
        .collections
        .iter()
        .map(|(c, n, s)| {
            (
                (c.tenant.clone(), c.database.clone(), c.name.clone()),
                (*n, *s),
            )
        })
        .collect();
    let mut w = Writer {
        client,
        current: None,
        batch: Vec::new(),
        batch_bytes: 0,
        batch_limit,
        bulk: None,
        graph: None,
        adopted: 0,
        refused: Vec::new(),
    };
    let mut totals = Totals::default();
    read_ahead(source, &mut |item| {
        match item {
            Item::Tenant(_) | Item::Database { .. } => {
                w.finish_collection(bar)?;
                totals.count(&item);
            }
            Item::Graph(g) => {
                if let Some(b) = &w.bulk {
                    // Adopting it puts the graph's deleted nodes beside the records: room for
                    // both now, so the arrays are not grown (and copied) then.
                    b.defer_indexing(g.nodes.len())?;
                    w.graph = Some(g);
                }
            }
            Item::Collection(c) => {
                w.finish_collection(bar)?;
                let key = (c.tenant.clone(), c.database.clone(), c.name.clone());
                let (records, skipped) = skip.get(&key).copied().unwrap_or((0, false));
                if skipped {
                    w.current = None;
                    return Ok(());
                }
                totals.collections += 1;
                w.client.set_scope(&c.tenant, &c.database);
                let body = create_body(&c);
                let made = w
                    .client
                    .call(
                        "POST",
                        &format!("{}/collections", w.client.db_path()),
                        Some(&body),
                    )
                    .with_context(|| format!("creating collection {}", c.name))?;
                created.collections.push(key);
                let id = made["id"]
                    .as_str()
                    .context("the new collection has no id")?
                    .to_owned();
                w.bulk = w.client.local_collection(&id)?;
                if let Some(b) = &w.bulk {
                    b.defer_indexing(usize::try_from(records).unwrap_or(0))?;
                }
                w.current = Some(CollectionRef { id, json: made });
                bar.set_message(c.name);
            }
            Item::Record(r) => {
                if w.current.is_none() {
                    // A skipped collection's record.
                    bar.inc(1);
                    return Ok(());
                }
                totals.records += 1;
                w.batch_bytes += r.embedding.len() * 4
                    + r.id.len()
                    + r.document.as_ref().map_or(0, String::len)
                    + r.uri.as_ref().map_or(0, String::len)
                    + r.metadata.as_ref().map_or(0, |m| m.to_string().len());
                w.batch.push(r);
                if w.batch.len() >= w.batch_limit || w.batch_bytes >= BATCH_BYTES {
                    w.flush(bar)?;
                }
            }
        }
        Ok(())
    })?;
    w.finish_collection(bar)?;
    totals.adopted_graphs = w.adopted;
    for (name, why) in &w.refused {
        bar.suspend(|| {
            eprintln!("collection {name}: the source's index could not be used ({why}); Ochre built its own")
        });
    }
    Ok(totals)
}

/// The create request of a collection. The schema carries everything (the vector index's
/// space and parameters, the embedding function, each key's indexes) and is sent when it can be:
/// Chroma refuses a schema beside legacy `hnsw:*` metadata (they count as a configuration), so a
/// collection with such keys is created from its configuration, and its schema's per-key
/// entries are rebuilt from its records as they are added.
fn create_body(c: &CollectionSpec) -> Value {
    let legacy = c
        .metadata
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|m| m.keys().any(|k| k.starts_with("hnsw:")));
    let mut body = json!({"name": c.name, "metadata": c.metadata});
    match (&c.schema, &c.configuration) {
        (Some(schema), _) if !legacy => body["schema"] = schema.clone(),
        (_, Some(conf)) => body["configuration"] = conf.clone(),
        (Some(schema), None) => body["schema"] = schema.clone(),
        (None, None) => {}
    }
    body
}

/// Deletes what an import created; tries every deletion, and reports the first failure.
fn undo(client: &mut Client, created: &Created) -> anyhow::Result<()> {
    let mut first_failure = None;
    for (t, d, name) in created.collections.iter().rev() {
        client.set_scope(t, d);
        let path = format!("{}/collections/{name}", client.db_path());
        if let Err(e) = client.call("DELETE", &path, None) {
            first_failure.get_or_insert(e.context(format!("deleting collection {t}/{d}/{name}")));
        }
    }
    for (t, d) in created.databases.iter().rev() {
        if let Err(e) = client.call(
            "DELETE",
            &format!("/api/v2/tenants/{t}/databases/{d}"),
            None,
        ) {
            first_failure.get_or_insert(e.context(format!("deleting database {t}/{d}")));
        }
    }
    match first_failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
