//! The Prometheus text format (0.0.4) and OpenMetrics 1.0, written family by family: one
//! `# HELP` and `# TYPE` for each metric, then all of its series, so that no parser sees a
//! family split apart. The caller declares a family, then writes its samples; declaring a
//! family twice is a bug that the unit tests catch.

use std::fmt::Write as _;

use crate::model::metrics::{BUCKETS, HistogramCounts};

/// Which text format a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `text/plain; version=0.0.4`: what `promtool check metrics` reads.
    Text,
    /// `application/openmetrics-text; version=1.0.0`: what Prometheus asks for first.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header prefers (Prometheus lists OpenMetrics first).
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family: its name as its samples carry it (a counter's ends in `_total`),
/// its type, its unit when the name ends in one, and its help text.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) unit: Option<&'static str>,
    pub(crate) help: &'static str,
}

/// `le` of each bucket, in the canonical float spelling OpenMetrics asks for (`1.0`, not
/// `1`), which the text format reads as well.
pub(crate) const BUCKET_LE: [&str; BUCKETS] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
    "+Inf",
];

/// A label set: names and values.
pub(crate) type Labels<'a> = &'a [(&'a str, &'a str)];

#[derive(Debug)]
pub(crate) struct Exposition {
    out: String,
    format: Format,
    /// The family being written.
    current: Option<&'static str>,
    /// Families written so far (a family declared twice would split its series).
    declared: Vec<&'static str>,
}

impl Exposition {
    pub(crate) fn new(format: Format) -> Exposition {
        Exposition {
            out: String::with_capacity(16 * 1024),
            format,
            current: None,
            declared: Vec::new(),
        }
    }

    /// Starts family `f`: its `# HELP`, `# TYPE` (and in OpenMetrics `# UNIT`) lines.
    pub(crate) fn family(&mut self, f: &Family) {
        debug_assert!(
            !self.declared.contains(&f.name),
            "metric family {} declared twice",
            f.name
        );
        self.declared.push(f.name);
        self.current = Some(f.name);
        // OpenMetrics names a counter family without its `_total` sample suffix.
        let name = match (self.format, f.kind) {
            (Format::OpenMetrics, Kind::Counter) => f.name.strip_suffix("_total").unwrap_or(f.name),
            _ => f.name,
        };
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(f.help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        if let (Format::OpenMetrics, Some(unit)) = (self.format, f.unit) {
            let _ = writeln!(self.out, "# UNIT {name} {unit}");
        }
    }

    /// A counter or gauge sample of the current family.
    pub(crate) fn int(&mut self, labels: Labels<'_>, value: u64) {
        self.series("", labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A gauge sample with a fractional value.
    pub(crate) fn float(&mut self, labels: Labels<'_>, value: f64) {
        self.series("", labels, None);
        let value = if value.is_finite() { value } else { 0.0 };
        let _ = writeln!(self.out, " {value}");
    }

    /// The `_bucket`, `_count` and `_sum` samples of one histogram of the current family.
    pub(crate) fn histogram(&mut self, labels: Labels<'_>, h: &HistogramCounts) {
        for (le, count) in BUCKET_LE.iter().zip(h.cumulative()) {
            self.series("_bucket", labels, Some(le));
            let _ = writeln!(self.out, " {count}");
        }
        self.series("_count", labels, None);
        let _ = writeln!(self.out, " {}", h.count());
        self.series("_sum", labels, None);
        let _ = writeln!(self.out, " {}", h.sum_seconds());
    }

    fn series(&mut self, suffix: &str, labels: Labels<'_>, le: Option<&str>) {
        debug_assert!(self.current.is_some(), "a sample before its family");
        self.out.push_str(self.current.unwrap_or("unnamed"));
        self.out.push_str(suffix);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|v| ("le", v));
        for (i, (k, v)) in labels.iter().copied().chain(le).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_label_value(&mut self.out, v);
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub(crate) fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// Label values escape backslash, double quote and line feed (both formats).
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help texts escape backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::metrics::Histogram;

    const REQUESTS: Family = Family {
        name: "x_requests_total",
        kind: Kind::Counter,
        unit: None,
        help: "Requests",
    };
    const TIME: Family = Family {
        name: "x_time_seconds",
        kind: Kind::Histogram,
        unit: Some("seconds"),
        help: "Time",
    };

    #[test]
    fn counters_keep_total_in_samples_and_openmetrics_names_the_family_without_it() {
        for (format, type_line) in [
            (Format::Text, "# TYPE x_requests_total counter"),
            (Format::OpenMetrics, "# TYPE x_requests counter"),
        ] {
            let mut e = Exposition::new(format);
            e.family(&REQUESTS);
            e.int(&[("group", "a\"b\\c\nd")], 3);
            e.int(&[("group", "e")], 4);
            let text = e.finish();
            assert!(text.contains(type_line), "{text}");
            assert!(
                text.contains("x_requests_total{group=\"a\\\"b\\\\c\\nd\"} 3\n"),
                "{text}"
            );
            assert_eq!(text.matches("# HELP").count(), 1, "{text}");
            assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
        }
    }

    #[test]
    fn a_histogram_writes_cumulative_buckets_count_and_sum() {
        let h = Histogram::default();
        for us in [500, 1_500, 20_000_000] {
            h.observe_us(us);
        }
        let mut e = Exposition::new(Format::OpenMetrics);
        e.family(&TIME);
        e.histogram(&[("g", "a")], &h.read());
        let text = e.finish();
        assert!(text.contains("# UNIT x_time_seconds seconds\n"), "{text}");
        assert!(
            text.contains("x_time_seconds_bucket{g=\"a\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("x_time_seconds_bucket{g=\"a\",le=\"0.0025\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_time_seconds_bucket{g=\"a\",le=\"10.0\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_time_seconds_bucket{g=\"a\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("x_time_seconds_count{g=\"a\"} 3\n"), "{text}");
        assert!(text.contains("x_time_seconds_sum{g=\"a\"} 20.002\n"), "{text}");
    }

    #[test]
    fn accept_headers_choose_the_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(Format::from_accept(None), Format::Text);
    }
}
