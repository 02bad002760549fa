//! Debian's stock cloud kernel, used as shipped (never rebuilt): the image package that
//! `linux-image-cloud-amd64` depends on, downloaded with `apt-get download` and unpacked with
//! `dpkg-deb -x` into `target/linux/kernel/` (nothing is installed into the host's /boot). The
//! unpacked tree also holds the modules (`kvm.ko`, `kvm-intel.ko`) for later tests.

use super::dir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The metapackage that names the current cloud kernel.
const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// The unpacked kernel.
pub struct Kernel {
    /// `boot/vmlinuz-RELEASE`: the bzImage.
    pub vmlinuz: PathBuf,
    /// `boot/System.map-RELEASE`.
    pub system_map: PathBuf,
    /// `lib/modules/RELEASE`.
    pub modules: PathBuf,
}

/// The unpacked kernel, downloading and unpacking it unless already there.
pub fn ensure() -> Result<Kernel, String> {
    let root = dir().join("kernel");
    if let Some(kernel) = find(&root) {
        return Ok(kernel);
    }
    let package = image_package()?;
    let debs = dir().join("deb");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    eprintln!("runner: downloading {package} (Debian's {META_PACKAGE})");
    let out = Command::new("apt-get")
        .args(["download", "-qq", &package])
        .current_dir(&debs)
        .output()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "apt-get download {package} failed ({}); try: apt-get update",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let deb = std::fs::read_dir(&debs)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")))
        })
        .ok_or_else(|| {
            format!(
                "apt-get download left no {package}_*.deb in {}",
                debs.display()
            )
        })?;
    // Unpacked beside the cache and renamed into place: an interrupted run leaves no half tree
    // that a later one would take for complete.
    let partial = dir().join("kernel.partial");
    let _ = std::fs::remove_dir_all(&partial);
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&partial)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        return Err(format!("dpkg-deb -x {} failed", deb.display()));
    }
    std::fs::rename(&partial, &root).map_err(|e| format!("{}: {e}", root.display()))?;
    find(&root).ok_or_else(|| format!("{} holds no boot/vmlinuz-*", deb.display()))
}

/// The real image package, e.g. `linux-image-6.1.0-57-cloud-amd64`, from the metapackage's
/// dependencies.
fn image_package() -> Result<String, String> {
    let out = Command::new("apt-cache")
        .args(["depends", META_PACKAGE])
        .output()
        .map_err(|e| format!("cannot run apt-cache: {e}"))?;
    parse_depends(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("apt-cache knows no {META_PACKAGE}; run: apt-get update"))
}

/// The first `Depends: linux-image-...` of `apt-cache depends` output.
fn parse_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
}

/// The kernel under `root` (an unpacked image package), if complete.
fn find(root: &Path) -> Option<Kernel> {
    let boot = root.join("boot");
    let release = std::fs::read_dir(&boot)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })?;
    let kernel = Kernel {
        vmlinuz: boot.join(format!("vmlinuz-{release}")),
        system_map: boot.join(format!("System.map-{release}")),
        modules: root.join("lib").join("modules").join(&release),
    };
    (kernel.system_map.is_file() && kernel.modules.is_dir()).then_some(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_package_is_the_metapackages_dependency() {
        let text = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(
            parse_depends(text).as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64")
        );
        assert_eq!(parse_depends("linux-image-cloud-amd64\n"), None);
    }
}
