//! `HEARTH_BUILD_TIME`: the build time in seconds since 1970, the lower bound of the time that
//! TLS checks certificate expiry against (the chip has no wall clock; `src/net/tls.rs`).
//! `SOURCE_DATE_EPOCH` overrides it for reproducible builds. It is renewed whenever the
//! sources change.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=../crates");
    println!("cargo:rerun-if-changed=build.rs");
    let time = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .expect("SOURCE_DATE_EPOCH must be seconds since 1970"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the build machine's clock is before 1970")
            .as_secs(),
    };
    println!("cargo:rustc-env=HEARTH_BUILD_TIME={time}");
}
