//! The OpenAPI 3.1 description, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Multi-tenant messaging campaigns on AWS Lambda."),
    modifiers(&Security),
    security(("bearer" = [])),
    tags(
        (name = "contacts", description = "The people a tenant sends to"),
        (name = "groups", description = "Named sets of contacts that campaigns send to"),
        (name = "templates", description = "Message bodies, rendered per contact"),
        (name = "campaigns", description = "A template sent to a group, now or on a schedule"),
        (name = "messages", description = "Every message and its delivery status"),
        (name = "webhooks", description = "Where a tenant's events are delivered"),
        (name = "tenants", description = "Tenants and their members"),
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

/// The whole document: each function's module contributes its own paths.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in api::docs() {
        doc.merge(part);
    }
    add_tenant(&mut doc);
    add_idempotency_key(&mut doc);
    add_common_failures(&mut doc);
    add_links(&mut doc);
    doc
}

/// Every operation of `doc` with its path and method as the route table spells them
/// (`GET /api/contacts`): the one walk the additions below share.
fn operations_mut(
    doc: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (&str, &'static str, &mut utoipa::openapi::path::Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ]
        .into_iter()
        .filter_map(move |(method, op)| Some((path.as_str(), method, op.as_mut()?)))
    })
}

/// Whether the route acts outside any tenant ([`api::Route::tenantless`]).
fn tenantless(method: &str, path: &str) -> bool {
    api::routes().any(|r| r.tenantless && r.method() == method && r.path() == path)
}

/// OpenAPI links from each create (`POST /api/x` answering 201) to the operations on what it
/// made (`/api/x/{id}` and below, `id` from the response body): clients and fuzzers can
/// follow them instead of guessing ids.
fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::link::LinkBuilder;

    let operations: Vec<(String, &str)> = operations_mut(doc)
        .map(|(path, method, _)| (path.to_owned(), method))
        .collect();
    for (collection, _) in operations
        .iter()
        .filter(|(p, m)| *m == "POST" && !p.contains('{'))
    {
        let prefix = format!("{collection}/{{id}}");
        let Some(RefOr::T(created)) = doc
            .paths
            .paths
            .get_mut(collection)
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.responses.responses.get_mut("201"))
        else {
            continue;
        };
        // Below the new resource, with no parameter but its id.
        let targets = operations.iter().filter(|(p, _)| {
            (*p == prefix || p.starts_with(&format!("{prefix}/"))) && p.matches('{').count() == 1
        });
        for (path, method) in targets {
            let method = method.to_lowercase();
            let pointer = path.replace('~', "~0").replace('/', "~1");
            let suffix = path[prefix.len()..].replace('/', "_");
            created.links.insert(
                format!("{method}{suffix}").to_uppercase(),
                LinkBuilder::new()
                    .operation_ref(format!("#/paths/{pointer}/{method}"))
                    .parameter("id", "$response.body#/id")
                    .build()
                    .into(),
            );
        }
    }
}

/// Failures any route can answer, declared once: a problem for any client error not
/// listed by the route itself (a missing token, a spent rate limit), and 503 with
/// `Retry-After` while the database is unreachable.
fn add_common_failures(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, ResponseBuilder, Type,
    };

    let problem = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ProblemDocument")))
            .build()
    };
    let client_error = ResponseBuilder::new()
        .description("A problem with the request: authentication, tenant, input or rate limit")
        .content("application/problem+json", problem())
        .build();
    let unavailable = ResponseBuilder::new()
        .description("The database is unavailable; retry after `Retry-After` seconds")
        .content("application/problem+json", problem())
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
                .build(),
        )
        .build();
    for (_, _, op) in operations_mut(doc) {
        let responses = &mut op.responses.responses;
        responses
            .entry("4XX".into())
            .or_insert_with(|| client_error.clone().into());
        responses
            .entry("503".into())
            .or_insert_with(|| unavailable.clone().into());
    }
}

/// Every route that runs in a tenant names it: `X-Tenant-ID`, else `tenantId`, else the
/// token's `tenant_id` claim. Declared once here, so that no route can miss it.
fn add_tenant(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{KnownFormat, ObjectBuilder, Required, SchemaFormat, Type};

    let uuid = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
    };
    let header = ParameterBuilder::new()
        .name("X-Tenant-ID")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "The tenant to act in (the caller must be a member); else `tenantId`, else the \
             token's `tenant_id` claim",
        ))
        .schema(Some(uuid()))
        .build();
    let query = ParameterBuilder::new()
        .name("tenantId")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some("The tenant to act in, when `X-Tenant-ID` is not sent"))
        .schema(Some(uuid()))
        .build();
    for (path, method, op) in operations_mut(doc) {
        if !tenantless(method, path) {
            let params = op.parameters.get_or_insert_with(Vec::new);
            params.push(header.clone().into());
            params.push(query.clone().into());
        }
    }
}

/// Every POST that runs in a tenant takes `Idempotency-Key` (see [`crate::idempotency`]):
/// declared once here rather than on each handler, so that no POST can miss it.
fn add_idempotency_key(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};

    let parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes the request safe to retry for 24 hours: the same key and request replay \
             the first response (`Idempotent-Replayed: true`); the same key with another \
             request is 422; a retry while the first runs is 409.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(crate::idempotency::MAX_LEN))
                .pattern(Some("^[\\x20-\\x7E]*[\\x21-\\x7E][\\x20-\\x7E]*$")),
        ))
        .build();
    for (path, method, op) in operations_mut(doc) {
        if method == "POST" && !tenantless(method, path) {
            op.parameters
                .get_or_insert_with(Vec::new)
                .push(parameter.clone().into());
        }
    }
}
