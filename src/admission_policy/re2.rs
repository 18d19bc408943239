//! Which name patterns may be published as CEL `matches`: the API server evaluates that
//! with Go's RE2 syntax, the webhook with Rust's `regex`. They share most of their
//! syntax but not all of it, so a pattern is published only when it is made of parts
//! both read alike on the strings it is matched against: secret names, which the API
//! server has already checked to be DNS-1123 subdomains (`[a-z0-9.-]`, ASCII). Anything
//! else is left to the webhook alone, with the reason.
//!
//! On those names the Perl classes (`\d`, `\w`, `\s`), case-insensitive matching and
//! `^`/`$` agree (Rust's are Unicode-aware, Go's ASCII, and the names are ASCII). Left
//! out: non-ASCII or non-printable characters, Unicode classes (property names differ),
//! nested classes and class set operations (Rust only: `[a-z&&[^x]]`, `--`, `~~`), named
//! groups, the `x`, `u` and `R` flags, `\u` escapes, special word boundaries (`\<`,
//! `\b{start}`), and counted repetitions beyond Go's limit of 1000, nested ones
//! included.

use regex_syntax::ast::{
    self, AssertionKind, Ast, ClassSet, ClassSetItem, Flag, FlagsItemKind, GroupKind,
    HexLiteralKind, LiteralKind, RepetitionKind, RepetitionRange,
};

/// Go's `maxRepeat`, which also bounds the product of nested counts.
const MAX_REPEAT: u64 = 1000;

/// `Ok` when `pattern` reads alike in RE2 and Rust's regex on secret names; else what
/// keeps it out.
pub fn shared(pattern: &str) -> Result<(), &'static str> {
    if !pattern.chars().all(|c| matches!(c, ' '..='~')) {
        return Err("it holds characters outside printable ASCII");
    }
    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|_| "it does not parse")?;
    walk(&ast, 1)
}

fn walk(ast: &Ast, repeat: u64) -> Result<(), &'static str> {
    match ast {
        Ast::Empty(_) | Ast::Dot(_) | Ast::ClassPerl(_) => Ok(()),
        Ast::Flags(set) => flags(&set.flags),
        Ast::Literal(lit) => literal(lit),
        Ast::Assertion(a) => match a.kind {
            AssertionKind::StartLine
            | AssertionKind::EndLine
            | AssertionKind::StartText
            | AssertionKind::EndText
            | AssertionKind::WordBoundary
            | AssertionKind::NotWordBoundary => Ok(()),
            _ => Err("it uses a special word boundary RE2 does not have"),
        },
        Ast::ClassUnicode(_) => Err("it uses a Unicode class"),
        Ast::ClassBracketed(class) => class_set(&class.kind),
        Ast::Repetition(rep) => {
            let count = match &rep.op.kind {
                RepetitionKind::ZeroOrOne
                | RepetitionKind::ZeroOrMore
                | RepetitionKind::OneOrMore => 1,
                RepetitionKind::Range(
                    RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n),
                ) => u64::from(*n),
                RepetitionKind::Range(RepetitionRange::Bounded(_, n)) => u64::from(*n),
            };
            let repeat = repeat.saturating_mul(count.max(1));
            if repeat > MAX_REPEAT {
                return Err("its counted repetitions exceed RE2's limit of 1000");
            }
            walk(&rep.ast, repeat)
        }
        Ast::Group(group) => {
            match &group.kind {
                GroupKind::CaptureIndex(_) => {}
                GroupKind::CaptureName { .. } => return Err("it names a group"),
                GroupKind::NonCapturing(f) => flags(f)?,
            }
            walk(&group.ast, repeat)
        }
        Ast::Alternation(alt) => alt.asts.iter().try_for_each(|a| walk(a, repeat)),
        Ast::Concat(cat) => cat.asts.iter().try_for_each(|a| walk(a, repeat)),
    }
}

fn flags(flags: &ast::Flags) -> Result<(), &'static str> {
    flags.items.iter().try_for_each(|item| match item.kind {
        FlagsItemKind::Negation
        | FlagsItemKind::Flag(
            Flag::CaseInsensitive | Flag::MultiLine | Flag::DotMatchesNewLine | Flag::SwapGreed,
        ) => Ok(()),
        FlagsItemKind::Flag(_) => Err("it sets a flag RE2 does not have (x, u or R)"),
    })
}

fn literal(lit: &ast::Literal) -> Result<(), &'static str> {
    match lit.kind {
        // `\-`, `\.`…: RE2 also reads an escaped punctuation character as itself.
        LiteralKind::Verbatim | LiteralKind::Meta | LiteralKind::Superfluous => Ok(()),
        LiteralKind::HexFixed(HexLiteralKind::X) | LiteralKind::HexBrace(HexLiteralKind::X) => {
            Ok(())
        }
        LiteralKind::Special(ast::SpecialLiteralKind::Space) => Err("it escapes a space (x mode)"),
        LiteralKind::Special(_) => Ok(()),
        _ => Err("it uses an escape RE2 does not have (\\u, \\U or octal)"),
    }
}

fn class_set(set: &ClassSet) -> Result<(), &'static str> {
    match set {
        ClassSet::BinaryOp(_) => Err("it uses a class set operation (&&, -- or ~~)"),
        ClassSet::Item(item) => class_item(item),
    }
}

fn class_item(item: &ClassSetItem) -> Result<(), &'static str> {
    match item {
        ClassSetItem::Empty(_) | ClassSetItem::Ascii(_) | ClassSetItem::Perl(_) => Ok(()),
        ClassSetItem::Literal(lit) => literal(lit),
        ClassSetItem::Range(range) => literal(&range.start).and_then(|()| literal(&range.end)),
        ClassSetItem::Unicode(_) => Err("it uses a Unicode class"),
        ClassSetItem::Bracketed(_) => Err("it nests a class in a class"),
        ClassSetItem::Union(union) => union.items.iter().try_for_each(class_item),
    }
}

#[cfg(test)]
mod tests {
    use super::shared;

    #[test]
    fn common_name_patterns_are_shared() {
        for pattern in [
            "[a-z0-9-]+-(db|api)",
            "team-[a-z]+(-[0-9]{1,3})?",
            r"(?i)APP\.[\w-]+",
            r"^[[:alnum:]]+$",
            r"\x41?b*?",
            "",
            "(a{10}){100}",
        ] {
            assert_eq!(shared(pattern), Ok(()), "{pattern}");
        }
    }

    #[test]
    fn what_only_rust_reads_is_left_to_the_webhook() {
        for pattern in [
            r"[a-z&&[^x]]+",
            r"[a-z--x]+",
            r"[a[bc]]",
            r"\pL+",
            r"(?x) a b",
            r"(?<n>a)",
            r"(?P<n>a)",
            r"\<team",
            r"\b{start}team",
            r"\u0041",
            "é+",
            "a{1001}",
            "(a{100}){11}",
            "(",
        ] {
            assert!(shared(pattern).is_err(), "{pattern}");
        }
    }
}
