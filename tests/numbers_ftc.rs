//! The real FTC Do Not Call complaint list (`../shared/data`, about 1% dirty rows) through the
//! `nanp` profile, checked row by row against an independent model of NANP numbers.

use std::path::PathBuf;

use fraudwall::numbers::{Caller, NumberingProfile};

fn data_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/ftc-dnc-reported-numbers-90d.csv")
}

/// The model: 10 digits `NXXNXXXXXX` (N = 2..9), optionally after the trunk prefix `1`.
fn model(row: &str) -> Option<String> {
    let b = row.as_bytes();
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let nsn = match b.len() {
        10 => b,
        11 if b[0] == b'1' => &b[1..],
        _ => return None,
    };
    let n = |d: u8| (b'2'..=b'9').contains(&d);
    (n(nsn[0]) && n(nsn[3])).then(|| format!("+1{}", String::from_utf8_lossy(nsn)))
}

#[test]
fn ftc_list_matches_the_model_row_by_row() {
    let path = data_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the real data set lives in ../shared/data)",
            path.display()
        )
    });
    let nanp = NumberingProfile::by_name("nanp").expect("shipped profile");
    let (mut numbers, mut invalid, mut mismatches) = (0usize, 0usize, Vec::new());
    for (i, row) in text.lines().enumerate().skip(1) {
        let got = nanp.normalize(row.as_bytes());
        let got_text = match got {
            Caller::Number(n) => {
                numbers += 1;
                Some(n.to_string())
            }
            Caller::Invalid(_) | Caller::Decorated { .. } => {
                invalid += 1;
                None
            }
            Caller::Anonymous => {
                mismatches.push(format!("line {}: {row:?} read as anonymous", i + 1));
                continue;
            }
        };
        if got_text != model(row) {
            mismatches.push(format!("line {}: {row:?} gave {got:?}", i + 1));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(20)]
    );
    let rows = numbers + invalid;
    assert!(rows > 300_000, "only {rows} rows read");
    // The data set's README: about 1% dirty rows.
    assert!(invalid * 100 < rows * 2, "{invalid} of {rows} rows invalid");
    assert!(invalid > 0, "the dirty rows must be refused");
}
