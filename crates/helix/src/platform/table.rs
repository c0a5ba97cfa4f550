//! Plain-text tables with aligned columns, for terminal output.

/// A table of rows of cells; the first row is the header.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|s| (*s).to_owned()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Render with two spaces between columns and trailing spaces trimmed. `style` may wrap a
    /// cell (colour) after padding, given (row index, column index, padded text).
    pub fn render_with(&self, style: impl Fn(usize, usize, String) -> String) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for (r, row) in self.rows.iter().enumerate() {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| {
                    let pad = widths[c].saturating_sub(cell.chars().count());
                    let padded = if c + 1 == row.len() {
                        cell.clone()
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    };
                    style(r, c, padded)
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    pub fn render(&self) -> String {
        self.render_with(|_, _, s| s)
    }
}
