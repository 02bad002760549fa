//! `matrix`: routes every case of the model matrix ([`model::cases`]) through
//! [`nvmx::route::route`], counts the outcomes and checks the SDM invariants
//! ([`invariants::INVARIANTS`]). `matrix --scenarios` prints the cases as `decide` input instead.
//! See docs/matrix.md.

pub mod invariants;
pub mod model;
pub mod progress;
pub mod scenario_json;
#[cfg(test)]
mod tests;

use invariants::INVARIANTS;
use model::{Case, Delivering};
use nvmx::explain::basic_reason_name;
use nvmx::route::{route, Outcome};
use progress::Progress;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;
use x86::irq::DOUBLE_FAULT_VECTOR;

/// Violations kept per invariant for printing; the rest are only counted.
const EXAMPLES: usize = 5;

/// What kind of outcome a case has, for counting and colouring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutcomeClass {
    /// The new event is delivered through the guest IDT.
    Deliver,
    /// A #DF that the two events combined into is delivered.
    DeliverDoubleFault,
    /// A VM exit with this basic exit reason.
    Exit(u16),
}

impl OutcomeClass {
    /// Classifies `outcome` of `case`.
    pub fn of(case: &Case, outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Deliver { event, .. }
                if event.is_hardware(DOUBLE_FAULT_VECTOR) && *event != case.event() =>
            {
                Self::DeliverDoubleFault
            }
            Outcome::Deliver { .. } => Self::Deliver,
            Outcome::VmExit(exit) => Self::Exit(exit.reason as u16),
        }
    }

    /// In words: `deliver`, `deliver #DF`, `exit 2 (triple fault)`.
    pub fn label(self) -> String {
        match self {
            Self::Deliver => "deliver".into(),
            Self::DeliverDoubleFault => "deliver #DF".into(),
            Self::Exit(reason) => format!(
                "exit {reason} ({})",
                basic_reason_name(reason).unwrap_or("undefined")
            ),
        }
    }
}

/// The figures of one run over the matrix.
#[derive(Debug, Default)]
pub struct Tally {
    /// Cases routed.
    pub total: u64,
    /// Cases per outcome class.
    pub by_outcome: BTreeMap<OutcomeClass, u64>,
    /// Cases per event being delivered and outcome class.
    pub by_delivering: BTreeMap<(usize, OutcomeClass), u64>,
    /// Violations per invariant (index into [`INVARIANTS`]).
    pub violations: [u64; INVARIANTS.len()],
    /// The first few violations: invariant index, case id, what is wrong.
    pub examples: Vec<(usize, String, String)>,
    /// Time taken.
    pub elapsed: Duration,
}

/// Routes every case, counting outcomes and checking every invariant; progress on stderr.
pub fn evaluate() -> Tally {
    let total = model::cases().count() as u64;
    let mut tally = Tally {
        total,
        ..Tally::default()
    };
    let mut progress = Progress::new("matrix", total);
    for (done, case) in model::cases().enumerate() {
        let outcome = route(&case.scenario());
        let class = OutcomeClass::of(&case, &outcome);
        *tally.by_outcome.entry(class).or_default() += 1;
        let row = Delivering::ALL
            .iter()
            .position(|d| *d == case.delivering)
            .expect("every delivering value is in ALL");
        *tally.by_delivering.entry((row, class)).or_default() += 1;
        for (index, invariant) in INVARIANTS.iter().enumerate() {
            if let Err(what) = (invariant.check)(&case, &outcome) {
                tally.violations[index] += 1;
                if tally.violations[index] as usize <= EXAMPLES {
                    tally.examples.push((index, case.id(), what));
                }
            }
        }
        progress.tick(done as u64 + 1);
    }
    tally.elapsed = progress.finish();
    tally
}

/// The `matrix` subcommand: figures and invariants, or `--scenarios` as `decide` input.
pub fn run(args: &[String]) -> ExitCode {
    match args {
        [] => {
            let tally = evaluate();
            print!("{}", summary(&tally));
            if tally.violations.iter().all(|&v| v == 0) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        [flag] if flag == "--scenarios" => match print_scenarios() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("matrix: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: test-matrix matrix [--scenarios]");
            ExitCode::from(2)
        }
    }
}

fn print_scenarios() -> io::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    for case in model::cases() {
        serde_json::to_writer(&mut out, &scenario_json::decide_input(&case))?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// The figures as text: total, time, counts per outcome, per event being delivered, invariants.
pub fn summary(tally: &Tally) -> String {
    let seconds = tally.elapsed.as_secs_f64();
    let mut out = format!(
        "matrix: {} scenarios routed and checked in {seconds:.2} s ({:.2} million/s)\n\noutcomes:\n",
        tally.total,
        tally.total as f64 / seconds.max(1e-9) / 1e6
    );
    for (class, count) in &tally.by_outcome {
        out += &format!("  {:<32} {count:>8}\n", class.label());
    }
    out += "\nby event being delivered:\n";
    for (row, delivering) in Delivering::ALL.iter().enumerate() {
        let cells: Vec<String> = tally
            .by_outcome
            .keys()
            .map(|class| {
                let n = tally
                    .by_delivering
                    .get(&(row, *class))
                    .copied()
                    .unwrap_or(0);
                format!("{}={n}", class.label())
            })
            .collect();
        out += &format!("  {:<24} {}\n", delivering.label(), cells.join(", "));
    }
    out += "\ninvariants:\n";
    for (index, invariant) in INVARIANTS.iter().enumerate() {
        let verdict = match tally.violations[index] {
            0 => "holds".to_string(),
            n => format!("VIOLATED in {n} scenarios"),
        };
        out += &format!("  {:<48} {verdict}\n", invariant.name);
        for (_, id, what) in tally.examples.iter().filter(|(i, _, _)| *i == index) {
            out += &format!("    {id}: {what}\n");
        }
    }
    out
}
