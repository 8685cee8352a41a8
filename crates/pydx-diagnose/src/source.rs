//! Reading Python source lines: which loop a line is in, and what the line does.

use crate::context::Context;

/// Lines scanned upwards for an enclosing loop.
const MAX_SCAN: u32 = 200;

/// A loop header enclosing a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopHeader {
    /// Line of the `for` / `while`.
    pub line: u32,
    /// Its text, trimmed.
    pub text: String,
    /// For `for TARGET in ITERABLE:`, the target and the iterable.
    pub target_and_iterable: Option<(String, String)>,
}

fn indentation(text: &str) -> usize {
    text.len() - text.trim_start().len()
}

/// The innermost `for` or `while` enclosing `line` of `file`, looking no
/// further up than the enclosing `def` or `class`.
pub fn enclosing_loop(context: &Context<'_>, file: &str, line: u32) -> Option<LoopHeader> {
    let current = context.raw_source_line(file, line)?;
    let mut level = indentation(&current);
    for number in (line.saturating_sub(MAX_SCAN).max(1)..line).rev() {
        let Some(text) = context.raw_source_line(file, number) else {
            continue;
        };
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = indentation(&text);
        if indent >= level {
            continue;
        }
        level = indent;
        if trimmed.starts_with("def ")
            || trimmed.starts_with("async def ")
            || trimmed.starts_with("class ")
        {
            return None;
        }
        if trimmed.starts_with("for ")
            || trimmed.starts_with("async for ")
            || trimmed.starts_with("while ")
        {
            return Some(LoopHeader {
                line: number,
                text: trimmed.to_string(),
                target_and_iterable: for_parts(trimmed),
            });
        }
    }
    None
}

/// The statements of the loop whose header is at `header` (its body, up
/// to the first line indented no deeper than the header), trimmed, without
/// blank lines and comments.
pub fn loop_body(context: &Context<'_>, file: &str, header: &LoopHeader) -> Vec<String> {
    let Some(level) = context
        .raw_source_line(file, header.line)
        .map(|text| indentation(&text))
    else {
        return Vec::new();
    };
    let mut body = Vec::new();
    for number in header.line + 1..=header.line.saturating_add(MAX_SCAN) {
        let Some(text) = context.raw_source_line(file, number) else {
            break;
        };
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indentation(&text) <= level {
            break;
        }
        body.push(trimmed.to_string());
    }
    body
}

/// `("i", "range(len(xs))")` from `for i in range(len(xs)):`.
fn for_parts(header: &str) -> Option<(String, String)> {
    let rest = header.strip_prefix("for ")?;
    let (target, iterable) = rest.split_once(" in ")?;
    let iterable = iterable.trim().trim_end_matches(':').trim();
    Some((target.trim().to_string(), iterable.to_string()))
}

/// Whether a statement does arithmetic on numbers element by element: an
/// arithmetic operator, on subscripted values or the loop variable, and no
/// strings, attribute calls or comprehensions that would make it something
/// else.
pub fn is_elementwise_arithmetic(statement: &str, loop_target: Option<&str>) -> bool {
    let code = statement.split('#').next().unwrap_or_default().trim();
    // Appending a computed number to a list (`out.append((r - low) * scale)`)
    // builds an array element by element just as an assignment does.
    let (code, is_append) = match appended_expression(code) {
        Some(expression) => (expression, true),
        None => (code, false),
    };
    if code.contains('"')
        || code.contains('\'')
        || code.contains(" for ")
        || !(is_append || is_assignment(code))
    {
        return false;
    }
    let has_arithmetic = arithmetic_outside_other_calls(code);
    let subscripted = code.contains('[');
    let uses_target = loop_target.is_some_and(|target| {
        target
            .split(',')
            .any(|name| contains_name(code, name.trim()))
    });
    has_arithmetic && (subscripted || uses_target) && !calls_a_method(code)
}

/// Functions whose arguments' arithmetic is still the line's own numeric
/// work (NumPy does the same with `np.minimum`, `astype` and the like).
const NUMERIC_CALLS: [&str; 11] = [
    "abs", "min", "max", "int", "float", "round", "pow", "divmod", "sum", "complex", "bool",
];
/// Modules whose functions count as [`NUMERIC_CALLS`] do.
const NUMERIC_MODULES: [&str; 5] = ["math", "cmath", "np", "numpy", "operator"];

/// Whether `code` does arithmetic (`+ - * / %`) outside the arguments of
/// a call to anything but a number function: in `best = search(width,
/// height - cut)` the line's time is the call (a cached lookup, say), and
/// the subtraction is only how its argument is made.
fn arithmetic_outside_other_calls(code: &str) -> bool {
    let is_identifier = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    // For each open bracket: whether arithmetic inside it counts.
    let mut counts: Vec<bool> = Vec::new();
    for (i, c) in code.char_indices() {
        match c {
            '(' => {
                let callee: String = code[..i]
                    .trim_end()
                    .chars()
                    .rev()
                    .take_while(|&c| is_identifier(c))
                    .collect::<Vec<char>>()
                    .into_iter()
                    .rev()
                    .collect();
                let numeric = callee.is_empty()
                    || NUMERIC_CALLS.contains(&callee.as_str())
                    || callee
                        .split_once('.')
                        .is_some_and(|(module, _)| NUMERIC_MODULES.contains(&module));
                counts.push(numeric && counts.last().copied().unwrap_or(true));
            }
            '[' => counts.push(counts.last().copied().unwrap_or(true)),
            ')' | ']' => {
                counts.pop();
            }
            '+' | '-' | '*' | '/' | '%' if counts.last().copied().unwrap_or(true) => {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// The expression of `name.append(expression)`, if `code` is that.
fn appended_expression(code: &str) -> Option<&str> {
    let (owner, rest) = code.split_once(".append(")?;
    let is_name = !owner.is_empty() && owner.chars().all(|c| c.is_alphanumeric() || c == '_');
    let expression = rest.strip_suffix(')')?;
    is_name.then_some(expression)
}

/// Whether `code` is an assignment or augmented assignment (not a
/// condition, a return or a call statement).
fn is_assignment(code: &str) -> bool {
    let keyword = code.split_whitespace().next().unwrap_or_default();
    if matches!(
        keyword,
        "if" | "elif" | "while" | "return" | "assert" | "yield" | "del" | "print"
    ) {
        return false;
    }
    code.char_indices().any(|(i, c)| {
        let before = code[..i].chars().next_back();
        let after = code[i + 1..].chars().next();
        c == '=' && after != Some('=') && !matches!(before, Some('=' | '!' | '<' | '>'))
    })
}

/// Whether `code` calls a method of an object (`.append(`, `.upper(`),
/// which means object work rather than arithmetic; the math modules'
/// functions do not count.
fn calls_a_method(code: &str) -> bool {
    let is_identifier = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices('.').any(|(dot, _)| {
        let owner: String = code[..dot]
            .chars()
            .rev()
            .take_while(|&c| is_identifier(c))
            .collect();
        let owner: String = owner.chars().rev().collect();
        let method: String = code[dot + 1..]
            .chars()
            .take_while(|&c| is_identifier(c))
            .collect();
        let called = code[dot + 1 + method.len()..].trim_start().starts_with('(');
        called && !method.is_empty() && !matches!(owner.as_str(), "math" | "cmath" | "np" | "numpy")
    })
}

/// `code` with the text of string literals blanked out (the replacement
/// fields of f-strings are kept, as they are code), so that a name inside
/// a string is not taken for a use of the variable.
pub fn code_only(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '"' && c != '\'' {
            out.push(c);
            i += 1;
            continue;
        }
        let prefix: String = out
            .chars()
            .rev()
            .take_while(|p| p.is_ascii_alphabetic())
            .collect();
        let formatted = prefix.contains(['f', 'F']);
        out.push(c);
        i += 1;
        let mut depth = 0;
        while i < chars.len() {
            let d = chars[i];
            i += 1;
            if d == '\\' && depth == 0 {
                i += 1;
                out.push(' ');
                continue;
            }
            if formatted && d == '{' {
                depth += 1;
            } else if formatted && d == '}' && depth > 0 {
                depth -= 1;
            } else if d == c && depth == 0 {
                out.push(c);
                break;
            }
            out.push(if depth > 0 && d != '{' { d } else { ' ' });
        }
    }
    out
}

/// Whether `name` occurs in `code` as a whole identifier.
pub fn contains_name(code: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    code.match_indices(name).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + name.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

/// A NumPy version of `statement` inside `header`, or `None` if the
/// statement has no simple array form. Element accesses `name[i]` by the
/// loop index become whole arrays; `for x in xs` loops use `np.asarray(xs)`.
pub fn vectorised(header: &LoopHeader, statement: &str) -> Option<String> {
    let (target, iterable) = header.target_and_iterable.clone()?;
    let statement = statement.split('#').next()?.trim();
    let index_loop = iterable.starts_with("range(");
    let expression_of = |expr: &str| -> String {
        if index_loop {
            replace_indexing(expr, &target)
        } else {
            replace_name(expr, &target, &format!("np.asarray({iterable})"))
        }
    };
    for op in ["+=", "-=", "*="] {
        if let Some((accumulator, expr)) = statement.split_once(op) {
            let array = expression_of(expr.trim());
            let reduction = if op == "*=" { "np.prod" } else { "np.sum" };
            return Some(format!("{} {op} {reduction}({array})", accumulator.trim()));
        }
    }
    let (left, right) = statement.split_once('=')?;
    let left = left.trim();
    if index_loop && left.ends_with(&format!("[{target}]")) {
        let array = left.trim_end_matches(&format!("[{target}]"));
        return Some(format!("{array}[:] = {}", expression_of(right.trim())));
    }
    None
}

/// `a[i] * b[i] + c` with target `i` becomes `a * b + c`.
fn replace_indexing(expr: &str, index: &str) -> String {
    expr.replace(&format!("[{index}]"), "")
}

/// Replaces whole-identifier occurrences of `name` in `expr` by `with`.
fn replace_name(expr: &str, name: &str, with: &str) -> String {
    let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    let mut out = String::new();
    let mut copied = 0;
    for (i, _) in expr.match_indices(name) {
        let whole = boundary(expr[..i].chars().next_back())
            && boundary(expr[i + name.len()..].chars().next());
        if whole && i >= copied {
            out.push_str(&expr[copied..i]);
            out.push_str(with);
            copied = i + name.len();
        }
    }
    out.push_str(&expr[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_string_literals_but_keeps_f_string_fields() {
        assert!(!contains_name(
            &code_only(r#"backends["user"].ask(id)"#),
            "user"
        ));
        assert!(contains_name(&code_only(r#"f"/users/{user.id}""#), "user"));
        assert!(!contains_name(&code_only(r#"'it\'s user'"#), "user"));
        assert!(contains_name(&code_only(r#"get("a", user)"#), "user"));
    }
    use crate::config::Config;
    use crate::context::SourceMap;
    use pydx_profile::{Meta, Profile};

    const CODE: &str = "\
def dot(a, b):
    total = 0.0
    for i in range(len(a)):
        # multiply
        total += a[i] * b[i]
    return total

def squares(xs):
    out = 0
    for x in xs:
        out += x * x
    return out
";

    #[test]
    fn finds_the_enclosing_loop_but_not_past_the_function() {
        let mut sources = SourceMap::default();
        sources.insert("m.py", CODE);
        let profile = Profile::new(Meta::default());
        let config = Config::default();
        let context = Context::new(&profile, &config, &sources);
        let header = enclosing_loop(&context, "m.py", 5).unwrap();
        assert_eq!(header.line, 3);
        assert_eq!(
            loop_body(&context, "m.py", &header),
            ["total += a[i] * b[i]"]
        );
        assert_eq!(
            header.target_and_iterable,
            Some(("i".into(), "range(len(a))".into()))
        );
        assert_eq!(enclosing_loop(&context, "m.py", 6), None);
        assert_eq!(enclosing_loop(&context, "m.py", 11).unwrap().line, 10);
    }

    #[test]
    fn recognises_element_wise_arithmetic() {
        assert!(is_elementwise_arithmetic("total += a[i] * b[i]", Some("i")));
        assert!(is_elementwise_arithmetic("out += x * x", Some("x")));
        assert!(is_elementwise_arithmetic(
            "s = s + math.sqrt(v[j])",
            Some("j")
        ));
        assert!(!is_elementwise_arithmetic(
            "text += word.upper()",
            Some("word")
        ));
        assert!(!is_elementwise_arithmetic(
            "names += 'a' + name",
            Some("name")
        ));
        assert!(!is_elementwise_arithmetic("count = count", Some("i")));
        assert!(!is_elementwise_arithmetic("if n % d == 0:", Some("d")));
        assert!(!is_elementwise_arithmetic("return a[i] + b[i]", Some("i")));
        assert!(is_elementwise_arithmetic(
            "out.append(min(255, int((r - low) * scale)))",
            Some("r, g, b")
        ));
        assert!(!is_elementwise_arithmetic(
            "out.append(word.upper() + 's')",
            Some("word")
        ));
        assert!(!is_elementwise_arithmetic("out.append(x)", Some("x")));
        // Arithmetic only in the arguments of another function: the line's
        // time is the call.
        assert!(!is_elementwise_arithmetic(
            "bottom = pieces_per_sheet(width, height - cut, piece_w, piece_h)",
            Some("cut")
        ));
        assert!(!is_elementwise_arithmetic(
            "row = lookup(table[i + 1])",
            Some("i")
        ));
        assert!(is_elementwise_arithmetic(
            "total += weight(i) * x[i]",
            Some("i")
        ));
        assert!(is_elementwise_arithmetic(
            "y[i] = np.clip(x[i] * 2, 0, 1)",
            Some("i")
        ));
    }

    #[test]
    fn sketches_the_vectorised_form() {
        let header = |text: &str| LoopHeader {
            line: 1,
            text: text.into(),
            target_and_iterable: for_parts(text),
        };
        assert_eq!(
            vectorised(&header("for i in range(len(a)):"), "total += a[i] * b[i]").as_deref(),
            Some("total += np.sum(a * b)")
        );
        assert_eq!(
            vectorised(&header("for x in xs:"), "out += x * x").as_deref(),
            Some("out += np.sum(np.asarray(xs) * np.asarray(xs))")
        );
        assert_eq!(
            vectorised(&header("for i in range(n):"), "c[i] = a[i] + 2 * b[i]").as_deref(),
            Some("c[:] = a + 2 * b")
        );
        assert_eq!(vectorised(&header("while True:"), "x += 1"), None);
    }
}
