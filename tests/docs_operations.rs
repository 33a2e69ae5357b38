//! docs/operations.md cannot drift from the code: every `ClusterConfig`
//! field is in a table row with its default exactly as `Debug` prints it,
//! every `inspect()` counter has a row, and every label a labelled counter
//! can carry (`Counters::labels`, generated from the node's reason enums)
//! is named in that counter's row and in its rustdoc in `Counters`.

use std::path::{Path, PathBuf};

use axactor_cluster::{ClusterConfig, Counters};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace").to_path_buf()
}

fn operations_md() -> String {
    std::fs::read_to_string(root().join("docs/operations.md")).expect("docs/operations.md exists")
}

/// `(field, value)` pairs of a `{:?}` rendering `Name { a: 1, b: Some("x"), .. }`
/// whose values contain no `, ` at the top level (true of both structs here).
fn debug_fields(debug: &str) -> Vec<(String, String)> {
    let body = debug.split_once(" { ").expect("a struct").1.trim_end_matches(" }");
    let mut fields = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    let bytes = body.as_bytes();
    for i in 0..=bytes.len() {
        let at_end = i == bytes.len();
        if !at_end {
            match bytes[i] {
                b'{' | b'(' | b'[' => depth += 1,
                b'}' | b')' | b']' => depth -= 1,
                _ => {}
            }
        }
        if at_end || (depth == 0 && body[i..].starts_with(", ")) {
            let item = &body[start..i];
            let (name, value) = item.split_once(": ").expect("field: value");
            fields.push((name.to_string(), value.to_string()));
            start = i + 2;
        }
    }
    fields
}

#[test]
fn every_config_field_is_documented_with_its_default() {
    let doc = operations_md();
    let fields = debug_fields(&format!("{:?}", ClusterConfig::default()));
    assert!(fields.len() >= 25, "parsed {} fields", fields.len());
    for (name, value) in fields {
        let row = format!("| `{name}` | `{value}` |");
        assert!(doc.contains(&row), "docs/operations.md lacks the row `{row}`");
    }
}

#[test]
fn every_counter_is_documented() {
    let doc = operations_md();
    let fields = debug_fields(&format!("{:?}", Counters::default()));
    assert!(fields.len() >= 15, "parsed {} counters", fields.len());
    for (name, _) in fields {
        let row = format!("| `{name}` |");
        assert!(doc.contains(&row), "docs/operations.md lacks a row for the counter `{name}`");
    }
}

/// The table row of docs/operations.md for the counter `field`.
fn doc_row<'a>(doc: &'a str, field: &str) -> &'a str {
    let start = format!("| `{field}` |");
    doc.lines().find(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("docs/operations.md has no row for `{field}`"))
}

/// The rustdoc of the field `field` of `Counters` in node/inspect.rs.
fn rustdoc_of(field: &str) -> String {
    let path = root().join("axactor-cluster/src/node/inspect.rs");
    let text = std::fs::read_to_string(path).expect("readable source");
    let lines: Vec<&str> = text.lines().collect();
    let decl = format!("    pub {field}: ");
    let at =
        lines.iter().position(|l| l.starts_with(&decl)).unwrap_or_else(|| panic!("no field `{field}` in inspect.rs"));
    let docs: Vec<&str> = lines[..at].iter().rev().take_while(|l| l.trim_start().starts_with("///")).copied().collect();
    docs.into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[test]
fn every_labelled_counter_lists_its_labels() {
    // `Counters::labels` names exactly the maps of `Counters` (a `{}` when empty).
    let maps: Vec<String> = debug_fields(&format!("{:?}", Counters::default()))
        .into_iter()
        .filter(|(_, v)| v == "{}")
        .map(|(n, _)| n)
        .collect();
    let listed: Vec<String> = Counters::labels().iter().map(|(field, _)| field.to_string()).collect();
    assert_eq!(maps, listed, "`Counters::labels` and the maps of `Counters` differ");
    let total: usize = Counters::labels().iter().map(|(_, labels)| labels.len()).sum();
    assert!(total >= 60, "only {total} labels");
}

#[test]
fn every_counted_label_is_documented() {
    let doc = operations_md();
    for (field, labels) in Counters::labels() {
        let row = doc_row(&doc, field);
        let missing: Vec<_> = labels.iter().filter(|l| !row.contains(&format!("`{l}`"))).collect();
        assert!(missing.is_empty(), "the `{field}` row of docs/operations.md does not name {missing:?}");
        let rustdoc = rustdoc_of(field);
        let missing: Vec<_> = labels.iter().filter(|l| !rustdoc.contains(&format!("`{l}`"))).collect();
        assert!(missing.is_empty(), "the rustdoc of `Counters::{field}` (node/inspect.rs) does not name {missing:?}");
    }
}
