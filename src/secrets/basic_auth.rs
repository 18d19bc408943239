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
