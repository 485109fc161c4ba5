//! How a size is written for people, the one way the CLI, the emails and the app write it:
//! decimal units (1 kB = 1000 bytes, as file managers and disk makers count), one decimal
//! below 100 of a unit, none above.

/// `512 B`, `1.5 MB`, `17.1 MB`, `250 MB`, `1.2 GB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    // Round first, so 999,960 bytes is "1.0 MB", not "1000.0 kB".
    while unit < UNITS.len() - 1 && rounded(v) >= 1000.0 {
        v /= 1000.0;
        unit += 1;
    }
    // Print the rounded value (halves up, as the app's JavaScript rounds), not `{:.0}`'s
    // halves-to-even.
    let r = rounded(v);
    if r < 100.0 {
        format!("{r:.1} {}", UNITS[unit])
    } else {
        format!("{r:.0} {}", UNITS[unit])
    }
}

/// `v` as it will be printed.
fn rounded(v: f64) -> f64 {
    if v < 99.95 {
        (v * 10.0).round() / 10.0
    } else {
        v.round()
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_read_the_same_everywhere() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1000), "1.0 kB");
        assert_eq!(human(1_500_000), "1.5 MB");
        assert_eq!(human(12_500_000), "12.5 MB");
        assert_eq!(human(17_080_000), "17.1 MB");
        assert_eq!(human(99_960_000), "100 MB");
        assert_eq!(human(250_400_000), "250 MB");
        assert_eq!(human(999_960), "1.0 MB");
        assert_eq!(human(1_234_000_000), "1.2 GB");
        assert_eq!(human(u64::MAX), "18447 PB");
        // Halves round up, as in the app.
        assert_eq!(human(100_500), "101 kB");
        assert_eq!(human(250_500_000), "251 MB");
    }
}
