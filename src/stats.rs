//! Statistics accumulated in f64, and numbers that may be 0, inf or NaN written so a reader
//! can tell them apart.

use ndarray::{ArrayBase, Data, Dimension};
use serde::{Deserialize, Serialize};

use crate::float::Float;

/// `||m||_F = sqrt(sum m_ij^2)`, accumulated in f64 (an f32 sum of squares of 1e-30 would be 0).
pub fn frobenius_norm<T: Float, S: Data<Elem = T>, D: Dimension>(m: &ArrayBase<S, D>) -> f64 {
    // Fast path: the plain sum of squares, unless it overflowed, underflowed or met inf/NaN.
    let sum = sum_f64(m, |v| v * v);
    if sum.is_finite() && sum >= 1e-250 {
        return sum.sqrt();
    }
    // Scale by the largest magnitude so squares of huge finite values do not overflow to inf.
    let max = m.iter().fold(0.0f64, |acc, &v| {
        let a = v.f64().abs();
        if a > acc || a.is_nan() { a } else { acc }
    });
    if max == 0.0 || !max.is_finite() {
        return max;
    }
    let sum: f64 = m.iter().map(|&v| (v.f64() / max).powi(2)).sum();
    max * sum.sqrt()
}

/// `sum_i f(m_i)` in f64 over 8 interleaved partial sums (vectorisable, and no less accurate
/// than one running sum).
fn sum_f64<T: Float, S: Data<Elem = T>, D: Dimension>(
    m: &ArrayBase<S, D>,
    f: impl Fn(f64) -> f64,
) -> f64 {
    let mut acc = [0.0f64; 8];
    match m.as_slice_memory_order() {
        Some(s) => {
            let mut chunks = s.chunks_exact(8);
            for c in &mut chunks {
                for (a, &v) in acc.iter_mut().zip(c) {
                    *a += f(v.f64());
                }
            }
            for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
                *a += f(v.f64());
            }
        }
        None => {
            for (i, &v) in m.iter().enumerate() {
                acc[i % 8] += f(v.f64());
            }
        }
    }
    acc.iter().sum()
}

/// Population standard deviation of every element, two passes in f64.
pub fn std_dev<T: Float, S: Data<Elem = T>, D: Dimension>(m: &ArrayBase<S, D>) -> f64 {
    let n = m.len() as f64;
    if n == 0.0 {
        return f64::NAN;
    }
    let mean = sum_f64(m, |v| v) / n;
    (sum_f64(m, |v| (v - mean) * (v - mean)) / n).sqrt()
}

/// Mean and population standard deviation, in f64.
pub fn mean_std<T: Float, S: Data<Elem = T>, D: Dimension>(m: &ArrayBase<S, D>) -> (f64, f64) {
    let n = m.len() as f64;
    let mean = m.iter().map(|&v| v.f64()).sum::<f64>() / n;
    (mean, std_dev(m))
}

/// An f64 that serialises as a JSON number when finite and as the string `"inf"`, `"-inf"` or
/// `"NaN"` otherwise (JSON has no such numbers; serde_json would write `null` for all three).
///
/// ```
/// use bn_lab::stats::Num;
/// let v = vec![Num(0.0), Num(1.5e-30), Num(f64::INFINITY), Num(f64::NAN)];
/// assert_eq!(serde_json::to_string(&v).unwrap(), r#"[0.0,1.5e-30,"inf","NaN"]"#);
/// let back: Vec<Num> = serde_json::from_str(r#"[0.0,"inf","-inf"]"#).unwrap();
/// assert_eq!(back[1].0, f64::INFINITY);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Num(pub f64);

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_str("-inf")
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            F(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::F(v) => Ok(Num(v)),
            Raw::S(s) => match s.as_str() {
                "inf" => Ok(Num(f64::INFINITY)),
                "-inf" => Ok(Num(f64::NEG_INFINITY)),
                "NaN" => Ok(Num(f64::NAN)),
                _ => Err(serde::de::Error::custom(format!(
                    "expected a number, \"inf\", \"-inf\" or \"NaN\", got \"{s}\""
                ))),
            },
        }
    }
}

/// Wrap a slice of f64 for serialisation.
pub fn nums(v: &[f64]) -> Vec<Num> {
    v.iter().copied().map(Num).collect()
}

/// How a value failed to be a positive finite number, for tables and plots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Special {
    Zero,
    Inf,
    NaN,
}

pub fn classify(v: f64) -> Option<Special> {
    if v.is_nan() {
        Some(Special::NaN)
    } else if v.is_infinite() {
        Some(Special::Inf)
    } else if v == 0.0 {
        Some(Special::Zero)
    } else {
        None
    }
}

/// Least-squares slope of `ln(y)` against the index, over the finite positive values only.
/// `None` when fewer than two such values exist.
pub fn log_slope(y: &[f64]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = y
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite() && **v > 0.0)
        .map(|(i, v)| (i as f64, v.ln()))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    Some(sxy / sxx)
}

/// Geometric mean of positive finite values; 0 if any is 0, inf/NaN propagate.
pub fn geometric_mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    if v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    if v.contains(&0.0) {
        return 0.0;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// `||a||_2` in f64.
pub fn norm(a: &[f64]) -> f64 {
    frobenius_norm(&ndarray::ArrayView1::from(a))
}

/// `||a - b||_2` in f64.
pub fn dist(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&d)
}

/// Largest value, NaN if any is NaN (so a blown-up probe is never hidden).
pub fn max_nan(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(f64::NEG_INFINITY, |a, b| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.max(b)
        }
    })
}

/// Smallest value, NaN if any is NaN.
pub fn min_nan(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, |a, b| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.min(b)
        }
    })
}

/// Mean of the finite values (NaN when there are none).
pub fn finite_mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = v
        .into_iter()
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Median of the finite values (NaN when there are none); the upper median for an even count.
pub fn finite_median(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median of every value, the upper median for an even count: NaN if any value is NaN (a NaN is
/// no evidence either way, so it is never dropped silently) or there is none; inf and -inf take
/// part in the order (an overflow is a result, and a median is robust to a few of them).
pub fn median_nan(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().collect();
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `q`-th percentile (`q` in [0, 100]) of `v` with linear interpolation between the two
/// nearest ranks (NumPy's default): NaN if any value is NaN or there is none.
pub fn percentile(v: impl IntoIterator<Item = f64>, q: f64) -> f64 {
    let mut v: Vec<f64> = v.into_iter().collect();
    if v.is_empty() || v.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos.fract());
    match v.get(lo + 1) {
        Some(&hi) if frac > 0.0 => v[lo] + frac * (hi - v[lo]),
        _ => v[lo],
    }
}

/// Mean of every value: NaN if any is NaN or there is none, inf if an inf dominates.
pub fn mean_nan(v: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = v
        .into_iter()
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// The 1-based positions `l` (layers, steps, ...) of `v` whose value fails `ok`, collapsed to
/// runs for reading: `3-8,11`. Empty if every value passes.
pub fn positions(v: impl IntoIterator<Item = f64>, ok: impl Fn(f64) -> bool) -> Vec<usize> {
    v.into_iter()
        .enumerate()
        .filter(|(_, x)| !ok(*x))
        .map(|(i, _)| i + 1)
        .collect()
}

/// `3,4,5,9` as `3-5,9`.
pub fn fmt_ranges(v: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Smallest finite value, NaN if there is none.
pub fn finite_min(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter()
        .filter(|x| x.is_finite())
        .fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a })
}

/// A number as the user typed it, in the fewest digits that read back to it, with an exponent
/// when it is tiny or huge: `0.01`, `1e-300` (not 300 digits), `2.5e20`.
///
/// ```
/// use bn_lab::stats::Short;
/// assert_eq!(Short(0.01).to_string(), "0.01");
/// assert_eq!(Short(1e-300).to_string(), "1e-300");
/// assert_eq!(Short(3.0).to_string(), "3");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Short(pub f64);

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() || (1e-4..1e15).contains(&v.abs()) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

/// Format a number for tables: `3.1e-29`, `0`, `inf`, `NaN`.
pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v == 0.0 {
        "0".into()
    } else if (1e-2..1e4).contains(&v.abs()) {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// Format a rate for a table with four significant digits: `0.05572`, `1.473`, `2.31e-5`.
pub fn fmt_rate(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        fmt_num(v)
    } else if (1e-3..1e4).contains(&v.abs()) {
        // The exponent of the value rounded to four digits (0.99999 prints as 1.000).
        let exp = v.abs().log10().floor() as i32;
        let unit = 10f64.powi(exp - 3);
        let exp = ((v.abs() / unit).round() * unit).log10().floor() as i32;
        let digits = (3 - exp).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_short_and_read_back_exactly() {
        for v in [0.001, 1e-300, 5e-324, 1e308, f64::MAX, 2.0, 0.1 + 0.2, -3.5] {
            let w = Short(v).to_string();
            assert!(w.len() <= 24, "{w}");
            assert_eq!(w.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{w}");
        }
    }

    #[test]
    fn rates_keep_four_significant_digits() {
        assert_eq!(fmt_rate(0.0557191), "0.05572");
        assert_eq!(fmt_rate(1.473234), "1.473");
        assert_eq!(fmt_rate(12.5), "12.50");
        assert_eq!(fmt_rate(0.99999999), "1.000");
        assert_eq!(fmt_rate(2.31e-5), "2.310e-5");
        assert_eq!(fmt_rate(f64::INFINITY), "inf");
    }

    #[test]
    fn percentiles_interpolate_as_numpy_does() {
        // numpy.percentile([1, 2, 3, 4, 10], [0, 15, 50, 85, 100]) = [1, 1.6, 3, 6.4, 10]
        let v = [4.0, 1.0, 10.0, 3.0, 2.0];
        for (q, want) in [
            (0.0, 1.0),
            (15.0, 1.6),
            (50.0, 3.0),
            (85.0, 6.4),
            (100.0, 10.0),
        ] {
            assert!(
                (percentile(v, q) - want).abs() < 1e-12,
                "{q}: {}",
                percentile(v, q)
            );
        }
        assert_eq!(percentile([7.0], 85.0), 7.0);
        assert!(percentile([], 50.0).is_nan());
        assert!(percentile([1.0, f64::NAN], 50.0).is_nan());
    }

    #[test]
    fn median_nan_keeps_inf_in_the_order_and_never_drops_a_nan() {
        assert_eq!(median_nan([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_nan([1.0, 2.0, 3.0, 4.0]), 3.0, "the upper median");
        assert_eq!(median_nan([1.0, f64::INFINITY, 2.0]), 2.0);
        assert_eq!(
            median_nan([f64::INFINITY, f64::INFINITY, 2.0]),
            f64::INFINITY
        );
        assert!(median_nan([1.0, f64::NAN, 2.0]).is_nan());
        assert!(median_nan([]).is_nan());
        // On finite values it is the finite median.
        let v = [0.3, -2.0, 7.5, 1e-30, 4.0, 4.0];
        assert_eq!(median_nan(v), finite_median(v));
    }

    #[test]
    fn mean_nan_propagates_what_finite_mean_drops() {
        assert_eq!(mean_nan([1.0, 2.0, 3.0]), finite_mean([1.0, 2.0, 3.0]));
        assert!(mean_nan([1.0, f64::NAN]).is_nan());
        assert_eq!(mean_nan([1.0, f64::INFINITY]), f64::INFINITY);
        assert!(mean_nan([]).is_nan());
    }

    #[test]
    fn positions_collapse_to_ranges() {
        let v = [1.0, f64::NAN, f64::NAN, 2.0, f64::INFINITY, f64::NAN];
        let bad = positions(v, f64::is_finite);
        assert_eq!(bad, [2, 3, 5, 6]);
        assert_eq!(fmt_ranges(&bad), "2-3,5-6");
        assert_eq!(fmt_ranges(&[4]), "4");
        assert_eq!(fmt_ranges(&[]), "");
    }
}
