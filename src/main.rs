//! predictd's entry point: everything lives in the library; see `lib.rs`.

/// jemalloc for all of the daemon's memory, Rust's and libjpeg's (it
/// replaces `malloc` too): glibc's malloc kept the memory a reload frees
/// and resident memory climbed under reloads with load (see
/// `predictd::daemon::memory` and the soak in docs/speed.md, Memory).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start (the `MALLOC_CONF` environment
/// variable overrides them). Two arenas (as glibc had): more only keep more
/// free pages apart. Free pages go back to the system after half a second,
/// by a background thread, not on the request's path; nothing lingers as
/// "muzzy" (lazily freed) pages that still count as resident. The soak
/// (`benches/soak.sh`) is the measure of these values.
#[allow(non_upper_case_globals)]
#[export_name = "malloc_conf"]
pub static malloc_conf: &[u8; 69] =
    b"narenas:2,background_thread:true,dirty_decay_ms:500,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    predictd::cli::main()
}
