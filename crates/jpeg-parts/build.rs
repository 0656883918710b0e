//! Says so when libjpeg-turbo will be built without its SIMD code. The
//! vendored build in `mozjpeg-sys` assembles it with nasm and, without
//! nasm, falls back to plain C with a warning that cargo hides (it comes
//! from a registry crate); this crate is part of the workspace, so its
//! warning is shown.
fn main() {
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-env-changed=NASM");
    let nasm = std::env::var_os("NASM").unwrap_or_else(|| "nasm".into());
    let found = std::process::Command::new(&nasm)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    let x86 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "x86_64" || a == "x86");
    if x86 && !found {
        println!(
            "cargo:warning=nasm not found: libjpeg-turbo is built without SIMD and JPEG \
             decoding is several times slower (apt-get install nasm, then cargo clean -p mozjpeg-sys)"
        );
    }
}
