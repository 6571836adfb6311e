//! Finds the line and column of a field in a YAML document, for errors found after parsing
//! (a missing file, a bad name). serde gives positions only for its own errors.
//!
//! It reads block-style YAML by indentation, which is how manifests are written; for flow
//! style (`{a: 1}`) it falls back to the closest enclosing key it can find.

/// 1-based line and column of `path` (keys from the document root) in `doc`. When a key is
/// absent, the position of the deepest key found on the way is returned; `(1, 1)` when none.
pub(crate) fn locate(doc: &str, path: &[&str]) -> (usize, usize) {
    let lines: Vec<&str> = doc.lines().collect();
    let mut best = (1, 1);
    let mut start = 0;
    let mut parent_indent: isize = -1;
    for segment in path {
        let mut found = false;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                continue;
            }
            let indent = (line.len() - trimmed.len()) as isize;
            if indent <= parent_indent {
                break;
            }
            let (key_text, key_indent) = match trimmed.strip_prefix("- ") {
                Some(rest) => {
                    let rest_trimmed = rest.trim_start();
                    (rest_trimmed, indent + 2 + (rest.len() - rest_trimmed.len()) as isize)
                }
                None => (trimmed, indent),
            };
            let unquoted = key_text.trim_start_matches(['"', '\'']);
            if let Some(after) = unquoted.strip_prefix(segment) {
                let after = after.trim_start_matches(['"', '\'']).trim_start();
                if after.starts_with(':') {
                    best = (i + 1, key_indent as usize + 1);
                    parent_indent = key_indent;
                    start = i + 1;
                    found = true;
                    break;
                }
            }
        }
        if !found {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::locate;

    const DOC: &str =
        "apiVersion: x\nmetadata:\n  name: web\nspec:\n  source:\n    path: apps\n  deploy:\n    cluster: c\n    path: other\n";

    #[test]
    fn nested_keys_are_found_under_their_parent() {
        assert_eq!(locate(DOC, &["spec", "source", "path"]), (6, 5));
        assert_eq!(locate(DOC, &["spec", "deploy", "path"]), (9, 5));
    }

    #[test]
    fn a_missing_key_points_at_its_parent() {
        assert_eq!(locate(DOC, &["spec", "deploy", "service"]), (7, 3));
        assert_eq!(locate(DOC, &["nothing"]), (1, 1));
    }

    #[test]
    fn list_items_are_searched() {
        let doc = "a:\n  - name: x\n    b: 1\n";
        assert_eq!(locate(doc, &["a", "b"]), (3, 5));
    }
}
