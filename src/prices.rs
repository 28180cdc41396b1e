//! The price table (`[prices]`): what a reply's tokens cost, in millionths
//! of a US dollar. A price per 1M tokens in dollars is exactly micro-dollars
//! per token, so costs add up as integers. Pure.

use crate::config::{ModelPrice, PriceTier};
use std::collections::BTreeMap;
use wildmatch::WildMatch;

/// Prices by model: exact names first, then the longest matching pattern.
#[derive(Debug, Default)]
pub struct PriceTable {
    exact: BTreeMap<String, ModelPrice>,
    patterns: Vec<(WildMatch, usize, ModelPrice)>,
}

/// The tokens of one reply that carry a price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Billable {
    /// The prompt, cached part included.
    pub prompt: u64,
    /// The part of the prompt served from the context cache.
    pub cached: u64,
    /// Output, thinking included.
    pub output: u64,
}

/// Tokens of one reply, as Google's `usageMetadata` counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// `promptTokenCount`.
    pub prompt_tokens: i64,
    /// `candidatesTokenCount` plus `thoughtsTokenCount`.
    pub completion_tokens: i64,
    /// `totalTokenCount`.
    pub total_tokens: i64,
    /// `thoughtsTokenCount`.
    pub thinking_tokens: i64,
    /// `cachedContentTokenCount`: prompt tokens served from the context cache.
    pub cached_tokens: i64,
}

impl Usage {
    /// The tokens that carry a price.
    pub fn billable(&self) -> Billable {
        let count = |n: i64| n.max(0) as u64;
        Billable {
            prompt: count(self.prompt_tokens),
            cached: count(self.cached_tokens),
            output: count(self.completion_tokens),
        }
    }
}

impl PriceTable {
    /// The table config declares.
    pub fn new(prices: &BTreeMap<String, ModelPrice>) -> Self {
        let mut table = Self::default();
        for (name, price) in prices {
            if name.contains('*') {
                table.patterns.push((WildMatch::new(name), name.len(), price.clone()));
            } else {
                table.exact.insert(name.clone(), price.clone());
            }
        }
        // Longest pattern first: the most specific wins.
        table.patterns.sort_by_key(|pattern| std::cmp::Reverse(pattern.1));
        table
    }

    /// Whether any price is declared.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.patterns.is_empty()
    }

    /// The price of `model` (`models/` prefix ignored), if declared.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        let model = model.trim_start_matches("models/");
        self.exact
            .get(model)
            .or_else(|| self.patterns.iter().find(|(p, _, _)| p.matches(model)).map(|(_, _, price)| price))
    }

    /// What `tokens` of `model` cost, in micro-dollars (0 without a price).
    pub fn cost_micros(&self, model: &str, tokens: Billable) -> u64 {
        let Some(price) = self.price(model) else { return 0 };
        let (input, output, cached) = match tier(price, tokens.prompt) {
            Some(tier) => (tier.input, tier.output, tier.cached),
            None => (price.input, price.output, price.cached),
        };
        let cached_tokens = tokens.cached.min(tokens.prompt);
        let cost = (tokens.prompt - cached_tokens) as f64 * input
            + cached_tokens as f64 * cached
            + tokens.output as f64 * output;
        cost.round() as u64
    }

    /// What a prompt of `prompt` tokens costs before any output: the
    /// estimate a cost budget holds while the request runs.
    pub fn estimate_micros(&self, model: &str, prompt: u64) -> u64 {
        self.cost_micros(model, Billable { prompt, cached: 0, output: 0 })
    }
}

/// The highest tier the prompt is above, if any.
fn tier(price: &ModelPrice, prompt: u64) -> Option<&PriceTier> {
    price.tiers.iter().filter(|t| prompt > t.above).max_by_key(|t| t.above)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        let pro = ModelPrice {
            input: 1.25,
            output: 10.0,
            cached: 0.31,
            tiers: vec![PriceTier { above: 200_000, input: 2.5, output: 15.0, cached: 0.625 }],
        };
        let flash = ModelPrice { input: 0.3, output: 2.5, cached: 0.075, tiers: vec![] };
        let any = ModelPrice { input: 9.0, ..Default::default() };
        PriceTable::new(&BTreeMap::from([
            ("gemini-2.5-pro".to_string(), pro),
            ("gemini-2.5-flash*".to_string(), flash),
            ("gemini-*".to_string(), any),
        ]))
    }

    #[test]
    fn a_long_prompt_costs_its_tier() {
        let table = table();
        let short = Billable { prompt: 1_000_000 / 10, cached: 0, output: 10_000 };
        // 100k prompt at 1.25/M = 125,000 µ$; 10k output at 10/M = 100,000 µ$.
        assert_eq!(table.cost_micros("gemini-2.5-pro", short), 225_000);
        let long = Billable { prompt: 300_000, cached: 100_000, output: 1_000 };
        // 200k uncached at 2.5 + 100k cached at 0.625 + 1k out at 15.
        assert_eq!(table.cost_micros("models/gemini-2.5-pro", long), 500_000 + 62_500 + 15_000);
    }

    #[test]
    fn exact_names_then_the_longest_pattern() {
        let table = table();
        let tokens = Billable { prompt: 1_000, cached: 0, output: 0 };
        assert_eq!(table.cost_micros("gemini-2.5-flash-lite", tokens), 300);
        assert_eq!(table.cost_micros("gemini-3-pro-preview", tokens), 9_000);
        assert_eq!(table.cost_micros("other", tokens), 0, "no price, no cost");
        assert_eq!(table.estimate_micros("gemini-2.5-pro", 1_000), 1_250);
    }
}
