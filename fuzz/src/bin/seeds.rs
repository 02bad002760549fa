//! Writes the checked-in seed corpus: `cargo +nightly run --release --bin seeds` from `fuzz/`
//! (docs/fuzzing.md); `... --bin seeds loader` writes only the loader's. Deterministic: the
//! same corpus every run.
//!
//! For each target it decodes many pseudo-random byte strings (a fixed-seed xorshift generator)
//! exactly as libFuzzer's `fuzz_target!` does, sorts them into the target's behaviour classes
//! (`classify`: which instruction ended how and in which VMX state, which entry check failed,
//! which walk outcome, which routing outcome) and keeps the shortest input of each class, up to
//! [`PER_TARGET`]. For `insn`, inputs start with encoded VMXON / VMPTRLD prefixes, because a
//! random walk rarely enters VMX operation and loads a VMCS, and those are where the deep paths
//! are.

use arbitrary::{Arbitrary, Unstructured};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Seeds kept per target.
const PER_TARGET: usize = 48;
/// Random inputs tried per target.
const SAMPLES: usize = 400_000;

/// xorshift64*: small, deterministic, good enough to spread bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (self.next() as usize) % max + 1;
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// `arbitrary`'s encoding of variant `index` of an enum with `count` variants: the u32 `x`
/// with `(x * count) >> 32 == index`.
fn variant(index: u64, count: u64) -> [u8; 4] {
    ((index << 32).div_ceil(count) as u32).to_le_bytes()
}

/// One canonical-form `insn` step in 64-bit mode at CPL 0: the continuation byte of the step
/// list, then `Step`'s fields in declaration order.
fn insn_step(op: u64, arg: u8, value: u64, extra: u64) -> Vec<u8> {
    let mut bytes = vec![1];
    bytes.extend(variant(op, 13));
    bytes.extend(0u16.to_le_bytes()); // mode: 64-bit, CPL 0
    bytes.push(0); // form: canonical, register operand
    bytes.extend(0u32.to_le_bytes()); // info
    bytes.extend(0u64.to_le_bytes()); // qualification
    bytes.push(arg);
    bytes.extend(value.to_le_bytes());
    bytes.extend(extra.to_le_bytes());
    bytes
}

/// `Op` indices and `pointer` choices of the `insn` input.
const VMXON: u64 = 0;
const VMPTRLD: u64 = 3;
const POINTER_VMXON: u8 = 0;
const POINTER_VMCS_A: u8 = 1;
const POINTER_VMCS_B: u8 = 2;

fn insn_prefixes() -> Vec<Vec<u8>> {
    let header = vec![7u8, 1]; // 39-bit width, shadowing offered
    let vmxon = insn_step(VMXON, POINTER_VMXON, 0, 0);
    let in_root = [header.clone(), vmxon.clone()].concat();
    let load = |pointer| [in_root.clone(), insn_step(VMPTRLD, pointer, 0, 0)].concat();
    vec![
        header,
        in_root.clone(),
        load(POINTER_VMCS_A),
        load(POINTER_VMCS_B),
    ]
}

/// `nested_ept` ops: a table entry (`EptOp::Entry` with an `EntryValue::Table` or `Leaf`).
fn ept_entry(page: u8, index: u16, leaf: Option<(u64, bool)>, target: u8) -> Vec<u8> {
    let mut bytes = vec![1];
    bytes.extend(variant(0, 2));
    bytes.push(page);
    bytes.extend(index.to_le_bytes());
    match leaf {
        None => {
            bytes.extend(variant(0, 3));
            bytes.extend([target, 7]);
        }
        Some((address, large)) => {
            bytes.extend(variant(1, 3));
            bytes.extend(address.to_le_bytes());
            bytes.extend([7, 6, 0, u8::from(large)]);
        }
    }
    bytes
}

/// A `nested_ept` walk (`EptOp::Walk`) of `L3Address::Indices` for a read, mapped by EPT01.
fn ept_walk(indices: [u16; 5]) -> Vec<u8> {
    let mut bytes = vec![1];
    bytes.extend(variant(1, 2));
    bytes.extend(variant(0, 2));
    for index in indices {
        bytes.extend(index.to_le_bytes());
    }
    bytes.push(1); // read
    bytes.extend(0x0ABC_D000u64.to_le_bytes());
    bytes.extend([4, 4, 0, 1]); // RWX, WB, no "ignore PAT", mapped
    bytes.extend(0u64.to_le_bytes());
    bytes
}

/// Tables whose walks succeed with 4 KiB, 2 MiB and 1 GiB pages: PML4 in page 0, PDPT in 1,
/// PD in 2, PT in 3; 39-bit width, execute-only and both large sizes offered.
fn ept_prefixes() -> Vec<Vec<u8>> {
    let header = vec![7u8, 7, 0];
    let tables = [
        header,
        ept_entry(0, 0, None, 1),
        ept_entry(1, 0, None, 2),
        ept_entry(2, 0, None, 3),
        ept_entry(3, 0, Some((0x12_3000, false)), 0),
        ept_entry(2, 1, Some((0x4000_0000, true)), 0),
        ept_entry(1, 1, Some((0x8000_0000, true)), 0),
    ]
    .concat();
    vec![
        [tables.clone(), ept_walk([0, 0, 0, 0, 0x10])].concat(),
        [tables.clone(), ept_walk([0, 0, 1, 5, 0x20])].concat(),
        [tables, ept_walk([0, 1, 7, 9, 0x30])].concat(),
    ]
}

/// Decodes like `fuzz_target!`: too short for the input type means libFuzzer skips it.
fn decode<'a, T: Arbitrary<'a>>(bytes: &'a [u8]) -> Option<T> {
    if bytes.len() < T::size_hint(0).0 {
        return None;
    }
    T::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

fn search<T>(target: &str, prefixes: &[Vec<u8>], classify: fn(&T) -> String, rng: &mut Rng)
where
    T: for<'a> Arbitrary<'a>,
{
    let mut best: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for sample in 0..SAMPLES {
        let mut bytes = prefixes[sample % prefixes.len()].clone();
        bytes.extend(rng.bytes(400));
        let Some(input) = decode::<T>(&bytes) else {
            continue;
        };
        let class = classify(&input);
        let shorter = best.get(&class).is_none_or(|b| bytes.len() < b.len());
        if shorter {
            best.insert(class, bytes);
        }
    }
    for prefix in prefixes {
        if let Some(input) = decode::<T>(prefix) {
            best.entry(format!("prefix-{}", classify(&input)))
                .or_insert_with(|| prefix.clone());
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the corpus directory");
    // Spread the kept classes over the whole class list rather than its alphabetical start.
    let step = best.len().div_ceil(PER_TARGET).max(1);
    let mut kept = 0;
    for (class, bytes) in best.iter().step_by(step) {
        let name: String = class
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        fs::write(dir.join(name), bytes).expect("write a seed");
        kept += 1;
    }
    println!("{target}: {} classes, {kept} seeds", best.len());
}

fn main() {
    // `seeds loader` writes only the loader's corpus: the nvmx targets share one generator
    // (each one's seeds depend on those before it), the loader has its own.
    let loader_only = std::env::args().nth(1).as_deref() == Some("loader");
    if !loader_only {
        nvmx_seeds();
    }
    // Each image shape (the first field of the input) as a prefix.
    let shapes: Vec<Vec<u8>> = (0..4).map(|i| variant(i, 4).to_vec()).collect();
    let mut rng = Rng(0x6C31_2D68_7620_6C64);
    search("loader", &shapes, nvmx_fuzz::loader::classify, &mut rng);
}

fn nvmx_seeds() {
    let mut rng = Rng(0x6C31_2D68_7620_6675);
    search(
        "insn",
        &insn_prefixes(),
        nvmx_fuzz::insn::classify,
        &mut rng,
    );
    search(
        "nested_entry",
        &[Vec::new()],
        nvmx_fuzz::nested_entry::classify,
        &mut rng,
    );
    search(
        "nested_ept",
        &ept_prefixes(),
        nvmx_fuzz::nested_ept::classify,
        &mut rng,
    );
    search("route", &[Vec::new()], nvmx_fuzz::route::classify, &mut rng);
    search("intr", &[Vec::new()], nvmx_fuzz::intr::classify, &mut rng);
    // Last, so that the other targets' seeds stay as they were.
    search(
        "nested_engine",
        &[Vec::new()],
        nvmx_fuzz::nested_engine::classify,
        &mut rng,
    );
}
