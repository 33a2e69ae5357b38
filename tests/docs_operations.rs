//! docs/operations.md cannot drift from the code: every `ClusterConfig`
//! field is in a table row with its default exactly as `Debug` prints it,
//! every `inspect()` counter has a row, and every label the node counts
//! under (found in the source) is named, here and in `Counters`' rustdoc.

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

/// The `[a-z_]+` words right after each occurrence of `prefix` in `text`.
fn labels_after(text: &str, prefix: &str) -> Vec<String> {
    text.match_indices(prefix)
        .map(|(i, _)| {
            text[i + prefix.len()..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

/// A source file without its `#[cfg(test)]` module (the last item of a
/// file, by convention here).
fn non_test_source(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source");
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_counted_label_is_documented() {
    let doc = operations_md();
    let src = root().join("axactor-cluster/src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut labels = Vec::new();
    for file in &files {
        let text = non_test_source(file);
        for call in ["dropped", "lease_event", "handshake_failed", "frame_rejected", "request_rejected"] {
            labels.extend(labels_after(&text, &format!(".{call}(\"")));
        }
    }
    // Labels chosen by a `match` or returned to the counting call.
    for (file, prefix) in [
        ("handshake/error.rs", "=> \""),
        ("session.rs", "=> \""),
        ("node/inspect.rs", "=> \""),
        ("node/writer.rs", "Some(\""),
        ("node/conn.rs", "Some(\""),
        ("node/established.rs", "=> \""),
        ("node/established.rs", "Err(\""),
    ] {
        labels.extend(labels_after(&non_test_source(&src.join(file)), prefix));
    }
    labels.sort();
    labels.dedup();
    assert!(labels.len() >= 40, "found only {} labels: {labels:?}", labels.len());
    let missing: Vec<_> = labels.iter().filter(|l| !doc.contains(&format!("`{l}`"))).collect();
    assert!(missing.is_empty(), "docs/operations.md does not name these counted labels: {missing:?}");
    // The rustdoc of `Counters` lists them too.
    let rustdoc = non_test_source(&src.join("node/inspect.rs"));
    let missing: Vec<_> = labels.iter().filter(|l| !rustdoc.contains(&format!("`{l}`"))).collect();
    assert!(missing.is_empty(), "the `Counters` docs (node/inspect.rs) do not name these labels: {missing:?}");
}
