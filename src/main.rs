//! predictd's entry point: everything lives in the library; see `lib.rs`.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    predictd::cli::main()
}

/// glibc gives each thread that allocates its own heap (up to 8 per core),
/// and each keeps what it freed: with tokio's threads, the decoder threads
/// and each model's workers and pools, a daemon that once served large
/// photos stayed at twice its working size. Two heaps are enough here (the
/// large buffers are mapped and unmapped whole anyway). `MALLOC_ARENA_MAX`
/// in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before
        // any thread is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
