//! Reading a Linux guest's boot from the console: the guest's own lines (l1-hv prefixes them
//! with `guest NAME: `), the workload's output between its markers, and l1-hv's summary lines of
//! a run (`l1-hv: guest N NAME: ...`). Shared by `bench-linux` and the Linux test
//! (`tests/linux.rs` includes this file).

/// A `[KEY]=COUNT ...` list, in order.
pub type Counts = Vec<(String, u64)>;

/// What l1-hv reported about one guest run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GuestReport {
    /// `exits [REASON]=N ...`.
    pub exits: Counts,
    /// `forwarded exceptions [#PF]=N ...`.
    pub exceptions: Counts,
    /// `forwarded interrupts [0xVV]=N ... total=T`: the per-vector counts.
    pub interrupts: Counts,
    /// The `total=` of the interrupts line.
    pub interrupts_total: Option<u64>,
    /// `forwarded nmis N`.
    pub nmis: Option<u64>,
    /// `instructions N`.
    pub instructions: Option<u64>,
    /// How the run ended and l1-hv's check of it: `powered off: PASS`, `reset: PASS`, `... : FAIL`.
    pub end: Option<String>,
}

impl GuestReport {
    /// Whether l1-hv judged the run's end as expected.
    pub fn passed(&self) -> bool {
        self.end.as_deref().is_some_and(|e| e.ends_with(": PASS"))
    }
}

/// l1-hv's lines about run `index` named `name`.
pub fn guest_report(console: &str, index: usize, name: &str) -> GuestReport {
    let prefix = format!("l1-hv: guest {index} {name}: ");
    let mut report = GuestReport::default();
    for what in console.lines().filter_map(|l| l.strip_prefix(&prefix)) {
        if let Some(list) = what.strip_prefix("exits ") {
            report.exits = counts(list);
        } else if let Some(list) = what.strip_prefix("forwarded exceptions ") {
            report.exceptions = counts(list);
        } else if let Some(list) = what.strip_prefix("forwarded interrupts ") {
            report.interrupts = counts(list);
            report.interrupts_total = list
                .split_whitespace()
                .find_map(|w| w.strip_prefix("total="))
                .and_then(|n| n.parse().ok());
        } else if let Some(n) = what.strip_prefix("forwarded nmis ") {
            report.nmis = n.trim().parse().ok();
        } else if let Some(n) = what.strip_prefix("instructions ") {
            report.instructions = n.trim().parse().ok();
        } else if what.ends_with(": PASS") || what.ends_with(": FAIL") {
            report.end = Some(what.to_string());
        }
    }
    report
}

/// Parses `[KEY]=N [KEY WITH SPACES]=N ...` (anything after the last count, e.g. `total=`, is
/// not a bracketed count and is skipped).
pub fn counts(list: &str) -> Counts {
    list.split('[')
        .filter_map(|item| {
            let (key, rest) = item.split_once("]=")?;
            let count = rest.split_whitespace().next()?.parse().ok()?;
            Some((key.to_string(), count))
        })
        .collect()
}

/// The lines guest `name` printed through l1-hv, without the `guest NAME: ` prefix.
pub fn guest_lines<'a>(console: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("guest {name}: ");
    console
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The workload's output: the lines strictly between `workload: begin` and `workload: end`.
pub fn workload_output<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Vec<&'a str>> {
    let mut lines = lines.into_iter().skip_while(|l| *l != "workload: begin");
    lines.next()?;
    let mut output = Vec::new();
    for line in lines {
        if line == "workload: end" {
            return Some(output);
        }
        output.push(line);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
l1-hv: guest 1 linux: start (linux bzImage, mem=256M, forward=all, expect=reset)
guest linux: [    0.000000] Linux version 6.1.0
guest linux: workload: begin
guest linux: forkexec: 200 of 200 children exec'd /bin/true and exited 0
guest linux: signals: 5 of 5 faults handled in user mode
guest linux: workload: end
guest linux: Kernel panic - not syncing: sysrq triggered crash
l1-hv: guest 1 linux: exits [external interrupt]=2401 [I/O instruction]=9000 [exception or NMI]=12346
l1-hv: guest 1 linux: forwarded exceptions [#PF]=12345 [#UD]=1
l1-hv: guest 1 linux: forwarded interrupts [0xec]=2400 [0x24]=300 total=2700
l1-hv: guest 1 linux: forwarded nmis 0
l1-hv: guest 1 linux: instructions 3456789012
l1-hv: guest 1 linux: reset: PASS
l1-hv: guest 2 pf-guest: start (exceptions=0x4000, expect=Done, image 20344 bytes)
l1-hv: guest 2 pf-guest: done(0x0): PASS
l1-hv: verdict PASS (2 runs)
";

    #[test]
    fn summary_lines_parse() {
        let r = guest_report(SAMPLE, 1, "linux");
        assert_eq!(
            r.exits,
            [
                ("external interrupt".to_string(), 2401),
                ("I/O instruction".into(), 9000),
                ("exception or NMI".into(), 12346)
            ]
        );
        assert_eq!(
            r.exceptions,
            [("#PF".to_string(), 12345), ("#UD".into(), 1)]
        );
        assert_eq!(
            r.interrupts,
            [("0xec".to_string(), 2400), ("0x24".into(), 300)]
        );
        assert_eq!(r.interrupts_total, Some(2700));
        assert_eq!(r.nmis, Some(0));
        assert_eq!(r.instructions, Some(3_456_789_012));
        assert_eq!(r.end.as_deref(), Some("reset: PASS"));
        assert!(r.passed());
        let pf = guest_report(SAMPLE, 2, "pf-guest");
        assert_eq!(pf.end.as_deref(), Some("done(0x0): PASS"));
        assert_eq!(guest_report(SAMPLE, 3, "linux"), GuestReport::default());
        assert!(!guest_report("l1-hv: guest 1 linux: powered off: FAIL\n", 1, "linux").passed());
    }

    #[test]
    fn workload_output_is_between_the_markers_without_prefixes() {
        let lines = guest_lines(SAMPLE, "linux");
        assert_eq!(lines[0], "[    0.000000] Linux version 6.1.0");
        assert_eq!(
            workload_output(lines).unwrap(),
            [
                "forkexec: 200 of 200 children exec'd /bin/true and exited 0",
                "signals: 5 of 5 faults handled in user mode"
            ]
        );
        // Bare consoles have no prefixes; an unfinished workload has no output.
        assert_eq!(
            workload_output("x\nworkload: begin\na\nworkload: end\n".lines()).unwrap(),
            ["a"]
        );
        assert_eq!(workload_output("workload: begin\na\n".lines()), None);
        assert_eq!(workload_output("a\n".lines()), None);
    }
}
