//! A dependency-free SVG chart of one series: its values, the expected band
//! the detector judged them against, and the alerts, so a user can see why
//! it fired.

use std::fmt::Write as _;

use crate::alert::rfc3339_us;

/// One point of a plotted series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotPoint {
    /// Microseconds since the epoch (or any increasing position).
    pub x: i64,
    pub value: f64,
    /// Expected range, once the model has one.
    pub band: Option<(f64, f64)>,
    /// An alert fired on this point.
    pub alert: bool,
}

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 360.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 50.0;
/// Longest polyline drawn; longer series are thinned (min/max per bucket
/// keeps the spikes visible).
const MAX_POINTS: usize = 4000;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart as an SVG document.
pub fn svg(title: &str, points: &[PlotPoint], x_is_time: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN_LEFT}" y="22" font-size="15">{}</text>"#,
        esc(title)
    );
    let finite: Vec<&PlotPoint> = points.iter().filter(|p| p.value.is_finite()).collect();
    if finite.is_empty() {
        out.push_str("</svg>\n");
        return out;
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in &finite {
        lo = lo.min(p.value);
        hi = hi.max(p.value);
        if let Some((a, b)) = p.band {
            if a.is_finite() && b.is_finite() {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
    }
    if hi - lo < 1e-12 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let x0 = finite[0].x as f64;
    let x1 = (finite[finite.len() - 1].x as f64).max(x0 + 1.0);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let sx = |x: i64| MARGIN_LEFT + (x as f64 - x0) / (x1 - x0) * plot_w;
    let sy = |y: f64| MARGIN_TOP + (hi - y.clamp(lo, hi)) / (hi - lo) * plot_h;

    // Axes and labels.
    let _ = writeln!(
        out,
        r##"<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>"##
    );
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let y = sy(v);
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
            MARGIN_LEFT - 6.0,
            y + 4.0,
            short_number(v)
        );
    }
    let label = |x: i64| {
        if x_is_time {
            rfc3339_us(x).chars().take(16).collect::<String>()
        } else {
            x.to_string()
        }
    };
    for (x, anchor) in [(finite[0].x, "start"), (finite[finite.len() - 1].x, "end")] {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" fill="#555">{}</text>"##,
            sx(x),
            HEIGHT - MARGIN_BOTTOM + 18.0,
            esc(&label(x))
        );
    }

    let thinned = thin(&finite);
    // Expected band as a filled polygon over the points that have one.
    let banded: Vec<(i64, f64, f64)> = thinned
        .iter()
        .filter_map(|p| p.band.map(|(a, b)| (p.x, a, b)))
        .filter(|(_, a, b)| a.is_finite() && b.is_finite())
        .collect();
    if !banded.is_empty() {
        let mut d = String::new();
        for (x, _, b) in &banded {
            let _ = write!(d, "{:.1},{:.1} ", sx(*x), sy(*b));
        }
        for (x, a, _) in banded.iter().rev() {
            let _ = write!(d, "{:.1},{:.1} ", sx(*x), sy(*a));
        }
        let _ = writeln!(
            out,
            r##"<polygon points="{}" fill="#9ecae1" fill-opacity="0.5" stroke="none"/>"##,
            d.trim_end()
        );
    }
    let mut d = String::new();
    for p in &thinned {
        let _ = write!(d, "{:.1},{:.1} ", sx(p.x), sy(p.value));
    }
    let _ = writeln!(
        out,
        r##"<polyline points="{}" fill="none" stroke="#08519c" stroke-width="1"/>"##,
        d.trim_end()
    );
    for p in finite.iter().filter(|p| p.alert) {
        let x = sx(p.x);
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{MARGIN_TOP}" x2="{x:.1}" y2="{:.1}" stroke="#d62728" stroke-dasharray="4 3"/><circle cx="{x:.1}" cy="{:.1}" r="4" fill="#d62728"/>"##,
            MARGIN_TOP + plot_h,
            sy(p.value)
        );
    }
    // Legend.
    let ly = HEIGHT - 14.0;
    let _ = writeln!(
        out,
        r##"<line x1="{MARGIN_LEFT}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="#08519c"/><text x="{:.1}" y="{:.1}">value</text>"##,
        MARGIN_LEFT + 20.0,
        MARGIN_LEFT + 25.0,
        ly + 4.0
    );
    let _ = writeln!(
        out,
        r##"<rect x="{:.1}" y="{:.1}" width="20" height="8" fill="#9ecae1"/><text x="{:.1}" y="{:.1}">expected range</text>"##,
        MARGIN_LEFT + 80.0,
        ly - 4.0,
        MARGIN_LEFT + 105.0,
        ly + 4.0
    );
    let _ = writeln!(
        out,
        r##"<circle cx="{:.1}" cy="{ly}" r="4" fill="#d62728"/><text x="{:.1}" y="{:.1}">alert</text>"##,
        MARGIN_LEFT + 215.0,
        MARGIN_LEFT + 225.0,
        ly + 4.0
    );
    out.push_str("</svg>\n");
    out
}

/// At most [`MAX_POINTS`] points: the min and max of each bucket.
fn thin<'a>(points: &[&'a PlotPoint]) -> Vec<&'a PlotPoint> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let per = points.len().div_ceil(MAX_POINTS / 2);
    let mut out = Vec::with_capacity(MAX_POINTS + 2);
    for chunk in points.chunks(per) {
        let (mut a, mut b) = (chunk[0], chunk[0]);
        for p in chunk {
            if p.value < a.value {
                a = p;
            }
            if p.value > b.value {
                b = p;
            }
        }
        if a.x <= b.x {
            out.extend([a, b]);
        } else {
            out.extend([b, a]);
        }
    }
    out
}

fn short_number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(0.01..1e6).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_band_line_and_alerts() {
        let pts: Vec<PlotPoint> = (0..10_000)
            .map(|i| PlotPoint {
                x: i * 60_000_000,
                value: if i == 5000 { 50.0 } else { (i % 10) as f64 },
                band: (i > 100).then_some((0.0, 10.0)),
                alert: i == 5000,
            })
            .collect();
        let s = svg("a <b> & c", &pts, true);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("<polygon") && s.contains("<polyline"));
        assert_eq!(s.matches("<circle").count(), 2, "one alert + legend");
        assert!(s.contains("a &lt;b&gt; &amp; c"));
        // The spike survives thinning: the y axis reaches it.
        assert!(s.contains(">52.50<"), "{}", &s[..600]);
    }
}
