//! Numbers as people read them on the panel: thousands separated (`1,158`), shares in
//! percent (`39%`). The panel speaks English, so the separator is a comma; the live
//! count formats the same way in the browser (`Intl.NumberFormat("en")`).

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `part` as a share of `whole`: whole percents when exact, else one decimal; `None`
/// when there is no whole to share.
pub fn percent(part: u64, whole: u64) -> Option<String> {
    if whole == 0 {
        return None;
    }
    let tenths = (part as u128 * 1000 + whole as u128 / 2) / whole as u128;
    Some(if tenths.is_multiple_of(10) {
        format!("{}%", tenths / 10)
    } else {
        format!("{}.{}%", tenths / 10, tenths % 10)
    })
}
