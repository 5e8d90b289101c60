//! A call's input, one JSON object, taken apart into the REST request of its route: path
//! parameters by their names, the query parameters the route reads, `tenantId`, and the rest
//! as the body. Only the splitting is here: every rule about the values is the route's.

use std::collections::HashMap;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::domain::FieldError;
use crate::http::Problem;

/// What a route takes, read once from its declaration.
#[derive(Debug)]
pub struct Shape {
    /// API Gateway's path template, `/api/webhooks/{id}/logs/{logId}/retry`.
    pub template: String,
    /// The query parameters the route reads (its OpenAPI `in: query` parameters).
    pub query: Vec<String>,
    /// Whether the route reads a body.
    pub body: bool,
    /// The field that is the whole body, if not the remaining fields.
    pub body_field: Option<&'static str>,
}

/// The REST request a call becomes.
#[derive(Debug, Default, PartialEq)]
pub struct Rest {
    pub path: String,
    pub params: HashMap<String, String>,
    pub query: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Characters a path segment must not hold as they are (`/`, `?`, `#`, `%`, space, …).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Splits `input` as `shape` reads it. `tenantId` goes to the query string, where the app
/// reads it beside `X-Tenant-ID` (and refuses the two naming different tenants). A field the
/// route does not take is refused, as a REST body's unknown field is.
pub fn split(shape: &Shape, input: Option<Value>) -> Result<Rest, Problem> {
    let mut fields = match input {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(fields)) => fields,
        Some(_) => return Err(Problem::field("", "the input must be a JSON object")),
    };
    let mut errors = Vec::new();
    let mut rest = Rest::default();
    if let Some(tenant) = scalar(&mut fields, "tenantId", &mut errors) {
        rest.query.push(("tenantId".into(), tenant));
    }
    rest.path = path(shape, &mut fields, &mut rest.params, &mut errors);
    for name in &shape.query {
        if let Some(value) = scalar(&mut fields, name, &mut errors) {
            rest.query.push((name.clone(), value));
        }
    }
    rest.body = body(shape, fields, &mut errors);
    match errors.is_empty() {
        true => Ok(rest),
        false => Err(Problem::invalid(errors)),
    }
}

/// Adds the `tenantId` of the tRPC URL itself (the seed's
/// `fetch('/api/trpc/contacts.list?tenantId=…')`) to `rest`, unless the input named one:
/// the two naming different tenants is refused, as the header and the parameter are.
pub fn url_tenant(rest: &mut Rest, tenant: Option<&str>) -> Result<(), Problem> {
    let Some(tenant) = tenant else {
        return Ok(());
    };
    match rest.query.iter().find(|(k, _)| k == "tenantId") {
        Some((_, named)) if named != tenant => Err(Problem::malformed(
            "the tenantId of the URL and the input's tenantId name different tenants",
        )),
        Some(_) => Ok(()),
        None => {
            rest.query.push(("tenantId".into(), tenant.to_owned()));
            Ok(())
        }
    }
}

/// The concrete path, each `{name}` filled from the field of that name.
fn path(
    shape: &Shape,
    fields: &mut Map<String, Value>,
    params: &mut HashMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> String {
    let segments = shape.template.split('/').map(|segment| {
        let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            return segment.to_owned();
        };
        match scalar(fields, name, errors) {
            Some(value) if !value.is_empty() => {
                let encoded = utf8_percent_encode(&value, SEGMENT).to_string();
                params.insert(name.to_owned(), value);
                encoded
            }
            _ => {
                errors.push(FieldError::new(format!("/{name}"), "is required"));
                String::new()
            }
        }
    });
    segments.collect::<Vec<_>>().join("/")
}

/// Field `name` as a query or path value: a string as it is, a number or a boolean as
/// written; absent or `null` is no value.
fn scalar(
    fields: &mut Map<String, Value>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match fields.remove(name)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        v @ (Value::Number(_) | Value::Bool(_)) => Some(v.to_string()),
        _ => {
            errors.push(FieldError::new(
                format!("/{name}"),
                "must be a string or a number",
            ));
            None
        }
    }
}

/// The body: the remaining fields as one object, or the body field's value; fields left
/// over where the route reads no body (or only its body field) are unknown.
fn body(
    shape: &Shape,
    mut fields: Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let body = match shape.body_field {
        Some(name) => match fields.remove(name) {
            Some(value) => Some(value.to_string()),
            None => {
                errors.push(FieldError::new(format!("/{name}"), "is required"));
                None
            }
        },
        None if shape.body => return Some(Value::Object(fields).to_string()),
        None => None,
    };
    errors.extend(
        fields
            .keys()
            .map(|k| FieldError::new(format!("/{k}"), format!("unknown field `{k}`"))),
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(template: &str, query: &[&str], body: bool) -> Shape {
        Shape {
            template: template.into(),
            query: query.iter().map(|q| q.to_string()).collect(),
            body,
            body_field: None,
        }
    }

    fn pointers(problem: Problem) -> Vec<String> {
        assert_eq!(problem.status(), 422);
        problem.errors.iter().map(|e| e.pointer.clone()).collect()
    }

    #[test]
    fn path_parameters_query_and_tenant_leave_the_rest_as_the_body() {
        let update = shape("/api/contacts/{id}", &[], true);
        let input = json!({"tenantId": "t1", "id": "c/1", "name": "Ada", "attributes": {"a": 1}});
        let rest = split(&update, Some(input)).unwrap();
        assert_eq!(rest.path, "/api/contacts/c%2F1");
        assert_eq!(rest.params["id"], "c/1");
        assert_eq!(rest.query, [("tenantId".to_string(), "t1".to_string())]);
        let body: Value = serde_json::from_str(rest.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, json!({"name": "Ada", "attributes": {"a": 1}}));

        let retry = shape("/api/webhooks/{id}/logs/{logId}/retry", &[], false);
        let rest = split(&retry, Some(json!({"id": "w", "logId": "l"}))).unwrap();
        assert_eq!(rest.path, "/api/webhooks/w/logs/l/retry");
        assert_eq!(rest.body, None);
    }

    #[test]
    fn list_filters_become_the_query_string() {
        let list = shape(
            "/api/contacts",
            &["limit", "offset", "cursor", "search", "groupId"],
            false,
        );
        let input = json!({"limit": 50, "search": "ad", "groupId": null, "tenantId": "t"});
        let rest = split(&list, Some(input)).unwrap();
        let query: Vec<(&str, &str)> = rest
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            query,
            [("tenantId", "t"), ("limit", "50"), ("search", "ad")]
        );
        assert_eq!(split(&list, None).unwrap().path, "/api/contacts");
    }

    #[test]
    fn unknown_fields_missing_ids_and_non_objects_are_refused() {
        let list = shape("/api/contacts", &["limit"], false);
        let problem = split(&list, Some(json!({"limit": 1, "color": "red"}))).unwrap_err();
        assert_eq!(pointers(problem), ["/color"]);
        let get = shape("/api/contacts/{id}", &[], false);
        assert_eq!(pointers(split(&get, Some(json!({}))).unwrap_err()), ["/id"]);
        let nested = split(&list, Some(json!({"limit": [1]}))).unwrap_err();
        assert_eq!(pointers(nested), ["/limit"]);
        assert_eq!(pointers(split(&list, Some(json!([1]))).unwrap_err()), [""]);
    }

    #[test]
    fn the_urls_tenant_applies_unless_the_input_names_another() {
        let list = shape("/api/contacts", &[], false);
        let mut rest = split(&list, None).unwrap();
        url_tenant(&mut rest, Some("t")).unwrap();
        assert_eq!(rest.query, [("tenantId".to_string(), "t".to_string())]);
        let mut same = split(&list, Some(json!({"tenantId": "t"}))).unwrap();
        url_tenant(&mut same, Some("t")).unwrap();
        assert_eq!(same.query.len(), 1);
        let mut other = split(&list, Some(json!({"tenantId": "u"}))).unwrap();
        assert_eq!(url_tenant(&mut other, Some("t")).unwrap_err().status(), 400);
    }

    #[test]
    fn a_body_field_is_the_whole_body() {
        let import = Shape {
            body_field: Some("contacts"),
            ..shape("/api/contacts/import", &[], true)
        };
        let rows = json!([{"name": "A", "phone": "+15550000001"}]);
        let rest = split(&import, Some(json!({"contacts": rows, "tenantId": "t"}))).unwrap();
        assert_eq!(rest.body.as_deref(), Some(rows.to_string().as_str()));
        let stray = split(&import, Some(json!({"contacts": [], "x": 1}))).unwrap_err();
        assert_eq!(pointers(stray), ["/x"]);
        assert_eq!(pointers(split(&import, None).unwrap_err()), ["/contacts"]);
    }
}
