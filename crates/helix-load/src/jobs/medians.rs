//! Figures of repeated runs, by name in the order first seen, and their medians.

use serde_json::{Map, Value};

use crate::report::round;

/// Named figures, each with one value per run.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    rows: Vec<(String, Vec<f64>)>,
}

impl Figures {
    pub fn add(&mut self, name: &str, value: f64) {
        match self.rows.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => self.rows.push((name.to_owned(), vec![value])),
        }
    }

    /// Every (name, value) pair, run by run.
    pub fn values(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.rows
            .iter()
            .flat_map(|(name, values)| values.iter().map(move |v| (name.as_str(), *v)))
    }

    pub fn median(&self, name: &str) -> Option<f64> {
        let (_, values) = self.rows.iter().find(|(n, _)| n == name)?;
        median(values)
    }

    /// `name  median  (run values)` lines, indented.
    pub fn print(&self, heading: &str) {
        println!("{heading}");
        let width = self.rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, values) in &self.rows {
            let runs: Vec<String> = values.iter().map(|v| show(*v)).collect();
            let mid = median(values).map_or_else(|| "-".to_owned(), show);
            println!("  {name:<width$}  {mid:>12}   (runs: {})", runs.join(", "));
        }
    }

    /// `{name: median}` for the SUMMARY line.
    pub fn json(&self) -> Map<String, Value> {
        self.rows
            .iter()
            .map(|(name, values)| {
                let mid = median(values).map(|v| round(v, 3));
                (name.clone(), Value::from(mid))
            })
            .collect()
    }
}

/// The middle value (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if !sorted.len().is_multiple_of(2) {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Large values grouped by thousands, small ones with three decimals.
fn show(value: f64) -> String {
    if value.abs() >= 1000.0 {
        super::thousands(value)
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let mut figures = Figures::default();
        figures.add("a", 1.0);
        figures.add("b", 5.0);
        figures.add("a", 3.0);
        assert_eq!(figures.median("a"), Some(2.0));
        assert_eq!(figures.json()["b"], Value::from(5.0));
    }
}
