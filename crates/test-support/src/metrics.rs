//! A reader of the metrics text that `/metrics` endpoints serve: the operator's OpenMetrics
//! (prometheus-client's encoder: `_total` counters, histograms with `# UNIT`, `# EOF`) and the
//! Prometheus 0.0.4 text of the Kubernetes API server.
//!
//! Why not a crate: none of those on crates.io reads both texts as they are served.
//! `prometheus-parse` (0.2.5) knows only the Prometheus 0.0.4 format and folds histogram
//! buckets away; `openmetrics-parser` (0.5.1, LGPL-3.0) refuses the operator's output, its
//! OpenMetrics parser rejecting a `# UNIT` on a histogram and its Prometheus parser a counter's
//! `_total` sample; `prom_text_format_parser` (0.1.0) had a single release, in 2023. What the
//! tests need is small — samples with their labels and values, the `TYPE`/`HELP`/`UNIT` of a
//! family, `# EOF` — so this module reads exactly that, strictly: a line it cannot read is an
//! error, not a sample silently missing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

/// The labels of a sample, in the order they were written.
pub type Labels = Vec<(String, String)>;

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The name as written, with its suffix (`_total`, `_bucket`, `_sum`, `_count`).
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the sample has every one of `labels` (and maybe others).
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(name, value)| self.label(name) == Some(*value))
    }

    fn sorted_labels(&self) -> Vec<(&str, &str)> {
        let mut labels: Vec<(&str, &str)> = self
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        labels.sort_unstable();
        labels
    }
}

/// What the `# TYPE`, `# HELP` and `# UNIT` lines say about a metric family.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    pub kind: Option<String>,
    pub help: Option<String>,
    pub unit: Option<String>,
}

/// The buckets, count and sum of a histogram.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// `(le, cumulative count)`, by increasing `le`; the last one is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
}

impl Histogram {
    /// The upper bound of the bucket that holds the `q` quantile (`0.5`: the median); `None`
    /// when the histogram is empty.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        self.buckets
            .iter()
            .find(|(_, count)| *count >= q * self.count)
            .map(|(le, _)| *le)
    }
}

/// A line that could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// 1-based.
    pub line_number: usize,
    pub line: String,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: {}: {:?}",
            self.line_number, self.reason, self.line
        )
    }
}

impl std::error::Error for ParseError {}

/// One metrics text, read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    samples: Vec<Sample>,
    families: BTreeMap<String, Metadata>,
    eof: bool,
}

impl Scrape {
    /// Reads a Prometheus or OpenMetrics text. Blank lines and comments other than `HELP`,
    /// `TYPE`, `UNIT` and `EOF` are skipped; anything after `# EOF`, a sample line that does not
    /// read, or the same series twice is an error. An empty text is an empty scrape.
    pub fn parse(text: &str) -> Result<Scrape, ParseError> {
        let mut scrape = Scrape::default();
        let mut series = HashSet::new();
        for (index, line) in text.lines().enumerate() {
            let error = |reason: &str| ParseError {
                line_number: index + 1,
                line: line.to_string(),
                reason: reason.to_string(),
            };
            if line.trim().is_empty() {
                continue;
            }
            if scrape.eof {
                return Err(error("text after # EOF"));
            }
            if let Some(comment) = line.strip_prefix('#') {
                scrape.read_comment(comment).map_err(error)?;
                continue;
            }
            let sample = parse_sample(line).map_err(error)?;
            if !series.insert(format!("{}{:?}", sample.name, sample.sorted_labels())) {
                return Err(error("the same series twice"));
            }
            scrape.samples.push(sample);
        }
        Ok(scrape)
    }

    fn read_comment(&mut self, comment: &str) -> Result<(), &'static str> {
        let comment = comment.trim_start();
        if comment == "EOF" {
            self.eof = true;
            return Ok(());
        }
        let mut words = comment.splitn(3, ' ');
        let (keyword, family) = (words.next().unwrap_or(""), words.next());
        if !matches!(keyword, "TYPE" | "HELP" | "UNIT") {
            // Any other comment: free text in the Prometheus format.
            return Ok(());
        }
        let family = family
            .filter(|f| valid_metric_name(f))
            .ok_or("no family name")?;
        let rest = words.next().unwrap_or("");
        let value = if keyword == "HELP" {
            unescape(rest, false)?
        } else {
            rest.trim().to_string()
        };
        let metadata = self.families.entry(family.to_string()).or_default();
        let slot = match keyword {
            "TYPE" => &mut metadata.kind,
            "HELP" => &mut metadata.help,
            _ => &mut metadata.unit,
        };
        if slot.is_some() {
            return Err("a second TYPE, HELP or UNIT line for the family");
        }
        *slot = Some(value);
        Ok(())
    }

    /// Every sample, in the order of the text.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The samples named `name` exactly (`..._total`, not the family name of a counter).
    pub fn samples_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the series `selector`, written as in the text: `name` or
    /// `name{label="value",...}`. The labels must be the series' labels exactly, in any order.
    ///
    /// # Panics
    /// If `selector` does not read as a series.
    pub fn get(&self, selector: &str) -> Option<f64> {
        let wanted = parse_sample(&format!("{selector} 0"))
            .unwrap_or_else(|reason| panic!("selector {selector:?}: {reason}"));
        let wanted_labels = wanted.sorted_labels();
        self.samples_named(&wanted.name)
            .find(|s| s.sorted_labels() == wanted_labels)
            .map(|s| s.value)
    }

    /// The sum of every sample named `name`, whatever its labels.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples_named(name).map(|s| s.value).sum()
    }

    /// Every label name any sample uses, sorted.
    pub fn label_names(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self
            .samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|(n, _)| n.as_str()))
            .collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// The names of the samples (with their suffixes), sorted.
    pub fn sample_names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// What the text said about `family` (`# TYPE`, `# HELP`, `# UNIT`).
    pub fn metadata(&self, family: &str) -> Option<&Metadata> {
        self.families.get(family)
    }

    /// The `# TYPE` of `family`: `counter`, `gauge`, `histogram`, ...
    pub fn family_type(&self, family: &str) -> Option<&str> {
        self.metadata(family)?.kind.as_deref()
    }

    /// Whether the text ended with `# EOF`, as OpenMetrics requires.
    pub fn has_eof(&self) -> bool {
        self.eof
    }

    /// The histogram `family` over the series that have all of `labels` (all its series when
    /// `labels` is empty), bucket counts added up by `le`.
    ///
    /// # Panics
    /// If a bucket has no `le` label, or one that is not a number.
    pub fn histogram(&self, family: &str, labels: &[(&str, &str)]) -> Histogram {
        let matching = |suffix: &str| {
            let name = format!("{family}{suffix}");
            self.samples
                .iter()
                .filter(move |s| s.name == name && s.has_labels(labels))
        };
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for bucket in matching("_bucket") {
            let le = bucket
                .label("le")
                .and_then(|le| le.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("a bucket without a numeric le: {bucket:?}"));
            match buckets.iter_mut().find(|(bound, _)| *bound == le) {
                Some((_, count)) => *count += bucket.value,
                None => buckets.push((le, bucket.value)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Histogram {
            buckets,
            count: matching("_count").map(|s| s.value).sum(),
            sum: matching("_sum").map(|s| s.value).sum(),
        }
    }
}

/// Reads `text` ([`Scrape::parse`]).
///
/// # Panics
/// If the text does not read, with the line and the text in the message.
pub fn parse(text: &str) -> Scrape {
    Scrape::parse(text).unwrap_or_else(|e| panic!("unreadable metrics text: {e}\n{text}"))
}

/// The value of one series of `text` ([`Scrape::get`]), e.g. `ngrok_events_operator_leader`
/// or `ngrok_events_operator_ngrok_requests_total{method="POST",status_class="2xx"}`.
pub fn sample(text: &str, selector: &str) -> Option<f64> {
    parse(text).get(selector)
}

/// The samples named `name` exactly, as (labels, value).
pub fn samples(text: &str, name: &str) -> Vec<(Labels, f64)> {
    parse(text)
        .samples_named(name)
        .map(|s| (s.labels.clone(), s.value))
        .collect()
}

/// The sum of every sample named `name` ([`Scrape::sum`]).
pub fn sum(text: &str, name: &str) -> f64 {
    parse(text).sum(name)
}

/// Every label name used by any sample of `text`, sorted.
pub fn label_names(text: &str) -> Vec<String> {
    parse(text).label_names()
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name{labels} value [timestamp] [# exemplar]`.
fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    if !valid_metric_name(name) {
        return Err("no metric name");
    }
    let mut labels = Vec::new();
    // The Prometheus format allows blanks between the name and the labels.
    if let Some(after_brace) = rest.trim_start_matches([' ', '\t']).strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    if !rest.starts_with([' ', '\t']) {
        return Err("no space before the value");
    }
    // An OpenMetrics exemplar follows ` # `; it is not part of the sample.
    let rest = rest.split_once(" # ").map_or(rest, |(sample, _)| sample);
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = value
        .parse::<f64>()
        .map_err(|_| "a value that is not a number")?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<f64>()
            .map_err(|_| "a timestamp that is not a number")?;
    }
    if fields.next().is_some() {
        return Err("text after the value and timestamp");
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Reads `a="x",b="y"}` into `labels` and returns what follows the `}`.
fn parse_labels<'t>(mut text: &'t str, labels: &mut Labels) -> Result<&'t str, &'static str> {
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let (name, after_name) = text.split_once('=').ok_or("a label without '='")?;
        let name = name.trim();
        if !valid_label_name(name) {
            return Err("an invalid label name");
        }
        let quoted = after_name
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let close = closing_quote(quoted).ok_or("a label value without its closing quote")?;
        if labels.iter().any(|(n, _)| n == name) {
            return Err("a label twice");
        }
        labels.push((name.to_string(), unescape(&quoted[..close], true)?));
        text = quoted[close + 1..].trim_start();
        if let Some(after_comma) = text.strip_prefix(',') {
            text = after_comma;
        } else if !text.starts_with('}') {
            return Err("labels not separated by ','");
        }
    }
}

/// The byte index of the first `"` not escaped by a backslash.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(index),
            _ => {}
        }
    }
    None
}

/// Resolves `\\`, `\n` and (in label values) `\"`.
fn unescape(text: &str, quotes: bool) -> Result<String, &'static str> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            // Prometheus help text keeps any other backslash as it is.
            Some(other) if !quotes => {
                out.push('\\');
                out.push(other);
            }
            _ => return Err("an unknown escape"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// OpenMetrics as prometheus-client writes it: a labelled counter, a histogram with a unit
    /// and `le` first, a gauge, a value with escapes, `# EOF`.
    const OPENMETRICS: &str = r#"# HELP things Things "done" \\ counted.
# TYPE things counter
things_total{kind="A",result="q\"z, w\\x\ny"} 3
things_total{kind="B",result="success"} 2
# HELP wait_seconds Waits.
# TYPE wait_seconds histogram
# UNIT wait_seconds seconds
wait_seconds_sum{kind="A"} 3.5
wait_seconds_count{kind="A"} 4
wait_seconds_bucket{le="0.5",kind="A"} 1
wait_seconds_bucket{le="1.0",kind="A"} 3
wait_seconds_bucket{le="+Inf",kind="A"} 4
wait_seconds_sum{kind="B"} 1.0
wait_seconds_count{kind="B"} 1
wait_seconds_bucket{le="0.5",kind="B"} 0
wait_seconds_bucket{le="1.0",kind="B"} 1
wait_seconds_bucket{le="+Inf",kind="B"} 1
# HELP leader Leading.
# TYPE leader gauge
leader 1
# EOF
"#;

    #[test]
    fn reads_openmetrics() {
        let scrape = Scrape::parse(OPENMETRICS).unwrap();
        assert!(scrape.has_eof());
        assert_eq!(
            scrape.get(r#"things_total{kind="B",result="success"}"#),
            Some(2.0)
        );
        // Labels in another order, with the escapes written as in the text.
        assert_eq!(
            scrape.get(r#"things_total{result="q\"z, w\\x\ny",kind="A"}"#),
            Some(3.0)
        );
        assert_eq!(
            scrape
                .samples_named("things_total")
                .next()
                .unwrap()
                .label("result"),
            Some("q\"z, w\\x\ny")
        );
        // A subset of the labels, a prefix of the name, the family name: not the series.
        assert_eq!(scrape.get(r#"things_total{kind="B"}"#), None);
        assert_eq!(scrape.get("leade"), None);
        assert_eq!(scrape.get("things"), None);
        assert_eq!(scrape.get("leader"), Some(1.0));
        assert_eq!(scrape.sum("things_total"), 5.0);
        assert_eq!(scrape.label_names(), ["kind", "le", "result"]);
        assert_eq!(scrape.family_type("things"), Some("counter"));
        assert_eq!(scrape.family_type("wait_seconds"), Some("histogram"));
        let wait = scrape.metadata("wait_seconds").unwrap();
        assert_eq!(wait.unit.as_deref(), Some("seconds"));
        assert_eq!(wait.help.as_deref(), Some("Waits."));
        assert_eq!(
            scrape.metadata("things").unwrap().help.as_deref(),
            Some(r#"Things "done" \ counted."#)
        );
        assert!(scrape.sample_names().contains("wait_seconds_bucket"));

        let a = scrape.histogram("wait_seconds", &[("kind", "A")]);
        assert_eq!(a.buckets, [(0.5, 1.0), (1.0, 3.0), (f64::INFINITY, 4.0)]);
        assert_eq!((a.count, a.sum), (4.0, 3.5));
        assert_eq!(a.quantile_bound(0.5), Some(1.0));
        assert_eq!(a.quantile_bound(0.99), Some(f64::INFINITY));
        let all = scrape.histogram("wait_seconds", &[]);
        assert_eq!(all.buckets, [(0.5, 1.0), (1.0, 4.0), (f64::INFINITY, 5.0)]);
        assert_eq!((all.count, all.sum), (5.0, 4.5));
        assert_eq!(scrape.histogram("none", &[]).quantile_bound(0.5), None);
    }

    /// The Prometheus 0.0.4 text of the Kubernetes API server: no `# EOF`, free comments,
    /// blank lines, a timestamp, spaces and a trailing comma in labels.
    #[test]
    fn reads_prometheus_text() {
        let text = "# A free comment\n\
# HELP apiserver_response_sizes [STABLE] Response size \\n in bytes, with a \\ backslash.\n\
# TYPE apiserver_response_sizes histogram\n\
apiserver_response_sizes_bucket{component=\"apiserver\",group=\"\",resource=\"secrets\",verb=\"LIST\",le=\"1000\"} 2\n\
apiserver_response_sizes_bucket{component=\"apiserver\",group=\"\",resource=\"secrets\",verb=\"LIST\",le=\"+Inf\"} 3\n\
apiserver_response_sizes_sum{component=\"apiserver\",group=\"\",resource=\"secrets\",verb=\"LIST\"} 5000\n\
apiserver_response_sizes_count{component=\"apiserver\",group=\"\",resource=\"secrets\",verb=\"LIST\"} 3\n\
\n\
up { job = \"x\" , } 1 1700000000000\n\
nan_gauge NaN\n";
        let scrape = Scrape::parse(text).unwrap();
        assert!(!scrape.has_eof());
        assert_eq!(
            scrape.get(r#"up{job="x"}"#),
            Some(1.0),
            "{:?}",
            scrape.samples()
        );
        assert!(scrape.get("nan_gauge").unwrap().is_nan());
        let sizes = samples(text, "apiserver_response_sizes_count");
        assert_eq!(sizes.len(), 1);
        assert_eq!(sizes[0].1, 3.0);
        assert!(sizes[0].0.contains(&("group".to_string(), String::new())));
        assert_eq!(
            scrape
                .metadata("apiserver_response_sizes")
                .unwrap()
                .help
                .as_deref(),
            Some("[STABLE] Response size \n in bytes, with a \\ backslash.")
        );
        assert_eq!(
            scrape
                .histogram("apiserver_response_sizes", &[("verb", "LIST")])
                .buckets,
            [(1000.0, 2.0), (f64::INFINITY, 3.0)]
        );
    }

    #[test]
    fn the_free_functions_read_the_same() {
        assert_eq!(sample(OPENMETRICS, "leader"), Some(1.0));
        assert_eq!(sum(OPENMETRICS, "wait_seconds_count"), 5.0);
        assert_eq!(label_names(OPENMETRICS), ["kind", "le", "result"]);
        assert_eq!(samples(OPENMETRICS, "things_total").len(), 2);
        assert_eq!(sample("", "leader"), None);
        assert_eq!(parse(""), Scrape::default());
    }

    #[test]
    fn malformed_text_is_an_error_with_its_line() {
        for (text, reason) in [
            ("x 1\n# EOF\ny 2\n", "text after # EOF"),
            ("x{a=\"1\"} 1\nx{a=\"1\"} 2\n", "the same series twice"),
            ("x{a=\"1\",a=\"2\"} 1\n", "a label twice"),
            ("x{a=\"1} 1\n", "a label value without its closing quote"),
            ("x{a=\"1\" 1\n", "labels not separated by ','"),
            ("x{a=1} 1\n", "a label value without quotes"),
            ("x{a=\"1\"b=\"2\"} 1\n", "labels not separated by ','"),
            ("x{1a=\"1\"} 1\n", "an invalid label name"),
            ("x{a=\"\\t\"} 1\n", "an unknown escape"),
            ("x one\n", "a value that is not a number"),
            ("x\n", "no space before the value"),
            ("x 1 2 3\n", "text after the value and timestamp"),
            ("1x 1\n", "no metric name"),
            (
                "# TYPE x counter\n# TYPE x gauge\n",
                "a second TYPE, HELP or UNIT line for the family",
            ),
        ] {
            let error = Scrape::parse(text).unwrap_err();
            assert_eq!(error.reason, reason, "{text:?}");
            assert!(error.line_number >= 1);
        }
        let error = Scrape::parse("ok 1\nbad\n").unwrap_err();
        assert_eq!((error.line_number, error.line.as_str()), (2, "bad"));
    }

    #[test]
    #[should_panic(expected = "unreadable metrics text: line 1")]
    fn the_free_functions_panic_on_malformed_text() {
        sample("x{", "x");
    }
}
