//! `template.yaml` against the code: every route of `herald::api::routes()` is an `HttpApi`
//! event on the function that serves it, no event is missing from ROUTES, and every function
//! is built and run the same way (cargo-lambda, provided.al2023, arm64).
//!
//! Functions are matched by `Metadata.BuildProperties.Binary`, which names the binary crate
//! (`functions/<name>`) and so `Function::name()`, not by the template's logical ids.

use std::collections::{BTreeMap, BTreeSet};

use herald::api::{DEFAULT_ROUTE, Function, routes};
use serde_yaml_ng::Value;

const TEMPLATE: &str = include_str!("../../template.yaml");

/// A function resource of the template.
struct TemplateFunction {
    logical_id: String,
    binary: String,
    resource: Value,
}

/// One `HttpApi` event of a function.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    binary: String,
    name: String,
    method: String,
    path: String,
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (event {} of function `{}`)",
            self.method, self.path, self.name, self.binary
        )
    }
}

fn template() -> Value {
    serde_yaml_ng::from_str(TEMPLATE).expect("template.yaml is valid YAML")
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, is {value:?}"))
}

/// The logical id that `value` refers to, in short (`!Ref X`) or long (`Ref: X`) form.
fn ref_target(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        Value::Mapping(map) if map.len() == 1 => map.get("Ref").and_then(Value::as_str),
        _ => None,
    }
}

fn resources(template: &Value) -> &serde_yaml_ng::Mapping {
    template["Resources"]
        .as_mapping()
        .expect("template.yaml has a Resources mapping")
}

fn resources_of_type<'a>(
    template: &'a Value,
    ty: &'a str,
) -> impl Iterator<Item = (&'a str, &'a Value)> {
    resources(template)
        .iter()
        .filter(move |(_, resource)| resource["Type"].as_str() == Some(ty))
        .map(|(id, resource)| (str_of(id, "a logical id"), resource))
}

fn functions(template: &Value) -> Vec<TemplateFunction> {
    let functions: Vec<TemplateFunction> = resources_of_type(template, "AWS::Serverless::Function")
        .map(|(id, resource)| TemplateFunction {
            logical_id: id.to_owned(),
            binary: str_of(
                &resource["Metadata"]["BuildProperties"]["Binary"],
                &format!("{id}: Metadata.BuildProperties.Binary"),
            )
            .to_owned(),
            resource: resource.clone(),
        })
        .collect();
    assert!(
        !functions.is_empty(),
        "template.yaml declares no AWS::Serverless::Function"
    );
    let mut seen = BTreeSet::new();
    for f in &functions {
        assert!(
            seen.insert(f.binary.as_str()),
            "two functions build the binary `{}`",
            f.binary
        );
    }
    functions
}

/// A function property, falling back to `Globals.Function` as SAM does.
fn property<'a>(template: &'a Value, function: &'a TemplateFunction, name: &str) -> &'a Value {
    match &function.resource["Properties"][name] {
        Value::Null => &template["Globals"]["Function"][name],
        value => value,
    }
}

/// The logical id of the one `AWS::Serverless::HttpApi`.
fn http_api(template: &Value) -> String {
    let apis: Vec<&str> = resources_of_type(template, "AWS::Serverless::HttpApi")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        apis.len(),
        1,
        "expected exactly one AWS::Serverless::HttpApi, found {apis:?}"
    );
    apis[0].to_owned()
}

/// Every `HttpApi` event of every function; each must be attached to the template's HttpApi
/// (without `ApiId`, SAM would put it on an implicit second API).
fn http_events(template: &Value) -> Vec<Event> {
    let api = http_api(template);
    let mut events = Vec::new();
    for function in functions(template) {
        let Some(map) = function.resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (name, event) in map {
            let name = str_of(name, "an event name");
            if event["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let props = &event["Properties"];
            let what = format!("{}.Events.{name}", function.logical_id);
            assert_eq!(
                ref_target(&props["ApiId"]),
                Some(api.as_str()),
                "{what}: ApiId must be !Ref {api}"
            );
            if !props["PayloadFormatVersion"].is_null() {
                assert_eq!(
                    props["PayloadFormatVersion"].as_str(),
                    Some("2.0"),
                    "{what}: the handlers take payload format 2.0"
                );
            }
            events.push(Event {
                binary: function.binary.clone(),
                name: name.to_owned(),
                method: str_of(&props["Method"], &format!("{what}.Method")).to_owned(),
                path: str_of(&props["Path"], &format!("{what}.Path")).to_owned(),
            });
        }
    }
    events
}

fn is_default_route(event: &Event) -> bool {
    event.path == DEFAULT_ROUTE
}

#[test]
fn template_parses_with_short_form_tags() {
    let template = template();
    assert_eq!(
        template["Transform"].as_str(),
        Some("AWS::Serverless-2016-10-31")
    );
    // `!Ref`/`!Sub` survive as tagged values rather than failing the parse.
    let events = http_events(&template);
    assert!(
        !events.is_empty(),
        "template.yaml declares no HttpApi event"
    );
}

#[test]
fn every_route_is_an_http_api_event_on_its_function() {
    let template = template();
    let binaries: BTreeSet<String> = functions(&template).into_iter().map(|f| f.binary).collect();
    for function in herald::api::ENDPOINTS.iter().map(|e| e.function) {
        assert!(
            binaries.contains(function.name()),
            "no function in template.yaml builds the binary `{}` (Metadata.BuildProperties.Binary)",
            function.name()
        );
    }

    let events = http_events(&template);
    let missing: Vec<String> = routes()
        .filter(|route| {
            !events.iter().any(|e| {
                e.binary == route.function().name()
                    && e.method == route.method()
                    && e.path == route.path()
            })
        })
        .map(|route| format!("{} on function `{}`", route.key(), route.function().name()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes of herald::api::routes() without an HttpApi event in template.yaml:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_http_api_event_is_a_route() {
    let template = template();
    let events = http_events(&template);

    let stray: Vec<String> = events
        .iter()
        .filter(|e| {
            if is_default_route(e) {
                return !(e.binary == Function::System.name() && e.method == "ANY");
            }
            if format!("{} {}", e.method, e.path) == herald::api::trpc::ROUTE_KEY {
                return e.binary != Function::Trpc.name();
            }
            !routes().any(|route| {
                route.function().name() == e.binary
                    && route.method() == e.method
                    && route.path() == e.path
            })
        })
        .map(ToString::to_string)
        .collect();
    assert!(
        stray.is_empty(),
        "HttpApi events in template.yaml that herald::api::routes() does not have \
         (only `ANY $default` on system and the tRPC proxy on trpc are allowed besides):\n  {}",
        stray.join("\n  ")
    );

    let defaults: Vec<&Event> = events.iter().filter(|e| is_default_route(e)).collect();
    assert_eq!(
        defaults.len(),
        1,
        "exactly one `ANY {DEFAULT_ROUTE}` event on the system function expected, found {defaults:?}"
    );

    let mut keys: BTreeMap<(String, String), &Event> = BTreeMap::new();
    for e in &events {
        if let Some(first) = keys.insert((e.method.clone(), e.path.clone()), e) {
            panic!("route declared twice in template.yaml: {first} and {e}");
        }
    }
}

#[test]
fn every_function_is_a_cargo_lambda_arm64_al2023_function() {
    let template = template();
    let log_groups: Vec<&Value> = resources_of_type(&template, "AWS::Logs::LogGroup")
        .map(|(_, resource)| resource)
        .collect();

    for f in functions(&template) {
        let id = &f.logical_id;
        assert_eq!(
            f.resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}: Metadata.BuildMethod"
        );
        assert_eq!(
            property(&template, &f, "Runtime").as_str(),
            Some("provided.al2023"),
            "{id}: Runtime"
        );
        let arch = property(&template, &f, "Architectures");
        assert_eq!(
            arch.as_sequence()
                .map(|s| s.iter().map(Value::as_str).collect::<Vec<_>>()),
            Some(vec![Some("arm64")]),
            "{id}: Architectures, is {arch:?}"
        );
        assert_eq!(
            property(&template, &f, "Handler").as_str(),
            Some("bootstrap"),
            "{id}: Handler"
        );
        // cargo-lambda builds a workspace member from the workspace root.
        assert_eq!(
            property(&template, &f, "CodeUri").as_str(),
            Some("."),
            "{id}: CodeUri"
        );

        // Its log group, with a retention, named after the function.
        let has_log_group = log_groups.iter().any(|group| {
            let name = &group["Properties"]["LogGroupName"];
            let sub = match name {
                Value::Tagged(t) if t.tag == "Sub" => t.value.as_str(),
                _ => name["Fn::Sub"].as_str(),
            };
            sub == Some(format!("/aws/lambda/${{{id}}}").as_str())
                && !group["Properties"]["RetentionInDays"].is_null()
        });
        assert!(
            has_log_group,
            "{id}: no AWS::Logs::LogGroup named !Sub /aws/lambda/${{{id}}} with RetentionInDays"
        );
    }
}

#[test]
fn every_function_crate_has_its_template_function_and_back() {
    let template = template();
    let in_template: BTreeSet<String> =
        functions(&template).into_iter().map(|f| f.binary).collect();
    let crates: BTreeSet<String> = herald_tests::function_process::function_names()
        .into_iter()
        .collect();
    assert_eq!(
        in_template, crates,
        "template.yaml's functions (BuildProperties.Binary) and the crates under functions/ differ"
    );
}

/// A number of the template: a literal, or `!Ref` to a parameter, read as its default.
fn number(template: &Value, value: &Value, what: &str) -> u64 {
    let value = match ref_target(value) {
        Some(parameter) => {
            let default = &template["Parameters"][parameter]["Default"];
            assert!(
                !default.is_null(),
                "{what}: !Ref {parameter}, a parameter without a default"
            );
            default
        }
        None => value,
    };
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{what} should be a whole number, is {value:?}"))
}

/// An environment variable of a function, falling back to `Globals` as SAM merges them.
fn env_var<'a>(template: &'a Value, function: &'a TemplateFunction, name: &str) -> &'a Value {
    match &function.resource["Properties"]["Environment"]["Variables"][name] {
        Value::Null => &template["Globals"]["Function"]["Environment"]["Variables"][name],
        value => value,
    }
}

/// The rule of the README's "Connection budget and poolers", on the parameters' defaults:
/// every function's instances (its reserved concurrency) times its pool (`DB_MAX_CONNECTIONS`)
/// fit `max_connections` beside the reserved connections, and fit RDS Proxy's share of it
/// when the proxy is on, which leaves the reserved ones and the migrations' connection.
#[test]
fn the_default_connection_budget_fits_the_database() {
    let template = template();
    let parameter = |name: &str| {
        number(
            &template,
            &template["Parameters"][name]["Default"],
            &format!("Parameters.{name}.Default"),
        )
    };
    let max_connections = parameter("DatabaseMaxConnections");
    let reserved = parameter("DatabaseReservedConnections");
    let proxy_share = max_connections * parameter("ProxyMaxConnectionsPercent") / 100;

    let mut table = Vec::new();
    let (mut total, mut through_proxy, mut instances) = (0, 0, 0);
    for f in functions(&template) {
        let id = &f.logical_id;
        let concurrency = property(&template, &f, "ReservedConcurrentExecutions");
        assert!(
            !concurrency.is_null(),
            "{id}: no ReservedConcurrentExecutions, so its instances and connections are unbounded"
        );
        let concurrency = number(
            &template,
            concurrency,
            &format!("{id}.ReservedConcurrentExecutions"),
        );
        // herald::migrate::run opens one connection of its own, straight to the database.
        let migrations = f.binary == "migrate";
        let pool = if migrations {
            1
        } else {
            let pool = env_var(&template, &f, "DB_MAX_CONNECTIONS");
            assert!(
                !pool.is_null(),
                "{id}: no DB_MAX_CONNECTIONS (the default would be 2)"
            );
            number(&template, pool, &format!("{id}: DB_MAX_CONNECTIONS"))
        };
        let connections = concurrency * pool;
        table.push(format!(
            "  {:<14} {concurrency:>3} instances x {pool} connections = {connections:>3}",
            f.binary
        ));
        total += connections;
        instances += concurrency;
        if !migrations {
            through_proxy += connections;
        }
    }
    table.push(format!("  {:<14} {:>34}", "reserved", reserved));
    let table = table.join("\n");
    let sum = total + reserved;
    assert!(
        sum <= max_connections,
        "the functions' connections and the reserved ones come to {sum}, over \
         DatabaseMaxConnections {max_connections}:\n{table}"
    );
    assert!(
        through_proxy <= proxy_share,
        "through RDS Proxy the functions may ask for {through_proxy} connections, over its \
         share of {proxy_share} (ProxyMaxConnectionsPercent of DatabaseMaxConnections \
         {max_connections}):\n{table}"
    );
    assert!(
        proxy_share + (total - through_proxy) + reserved <= max_connections,
        "RDS Proxy's share ({proxy_share}), the migrations' connection and the {reserved} \
         reserved connections do not fit DatabaseMaxConnections {max_connections}"
    );
    // An account's default concurrency is 1000, of which 100 must stay unreserved.
    assert!(
        instances <= 900,
        "the functions reserve {instances} concurrent executions, more than an account with \
         the default limit of 1000 can spare:\n{table}"
    );
}

/// The database's password is in no function's configuration: each function gets the
/// secret's ARN and may read that secret, and through RDS Proxy its endpoint and pooler.
#[test]
fn functions_read_the_database_secret_themselves() {
    assert!(
        !TEMPLATE.contains("{{resolve:secretsmanager"),
        "a dynamic reference puts the secret's value into a function's configuration"
    );
    let template = template();
    for f in functions(&template) {
        let id = &f.logical_id;
        for name in ["DATABASE_URL", "OWNER_DATABASE_URL"] {
            assert!(
                env_var(&template, &f, name).is_null(),
                "{id}: {name} is set"
            );
        }
        assert_eq!(
            ref_target(env_var(&template, &f, "DATABASE_SECRET_ARN")),
            Some("DatabaseSecretArn"),
            "{id}: DATABASE_SECRET_ARN"
        );
        let policies = f.resource["Properties"]["Policies"].as_sequence();
        assert!(
            policies.is_some_and(|p| p
                .iter()
                .any(|p| ref_target(p) == Some("DatabaseSecretAccess"))),
            "{id}: Policies must include !Ref DatabaseSecretAccess"
        );
        let pooler = env_var(&template, &f, "DATABASE_POOLER");
        let pooler = match pooler {
            Value::Tagged(t) if t.tag == "If" => t.value.as_sequence(),
            _ => None,
        }
        .unwrap_or_else(|| panic!("{id}: DATABASE_POOLER should be an !If, is {pooler:?}"));
        assert_eq!(pooler[0].as_str(), Some("RdsProxyEnabled"), "{id}");
        assert_eq!(pooler[1].as_str(), Some("rds-proxy"), "{id}");
        assert_eq!(ref_target(&pooler[2]), Some("DatabasePooler"), "{id}");
    }
    let migrate = functions(&template)
        .into_iter()
        .find(|f| f.binary == "migrate")
        .expect("the migrate function");
    assert_eq!(
        ref_target(env_var(&template, &migrate, "OWNER_DATABASE_SECRET_ARN")),
        Some("OwnerDatabaseSecretArn")
    );
}
