//! `bench-decide [SCENARIOS]`: measures `decide`'s throughput on one core and prints it. A
//! benchmark, not a test: it asserts nothing about speed, it reports it.
//!
//! `bench-decide --print SCENARIOS` writes the same input lines to stdout instead, so that the
//! real command can be timed end to end, through a pipe or a file (docs/event-routing.md).

use super::process;
use nvmx::event::Event;
use nvmx::route::{route, InterceptControls, Scenario};
use std::hint::black_box;
use std::io::{self, BufReader, Write};
use std::process::ExitCode;
use std::time::Instant;

/// Distinct scenario lines cycled through: every event type, nested delivery, #DF, triple fault.
const TEMPLATES: [&str; 8] = [
    r#"{"id":"pf-{n}","controls":{"exception_bitmap":16384,"pfec_mask":1,"pfec_match":0},"event":{"type":"hardware_exception","vector":14,"error_code":{n4},"cr2":{n}}}"#,
    r#"{"id":"gp-pf-{n}","protected_mode":true,"controls":{"exception_bitmap":8192},"delivering":{"type":"hardware_exception","vector":13,"error_code":0},"event":{"type":"hardware_exception","vector":14,"error_code":2,"cr2":4096}}"#,
    r#"{"id":"df-{n}","controls":{"exception_bitmap":256,"nmi_exiting":true},"delivering":{"type":"hardware_exception","vector":14,"error_code":2,"cr2":8192},"event":{"type":"hardware_exception","vector":13,"error_code":{n4}}}"#,
    r#"{"id":"tf-{n}","delivering":{"type":"hardware_exception","vector":8,"error_code":0},"event":{"type":"hardware_exception","vector":11,"error_code":16}}"#,
    r#"{"id":"int3-{n}","controls":{"exception_bitmap":8},"event":{"type":"software_exception","vector":3,"insn_len":1}}"#,
    r#"{"id":"intr-{n}","controls":{"external_interrupt_exiting":true,"ack_interrupt_on_exit":true},"event":{"type":"external_interrupt","vector":48}}"#,
    r#"{"id":"intn-pf-{n}","controls":{"exception_bitmap":16384},"delivering":{"type":"software_interrupt","vector":128,"insn_len":2},"event":{"type":"hardware_exception","vector":14,"error_code":4,"cr2":{n}}}"#,
    r#"{"id":"db-{n}","injected":false,"protected_mode":false,"controls":{"exception_bitmap":2},"event":{"type":"hardware_exception","vector":1,"dr6":16385}}"#,
];

const USAGE: &str = "usage: test-matrix bench-decide [--print] [SCENARIOS]";

/// Runs the benchmark; `args` may hold `--print` and the number of scenarios (default 2,000,000).
pub fn run(args: &[String]) -> ExitCode {
    let (print, args) = match args.split_first() {
        Some((flag, rest)) if flag == "--print" => (true, rest),
        _ => (false, args),
    };
    let count = match args {
        [] => Some(2_000_000),
        [n] => n.parse::<u64>().ok().filter(|&n| n > 0),
        _ => None,
    };
    let Some(count) = count else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let mut input = Vec::with_capacity(count as usize * 200);
    write_lines(count, &mut input);
    if print {
        return match io::stdout().lock().write_all(&input) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench-decide: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let start = Instant::now();
    let summary = match process(
        &mut BufReader::with_capacity(1 << 16, &input[..]),
        &mut io::sink(),
    ) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("bench-decide: {e}");
            return ExitCode::FAILURE;
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "decide (parse + route + serialise, one core): {} scenarios, {} bytes in {:.3} s = {:.0} scenarios/s",
        summary.routed,
        input.len(),
        elapsed,
        summary.routed as f64 / elapsed
    );
    if summary.malformed != 0 {
        eprintln!(
            "bench-decide: {} template lines were malformed",
            summary.malformed
        );
        return ExitCode::FAILURE;
    }

    let scenarios = [
        Scenario {
            controls: InterceptControls {
                exception_bitmap: 1 << 14,
                ..Default::default()
            },
            protected_mode: true,
            injected: false,
            delivering: Some(Event::hardware_exception(13, 0)),
            event: Event::page_fault(2, 0x1000),
        },
        Scenario {
            controls: InterceptControls {
                exception_bitmap: 1 << 8,
                ..Default::default()
            },
            protected_mode: true,
            injected: false,
            delivering: Some(Event::page_fault(2, 0x1000)),
            event: Event::hardware_exception(13, 0),
        },
    ];
    let start = Instant::now();
    for n in 0..count {
        black_box(route(black_box(&scenarios[n as usize & 1])));
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "route() alone: {count} decisions in {elapsed:.3} s = {:.0} decisions/s",
        count as f64 / elapsed
    );
    ExitCode::SUCCESS
}

/// Appends `count` scenario lines to `out`, cycling through [`TEMPLATES`] with a distinct id (and
/// varying numbers) on every line.
fn write_lines(count: u64, out: &mut Vec<u8>) {
    for n in 0..count {
        let template = TEMPLATES[n as usize % TEMPLATES.len()];
        out.extend_from_slice(
            template
                .replace("{n4}", &(n % 16).to_string())
                .replace("{n}", &n.to_string())
                .as_bytes(),
        );
        out.push(b'\n');
    }
}
