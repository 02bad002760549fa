//! `memory`: map, touch page by page, check and unmap anonymous memory in several rounds, so that
//! the kernel takes one #PF per 4 KiB page (tens of thousands of faults in all).

/// Rounds of map, touch, check, unmap.
const ROUNDS: u64 = 4;
/// Bytes mapped per round: 4 × 16 MiB = 64 MiB touched in all.
const ROUND_BYTES: usize = 16 << 20;
const PAGE: usize = 4096;
/// Faults the work must cause at least: one per page touched.
const PAGES_TOUCHED: u64 = ROUNDS * (ROUND_BYTES / PAGE) as u64;

pub fn run() -> Result<(), String> {
    let faults_before = minor_faults();
    let mut checksum: u64 = 0;
    for round in 0..ROUNDS {
        checksum = checksum.rotate_left(7) ^ one_round(round)?;
    }
    let faults = minor_faults() - faults_before;
    println!(
        "memory: {ROUNDS} rounds of {} MiB touched page by page, checksum {checksum:#018x}",
        ROUND_BYTES >> 20
    );
    // The exact count varies with the kernel (fault-around, page-table pages); the lower bound
    // does not.
    println!(
        "memory: at least {PAGES_TOUCHED} page faults taken: {}",
        yes_no(faults >= PAGES_TOUCHED)
    );
    if faults >= PAGES_TOUCHED {
        Ok(())
    } else {
        Err(format!("memory: only {faults} page faults"))
    }
}

fn one_round(round: u64) -> Result<u64, String> {
    // SAFETY: a fresh private anonymous mapping, used only in this function and unmapped at its end.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            ROUND_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // Transparent huge pages would fill 2 MiB per fault; the point is one fault per 4 KiB page.
    // Ignoring failure: a kernel without THP takes 4 KiB faults anyway.
    unsafe { libc::madvise(base, ROUND_BYTES, libc::MADV_NOHUGEPAGE) };
    let pages = ROUND_BYTES / PAGE;
    let words = base.cast::<u64>();
    for page in 0..pages {
        // One word per page, at an offset that moves with the page number.
        let index = page * (PAGE / 8) + page % (PAGE / 8);
        // SAFETY: index is inside the mapping.
        unsafe { words.add(index).write_volatile(value(round, page as u64)) };
    }
    let mut sum: u64 = 0;
    for page in 0..pages {
        let index = page * (PAGE / 8) + page % (PAGE / 8);
        // SAFETY: as above.
        let word = unsafe { words.add(index).read_volatile() };
        if word != value(round, page as u64) {
            return Err(format!("memory: round {round} page {page} reads {word:#x}"));
        }
        sum = sum.wrapping_mul(31).wrapping_add(word);
    }
    // SAFETY: the mapping made above, no longer used.
    if unsafe { libc::munmap(base, ROUND_BYTES) } != 0 {
        return Err(format!("munmap: {}", std::io::Error::last_os_error()));
    }
    Ok(sum)
}

/// What page `page` of round `round` holds: distinct per page and round.
fn value(round: u64, page: u64) -> u64 {
    (round << 32 | page).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn minor_faults() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt as u64
}

pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
