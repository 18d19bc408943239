//! JSON Patch building against the pod exactly as the request carried it.
//!
//! RFC 6902 `add` fails on a missing parent, so an absent array is added whole and an
//! existing one is appended to with `/-`. Paths are built from tokens with
//! `PointerBuf::from_tokens`, which escapes `/` and `~` in names.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::Value;

#[derive(Debug, Default)]
pub struct PatchBuilder {
    ops: Vec<PatchOperation>,
}

impl PatchBuilder {
    /// Adds `items` to the array at `tokens`, which the pod has (`exists`) or not.
    pub fn extend_array(&mut self, tokens: &[&str], exists: bool, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        if exists {
            let mut append: Vec<&str> = tokens.to_vec();
            append.push("-");
            for item in items {
                self.add(PointerBuf::from_tokens(append.iter().copied()), item);
            }
        } else {
            self.add(
                PointerBuf::from_tokens(tokens.iter().copied()),
                Value::Array(items),
            );
        }
    }

    fn add(&mut self, path: PointerBuf, value: Value) {
        self.ops
            .push(PatchOperation::Add(AddOperation { path, value }));
    }

    pub fn build(self) -> Patch {
        Patch(self.ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_arrays_are_added_whole_and_present_ones_appended() {
        let mut b = PatchBuilder::default();
        b.extend_array(
            &["spec", "imagePullSecrets"],
            false,
            vec![
                serde_json::json!({"name": "a"}),
                serde_json::json!({"name": "b"}),
            ],
        );
        b.extend_array(
            &["spec", "volumes"],
            true,
            vec![serde_json::json!({"name": "v"})],
        );
        b.extend_array(
            &["metadata", "annotations", "a/b~c"],
            false,
            vec![serde_json::json!(1)],
        );
        b.extend_array(&["spec", "nothing"], false, vec![]);
        let patch = serde_json::to_value(b.build()).expect("JSON");
        assert_eq!(
            patch,
            serde_json::json!([
                {"op": "add", "path": "/spec/imagePullSecrets", "value": [{"name": "a"}, {"name": "b"}]},
                {"op": "add", "path": "/spec/volumes/-", "value": {"name": "v"}},
                {"op": "add", "path": "/metadata/annotations/a~1b~0c", "value": [1]},
            ])
        );
    }
}
