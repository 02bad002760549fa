//! `decide`: the routing model as a command. Reads JSON Lines scenarios on stdin and writes one
//! JSON line per input line, in order, each with the input's `id`: delivery through the guest
//! IDT, a VM exit with its exit information, or an error object naming the line and field.
//! Blank lines are skipped. The exit status is non-zero if any line was malformed.
//!
//! Every answer comes from [`nvmx::route::route`], the decision l1-hv itself uses; see
//! docs/event-routing.md for the input and output formats.

pub mod bench;
mod input;
mod output;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::ExitCode;

/// Counts of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Lines answered with a routing outcome.
    pub routed: u64,
    /// Lines answered with an error object.
    pub malformed: u64,
}

/// The `decide` subcommand: stdin to stdout.
pub fn run() -> ExitCode {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut reader = BufReader::with_capacity(1 << 16, stdin.lock());
    let mut writer = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    match process(&mut reader, &mut writer) {
        Ok(summary) if summary.malformed == 0 => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!("decide: {} malformed line(s)", summary.malformed);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("decide: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Answers every line of `input` on `output`. Output is flushed whenever the input has no more
/// buffered data, so a caller feeding one line at a time gets each answer at once.
pub fn process<R: Read>(input: &mut BufReader<R>, output: &mut impl Write) -> io::Result<Summary> {
    let mut summary = Summary::default();
    let mut line = Vec::with_capacity(512);
    let mut number = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if !text.iter().all(u8::is_ascii_whitespace) {
            match input::parse(text) {
                Ok(parsed) => {
                    summary.routed += 1;
                    output::write_outcome(
                        output,
                        parsed.id,
                        &nvmx::route::route(&parsed.scenario),
                    )?;
                }
                Err((id, malformed)) => {
                    summary.malformed += 1;
                    output::write_error(output, number, id.as_ref(), &malformed)?;
                }
            }
        }
        if input.buffer().is_empty() {
            output.flush()?;
        }
    }
    output.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests;
