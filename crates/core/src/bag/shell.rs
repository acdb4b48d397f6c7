//! Quoting for sh, the one implementation for the shell forensnap writes into bags: the values
//! `rebuild.sh` assigns ([`shell_quote`], always quoted) and the commands in VERIFY.md
//! ([`shell_word`], quoted only when needed, in `crate::seal`). Also, for tests, finding the
//! programs they run and failing clearly when one is missing.

/// `value` as one sh word, always single-quoted: single quotes keep everything literal but `'`
/// itself, which is written `'\''` (close the quotes, an escaped quote, reopen them).
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// `value` as one sh word: as it is when non-empty and made only of characters sh takes
/// literally (so an ARN reads as itself in a command), else [`shell_quote`]d.
pub(crate) fn shell_word(value: &str) -> String {
    if !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '.' | '-' | '+' | '@' | '=')
        })
    {
        value.to_string()
    } else {
        shell_quote(value)
    }
}

/// The program `name` if it is on PATH.
#[cfg(test)]
pub(crate) fn find_program(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The program `name`, which a test cannot do without: panics, naming the program and the Debian
/// `package` that provides it, when it is not on PATH (a missing tool must fail the test, not
/// skip what it checks).
#[cfg(test)]
pub(crate) fn require_program(name: &str, package: &str) -> std::path::PathBuf {
    find_program(name).unwrap_or_else(|| {
        panic!(
            "this test needs `{name}`, which is not on PATH: install it (Debian package \
             `{package}`: apt-get install {package}); scripts/test installs it when missing"
        )
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn quoted_words_reach_sh_unchanged() {
        let dash = require_program("dash", "dash");
        let values = [
            "",
            "plain",
            "it's",
            "''",
            "'; rm -rf /; '",
            "$(x) `y` $HOME \\ \" * ? ~ # ; & | < > ( ) { } [ ]",
            "tab\there\nnewline",
            "arn:aws:kms:us-east-1:123456789012:key/0f1e",
            "alias/a=b+c@d",
            "é",
        ];
        for value in values {
            for word in [shell_quote(value), shell_word(value)] {
                let output = Command::new(&dash)
                    .args(["-c", &format!("printf '%s' {word}")])
                    .output()
                    .expect("run dash");
                assert!(output.status.success(), "{word}");
                assert_eq!(String::from_utf8_lossy(&output.stdout), value, "{word}");
            }
        }
    }

    #[test]
    fn quote_always_quotes_and_word_only_when_needed() {
        assert_eq!(shell_quote("data/blocks.bin"), "'data/blocks.bin'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        let arn = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        assert_eq!(shell_word(arn), arn);
        assert_eq!(shell_word("alias/a_b.c+d@e=f"), "alias/a_b.c+d@e=f");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("alias/it's"), r"'alias/it'\''s'");
        assert_eq!(shell_word("~root"), "'~root'");
        assert_eq!(shell_word("é"), "'é'");
    }
}
