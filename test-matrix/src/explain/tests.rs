use super::*;

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

#[test]
fn numbers_parse_in_decimal_and_hex_and_reject_the_rest() {
    assert_eq!(parse_number("0x10", 32), Ok(16));
    assert_eq!(parse_number("0XfF", 32), Ok(255));
    assert_eq!(parse_number("42", 8), Ok(42));
    assert!(parse_number("0x", 32).is_err());
    assert!(parse_number("-1", 32).is_err());
    assert!(parse_number("0x1_0", 32).is_err());
    assert!(parse_number("12a", 32).is_err());
    assert_eq!(
        parse_number("0x100000000", 32),
        Err("0x100000000 does not fit in 32 bits".into())
    );
    assert_eq!(parse_number("0xffffffffffffffff", 64), Ok(u64::MAX));
}

#[test]
fn cli_words_dispatch_and_reject_malformed_input() {
    assert_eq!(explain(&args(&["pfec", "2"])), Ok(pfec(2)));
    assert_eq!(
        explain(&args(&["qualification", "0x3f80008", "--reason", "30"])),
        Ok(qualification(30, None, 0x3f8_0008))
    );
    assert_eq!(
        explain(&args(&["bogus", "1"])),
        Err("unknown field \"bogus\"".into())
    );
    assert!(explain(&args(&["pfec"])).is_err());
    assert!(explain(&args(&["pfec", "1", "2"])).is_err());
    assert!(explain(&args(&["qualification", "5"])).is_err());
    assert!(explain(&args(&["qualification", "--reason", "0x10000", "5"])).is_err());
    assert!(explain(&args(&[])).is_err());
}

/// Every `$ test-matrix explain …` example in docs/fields.md, followed by its expected output up
/// to the next blank line or fence, must be what the decoder prints: the guide cannot drift.
#[test]
fn field_guide_examples_decode_as_documented() {
    let guide = include_str!("../../../docs/fields.md");
    let mut checked = 0;
    let mut lines = guide.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("$ test-matrix explain ") else {
            continue;
        };
        let mut expected = Vec::new();
        while let Some(next) =
            lines.next_if(|l| !l.is_empty() && !l.starts_with("```") && !l.starts_with("$ "))
        {
            expected.push(next);
        }
        let words: Vec<String> = command.split_whitespace().map(String::from).collect();
        assert_eq!(
            explain(&words).as_deref(),
            Ok(expected.join("\n").as_str()),
            "example: {command}"
        );
        checked += 1;
    }
    assert!(
        checked >= 12,
        "only {checked} examples found in docs/fields.md"
    );
}
