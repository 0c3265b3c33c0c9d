//! Command templates: split into argv words the way a POSIX shell would
//! ([`split_template`], by a [`WordReader`] per word), each word literal
//! text and `{param}` placeholders; and the [`BuiltCommand`] made from them.

use std::collections::BTreeMap;

use super::check_param_name;
use super::validators::is_safe_char;

/// One part of an argv word: literal text or a parameter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// Literal text.
    Text(String),
    /// The value of the named parameter.
    Param(String),
}

pub(super) type Word = Vec<Piece>;

/// Splits a command template into words the way a POSIX shell would, for the
/// subset of shell syntax a whitelist may use: plain words, single and double
/// quotes, `{param}` placeholders, and leading `NAME=value` assignments. Anything
/// else a shell would interpret (`;`, `|`, `$`, globs, redirections...) is refused.
/// Returns each word with the variable name when it is an assignment.
pub(super) fn split_template(
    template: &str,
) -> std::result::Result<Vec<(Word, Option<String>)>, String> {
    let mut words = Vec::new();
    let mut chars = template.chars().peekable();
    loop {
        while chars.next_if_eq(&' ').is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        words.push(read_word(&mut chars)?);
    }
}

type TemplateChars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// One word being read: finished pieces plus literal text not yet pushed.
#[derive(Default)]
struct WordReader {
    pieces: Word,
    text: String,
    /// Set once a quote or placeholder is seen: the word can no longer be an
    /// assignment (a shell only treats a plain `NAME=` prefix as one).
    quoted_or_param: bool,
    assignment: Option<String>,
}

impl WordReader {
    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.pieces
                .push(Piece::Text(std::mem::take(&mut self.text)));
        }
    }

    fn param(&mut self, chars: &mut TemplateChars<'_>) -> std::result::Result<(), String> {
        self.flush();
        self.pieces.push(Piece::Param(read_param(chars)?));
        Ok(())
    }

    /// An unquoted `=`: ends the variable name of an assignment, or is literal.
    fn equals(&mut self) {
        let is_name = self
            .text
            .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && self
                .text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if self.assignment.is_none() && !self.quoted_or_param && is_name {
            self.assignment = Some(std::mem::take(&mut self.text));
        } else {
            self.text.push('=');
        }
    }

    fn finish(mut self) -> (Word, Option<String>) {
        self.flush();
        if self.pieces.is_empty() {
            self.pieces.push(Piece::Text(String::new()));
        }
        (self.pieces, self.assignment)
    }
}

/// Reads one word, up to the next unquoted space or the end.
fn read_word(chars: &mut TemplateChars<'_>) -> std::result::Result<(Word, Option<String>), String> {
    let mut word = WordReader::default();
    while let Some(c) = chars.next_if(|c| *c != ' ') {
        match c {
            '\'' => {
                word.quoted_or_param = true;
                read_single_quoted(chars, &mut word)?;
            }
            '"' => {
                word.quoted_or_param = true;
                read_double_quoted(chars, &mut word)?;
            }
            '{' => {
                word.quoted_or_param = true;
                word.param(chars)?;
            }
            '=' => word.equals(),
            c if is_safe_char(c) => word.text.push(c),
            c => return Err(format!("character {c:?} is not allowed in a command")),
        }
    }
    Ok(word.finish())
}

/// Reads up to the closing `'`: everything literal, placeholders not allowed.
fn read_single_quoted(
    chars: &mut TemplateChars<'_>,
    word: &mut WordReader,
) -> std::result::Result<(), String> {
    loop {
        match chars.next() {
            Some('\'') => return Ok(()),
            Some(c) if c == '{' || c == '}' || c.is_control() => {
                return Err(format!("{c:?} inside single quotes"))
            }
            Some(c) => word.text.push(c),
            None => return Err("unterminated single quote".into()),
        }
    }
}

/// Reads up to the closing `"`: literal text and placeholders; nothing a shell
/// would expand inside double quotes is allowed.
fn read_double_quoted(
    chars: &mut TemplateChars<'_>,
    word: &mut WordReader,
) -> std::result::Result<(), String> {
    loop {
        match chars.next() {
            Some('"') => return Ok(()),
            Some('{') => word.param(chars)?,
            Some(c) if "$`\\!}".contains(c) || c.is_control() => {
                return Err(format!("{c:?} inside double quotes"))
            }
            Some(c) => word.text.push(c),
            None => return Err("unterminated double quote".into()),
        }
    }
}

fn read_param(chars: &mut TemplateChars<'_>) -> std::result::Result<String, String> {
    let mut name = String::new();
    loop {
        match chars.next() {
            Some('}') => break,
            Some(c) => name.push(c),
            None => return Err("unterminated '{' placeholder".into()),
        }
    }
    check_param_name(&name)?;
    Ok(name)
}

/// A command built from a whitelist entry and validated parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltCommand {
    /// Display string (the template with values filled in).
    pub command: String,
    /// What the executor runs.
    pub argv: Vec<String>,
    /// Environment for the executor.
    pub env: BTreeMap<String, String>,
    /// The `service_name` parameter's value, if the entry has one.
    pub service_name: Option<String>,
    /// Every parameter's value the command was built from: defaults
    /// applied, values normalised (what the action records as `params`).
    pub params: BTreeMap<String, String>,
}
