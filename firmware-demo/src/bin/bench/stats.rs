//! Percentiles and a histogram of one configuration's samples, printed as `LAT` and `HIST`
//! lines.

use crate::out;

/// Bins of the histogram, equal widths from the minimum to the maximum.
const BINS: u32 = 16;

/// The sample at `permille` of the sorted samples (nearest rank).
fn at(sorted: &[u32], permille: usize) -> u32 {
    sorted[(sorted.len() - 1) * permille / 1000]
}

pub fn report(map: &str, writer: &str, samples: &mut [u32], batches: u32, waited: u32) {
    samples.sort_unstable();
    let n = samples.len();
    let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
    out!(
        "LAT map={} writer={} n={} min={} p50={} p90={} p99={} p999={} max={} mean={} batches={} waited={}",
        map,
        writer,
        n,
        samples[0],
        at(samples, 500),
        at(samples, 900),
        at(samples, 990),
        at(samples, 999),
        samples[n - 1],
        sum / n as u64,
        batches,
        waited
    );
    let (min, max) = (samples[0], samples[n - 1]);
    // At most BINS bins of this width cover min..=max.
    let width = (max - min) / BINS + 1;
    let mut line: heapless::String<512> = heapless::String::new();
    let mut lo = min;
    let mut rest = &samples[..];
    while !rest.is_empty() {
        let hi = lo.saturating_add(width);
        let count = rest.iter().take_while(|&&s| s < hi).count();
        if count > 0 {
            let _ = core::fmt::write(&mut line, format_args!(" {lo}:{count}"));
        }
        rest = &rest[count..];
        lo = hi;
    }
    out!(
        "HIST map={} writer={} width={}{}",
        map,
        writer,
        width,
        line.as_str()
    );
}
