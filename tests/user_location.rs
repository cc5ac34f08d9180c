//! `goroutines` shows each goroutine at its user location, as Delve's
//! default (`-u`) does: the innermost physical frame of the user's code,
//! code inlined into it counting as its own (issue 33: 3,000 goroutines
//! read `sync.(*Mutex).Lock (mutex.go:46)` where Delve reads the user's
//! function). `-r` still shows the innermost frame.

mod common;

use common::{assert_untouched, attach_with_stdin, build_fixtures, text, Fixture};

/// The lines of `listing` for goroutine `id`.
fn line_of<'a>(listing: &'a str, id: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("Goroutine {id} ")))
        .unwrap_or_else(|| panic!("goroutine {id} not listed:\n{listing}"))
}

#[test]
fn a_goroutine_in_an_inlined_mutex_lock_is_at_the_users_function() {
    build_fixtures();
    for flavour in ["go1.19-exe", "go1.27-exe"] {
        let fx = Fixture::start(flavour, "states", &[]);
        let list = |args: &str| {
            let out = attach_with_stdin(fx.pid(), &["--batch"], &format!("goroutines {args}\n"));
            assert!(out.status.success(), "{flavour}: {}", text(&out.stderr));
            text(&out.stdout)
        };
        let (user, runtime, start) = (list(""), list("-r"), list("-s"));
        let said = format!("{user}\n{runtime}\n{start}");
        // The goroutine that main.lockMutex started, blocked in mu.Lock().
        let id = start
            .lines()
            .find(|l| l.contains("Start: main.lockMutex "))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{flavour}: no main.lockMutex goroutine:\n{said}"));
        let mutex = line_of(&user, id);
        // main.lockMutex calls mu.Lock(), whose fast path is inlined into
        // it. go1.27: the slow path is internal/sync's, so the user's
        // function is next. go1.19: sync.runtime_SemacquireMutex is a
        // function of its own (the runtime's, linked under sync's name),
        // where Delve stops too.
        let want = match flavour {
            "go1.19-exe" => " - sync.runtime_SemacquireMutex (sema.go:",
            _ => " - main.lockMutex (main.go:",
        };
        assert!(mutex.contains(want), "{flavour}: {mutex}\n{said}");
        // Never the inlined wrapper.
        assert!(!mutex.contains("sync.(*Mutex).Lock"), "{flavour}: {mutex}");
        // -r is the innermost frame, the runtime's.
        assert!(
            line_of(&runtime, id).contains("Runtime: runtime."),
            "{flavour}: {said}"
        );
        assert_untouched(fx.pid());
    }
}
