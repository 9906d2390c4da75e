//! `/openapi.json`, generated from the handlers' annotations and the wire types, and the `/docs`
//! Swagger UI (bundled into the binary; works offline).

use utoipa::OpenApi;

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
    )
)]
pub struct ApiDoc;

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
