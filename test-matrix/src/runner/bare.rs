//! Booting one guest image bare: GRUB's `multiboot2` loads the image itself instead of l1-hv.
//! For images that are hypervisors in their own right (`ghv`), whose log on the (emulated)
//! hardware is the reference their log under l1-hv must reproduce.

use super::{image, run_dir};
use std::path::PathBuf;

/// The GRUB configuration that boots `image` with no modules.
pub fn grub_cfg(image: &str) -> String {
    format!(
        "set timeout=0\nset default=0\nserial --unit=0 --speed=115200\nterminal_input serial\n\
         terminal_output serial\nmenuentry \"{image} (bare)\" {{\n  multiboot2 /boot/guests/{image}\n  boot\n}}\n"
    )
}

/// Builds everything and writes `target/run/bare-IMAGE.iso`; returns its path.
pub fn iso(image: &str) -> Result<PathBuf, String> {
    if !image::IMAGES.contains(&image) {
        return Err(format!(
            "unknown guest image {image:?} (known: {})",
            image::IMAGES.join(", ")
        ));
    }
    let elves = image::build()?;
    let stage = run_dir().join("iso-bare");
    let _ = std::fs::remove_dir_all(&stage);
    let io = |e: std::io::Error| format!("staging the bare ISO: {e}");
    std::fs::create_dir_all(stage.join("boot").join("grub")).map_err(io)?;
    std::fs::create_dir_all(stage.join("boot").join("guests")).map_err(io)?;
    std::fs::copy(
        elves.join(image),
        stage.join("boot").join("guests").join(image),
    )
    .map_err(io)?;
    std::fs::write(
        stage.join("boot").join("grub").join("grub.cfg"),
        grub_cfg(image),
    )
    .map_err(io)?;
    let iso = run_dir().join(format!("bare-{image}.iso"));
    image::mkrescue(&stage, &iso)?;
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_boot_loads_the_image_as_the_kernel_without_modules() {
        let cfg = grub_cfg("ghv");
        assert!(cfg.contains("  multiboot2 /boot/guests/ghv\n"));
        assert!(!cfg.contains("module2"));
        assert!(!cfg.contains("l1-hv"));
    }

    #[test]
    fn unknown_images_are_refused_before_building() {
        assert!(iso("no-such-guest")
            .unwrap_err()
            .contains("unknown guest image"));
    }
}
