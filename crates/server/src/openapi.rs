//! `/openapi.json`, generated from the handlers' annotations and the wire types, and the `/docs`
//! Swagger UI (bundled into the binary; works offline).

use utoipa::openapi::path::Operation;
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ochre",
        description = "Chroma's HTTP API v2, served by Ochre."
    ),
    paths(
        routes::heartbeat,
        routes::version,
        routes::healthcheck,
        routes::preflight,
        routes::identity,
        routes::reset,
        routes::create_tenant,
        routes::get_tenant,
        routes::update_tenant,
        routes::create_database,
        routes::list_databases,
        routes::get_database,
        routes::delete_database,
        routes::list_collections,
        routes::count_collections,
        routes::create_collection,
        routes::get_collection,
        routes::get_collection_by_id,
        routes::get_collection_by_crn,
        routes::modify_collection,
        routes::delete_collection,
        routes::fork_collection,
        routes::fork_count,
        routes::indexing_status,
        routes::search,
        routes::add,
        routes::upsert,
        routes::update,
        routes::delete,
        routes::count,
        routes::get_records,
        routes::query,
    ),
    modifiers(&CommonErrors)
)]
pub struct ApiDoc;

/// The error answers that any operation can give, whatever its handler: the auth layer's, the JSON
/// body extractor's (on operations with a body) and a storage failure's. Added to each operation
/// that does not document the status itself.
struct CommonErrors;

const ANY_OPERATION: &[(&str, &str)] = &[
    ("401", "missing credentials (auth is configured)"),
    (
        "403",
        "the credentials do not give access to this tenant or database",
    ),
    ("500", "an internal or storage error"),
];

const WITH_BODY: &[(&str, &str)] = &[
    ("400", "the body is not JSON, or a value is invalid"),
    (
        "408",
        "the body did not arrive within `http_body_timeout_seconds`",
    ),
    ("413", "the body is larger than `max_payload_size_bytes`"),
    ("415", "the content type is not `application/json`"),
    ("422", "the body is JSON of the wrong shape"),
];

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let add = |op: &mut Operation| {
            let body = op.request_body.is_some();
            let errors = ANY_OPERATION
                .iter()
                .chain(WITH_BODY.iter().filter(|_| body));
            for (status, description) in errors {
                op.responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(*description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add(op);
            }
        }
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
