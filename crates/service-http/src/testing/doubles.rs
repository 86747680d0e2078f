//! Doubles for round-trip tests of payloads: a fixed spread over every magnitude `jsonb`
//! keeps, written in their shortest exact form, and a bit-for-bit comparison of what came back.

/// 301 doubles: 300 from a fixed bit sequence, and one a lossy parser changes by one ulp.
pub fn spread() -> Vec<f64> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut doubles = Vec::new();
    while doubles.len() < 300 {
        // xorshift64*: any fixed sequence of bit patterns will do.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let candidate = f64::from_bits(state.wrapping_mul(0x2545_f491_4f6c_dd1d));
        if candidate.is_finite() && candidate.abs() < dtp_contract::MAX_STORABLE_MAGNITUDE {
            doubles.push(candidate);
        }
    }
    doubles.push(1.797_693_134_862_315_7e307);
    doubles
}

/// A JSON array of `doubles`, each as written by `{:?}` (the shortest text that reads back exactly).
pub fn json_array(doubles: &[f64]) -> String {
    let items: Vec<String> = doubles.iter().map(|d| format!("{d:?}")).collect();
    format!("[{}]", items.join(","))
}

/// Panics unless `answer` is an array of exactly `doubles`, bit for bit.
pub fn assert_same_bits(answer: &serde_json::Value, doubles: &[f64]) {
    let back: Vec<Option<u64>> = answer
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|n| n.as_f64().map(f64::to_bits))
        .collect();
    let sent: Vec<Option<u64>> = doubles.iter().map(|d| Some(d.to_bits())).collect();
    let changed = back.iter().zip(&sent).filter(|(a, b)| a != b).count();
    assert_eq!(back.len(), sent.len());
    assert_eq!(changed, 0, "{changed} of {} doubles changed", sent.len());
}
