//! YAML syntax errors where the defect is, in the user's words.
//!
//! libyaml reports where it *noticed* a problem: an unclosed quote at the end of the file, a tab
//! where the indentation it broke ends. When a document does not parse, the text itself is read
//! for the defects people make most (a quote not closed on its line, a tab in the indentation, a
//! line indented under a value, a second `: ` in a value), and the error points at them;
//! otherwise libyaml's message and position stand.

/// Line, column (1-based) and message for a document that failed to parse with `err`.
pub(crate) fn explain(doc: &str, err: &serde_yaml_ng::Error) -> (usize, usize, String) {
    let (line, column) = err.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
    if let Some((quote_line, quote_column, quote)) = open_quote(doc)
        && quote_line <= line
    {
        return (quote_line, quote_column, format!("the {quote} opened here is not closed on this line: close it"));
    }
    if let Some((tab_line, tab_column)) = indenting_tab(doc, line) {
        return (tab_line, tab_column, "a tab indents this line: YAML indents with spaces only".into());
    }
    if let Some((indent_line, indent_column, key)) = indented_under_a_value(doc, line, column) {
        let message = format!("this line is indented deeper than `{key}` above it, so YAML reads it as more of `{key}`'s value: align it");
        return (indent_line, indent_column, message);
    }
    if char_at(doc, line, column) == Some(':') {
        return (line, column, "a second `: ` in one value: quote the value (`\"a: b\"`) if the `:` belongs to it".into());
    }
    (line, column, strip_position(&err.to_string()))
}

/// The character at a 1-based line and column.
fn char_at(doc: &str, line: usize, column: usize) -> Option<char> {
    doc.lines().nth(line.checked_sub(1)?)?.chars().nth(column.checked_sub(1)?)
}

/// A `:` where libyaml stopped, on a line indented deeper than the `key: value` line before
/// it: the line was meant as a sibling key, and reads as a continuation of that value. The
/// line, the column where its text starts, and the key above.
fn indented_under_a_value(doc: &str, line: usize, column: usize) -> Option<(usize, usize, String)> {
    if char_at(doc, line, column) != Some(':') {
        return None;
    }
    let lines: Vec<&str> = doc.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let here = lines.get(line - 1)?;
    let above = lines[..line - 1].iter().rev().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let (key, value) = above.trim_start().split_once(": ")?;
    let has_value = !value.trim().is_empty() && !value.trim_start().starts_with('#');
    (has_value && indent(here) > indent(above)).then(|| (line, indent(here) + 1, key.trim_start_matches("- ").to_string()))
}

/// serde_yaml_ng appends " at line N column M"; a diagnostic prints the position itself.
pub(crate) fn strip_position(text: &str) -> String {
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// The first quoted scalar that is not closed on the line it opens on, as line, column and the
/// quote (`"` or `'`). Quotes inside comments and plain scalars (`it's`) are not openings.
fn open_quote(doc: &str) -> Option<(usize, usize, &'static str)> {
    for (i, line) in doc.lines().enumerate() {
        let mut previous: Option<char> = None;
        let mut chars = line.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '#' if previous.is_none() || line[..at].ends_with([' ', '\t']) => break,
                '"' | '\'' if matches!(previous, None | Some(':' | '-' | '[' | '{' | ',' | '?')) => {
                    if !closes(&mut chars, c) {
                        let quote = if c == '"' { "`\"`" } else { "`'`" };
                        return Some((i + 1, line[..at].chars().count() + 1, quote));
                    }
                    previous = Some(c);
                }
                ' ' | '\t' => {}
                _ => previous = Some(c),
            }
        }
    }
    None
}

/// Consumes a quoted scalar's rest on this line; whether its closing quote is there.
fn closes(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, quote: char) -> bool {
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' if quote == '"' => {
                chars.next();
            }
            '\'' if quote == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                chars.next();
            }
            c if c == quote => return true,
            _ => {}
        }
    }
    false
}

/// A tab in the indentation of `line` (1-based) or of a line before it.
fn indenting_tab(doc: &str, line: usize) -> Option<(usize, usize)> {
    let tab_in = |(i, text): (usize, &str)| {
        let indent = &text[..text.len() - text.trim_start().len()];
        indent.find('\t').map(|at| (i + 1, at + 1))
    };
    let lines: Vec<&str> = doc.lines().collect();
    let on_line = lines.get(line.saturating_sub(1)).and_then(|text| tab_in((line - 1, text)));
    on_line.or_else(|| lines.iter().take(line).copied().enumerate().find_map(tab_in))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(doc: &str) -> (usize, usize, String) {
        let err = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(doc).unwrap_err();
        explain(doc, &err)
    }

    #[test]
    fn an_unclosed_quote_is_reported_where_it_opens() {
        let doc = "a:\n  b: \"open\n  c: 1\nd:\n  e: 2\n";
        let (line, column, message) = explained(doc);
        assert_eq!((line, column), (2, 6), "{message}");
        assert!(message.contains("`\"` opened here is not closed"), "{message}");
        let (line, _, _) = explained("a: 'it''s\nb: [1\n");
        assert_eq!(line, 1);
    }

    #[test]
    fn quotes_in_comments_and_plain_scalars_are_not_openings() {
        assert_eq!(open_quote("a: it's # \"x\nb: \"c\" # 'd\n"), None);
    }

    #[test]
    fn a_tab_in_the_indentation_is_named() {
        let (line, column, message) = explained("a:\n  b: 1\n\tc: 2\n");
        assert_eq!((line, column), (3, 1), "{message}");
        assert!(message.contains("tab"), "{message}");
    }

    #[test]
    fn a_line_indented_under_a_value_and_a_second_colon_are_named() {
        let (line, column, message) = explained("deploy:\n  role: arn:x\n   cluster: demo\n");
        assert_eq!((line, column), (3, 4), "{message}");
        assert!(message.contains("indented deeper than `role`"), "{message}");
        let (line, column, message) = explained("deploy:\n  cluster: demo: blue\n");
        assert_eq!((line, column), (2, 16), "{message}");
        assert!(message.contains("a second `: `"), "{message}");
    }

    #[test]
    fn other_errors_keep_libyamls_words_and_position() {
        let (line, _, message) = explained("a: [1, 2\nb: 3\n");
        assert!(line >= 2 && !message.contains(" at line "), "{line} {message}");
    }
}
