//! A message for a person: a translation key and its arguments. Domain and storage errors carry
//! one; the web layer renders it through the Fluent files in the reader's language, so no
//! user-facing sentence is written in code.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub key: &'static str,
    pub args: Vec<(&'static str, String)>,
}

impl Msg {
    pub fn new(key: &'static str) -> Msg {
        Msg {
            key,
            args: Vec::new(),
        }
    }
    pub fn arg(mut self, name: &'static str, value: impl ToString) -> Msg {
        self.args.push((name, value.to_string()));
        self
    }
}

/// For logs: the key and its arguments, e.g. `err-out-of-stock(product=4, available=0)`.
impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key)?;
        if !self.args.is_empty() {
            let a: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, "({})", a.join(", "))?;
        }
        Ok(())
    }
}
