//! Save-time analysis of a template's source: the syntax Herald accepts, and the variables
//! the template uses.
//!
//! Templates are minijinja (Jinja2) source, restricted to what a message needs: text,
//! `{{ expressions }}`, `{% if %}` and `{% for %}`. The restriction is what keeps a render
//! cheap and bounded: every value a template can build is either looked up from the
//! context, a constant from the source, or the result of a filter that caps its own output.
//! Nothing can be bound and then doubled (`{% set %}`, `{% with %}`, macros), strings cannot
//! be glued together without bound (`~`, `+` and `*` on strings), and nothing can pull in
//! other templates (`include`, `import`, `extends` are not even compiled in). Loops are
//! bounded by the engine's fuel and the output cap (see [`super::sandbox`]).
//!
//! The walk fails closed: a statement or expression it does not know is refused.

use std::collections::BTreeSet;

use minijinja::machinery::ast::{self, BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{self, Span, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::ValueKind;

use super::render::{Part, SyntaxError};

/// The filters a template may use; `replace`, `join` and `truncate` are Herald's own,
/// bounded versions (see [`super::sandbox`]).
pub const FILTERS: &[&str] = &[
    "abs",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "first",
    "float",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lower",
    "max",
    "min",
    "replace",
    "round",
    "safe",
    "title",
    "trim",
    "truncate",
    "upper",
];

/// The tests a template may use (`{% if x is defined %}`).
pub const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "even",
    "false",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "int",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "true",
    "undefined",
    "upper",
];

/// The fields of `contact` and `campaign`; custom values live under `contact.attributes`.
const CONTACT_FIELDS: &[&str] = &["name", "phone", "email", "attributes"];
const CAMPAIGN_FIELDS: &[&str] = &["name"];

/// Filters whose result is always a number (or an error), so `+` and `*` may use them.
const NUMERIC_FILTERS: &[&str] = &["abs", "count", "float", "int", "length", "round"];
/// Attributes of `loop` that are numbers.
const LOOP_NUMBERS: &[&str] = &[
    "depth",
    "depth0",
    "index",
    "index0",
    "length",
    "revindex",
    "revindex0",
];

/// Checks `source` and returns the variables it uses, sorted (see [`variable_path`]).
// `SyntaxConfig` is a unit struct unless minijinja's `custom_syntax` is on.
#[allow(clippy::default_constructed_unit_structs)]
pub fn analyze(source: &str, part: Part) -> Result<BTreeSet<String>, SyntaxError> {
    let ast = machinery::parse(
        source,
        part.name(),
        SyntaxConfig::default(),
        WhitespaceConfig::default(),
    )
    .map_err(|e| {
        let mut error = SyntaxError::from_minijinja(part, source, &e);
        if let Some(hint) = hint(&error.message) {
            error.message.push_str(hint);
        }
        error
    })?;
    let mut walker = Walker {
        part,
        loops: Vec::new(),
        variables: BTreeSet::new(),
    };
    walker.stmt(&ast)?;
    Ok(walker.variables)
}

/// Why a statement minijinja knows but Herald does not compile in is unknown.
fn hint(message: &str) -> Option<&'static str> {
    let statement = message.strip_prefix("syntax error: unknown statement ")?;
    match statement.trim() {
        "include" | "import" | "from" | "extends" | "block" => {
            Some(" (a message template cannot use other templates)")
        }
        "macro" | "call" => Some(" (macros are not available in message templates)"),
        "break" | "continue" => Some(" (use a loop filter: `{% for x in xs if ... %}`)"),
        _ => None,
    }
}

/// One step of a lookup path.
enum Segment {
    Name(String),
    Index(i64),
}

/// Formats a variable the way a template would spell it: dots for names that are
/// identifiers, brackets otherwise: `contact.attributes.city`,
/// `contact.attributes["first name"]`, `contact.attributes.tags[0]`.
fn variable_path(root: &str, segments: &[Segment]) -> String {
    let mut path = root.to_owned();
    for segment in segments {
        match segment {
            Segment::Name(name) if is_identifier(name) => {
                path.push('.');
                path.push_str(name);
            }
            Segment::Name(name) => {
                path.push('[');
                path.push_str(&serde_json::to_string(name).unwrap_or_default());
                path.push(']');
            }
            Segment::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Walker<'a> {
    part: Part,
    /// The names each enclosing `for` binds (its targets).
    loops: Vec<Vec<&'a str>>,
    variables: BTreeSet<String>,
}

type Checked = Result<(), SyntaxError>;

impl<'a> Walker<'a> {
    fn error(&self, span: Span, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            part: self.part,
            line: usize::from(span.start_line),
            column: usize::from(span.start_col) + 1,
            message: message.into(),
        }
    }

    fn not_available(&self, span: Span, what: &str) -> SyntaxError {
        self.error(
            span,
            format!("{what} is not available in message templates"),
        )
    }

    fn stmts(&mut self, stmts: &[Stmt<'a>]) -> Checked {
        stmts.iter().try_for_each(|s| self.stmt(s))
    }

    fn stmt(&mut self, stmt: &Stmt<'a>) -> Checked {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) => Ok(()),
            Stmt::IfCond(c) => {
                self.expr(&c.expr)?;
                self.stmts(&c.true_body)?;
                self.stmts(&c.false_body)
            }
            Stmt::ForLoop(f) => self.for_loop(f),
            Stmt::Set(s) => Err(self.not_available(s.span(), "`{% set %}`")),
            Stmt::SetBlock(s) => Err(self.not_available(s.span(), "`{% set %}`")),
            Stmt::WithBlock(s) => Err(self.not_available(s.span(), "`{% with %}`")),
            Stmt::AutoEscape(s) => Err(self.not_available(s.span(), "`{% autoescape %}`")),
            Stmt::FilterBlock(s) => Err(self.not_available(s.span(), "`{% filter %}`")),
            Stmt::Do(s) => Err(self.not_available(s.span(), "`{% do %}`")),
            // Statements of minijinja features Herald does not compile in (includes,
            // macros, loop controls) cannot be parsed; should they ever be, refuse them.
            #[allow(unreachable_patterns)]
            _ => Err(SyntaxError {
                part: self.part,
                line: 1,
                column: 1,
                message: "a statement is not available in message templates".into(),
            }),
        }
    }

    fn for_loop(&mut self, f: &ast::Spanned<ast::ForLoop<'a>>) -> Checked {
        if f.recursive {
            return Err(self.not_available(f.span(), "a recursive loop"));
        }
        self.expr(&f.iter)?;
        let mut names = Vec::new();
        self.targets(&f.target, &mut names)?;
        self.loops.push(names);
        let body = match &f.filter_expr {
            Some(filter) => self.expr(filter),
            None => Ok(()),
        }
        .and_then(|()| self.stmts(&f.body));
        self.loops.pop();
        body?;
        self.stmts(&f.else_body)
    }

    /// The names a `for` binds: `item`, or `key, value`.
    fn targets(&self, target: &Expr<'a>, names: &mut Vec<&'a str>) -> Checked {
        match target {
            Expr::Var(v) if matches!(v.id, "contact" | "campaign" | "loop" | "range") => {
                Err(self.error(v.span(), format!("a loop may not rebind `{}`", v.id)))
            }
            Expr::Var(v) => {
                names.push(v.id);
                Ok(())
            }
            Expr::List(l) => l.items.iter().try_for_each(|t| self.targets(t, names)),
            other => Err(self.error(other.span(), "a loop binds names, such as `item`")),
        }
    }

    fn in_loop(&self) -> bool {
        !self.loops.is_empty()
    }

    fn bound_by_loop(&self, name: &str) -> bool {
        self.loops.iter().any(|names| names.contains(&name))
    }

    fn expr(&mut self, expr: &Expr<'a>) -> Checked {
        match expr {
            Expr::Var(_) | Expr::GetAttr(_) | Expr::GetItem(_) => self.lookup(expr),
            Expr::Const(_) => Ok(()),
            Expr::Slice(s) => {
                self.expr(&s.expr)?;
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part)?;
                }
                Ok(())
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => self.bin_op(b),
            Expr::Compare(c) => {
                self.expr(&c.expr)?;
                c.ops.iter().try_for_each(|op| self.expr(&op.expr))
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr)?;
                self.expr(&i.true_expr)?;
                match &i.false_expr {
                    Some(e) => self.expr(e),
                    None => Ok(()),
                }
            }
            Expr::Filter(f) => self.filter(f),
            Expr::Test(t) => {
                if !TESTS.contains(&t.name) {
                    return Err(self.error(t.span(), format!("unknown test `{}`", t.name)));
                }
                self.expr(&t.expr)?;
                self.args(&t.args)
            }
            Expr::Call(c) => self.call(c),
            Expr::List(l) => l.items.iter().try_for_each(|item| self.literal_item(item)),
            Expr::Map(m) => m
                .keys
                .iter()
                .chain(&m.values)
                .try_for_each(|item| self.literal_item(item)),
        }
    }

    /// `~` is refused (it stringifies anything); `+` and `*` only on numbers.
    fn bin_op(&mut self, b: &ast::Spanned<ast::BinOp<'a>>) -> Checked {
        let op = match b.op {
            BinOpKind::Concat => {
                return Err(self.error(
                    b.span(),
                    "the `~` operator is not available; write `{{ a }}{{ b }}` instead",
                ));
            }
            BinOpKind::Add => Some("+"),
            BinOpKind::Mul => Some("*"),
            _ => None,
        };
        if let Some(op) = op
            && !(self.numeric(&b.left) && self.numeric(&b.right))
        {
            return Err(self.error(
                b.span(),
                format!("`{op}` works on numbers only: convert with `| int` or `| float`"),
            ));
        }
        self.expr(&b.left)?;
        self.expr(&b.right)
    }

    fn filter(&mut self, f: &ast::Spanned<ast::Filter<'a>>) -> Checked {
        if !FILTERS.contains(&f.name) {
            return Err(self.error(
                f.span(),
                format!(
                    "unknown filter `{}`; available: {}",
                    f.name,
                    FILTERS.join(", ")
                ),
            ));
        }
        if let Some(e) = &f.expr {
            self.expr(e)?;
        }
        self.args(&f.args)
    }

    /// Only `range(...)` (unless a loop rebinds it) and `loop.cycle`/`loop.changed`.
    fn call(&mut self, c: &ast::Spanned<ast::Call<'a>>) -> Checked {
        let allowed = match &c.expr {
            Expr::Var(v) => v.id == "range" && !self.bound_by_loop("range"),
            Expr::GetAttr(a) => {
                matches!(&a.expr, Expr::Var(v) if v.id == "loop" && self.in_loop())
                    && matches!(a.name, "cycle" | "changed")
            }
            _ => false,
        };
        if !allowed {
            return Err(self.error(
                c.span(),
                "calls are not available, except `range(...)` and `loop.cycle(...)`",
            ));
        }
        self.args(&c.args)
    }

    fn args(&mut self, args: &[CallArg<'a>]) -> Checked {
        args.iter().try_for_each(|arg| match arg {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => self.expr(e),
        })
    }

    /// List and map literals hold constants and lookups of `contact` and `campaign` only:
    /// never a loop variable, so no loop can nest a value inside itself.
    fn literal_item(&mut self, item: &Expr<'a>) -> Checked {
        let root = lookup_root(item);
        match item {
            Expr::Const(_) => Ok(()),
            Expr::List(_) | Expr::Map(_) => self.expr(item),
            _ if root.is_some_and(|r| matches!(r, "contact" | "campaign")) => self.lookup(item),
            _ => Err(self.error(
                item.span(),
                "list and map literals may only hold constants and `contact` or `campaign` values",
            )),
        }
    }

    /// A chain of `.name`, `["key"]` and `[0]` lookups ending in a variable. Subscripts
    /// that are not constants end the recorded path there (and are checked themselves).
    fn lookup(&mut self, expr: &Expr<'a>) -> Checked {
        let mut segments: Vec<Segment> = Vec::new();
        let mut current = expr;
        loop {
            match current {
                Expr::GetAttr(a) => {
                    segments.push(Segment::Name(a.name.to_owned()));
                    current = &a.expr;
                }
                Expr::GetItem(i) => {
                    match constant_segment(&i.subscript_expr) {
                        Some(segment) => segments.push(segment),
                        None => {
                            self.expr(&i.subscript_expr)?;
                            segments.clear();
                        }
                    }
                    current = &i.expr;
                }
                Expr::Var(v) => {
                    segments.reverse();
                    return self.variable(v, &segments);
                }
                other => return self.expr(other),
            }
        }
    }

    fn variable(&mut self, var: &ast::Spanned<ast::Var<'a>>, path: &[Segment]) -> Checked {
        let id = var.id;
        if self.bound_by_loop(id) || (id == "loop" && self.in_loop()) {
            return Ok(());
        }
        let fields = match id {
            "contact" => CONTACT_FIELDS,
            "campaign" => CAMPAIGN_FIELDS,
            _ => {
                return Err(self.error(
                    var.span(),
                    format!("unknown variable `{id}`; templates can use `contact` and `campaign`"),
                ));
            }
        };
        match path.first() {
            None => {}
            Some(Segment::Name(field)) if fields.contains(&field.as_str()) => {}
            Some(Segment::Name(field)) if id == "contact" => {
                return Err(self.error(
                    var.span(),
                    format!(
                        "`contact` has no field `{field}` (it has {}); custom values are under `contact.attributes`",
                        CONTACT_FIELDS.join(", ")
                    ),
                ));
            }
            Some(Segment::Name(field)) => {
                return Err(self.error(
                    var.span(),
                    format!(
                        "`{id}` has no field `{field}` (it has {})",
                        fields.join(", ")
                    ),
                ));
            }
            Some(Segment::Index(_)) => {
                return Err(self.error(var.span(), format!("`{id}` is not a list")));
            }
        }
        self.variables.insert(variable_path(id, path));
        Ok(())
    }

    /// Whether `expr` is certainly a number (or an error), never a string or a list.
    fn numeric(&self, expr: &Expr<'a>) -> bool {
        match expr {
            Expr::Const(c) => matches!(c.value.kind(), ValueKind::Number),
            Expr::UnaryOp(u) => matches!(u.op, ast::UnaryOpKind::Neg) && self.numeric(&u.expr),
            Expr::BinOp(b) => matches!(
                b.op,
                BinOpKind::Add
                    | BinOpKind::Sub
                    | BinOpKind::Mul
                    | BinOpKind::Div
                    | BinOpKind::FloorDiv
                    | BinOpKind::Rem
                    | BinOpKind::Pow
            ),
            Expr::Filter(f) => NUMERIC_FILTERS.contains(&f.name),
            Expr::GetAttr(a) => {
                matches!(&a.expr, Expr::Var(v) if v.id == "loop" && self.in_loop() && !self.bound_by_loop("loop"))
                    && LOOP_NUMBERS.contains(&a.name)
            }
            _ => false,
        }
    }
}

/// The variable a lookup chain starts from, if it is one.
fn lookup_root<'a>(expr: &Expr<'a>) -> Option<&'a str> {
    match expr {
        Expr::Var(v) => Some(v.id),
        Expr::GetAttr(a) => lookup_root(&a.expr),
        Expr::GetItem(i) => lookup_root(&i.expr),
        _ => None,
    }
}

fn constant_segment(subscript: &Expr<'_>) -> Option<Segment> {
    let Expr::Const(c) = subscript else {
        return None;
    };
    match c.value.kind() {
        ValueKind::String => c.value.as_str().map(|s| Segment::Name(s.to_owned())),
        ValueKind::Number => c.value.as_i64().map(Segment::Index),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(source: &str) -> Vec<String> {
        analyze(source, Part::Body)
            .unwrap_or_else(|e| panic!("{source:?}: {e}"))
            .into_iter()
            .collect()
    }

    fn refused(source: &str) -> SyntaxError {
        analyze(source, Part::Body).expect_err(source)
    }

    #[test]
    fn extracts_nested_paths() {
        assert_eq!(
            vars(
                "Hi {{ contact.name }}, {{ contact.attributes.city | default(\"there\") }} \
                 {{ contact['attributes']['first name'] }} {{ contact.attributes.tags[0] }} \
                 {% if campaign.name %}{{ campaign.name | upper }}{% endif %}"
            ),
            [
                "campaign.name",
                "contact.attributes.city",
                "contact.attributes.tags[0]",
                "contact.attributes[\"first name\"]",
                "contact.name",
            ]
        );
        // A dynamic subscript ends the path; loop variables are not context variables.
        assert_eq!(
            vars(
                "{% for k, v in contact.attributes | items %}{{ k }}={{ v }}{{ loop.index }}{% endfor %}\
                 {% for t in contact.attributes.tags %}{{ contact.attributes[t] }}{% endfor %}"
            ),
            ["contact.attributes", "contact.attributes.tags"]
        );
        assert_eq!(vars("plain text"), Vec::<String>::new());
    }

    #[test]
    fn refuses_unknown_names_with_their_position() {
        let e = refused("Hello\n  {{ contcat.name }}");
        assert_eq!((e.line, e.column), (2, 6));
        assert!(e.message.contains("unknown variable `contcat`"), "{e}");
        assert!(
            refused("{{ contact.city }}")
                .message
                .contains("contact.attributes")
        );
        assert!(
            refused("{{ campaign.status }}")
                .message
                .contains("no field")
        );
        assert!(
            refused("{{ loop.index }}")
                .message
                .contains("unknown variable")
        );
        assert!(refused("{{ x | tojson }}").message.contains("unknown"));
        assert!(
            refused("{{ contact.name | center(1000) }}")
                .message
                .contains("unknown filter")
        );
    }

    #[test]
    fn reports_syntax_errors_with_line_and_column() {
        let e = refused("line one\nHi {{ contact.name }");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.column > 1, "{e}");
        assert!(e.message.starts_with("syntax error"), "{e}");
        let e = refused("Hi\n{% include 'footer' %}");
        assert_eq!((e.line, e.column), (2, 4));
        assert!(e.message.contains("cannot use other templates"), "{e}");
    }

    #[test]
    fn refuses_what_could_grow_without_bound() {
        for source in [
            "{% set a = contact.name %}",
            "{% with a = 1 %}{% endwith %}",
            "{{ contact.name ~ contact.name }}",
            "{{ contact.name + contact.name }}",
            "{{ contact.name * 1000000 }}",
            "{{ 'x' * 100000000 }}",
            "{% for a in contact.attributes.list %}{% for b in [a, a] %}{% endfor %}{% endfor %}",
            "{% for x in contact.attributes.tree recursive %}{{ loop(x) }}{% endfor %}",
            "{% include 'x' %}",
            "{% extends 'x' %}",
            "{% import 'x' as y %}",
            "{% macro f() %}{% endmacro %}",
            "{{ namespace() }}",
            "{{ dict(a=1) }}",
            "{% filter upper %}x{% endfilter %}",
            "{% autoescape false %}x{% endautoescape %}",
        ] {
            refused(source);
        }
        // Arithmetic on numbers is fine.
        assert_eq!(
            vars(
                "{{ contact.attributes.points | int + 10 }}{% for i in range(3) %}{{ loop.index * 2 }}{% endfor %}"
            ),
            ["contact.attributes.points"]
        );
    }
}
