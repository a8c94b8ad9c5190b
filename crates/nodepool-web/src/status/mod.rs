//! The status views Nodepool's CLI and webapp share (np `status.py`, spec 5.3 and 6).
//!
//! Each listing is a pure function from records to a [`Table`]: column keys and headers in
//! Nodepool's order, one [`Cell`] per value, the value kept in its raw form so one table
//! renders both ways:
//!
//! * [`render_text`]: PrettyTable 0.7.2 as Nodepool prints it (borders, left alignment,
//!   padding 1, multi-line cells, East Asian wide and combining characters);
//! * [`render_json`]: the webapp's JSON, `json.dumps` of a list of row objects.
//!
//! Times are passed in (`now`), so output is reproducible: ages are computed when the table
//! is built, like Nodepool computes them when it builds its rows.
//!
//! [`records`] holds our `--json` forms: the full stored record of each object plus the
//! ids that live in its path.

mod python;
pub mod records;
mod text;
mod views;

use serde_json::Value;

pub use python::{age, python_repr, python_str};
pub use text::{display_width, render_text};
pub use views::{
    BuildRecord, BuildRequest, ImageStatusRecord, InfoView, NODE_LIST_BRIEF_KEYS, ProviderBuild,
    UploadRecord, dib_image_list, image_list, image_status, info, label_list, node_list,
    render_info, request_list,
};

/// One column: the key used by the webapp's JSON and `fields`, and the header printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub key: &'static str,
    pub title: &'static str,
}

impl Header {
    pub const fn new(key: &'static str, title: &'static str) -> Header {
        Header { key, title }
    }
}

/// One value of a row, as Nodepool holds it before printing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Python `None`: an empty cell, JSON `null`.
    Null,
    Text(String),
    Int(i64),
    /// Printed `True`/`False`.
    Bool(bool),
    /// A list of strings: comma-joined in text, an array in JSON.
    List(Vec<String>),
    /// Any JSON value from a record (`user_data`, a dict `external_id`): printed as Python's
    /// `str()` would print the parsed value (dicts as reprs), raw in JSON.
    Value(Value),
    /// An epoch time shown as an age: `age` (`DD:HH:MM:SS`, computed from `seconds`) in
    /// text, the integer `seconds` in JSON (the image listings' `age` and
    /// `build_request_age`).
    Epoch {
        seconds: i64,
        age: String,
    },
}

impl Cell {
    /// `Some(text)` as `Text`, `None` as `Null`.
    pub fn text(value: Option<&str>) -> Cell {
        match value {
            Some(text) => Cell::Text(text.to_owned()),
            None => Cell::Null,
        }
    }

    /// What PrettyTable prints for this cell (before padding).
    pub fn to_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Text(text) => text.clone(),
            Cell::Int(value) => value.to_string(),
            Cell::Bool(value) => python::python_bool(*value).to_owned(),
            Cell::List(items) => items.join(","),
            Cell::Value(value) => python_str(value),
            Cell::Epoch { age, .. } => age.clone(),
        }
    }

    /// The value in the webapp's JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Text(text) => Value::String(text.clone()),
            Cell::Int(value) => Value::from(*value),
            Cell::Bool(value) => Value::Bool(*value),
            Cell::List(items) => Value::from(items.clone()),
            Cell::Value(value) => value.clone(),
            Cell::Epoch { seconds, .. } => Value::from(*seconds),
        }
    }
}

/// A listing: columns and rows of cells (each row has one cell per header).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub headers: Vec<Header>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(headers: &[Header]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Only the columns whose key is in `keys`, in table order (the webapp's `fields` and
    /// the CLI's short node list). Unknown keys are ignored, as Nodepool ignores them.
    pub fn select(&self, keys: &[&str]) -> Table {
        let keep: Vec<usize> = (0..self.headers.len())
            .filter(|&i| keys.contains(&self.headers[i].key))
            .collect();
        Table {
            headers: keep.iter().map(|&i| self.headers[i]).collect(),
            rows: self
                .rows
                .iter()
                .map(|row| keep.iter().filter_map(|&i| row.get(i).cloned()).collect())
                .collect(),
        }
    }

    /// The cell of `row` under column `key`.
    pub fn cell(&self, row: usize, key: &str) -> Option<&Cell> {
        let column = self.headers.iter().position(|h| h.key == key)?;
        self.rows.get(row)?.get(column)
    }

    /// Each row as a JSON object keyed by column key, in column order.
    pub fn json_rows(&self) -> Vec<Value> {
        self.rows
            .iter()
            .map(|row| {
                let object: serde_json::Map<String, Value> = self
                    .headers
                    .iter()
                    .zip(row)
                    .map(|(header, cell)| (header.key.to_owned(), cell.to_json()))
                    .collect();
                Value::Object(object)
            })
            .collect()
    }
}

/// The webapp's JSON body: `json.dumps(list of row objects)` (ASCII-escaped, Python
/// separators, no trailing newline).
pub fn render_json(table: &Table) -> String {
    to_python_json_text(&Value::Array(table.json_rows()))
}

/// Any JSON value printed as Python's `json.dumps` prints it.
pub fn to_python_json_text(value: &Value) -> String {
    String::from_utf8_lossy(&nodepool_model::python_json::to_python_json(value)).into_owned()
}
