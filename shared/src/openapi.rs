//! The OpenAPI 3.1 description, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Multi-tenant messaging campaigns on AWS Lambda."),
    paths(
        api::contacts::list,
        api::contacts::create,
        api::contacts::import,
        api::contacts::get,
        api::contacts::update,
        api::contacts::delete,
        api::system::health,
        api::system::locales,
        api::system::openapi,
    ),
    modifiers(&Security),
    security(("bearer" = [])),
    tags(
        (name = "contacts", description = "The people a tenant sends to"),
        (name = "system", description = "Health, locales, this document"),
    )
)]
struct ApiDoc;

/// Bearer JWTs on every route; the tenant travels in `X-Tenant-ID` (or `tenantId`).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
