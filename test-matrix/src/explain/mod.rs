//! `explain <field> <value>`: VMCS fields and error codes decoded in words, one summary line and
//! optional `error:` / `note:` detail lines. The decoders are `nvmx::explain`'s, shared with
//! l1-hv's trace printer and the report; this module parses the command line.
//!
//! Fields: `entry-intr-info`, `exit-intr-info`, `idt-vectoring-info`, `exit-reason`, `pfec`,
//! `error-code`, `qualification --reason N [--vector V]`. See docs/fields.md.

#[cfg(test)]
mod tests;

use nvmx::explain::{
    exit_reason, interruption_info, pfec, qualification, selector_error_code, InfoFormat,
};

use std::process::ExitCode;

/// The explain subcommand's usage.
pub const USAGE: &str = "usage: test-matrix explain <field> <value>
fields: entry-intr-info, exit-intr-info, idt-vectoring-info, exit-reason, pfec, error-code,
        qualification --reason N [--vector V]
values: decimal or 0x-hexadecimal";

/// Parses a decimal or `0x`-hexadecimal number that fits in `bits` bits.
pub fn parse_number(text: &str, bits: u32) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16)
        }
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse(),
        _ => {
            return Err(format!(
                "{text:?} is not a decimal or 0x-hexadecimal number"
            ))
        }
    };
    match parsed {
        Ok(n) if bits == 64 || n >> bits == 0 => Ok(n),
        _ => Err(format!("{text} does not fit in {bits} bits")),
    }
}

/// Decodes what `args` (the words after `explain`) name; `Err` is a usage error.
pub fn explain(args: &[String]) -> Result<String, String> {
    let (field, rest) = args.split_first().ok_or("missing field")?;
    if field == "qualification" {
        return explain_qualification(rest);
    }
    let value = match rest {
        [value] => value,
        [] => return Err(format!("{field}: missing value")),
        _ => return Err(format!("{field}: expected one value, got {}", rest.len())),
    };
    let info = |format| parse_number(value, 32).map(|v| interruption_info(format, v as u32));
    match field.as_str() {
        "entry-intr-info" => info(InfoFormat::Entry),
        "exit-intr-info" => info(InfoFormat::Exit),
        "idt-vectoring-info" => info(InfoFormat::IdtVectoring),
        "exit-reason" => parse_number(value, 32).map(|v| exit_reason(v as u32)),
        "pfec" => parse_number(value, 32).map(|v| pfec(v as u32)),
        "error-code" => parse_number(value, 32).map(|v| selector_error_code(v as u32)),
        _ => Err(format!("unknown field {field:?}")),
    }
}

/// `qualification --reason N [--vector V] VALUE`, options in any order before or after VALUE.
fn explain_qualification(args: &[String]) -> Result<String, String> {
    let (mut reason, mut vector, mut value) = (None, None, None);
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let mut option_value = |name: &str| {
            words
                .next()
                .ok_or_else(|| format!("qualification: {name} needs a value"))
        };
        match word.as_str() {
            "--reason" => reason = Some(parse_number(option_value("--reason")?, 16)? as u16),
            "--vector" => vector = Some(parse_number(option_value("--vector")?, 8)? as u8),
            other if other.starts_with("--") => {
                return Err(format!("qualification: unknown option {other}"))
            }
            _ if value.is_some() => return Err("qualification: more than one value".into()),
            other => value = Some(parse_number(other, 64)?),
        }
    }
    let reason = reason.ok_or("qualification: --reason N is required")?;
    let value = value.ok_or("qualification: missing value")?;
    Ok(qualification(reason, vector, value))
}

/// The `explain` subcommand: prints the decoding, or a usage error with exit status 2.
pub fn run(args: &[String]) -> ExitCode {
    match explain(args) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("explain: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
