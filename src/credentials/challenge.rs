//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), parsed without allocation tricks or
//! regular expressions: one pass over the header value, linear in its length.
//!
//! A header may hold several challenges (`Basic realm="a", Bearer realm="b"`), and a
//! response may carry several headers; parameters are `name=token` or
//! `name="quoted string"` with `\` escapes, and a quoted string may hold commas. Scheme
//! and parameter names compare case-insensitively (they are lowercased here); values are
//! kept as sent.

/// One challenge: its scheme (lowercase) and parameters (names lowercase, values as sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lowercase); the first one when it repeats.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a header value is not a list of challenges. Value-free: the header came from the
/// network and is never quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("no challenge")]
    Empty,
    #[error("unexpected character at byte {0}")]
    Unexpected(usize),
    #[error("unterminated quoted string")]
    Unterminated,
}

/// Parses one `WWW-Authenticate` header value into its challenges.
pub fn parse(header: &str) -> Result<Vec<Challenge>, ChallengeError> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_list_separators();
        if p.at_end() {
            break;
        }
        let scheme = p.token().ok_or(ChallengeError::Unexpected(p.i))?;
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: Vec::new(),
        };
        // A scheme alone, or followed by `, next-challenge`.
        if p.skip_spaces() > 0 && !p.at_end() && p.peek() != Some(b',') {
            if let Some(end) = p.token68_end() {
                // `Basic dXNlcg==`-style data: not used by registries, skipped.
                p.i = end;
            } else {
                p.params(&mut challenge.params)?;
            }
        }
        out.push(challenge);
        p.skip_spaces();
        match p.peek() {
            None | Some(b',') => {}
            Some(_) => return Err(ChallengeError::Unexpected(p.i)),
        }
    }
    if out.is_empty() {
        return Err(ChallengeError::Empty);
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }

    /// Skips spaces and empty list elements (`a, , b` is allowed by the list syntax).
    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // Only ASCII tchars were consumed, so the slice is valid UTF-8.
        let s: &'a [u8] = self.s;
        std::str::from_utf8(&s[start..self.i])
            .ok()
            .filter(|t| !t.is_empty())
    }

    /// Where a token68 starting here ends, if what follows the scheme is one rather than
    /// the first `name=value` parameter: token68 characters and `=` padding, then the
    /// end or a comma (a parameter has a value after its `=`).
    fn token68_end(&self) -> Option<usize> {
        let mut j = self.i;
        while self.s.get(j).copied().is_some_and(is_token68_char) {
            j += 1;
        }
        if j == self.i {
            return None;
        }
        while self.s.get(j) == Some(&b'=') {
            j += 1;
        }
        let mut k = j;
        while matches!(self.s.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        matches!(self.s.get(k), None | Some(b',')).then_some(j)
    }

    /// `#auth-param` after a scheme, up to the next challenge (or the end).
    fn params(&mut self, out: &mut Vec<(String, String)>) -> Result<(), ChallengeError> {
        loop {
            let name = self
                .token()
                .ok_or(ChallengeError::Unexpected(self.i))?
                .to_ascii_lowercase();
            self.skip_spaces();
            if self.peek() != Some(b'=') {
                return Err(ChallengeError::Unexpected(self.i));
            }
            self.i += 1;
            self.skip_spaces();
            let value = match self.peek() {
                Some(b'"') => self.quoted()?,
                _ => self
                    .token()
                    .ok_or(ChallengeError::Unexpected(self.i))?
                    .to_owned(),
            };
            out.push((name, value));
            // Another parameter follows a comma when it reads `name =`; anything else
            // after the comma is the next challenge's scheme.
            let before = self.i;
            self.skip_spaces();
            if self.peek() != Some(b',') {
                self.i = before;
                return Ok(());
            }
            let at_comma = self.i;
            self.skip_list_separators();
            if self.token().is_some() {
                self.skip_spaces();
                if self.peek() == Some(b'=') {
                    // Rewind to the name: the loop reads it again.
                    self.i = at_comma;
                    self.skip_list_separators();
                    continue;
                }
            }
            self.i = at_comma;
            return Ok(());
        }
    }

    /// A quoted string starting at the opening quote, unescaped.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        self.i += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeError::Unterminated),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = *self.s.get(self.i + 1).ok_or(ChallengeError::Unterminated)?;
                    value.push(escaped);
                    self.i += 2;
                }
                Some(b) => {
                    value.push(b);
                    self.i += 1;
                }
            }
        }
        // The input was a `&str` and only whole ASCII escapes were removed.
        String::from_utf8(value).map_err(|_| ChallengeError::Unexpected(self.i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str) -> Challenge {
        let mut all = parse(header).expect("parses");
        assert_eq!(all.len(), 1, "{header}");
        all.remove(0)
    }

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn registry_challenges_as_sent() {
        let hub =
            one(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#);
        assert_eq!(hub.scheme, "bearer");
        assert_eq!(
            params(&hub),
            [
                ("realm", "https://auth.docker.io/token"),
                ("service", "registry.docker.io")
            ]
        );
        let basic = one(r#"Basic realm="Registry Realm""#);
        assert_eq!(basic.scheme, "basic");
        assert_eq!(basic.param("realm"), Some("Registry Realm"));
        assert_eq!(basic.param("service"), None);
    }

    #[test]
    fn scheme_and_parameter_names_are_case_insensitive() {
        for header in [
            r#"BEARER Realm="https://a/t", SERVICE=svc"#,
            r#"bearer realm="https://a/t",service="svc""#,
            r#"BeArEr   rEaLm = "https://a/t" ,  service = svc"#,
        ] {
            let c = one(header);
            assert_eq!(c.scheme, "bearer", "{header}");
            assert_eq!(c.param("realm"), Some("https://a/t"), "{header}");
            assert_eq!(c.param("service"), Some("svc"), "{header}");
        }
    }

    #[test]
    fn quoted_strings_keep_commas_and_unescape() {
        let c = one(
            r#"Bearer realm="https://a/t?x=1,y=2",scope="repository:a/b:pull,push",error="say \"hi\", \\ ok""#,
        );
        assert_eq!(
            params(&c),
            [
                ("realm", "https://a/t?x=1,y=2"),
                ("scope", "repository:a/b:pull,push"),
                ("error", r#"say "hi", \ ok"#),
            ]
        );
        // A comma inside quotes is not the start of another challenge.
        assert_eq!(
            one(r#"Basic realm="a, Bearer realm=b""#).param("realm"),
            Some("a, Bearer realm=b")
        );
    }

    #[test]
    fn several_challenges_in_one_header() {
        let all = parse(r#"Basic realm="r1", Bearer realm="https://t",service=s, Negotiate"#)
            .expect("parses");
        let schemes: Vec<_> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate"]);
        assert_eq!(all[0].param("realm"), Some("r1"));
        assert_eq!(params(&all[1]), [("realm", "https://t"), ("service", "s")]);
        assert!(all[2].params.is_empty());

        let all = parse("Basic, Bearer realm=x").expect("parses");
        assert_eq!(all.len(), 2);
        assert!(all[0].params.is_empty());
        assert_eq!(all[1].param("realm"), Some("x"));

        // token68 data (not used by registries) is skipped, not taken for a parameter.
        let all = parse("Negotiate dG9rZW4=, Basic realm=r").expect("parses");
        assert_eq!(all.len(), 2);
        assert!(all[0].params.is_empty());
        assert_eq!(all[1].param("realm"), Some("r"));
        assert!(one("Negotiate abc==").params.is_empty());
    }

    #[test]
    fn repeated_parameters_keep_the_first_for_lookup() {
        let c = one("Bearer realm=a, realm=b");
        assert_eq!(c.param("realm"), Some("a"));
        assert_eq!(c.params.len(), 2);
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(parse(""), Err(ChallengeError::Empty));
        assert_eq!(parse(" , ,"), Err(ChallengeError::Empty));
        assert_eq!(
            parse(r#"Bearer realm="https://a/t"#),
            Err(ChallengeError::Unterminated)
        );
        assert_eq!(
            parse(r#"Bearer realm="x\"#),
            Err(ChallengeError::Unterminated)
        );
        // Syntactically a token68 (`realm=` as padded data), so no realm parameter.
        assert!(one("Bearer realm=").params.is_empty());
        assert!(matches!(
            parse(r#"Bearer realm="x", service="#),
            Err(ChallengeError::Unexpected(_))
        ));
        assert!(matches!(
            parse("Bearer realm=\"x\" junk"),
            Err(ChallengeError::Unexpected(_))
        ));
        assert!(matches!(
            parse("=realm"),
            Err(ChallengeError::Unexpected(_))
        ));
        assert!(matches!(
            parse("Bearer realm=a b"),
            Err(ChallengeError::Unexpected(_))
        ));
        assert!(matches!(
            parse("Bearer @"),
            Err(ChallengeError::Unexpected(_))
        ));
    }
}
