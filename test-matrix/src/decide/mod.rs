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

/// How much input is read at a time (a pipe delivers at most 64 KiB per read anyway).
const READ_BUFFER: usize = 1 << 18;

/// Answers are handed to the output in chunks of about this size, always whole lines.
const WRITE_CHUNK: usize = 1 << 16;

/// The `decide` subcommand: stdin to stdout.
pub fn run() -> ExitCode {
    let mut reader = BufReader::with_capacity(READ_BUFFER, io::stdin().lock());
    // No BufWriter: `process` batches whole lines itself, which stdout's line buffering then
    // passes straight to one write.
    match process(&mut reader, &mut io::stdout().lock()) {
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

/// Answers every line of `input` on `output`. Output is written and flushed whenever the input
/// has no more buffered data (before a read that may wait), so a caller feeding one line at a
/// time gets each answer at once.
pub fn process<R: Read>(input: &mut BufReader<R>, output: &mut impl Write) -> io::Result<Summary> {
    let mut lines = Lines::default();
    let mut answers = Vec::with_capacity(WRITE_CHUNK + 1024);
    // A line that straddles the end of the read buffer is gathered here; all others are parsed
    // where they lie in the buffer, uncopied.
    let mut straddling = Vec::new();
    loop {
        if input.buffer().is_empty() {
            output.write_all(&answers)?;
            answers.clear();
            output.flush()?;
        }
        let available = input.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let consumed = match memchr::memchr(b'\n', available) {
            Some(end) if straddling.is_empty() => {
                lines.answer(&available[..end], &mut answers);
                end + 1
            }
            Some(end) => {
                straddling.extend_from_slice(&available[..end]);
                lines.answer(&straddling, &mut answers);
                straddling.clear();
                end + 1
            }
            None => {
                straddling.extend_from_slice(available);
                available.len()
            }
        };
        input.consume(consumed);
        if answers.len() >= WRITE_CHUNK {
            output.write_all(&answers)?;
            answers.clear();
        }
    }
    // The last line may lack its newline.
    if !straddling.is_empty() {
        lines.answer(&straddling, &mut answers);
    }
    output.write_all(&answers)?;
    output.flush()?;
    Ok(lines.summary)
}

/// The input lines seen so far.
#[derive(Default)]
struct Lines {
    /// The last line's number (1-based), for error objects.
    number: u64,
    summary: Summary,
}

impl Lines {
    /// Appends the answer to `line` (without its newline) to `answers`; a blank line gets none.
    fn answer(&mut self, line: &[u8], answers: &mut Vec<u8>) {
        self.number += 1;
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        if text.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match input::parse(text) {
            Ok(parsed) => {
                self.summary.routed += 1;
                output::write_outcome(answers, parsed.id, &nvmx::route::route(&parsed.scenario));
            }
            Err((id, malformed)) => {
                self.summary.malformed += 1;
                output::write_error(answers, self.number, id.as_ref(), &malformed);
            }
        }
    }
}

#[cfg(test)]
mod tests;
