//! Loads synthetic images of each format into a Vec-backed guest memory and checks what lands
//! there, and that bad images are refused with guest RAM untouched.

mod detect;
mod linux;
mod multiboot1;
mod multiboot2;
mod support;
