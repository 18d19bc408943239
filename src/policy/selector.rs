//! Label selectors over namespace labels, with the semantics of Kubernetes' own
//! `metav1.LabelSelector`: every requirement must hold; `{}` selects every namespace.
//!
//! A selector is compiled once, when its policy is read, so that a malformed one (an
//! unknown operator, `In` without values) is refused with the policy.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::schema::{MAX_ENTRIES, MAX_KEY};

/// Labels of one namespace.
pub type Labels = BTreeMap<String, String>;

/// A compiled label selector.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Whether the selector matches every label set (`{}`), so it can be decided
    /// without knowing the labels.
    pub fn matches_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// A selector that matches no labels (for a part of a policy that cannot be read).
    pub fn nothing() -> Self {
        Self {
            requirements: vec![Requirement::In(String::new(), BTreeSet::new())],
        }
    }

    /// Compiles `selector`; each problem names its field under `path`.
    pub fn compile(selector: &LabelSelector, path: &str) -> Result<Self, Vec<String>> {
        let mut requirements = Vec::new();
        let mut problems = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::In(
                key.clone(),
                BTreeSet::from([value.clone()]),
            ));
        }
        let expressions = selector.match_expressions.as_deref().unwrap_or_default();
        if expressions.len() > MAX_ENTRIES {
            problems.push(format!(
                "{path}.matchExpressions: {} entries; at most {MAX_ENTRIES}",
                expressions.len()
            ));
        }
        for (i, expr) in expressions.iter().enumerate() {
            let at = format!("{path}.matchExpressions[{i}]");
            let key = expr.key.clone();
            if key.is_empty() {
                problems.push(format!("{at}.key: must not be empty"));
            } else if key.chars().count() > MAX_KEY {
                problems.push(format!(
                    "{at}.key: {} characters; at most {MAX_KEY}",
                    key.chars().count()
                ));
            }
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            let requirement = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    problems.push(format!(
                        "{at}.values: operator {} needs at least one value",
                        expr.operator
                    ));
                    continue;
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    problems.push(format!(
                        "{at}.values: operator {} takes no values",
                        expr.operator
                    ));
                    continue;
                }
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::DoesNotExist(key),
                other => {
                    problems.push(format!(
                        "{at}.operator: {} is not one of In, NotIn, Exists, DoesNotExist",
                        super::validate::quote(other)
                    ));
                    continue;
                }
            };
            requirements.push(requirement);
        }
        if problems.is_empty() {
            Ok(Self { requirements })
        } else {
            Err(problems)
        }
    }

    /// The selector as requirements only (`matchLabels` folded into `In`), for those
    /// who evaluate it elsewhere (the ValidatingAdmissionPolicies' CEL).
    pub fn to_label_selector(&self) -> LabelSelector {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        let requirement = |key: &String, operator: &str, values: Option<&BTreeSet<String>>| {
            LabelSelectorRequirement {
                key: key.clone(),
                operator: operator.to_owned(),
                values: values.map(|v| v.iter().cloned().collect()),
            }
        };
        let expressions = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::In(key, values) => requirement(key, "In", Some(values)),
                Requirement::NotIn(key, values) => requirement(key, "NotIn", Some(values)),
                Requirement::Exists(key) => requirement(key, "Exists", None),
                Requirement::DoesNotExist(key) => requirement(key, "DoesNotExist", None),
            })
            .collect::<Vec<_>>();
        LabelSelector {
            match_labels: None,
            match_expressions: (!expressions.is_empty()).then_some(expressions),
        }
    }

    /// Whether a namespace with `labels` is selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            // As in Kubernetes: a namespace without the label satisfies NotIn.
            Requirement::NotIn(key, values) => !labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn expr(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn selector(match_labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> Selector {
        let sel = LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        };
        Selector::compile(&sel, "spec.namespaceSelector").expect("valid selector")
    }

    #[test]
    fn matches_like_kubernetes() {
        let team_a = labels(&[("team", "a"), ("env", "prod")]);
        let bare = labels(&[]);
        let cases: Vec<(&str, Selector, &Labels, bool)> = vec![
            ("empty selects all", selector(&[], vec![]), &bare, true),
            (
                "matchLabels hit",
                selector(&[("team", "a")], vec![]),
                &team_a,
                true,
            ),
            (
                "matchLabels miss",
                selector(&[("team", "b")], vec![]),
                &team_a,
                false,
            ),
            (
                "matchLabels absent",
                selector(&[("team", "a")], vec![]),
                &bare,
                false,
            ),
            (
                "In hit",
                selector(&[], vec![expr("env", "In", &["dev", "prod"])]),
                &team_a,
                true,
            ),
            (
                "In absent",
                selector(&[], vec![expr("env", "In", &["prod"])]),
                &bare,
                false,
            ),
            (
                "NotIn hit",
                selector(&[], vec![expr("env", "NotIn", &["prod"])]),
                &team_a,
                false,
            ),
            (
                "NotIn absent",
                selector(&[], vec![expr("env", "NotIn", &["prod"])]),
                &bare,
                true,
            ),
            (
                "Exists",
                selector(&[], vec![expr("team", "Exists", &[])]),
                &team_a,
                true,
            ),
            (
                "Exists absent",
                selector(&[], vec![expr("team", "Exists", &[])]),
                &bare,
                false,
            ),
            (
                "DoesNotExist",
                selector(&[], vec![expr("team", "DoesNotExist", &[])]),
                &team_a,
                false,
            ),
            (
                "DoesNotExist absent",
                selector(&[], vec![expr("team", "DoesNotExist", &[])]),
                &bare,
                true,
            ),
            (
                "all requirements ANDed",
                selector(&[("team", "a")], vec![expr("env", "In", &["dev"])]),
                &team_a,
                false,
            ),
        ];
        for (what, sel, labels, want) in cases {
            assert_eq!(sel.matches(labels), want, "{what}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused_with_paths() {
        let sel = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                expr("env", "In", &[]),
                expr("env", "Exists", &["x"]),
                expr("env", "Matches", &["x"]),
            ]),
        };
        let problems = Selector::compile(&sel, "spec.namespaceSelector").unwrap_err();
        assert_eq!(
            problems,
            vec![
                "spec.namespaceSelector.matchExpressions[0].values: operator In needs at least one value",
                "spec.namespaceSelector.matchExpressions[1].values: operator Exists takes no values",
                "spec.namespaceSelector.matchExpressions[2].operator: \"Matches\" is not one of In, NotIn, Exists, DoesNotExist",
            ]
        );
    }
}
