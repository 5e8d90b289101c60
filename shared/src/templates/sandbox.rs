//! The minijinja environment templates render in, built once per process.
//!
//! What keeps a render bounded, together with the syntax [`super::check`] accepts:
//! - no loader and no other templates: nothing to include, import or extend (those
//!   statements are not compiled in at all);
//! - fuel: a render may run [`FUEL`] engine instructions, so no loop runs away;
//! - `range` yields at most [`MAX_RANGE`] numbers;
//! - `replace` and `join` refuse to build a string over [`MAX_VALUE_BYTES`];
//! - the output is written through a cap and stops as soon as it is too long
//!   ([`super::render`]);
//! - `namespace`, `dict` and `debug` are gone; the debug mode, which would copy the
//!   template and its variables (contact data) into error messages, is off.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;

use minijinja::value::{Kwargs, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

/// Engine instructions one render may execute: far above what real templates use, low
/// enough that a hostile one stays a short stall (bench/README.md has the figures).
pub const FUEL: u64 = 20_000;
/// How deep templates may nest (`if` inside `for` inside ...).
pub const RECURSION_LIMIT: usize = 50;
/// The most numbers `range(...)` yields.
pub const MAX_RANGE: i64 = 1_000;
/// The longest string `replace` and `join` build.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The name under which an email body is compiled: the only template that HTML-escapes.
pub const EMAIL_BODY: &str = "body.html";

/// The shared, configured environment. Compiling clones it (a handful of `Arc`s) and adds
/// the template's own sources.
pub static BASE: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_debug(false);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    // `contact.attributes.city.name` of a contact without a city is empty, not an error:
    // one contact's sparse attributes must not fail a whole campaign.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(|name| {
        if name == EMAIL_BODY {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // `none` (a JSON null among the attributes) prints as nothing rather than "none".
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    for global in ["range", "dict", "namespace", "debug"] {
        env.remove_global(global);
    }
    env.add_function("range", range);
    env.add_filter("replace", replace);
    env.add_filter("join", join);
    env.add_filter("truncate", truncate);
    env
});

fn invalid(message: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

fn too_large() -> Error {
    invalid(format!(
        "the result would be longer than {MAX_VALUE_BYTES} bytes"
    ))
}

/// `range(stop)`, `range(start, stop)`, `range(start, stop, step)`, as in Python.
fn range(lower: i64, upper: Option<i64>, step: Option<i64>) -> Result<Value, Error> {
    let (start, stop) = match upper {
        Some(upper) => (lower, upper),
        None => (0, lower),
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(invalid("range's step must not be 0"));
    }
    let (start, stop, step) = (i128::from(start), i128::from(stop), i128::from(step));
    let span = if step > 0 { stop - start } else { start - stop };
    let count = if span > 0 {
        (span + step.abs() - 1) / step.abs()
    } else {
        0
    };
    if count > i128::from(MAX_RANGE) {
        return Err(invalid(format!(
            "range has too many elements (at most {MAX_RANGE})"
        )));
    }
    let items: Vec<i64> = (0..count)
        .filter_map(|i| i64::try_from(start + i * step).ok())
        .collect();
    Ok(Value::from(items))
}

/// `s | replace(old, new[, count])`, refusing results over [`MAX_VALUE_BYTES`].
fn replace(
    s: Cow<'_, str>,
    old: Cow<'_, str>,
    new: Cow<'_, str>,
    count: Option<usize>,
) -> Result<String, Error> {
    let found = if old.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(old.as_ref()).count()
    };
    let replaced = count.map_or(found, |c| c.min(found));
    let len = (s.len() - replaced * old.len()).saturating_add(replaced.saturating_mul(new.len()));
    if len > MAX_VALUE_BYTES {
        return Err(too_large());
    }
    Ok(match count {
        Some(count) => s.replacen(old.as_ref(), &new, count),
        None => s.replace(old.as_ref(), &new),
    })
}

/// `items | join(separator)`, refusing results over [`MAX_VALUE_BYTES`].
fn join(value: &Value, separator: Option<Cow<'_, str>>) -> Result<String, Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(String::new());
    }
    let separator = separator.as_deref().unwrap_or("");
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        if item.is_none() || item.is_undefined() {
            continue;
        }
        write!(out, "{item}").map_err(|_| too_large())?;
        if out.len() > MAX_VALUE_BYTES {
            return Err(too_large());
        }
    }
    Ok(out)
}

/// `s | truncate(length=255, killwords=false, end="...", leeway=5)`, as in Jinja2, in
/// characters: a string up to `length + leeway` characters stays whole; a longer one is cut
/// to `length` characters including `end`, at a word boundary unless `killwords`.
fn truncate(
    s: Cow<'_, str>,
    length: Option<usize>,
    killwords: Option<bool>,
    end: Option<Cow<'_, str>>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let length = kwargs
        .get::<Option<usize>>("length")?
        .or(length)
        .unwrap_or(255);
    let killwords = kwargs
        .get::<Option<bool>>("killwords")?
        .or(killwords)
        .unwrap_or(false);
    let end: Cow<'_, str> = match kwargs.get::<Option<String>>("end")? {
        Some(end) => Cow::Owned(end),
        None => end.unwrap_or(Cow::Borrowed("...")),
    };
    let leeway = kwargs.get::<Option<usize>>("leeway")?.unwrap_or(5);
    kwargs.assert_all_used()?;

    let end_chars = end.chars().count();
    if length < end_chars {
        return Err(invalid(
            "truncate's length must be at least the length of `end`",
        ));
    }
    if s.chars().count() <= length.saturating_add(leeway) {
        return Ok(s.into_owned());
    }
    let cut: String = s.chars().take(length - end_chars).collect();
    let kept = if killwords {
        cut.as_str()
    } else {
        cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head)
    };
    Ok(format!("{kept}{end}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str) -> Result<String, Error> {
        BASE.render_str(source, ())
    }

    #[test]
    fn range_is_small() {
        assert_eq!(render("{{ range(3) | join(',') }}").unwrap(), "0,1,2");
        assert_eq!(
            render("{{ range(1, 10, 4) | join(',') }}").unwrap(),
            "1,5,9"
        );
        assert_eq!(
            render("{{ range(5, 0, -2) | join(',') }}").unwrap(),
            "5,3,1"
        );
        assert_eq!(render("{{ range(-3) | join(',') }}").unwrap(), "");
        assert!(render("{{ range(1001) }}").is_err());
        assert!(render("{{ range(0, 10, 0) }}").is_err());
    }

    #[test]
    fn replace_and_join_are_capped() {
        assert_eq!(
            render("{{ 'a-b-c' | replace('-', '+') }}").unwrap(),
            "a+b+c"
        );
        assert_eq!(
            render("{{ 'a-b-c' | replace('-', '', 1) }}").unwrap(),
            "ab-c"
        );
        assert_eq!(render("{{ 'ab' | replace('', '.') }}").unwrap(), ".a.b.");
        let big = "x".repeat(1000);
        let err = BASE
            .render_str(
                "{{ s | replace('x', s) }}",
                minijinja::context! { s => big },
            )
            .unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        assert_eq!(
            render("{{ ['a', none, 3] | join(', ') }}").unwrap(),
            "a, , 3"
        );
        let err = BASE
            .render_str(
                "{{ range(1000) | join(s) }}",
                minijinja::context! { s => "y".repeat(100) },
            )
            .unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn truncate_as_jinja() {
        let s = "The quick brown fox jumps over the lazy dog";
        let t = |args: &str| {
            BASE.render_str(
                &format!("{{{{ s | truncate({args}) }}}}"),
                minijinja::context! { s },
            )
            .unwrap()
        };
        assert_eq!(t("100"), s);
        assert_eq!(t("20"), "The quick brown...");
        assert_eq!(t("20, true"), "The quick brown f...");
        assert_eq!(t("20, end='…'"), "The quick brown…");
        assert_eq!(t("20, killwords=true, end=''"), "The quick brown fox ");
        assert_eq!(t("40, leeway=0"), "The quick brown fox jumps over the...");
    }

    #[test]
    fn none_prints_as_nothing() {
        assert_eq!(render("[{{ none }}]").unwrap(), "[]");
    }
}
