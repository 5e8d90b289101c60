//! tRPC's HTTP RPC wire format (tRPC 10 and 11, no transformer): reading a request's calls
//! and writing their answers, plain, batched or as JSON lines (`httpBatchStreamLink`).
//! Codes and shapes are those of `@trpc/server` (`rpc/codes.ts`, `http/getHTTPStatusCode.ts`,
//! `http/contentType.ts`, `stream/jsonl.ts`).

use http::StatusCode;
use serde_json::{Map, Value};

/// One call of a request: its procedure path and its input (`None`: the client sent none),
/// or why the input could not be read (a `BAD_REQUEST` of this call).
#[derive(Debug)]
pub struct Call {
    pub path: String,
    pub input: Result<Option<Value>, String>,
}

/// A request's calls and how the answer must be shaped.
#[derive(Debug)]
pub struct Calls {
    pub calls: Vec<Call>,
    /// `?batch=1`: the answer is an array (or a stream), one element per call.
    pub batch: bool,
    /// `trpc-accept: application/jsonl` (or `Accept` listing it): JSON lines.
    pub stream: bool,
}

/// The calls of a request to `/api/trpc/<paths>`: `paths` is comma-separated in a batch,
/// `query` the raw query string, `body` a POST's. Inputs are parsed here, but a bad one only
/// fails its own calls, as on tRPC's server.
pub fn parse(paths: &str, query: Option<&str>, body: Option<&[u8]>, stream: bool) -> Calls {
    let mut batch = false;
    let mut input = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "batch" => batch = value == "1",
            "input" if input.is_none() => input = Some(value.into_owned()),
            _ => {}
        }
    }
    let text: Option<&[u8]> = match body {
        Some(b) if !b.is_empty() => Some(b),
        Some(_) => None,
        None => input
            .as_deref()
            .filter(|i| !i.is_empty())
            .map(str::as_bytes),
    };
    let parsed: Result<Option<Value>, String> = text
        .map(|t| serde_json::from_slice(t).map_err(|e| format!("the input is not JSON: {e}")))
        .transpose();
    let paths: Vec<String> = match batch {
        true => paths.split(',').map(str::to_owned).collect(),
        false => vec![paths.to_owned()],
    };
    let calls = paths
        .into_iter()
        .enumerate()
        .map(|(index, path)| Call {
            input: input_of(&parsed, batch, index),
            path,
        })
        .collect();
    Calls {
        calls,
        batch,
        stream,
    }
}

/// Call `index`'s input: the whole input, or in a batch its member `"index"`.
fn input_of(
    parsed: &Result<Option<Value>, String>,
    batch: bool,
    index: usize,
) -> Result<Option<Value>, String> {
    match parsed {
        Err(e) => Err(e.clone()),
        Ok(input) if !batch => Ok(input.clone()),
        Ok(None) => Ok(None),
        Ok(Some(Value::Object(inputs))) => Ok(inputs.get(&index.to_string()).cloned()),
        Ok(Some(_)) => Err("\"input\" needs to be an object when doing a batch call".into()),
    }
}

/// tRPC's name and JSON-RPC code for an HTTP status (`HTTP_CODE_TO_JSONRPC2` and
/// `TRPC_ERROR_CODES_BY_KEY`); any other status is an `INTERNAL_SERVER_ERROR`.
pub fn error_code(status: StatusCode) -> (&'static str, i32) {
    match status.as_u16() {
        400 => ("BAD_REQUEST", -32600),
        401 => ("UNAUTHORIZED", -32001),
        402 => ("PAYMENT_REQUIRED", -32002),
        403 => ("FORBIDDEN", -32003),
        404 => ("NOT_FOUND", -32004),
        405 => ("METHOD_NOT_SUPPORTED", -32005),
        408 => ("TIMEOUT", -32008),
        409 => ("CONFLICT", -32009),
        412 => ("PRECONDITION_FAILED", -32012),
        413 => ("PAYLOAD_TOO_LARGE", -32013),
        415 => ("UNSUPPORTED_MEDIA_TYPE", -32015),
        422 => ("UNPROCESSABLE_CONTENT", -32022),
        428 => ("PRECONDITION_REQUIRED", -32028),
        429 => ("TOO_MANY_REQUESTS", -32029),
        499 => ("CLIENT_CLOSED_REQUEST", -32099),
        501 => ("NOT_IMPLEMENTED", -32603),
        502 => ("BAD_GATEWAY", -32603),
        503 => ("SERVICE_UNAVAILABLE", -32603),
        504 => ("GATEWAY_TIMEOUT", -32603),
        _ => ("INTERNAL_SERVER_ERROR", -32603),
    }
}

/// One call's answer: its HTTP status as tRPC counts it (200 for any success) and its JSON.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub json: String,
}

/// `{"result":{"data":…}}` around the JSON a route answered (`null` for no content).
pub fn success(data: &str) -> Answer {
    let data = if data.trim().is_empty() { "null" } else { data };
    Answer {
        status: StatusCode::OK,
        json: format!(r#"{{"result":{{"data":{data}}}}}"#),
    }
}

/// tRPC's error shape for a route's error answer: `message` is the problem's detail (else
/// its title), and `data` holds tRPC's `code`, `httpStatus` and `path`, then the problem
/// document's own fields (type, title, detail, errors, requestId, …).
pub fn error(path: &str, status: StatusCode, problem: &[u8]) -> Answer {
    let (name, code) = error_code(status);
    let problem = match serde_json::from_slice::<Value>(problem) {
        Ok(Value::Object(doc)) => doc,
        _ => Map::new(),
    };
    let message = ["detail", "title"]
        .iter()
        .find_map(|k| problem.get(*k).and_then(Value::as_str))
        .unwrap_or(name)
        .to_owned();
    let mut data = Map::new();
    data.insert("code".into(), name.into());
    data.insert("httpStatus".into(), status.as_u16().into());
    data.insert("path".into(), path.into());
    for (key, value) in problem {
        data.entry(key).or_insert(value);
    }
    let shape = serde_json::json!({ "error": { "message": message, "code": code, "data": data } });
    Answer {
        status,
        json: shape.to_string(),
    }
}

/// A batch's status: the calls' own when they agree, else `207 Multi-Status`.
pub fn batch_status(answers: &[Answer]) -> StatusCode {
    match answers.split_first() {
        Some((first, rest)) if rest.iter().all(|a| a.status == first.status) => first.status,
        Some(_) => StatusCode::MULTI_STATUS,
        None => StatusCode::OK,
    }
}

/// A batch answered as one JSON array.
pub fn array(answers: &[Answer]) -> String {
    let items: Vec<&str> = answers.iter().map(|a| a.json.as_str()).collect();
    format!("[{}]", items.join(","))
}

/// A batch answered as `httpBatchStreamLink` reads it (`jsonlStreamConsumer`): a head line
/// naming one pending promise per call (`"i": [[0], [null, 0, i]]`), then one line per call
/// fulfilling promise `i` with its answer (`[i, 0, [[answer]]]`). The answers are complete
/// when written, so no promise nests another.
pub fn json_lines(answers: &[Answer]) -> String {
    let head: Vec<String> = (0..answers.len())
        .map(|i| format!(r#""{i}":[[0],[null,0,{i}]]"#))
        .collect();
    let mut out = format!("{{{}}}\n", head.join(","));
    for (i, answer) in answers.iter().enumerate() {
        out.push_str(&format!("[{i},0,[[{}]]]\n", answer.json));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs(calls: &Calls) -> Vec<Result<Option<Value>, String>> {
        calls.calls.iter().map(|c| c.input.clone()).collect()
    }

    #[test]
    fn a_query_reads_its_input_from_the_query_string() {
        let query = "input=%7B%22id%22%3A%22a%22%2C%22limit%22%3A5%7D";
        let calls = parse("contacts.getById", Some(query), None, false);
        assert!(!calls.batch);
        assert_eq!(calls.calls[0].path, "contacts.getById");
        assert_eq!(inputs(&calls), [Ok(Some(json!({"id": "a", "limit": 5})))]);
        let none = parse("contacts.list", None, None, false);
        assert_eq!(inputs(&none), [Ok(None)]);
    }

    #[test]
    fn a_batch_splits_paths_and_keys_inputs_by_index() {
        let input = json!({"0": {"limit": 1}, "2": {"id": "x"}}).to_string();
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("batch", "1")
            .append_pair("input", &input)
            .finish();
        let calls = parse(
            "contacts.list,groups.list,webhooks.getById",
            Some(&query),
            None,
            true,
        );
        assert!(calls.batch && calls.stream);
        let paths: Vec<&str> = calls.calls.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["contacts.list", "groups.list", "webhooks.getById"]);
        assert_eq!(
            inputs(&calls),
            [
                Ok(Some(json!({"limit": 1}))),
                Ok(None),
                Ok(Some(json!({"id": "x"})))
            ]
        );
    }

    #[test]
    fn a_mutation_reads_its_body_and_bad_input_fails_every_call() {
        let body = br#"{"0":{"name":"A"},"1":{"name":"B"}}"#;
        let calls = parse(
            "groups.create,groups.create",
            Some("batch=1"),
            Some(body),
            false,
        );
        assert_eq!(calls.calls[1].input, Ok(Some(json!({"name": "B"}))));
        let bad = parse("a.b,c.d", Some("batch=1"), Some(b"{nope"), false);
        assert!(
            inputs(&bad)
                .iter()
                .all(|i| i.as_ref().is_err_and(|e| e.contains("not JSON")))
        );
        let not_object = parse("a.b", Some("batch=1&input=%5B1%5D"), None, false);
        assert!(
            inputs(&not_object)[0]
                .as_ref()
                .unwrap_err()
                .contains("needs to be an object")
        );
        // httpLink sends no body for an undefined input.
        assert_eq!(inputs(&parse("a.b", None, Some(b""), false)), [Ok(None)]);
    }

    #[test]
    fn statuses_map_to_trpc_codes() {
        let code = |s: u16| error_code(StatusCode::from_u16(s).unwrap());
        assert_eq!(code(400), ("BAD_REQUEST", -32600));
        assert_eq!(code(401), ("UNAUTHORIZED", -32001));
        assert_eq!(code(403), ("FORBIDDEN", -32003));
        assert_eq!(code(404), ("NOT_FOUND", -32004));
        assert_eq!(code(405), ("METHOD_NOT_SUPPORTED", -32005));
        assert_eq!(code(409), ("CONFLICT", -32009));
        assert_eq!(code(413), ("PAYLOAD_TOO_LARGE", -32013));
        assert_eq!(code(422), ("UNPROCESSABLE_CONTENT", -32022));
        assert_eq!(code(429), ("TOO_MANY_REQUESTS", -32029));
        assert_eq!(code(500), ("INTERNAL_SERVER_ERROR", -32603));
        assert_eq!(code(503), ("SERVICE_UNAVAILABLE", -32603));
    }

    #[test]
    fn errors_carry_trpc_fields_and_the_problem_document() {
        let problem = json!({
            "type": "https://herald.dev/problems/validation-failed", "title": "Validation failed",
            "status": 422, "detail": "/name: is required", "instance": "/api/trpc/contacts.create",
            "requestId": "r1", "errors": [{"pointer": "/name", "detail": "is required"}],
        });
        let answer = error(
            "contacts.create",
            StatusCode::UNPROCESSABLE_ENTITY,
            problem.to_string().as_bytes(),
        );
        assert_eq!(answer.status, 422);
        let shape: Value = serde_json::from_str(&answer.json).unwrap();
        let error = &shape["error"];
        assert_eq!(error["message"], "/name: is required");
        assert_eq!(error["code"], -32022);
        assert_eq!(error["data"]["code"], "UNPROCESSABLE_CONTENT");
        assert_eq!(error["data"]["httpStatus"], 422);
        assert_eq!(error["data"]["path"], "contacts.create");
        assert_eq!(error["data"]["requestId"], "r1");
        assert_eq!(error["data"]["errors"][0]["pointer"], "/name");
        assert_eq!(error["data"]["type"], problem["type"]);
    }

    #[test]
    fn successes_wrap_the_route_json_and_batches_report_207_when_statuses_differ() {
        let ok = success(r#"{"items":[]}"#);
        assert_eq!(ok.json, r#"{"result":{"data":{"items":[]}}}"#);
        assert_eq!(success("").json, r#"{"result":{"data":null}}"#);
        let missing = error("contacts.getById", StatusCode::NOT_FOUND, b"{}");
        assert_eq!(batch_status(&[success("1"), success("2")]), StatusCode::OK);
        let both = [success("1"), missing];
        assert_eq!(batch_status(&both), StatusCode::MULTI_STATUS);
        let array: Value = serde_json::from_str(&array(&both)).unwrap();
        assert_eq!(array[0]["result"]["data"], 1);
        assert_eq!(array[1]["error"]["data"]["httpStatus"], 404);
    }

    #[test]
    fn json_lines_name_one_promise_per_call_then_fulfil_each() {
        let lines = json_lines(&[success("1"), success(r#"{"a":2}"#)]);
        let lines: Vec<Value> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({"0": [[0], [null, 0, 0]], "1": [[0], [null, 0, 1]]})
        );
        assert_eq!(lines[1], json!([0, 0, [[{"result": {"data": 1}}]]]));
        assert_eq!(lines[2], json!([1, 0, [[{"result": {"data": {"a": 2}}}]]]));
    }
}
