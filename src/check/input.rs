//! Reading manifests: files, directories (recursively, `*.yaml`, `*.yml`, `*.json`) and
//! stdin (`-`); YAML with several documents, JSON (one or more values), and `List`
//! objects, each item becoming an object of its own.
//!
//! Errors name the file, the document and, where the parser gives them, line and
//! column. They never quote the input: a manifest may hold secret values.
//!
//! Symlinks are followed, but never into a directory already read: a link to the
//! directory itself or to a parent would otherwise make the walk endless, and links
//! between siblings make it exponential. Each skipped link is a note in the report.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Error;

/// Where an object came from, for messages and reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Source {
    /// The path as given (or found in a directory); `-` for stdin.
    pub file: String,
    /// 1-based index of the document in the file.
    pub document: usize,
    /// 1-based index of the item in a `List`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, document {}", self.file, self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        Ok(())
    }
}

/// One object of the input.
pub struct Object {
    pub source: Source,
    pub value: Value,
}

/// What the inputs hold, and what was left out of them.
#[derive(Default)]
pub struct Input {
    pub objects: Vec<Object>,
    /// Links skipped while walking directories, one line each.
    pub notes: Vec<String>,
}

/// Every object in `inputs`, in order (a directory's files sorted by path).
pub fn read(inputs: &[PathBuf]) -> Result<Input, Error> {
    let mut objects = Vec::new();
    let mut notes = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| Error::Read {
                    path: input.clone(),
                    error,
                })?;
            parse("-", &text, &mut objects)?;
        } else if input.is_dir() {
            let mut walk = Walk::default();
            walk.enter(input)?;
            walk.files.sort();
            notes.append(&mut walk.notes);
            for file in walk.files {
                read_file(&file, &mut objects)?;
            }
        } else {
            read_file(input, &mut objects)?;
        }
    }
    Ok(Input { objects, notes })
}

/// One directory walk: the files found, and the directories seen by their real path.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    notes: Vec<String>,
    /// Every directory read so far.
    read: HashSet<PathBuf>,
    /// The directories from the input down to the one being read.
    inside: Vec<PathBuf>,
}

impl Walk {
    /// Reads `dir` and below, unless it was read already.
    fn enter(&mut self, dir: &Path) -> Result<(), Error> {
        let io = |error| Error::Read {
            path: dir.to_owned(),
            error,
        };
        let real = std::fs::canonicalize(dir).map_err(io)?;
        if self.inside.contains(&real) {
            let note = "skipped: link to a directory already being read";
            self.notes.push(format!("{}: {note}", dir.display()));
            return Ok(());
        }
        if !self.read.insert(real.clone()) {
            let note = "skipped: link to a directory already read";
            self.notes.push(format!("{}: {note}", dir.display()));
            return Ok(());
        }
        self.inside.push(real);
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            entries.push(entry.map_err(io)?.path());
        }
        // Sorted, so which of two ways into a directory counts is the same every run.
        entries.sort();
        for path in entries {
            self.visit(path)?;
        }
        self.inside.pop();
        Ok(())
    }

    fn visit(&mut self, path: PathBuf) -> Result<(), Error> {
        if path.is_dir() {
            self.enter(&path)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            self.files.push(path);
        }
        Ok(())
    }
}

fn read_file(path: &Path, objects: &mut Vec<Object>) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|error| Error::Read {
        path: path.to_owned(),
        error,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Document {
        file: path.display().to_string(),
        document: 1,
        message: "the file is not UTF-8 text".to_owned(),
    })?;
    parse(&path.display().to_string(), &text, objects)
}

/// Parses the text of one file: JSON when it starts with `{` or `[`, else YAML.
pub fn parse(file: &str, text: &str, objects: &mut Vec<Object>) -> Result<(), Error> {
    let mut documents = Vec::new();
    if text.trim_start().starts_with(['{', '[']) {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (i, value) in stream.enumerate() {
            let value = value.map_err(|e| Error::Syntax {
                file: file.to_owned(),
                document: i + 1,
                line: e.line(),
                column: e.column(),
                message: "not valid JSON".to_owned(),
            })?;
            documents.push(value);
        }
    } else {
        // The same splitting and value-free errors as a policy file.
        for doc in crate::policy::file::documents(text) {
            let value: Value =
                doc.parse_located()
                    .map_err(|(line, column, message)| Error::Syntax {
                        file: file.to_owned(),
                        document: doc.index,
                        line,
                        column,
                        message,
                    })?;
            documents.push(value);
        }
    }
    for (i, value) in documents.into_iter().enumerate() {
        let source = Source {
            file: file.to_owned(),
            document: i + 1,
            item: None,
        };
        push(source, value, objects)?;
    }
    Ok(())
}

/// Adds one document: nothing for an empty one, its items for a List or an array.
fn push(source: Source, value: Value, objects: &mut Vec<Object>) -> Result<(), Error> {
    let items = match value {
        Value::Null => return Ok(()),
        Value::Array(items) => items,
        Value::Object(ref map)
            if map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array) =>
        {
            match value {
                Value::Object(mut map) => match map.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            }
        }
        Value::Object(_) => {
            objects.push(Object { source, value });
            return Ok(());
        }
        _ => {
            return Err(Error::Document {
                file: source.file,
                document: source.document,
                message: "expected an object (a mapping with apiVersion and kind)".to_owned(),
            });
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        if !item.is_object() {
            return Err(Error::Document {
                file: source.file,
                document: source.document,
                message: format!("item {} is not an object", i + 1),
            });
        }
        let source = Source {
            item: Some(i + 1),
            ..source.clone()
        };
        objects.push(Object {
            source,
            value: item,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(text: &str) -> Vec<Object> {
        let mut out = Vec::new();
        parse("t.yaml", text, &mut out).expect("parse");
        out
    }

    #[test]
    fn documents_lists_and_comments() {
        let text = "# c\n---\nkind: Secret\n---\n# only a comment\n---\nkind: List\nitems:\n- kind: Pod\n- kind: Secret\n";
        let got = objects(text);
        let sources: Vec<String> = got.iter().map(|o| o.source.to_string()).collect();
        assert_eq!(
            sources,
            [
                "t.yaml, document 1",
                "t.yaml, document 2, item 1",
                "t.yaml, document 2, item 2"
            ]
        );
    }

    #[test]
    fn json_streams_are_read() {
        let got = objects("{\"kind\":\"Pod\"}\n{\"kind\":\"Secret\"}");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].value["kind"], "Secret");
    }

    #[test]
    fn yaml_errors_give_the_line_in_the_file_and_no_value() {
        let text = "kind: Secret\n---\nkind: Secret\ndata:\n  k: [PLANTED\n";
        let mut out = Vec::new();
        let err = parse("t.yaml", text, &mut out).expect_err("broken");
        let message = err.to_string();
        assert!(message.starts_with("t.yaml:"), "{message}");
        assert!(message.contains("document 2"), "{message}");
        assert!(!message.contains("PLANTED"), "{message}");
    }

    #[test]
    fn scalars_are_not_objects() {
        let mut out = Vec::new();
        let err = parse("t.yaml", "just text\n", &mut out).expect_err("scalar");
        assert!(err.to_string().contains("document 1"), "{err}");
    }
}
