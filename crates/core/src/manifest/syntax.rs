//! YAML syntax errors where the defect is, in the user's words.
//!
//! libyaml reports where it *noticed* a problem: an unclosed quote at the end of the file, a tab
//! where the indentation it broke ends. When a document does not parse, the text itself is
//! read for the two defects people make most, and the error points at them; otherwise
//! libyaml's message and position stand.

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
    (line, column, strip_position(&err.to_string()))
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
    fn other_errors_keep_libyamls_words_and_position() {
        let (line, _, message) = explained("a: [1, 2\nb: 3\n");
        assert!(line >= 2 && !message.contains(" at line "), "{line} {message}");
    }
}
