//! String tables: category and source names, interned per chunk and globally.

use super::CompileError;
use crate::blocklist::value::MAX_STRINGS;
use std::collections::HashMap;

#[derive(Default)]
pub(super) struct Interner {
    ids: HashMap<String, u16>,
    pub(super) names: Vec<String>,
}

impl Interner {
    pub(super) fn id(&mut self, s: &str, what: &'static str) -> Result<u16, CompileError> {
        if let Some(&id) = self.ids.get(s) {
            return Ok(id);
        }
        if self.names.len() >= MAX_STRINGS {
            return Err(CompileError::TooManyStrings { what });
        }
        let id = self.names.len() as u16;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        Ok(id)
    }
}

/// Per-chunk string ids, remapped to global ids after the parallel parse.
#[derive(Default)]
pub(super) struct LocalStrings {
    pub(super) names: Vec<String>,
    ids: HashMap<String, u16>,
    last: Option<u16>,
}

impl LocalStrings {
    #[inline]
    pub(super) fn id(&mut self, s: &str) -> u16 {
        // Most rows repeat the previous row's value: check it before hashing.
        if let Some(last) = self.last {
            if self.names[last as usize] == s {
                return last;
            }
        }
        let id = match self.ids.get(s) {
            Some(&id) => id,
            None => {
                // Past u16::MAX distinct values in one chunk the global interner refuses
                // the compile anyway (TooManyStrings); saturate here.
                let id = self.names.len().min(u16::MAX as usize) as u16;
                self.names.push(s.to_string());
                self.ids.insert(s.to_string(), id);
                id
            }
        };
        self.last = Some(id);
        id
    }
}
