//! todo
use arbitrary::Arbitrary;
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input { pub x: u8 }
pub fn check(_i: &Input) {}
