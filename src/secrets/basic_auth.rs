//! `kubernetes.io/basic-auth`: the API server requires `username` or `password`; a policy
//! may require both, non-empty.

use super::{Input, Violation, data_field};

const USERNAME: &str = "username";
const PASSWORD: &str = "password";

pub fn validate(input: &Input<'_>, out: &mut Vec<Violation>) {
    if !input.rules.basic_auth.require_username_and_password {
        return;
    }
    for key in [USERNAME, PASSWORD] {
        match input.data(key) {
            None => out.push(Violation::deny(
                data_field(key),
                "required value is missing",
            )),
            Some(v) if v.iter().all(u8::is_ascii_whitespace) => {
                out.push(Violation::deny(data_field(key), "must not be empty"))
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::SecretRules;
    use crate::secrets::test_support::secret;
    use crate::secrets::{BASIC_AUTH, validate};

    fn check(require_both: bool, data: &[(&str, &[u8])]) -> Vec<String> {
        let mut rules = SecretRules::default();
        rules.basic_auth.require_username_and_password = require_both;
        let s = secret("git-basic", BASIC_AUTH, data);
        validate(&s, &rules, time::OffsetDateTime::now_utc())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn completeness_per_policy() {
        let both: &[(&str, &[u8])] = &[("username", b"git"), ("password", b"PLANTED-pw")];
        // (require both, data, expected violations)
        type Case<'a> = (bool, &'a [(&'a str, &'a [u8])], &'a [&'a str]);
        let cases: &[Case] = &[
            (false, both, &[]),
            (false, &[("password", b"only")], &[]),
            (true, both, &[]),
            (
                true,
                &[("password", b"only")],
                &["data[username]: required value is missing"],
            ),
            (
                true,
                &[("username", b"git")],
                &["data[password]: required value is missing"],
            ),
            (
                true,
                &[("username", b" "), ("password", b"")],
                &[
                    "data[username]: must not be empty",
                    "data[password]: must not be empty",
                ],
            ),
        ];
        for (require, data, expected) in cases {
            let found = check(*require, data);
            assert_eq!(
                found,
                *expected,
                "require={require} data={:?}",
                data.iter().map(|(k, _)| k).collect::<Vec<_>>()
            );
            assert!(found.iter().all(|m| !m.contains("PLANTED")));
        }
    }
}
