//! `dump-bytes` and `x` on the held frame of the `vars` fixture.

use super::{Held, PAYLOAD};

/// `dump-bytes` writes exactly the payload, refuses to overwrite (or, even
/// with -f, to follow or replace a symlink); `x` at the payload's address shows the same bytes.
pub fn check_bytes(h: &Held) {
    let dir = std::env::temp_dir().join(format!("goat-vars-{}-{}", std::process::id(), h.flavour));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("payload.bin");
    let f = file.to_str().unwrap();
    let (out, err) = h.run(&format!("dump-bytes payload {f}"));
    assert!(out.contains("wrote 17 bytes"), "{out}\n{err}");
    assert_eq!(std::fs::read(&file).unwrap(), PAYLOAD);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    std::fs::write(&file, b"keep").unwrap();
    let (_, err) = h.run(&format!("dump-bytes name {f}"));
    assert!(err.contains("use -f"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    let (out, _) = h.run(&format!("dump-bytes name {f} -f"));
    assert!(out.contains("wrote 6 bytes"), "{out}");
    assert_eq!(std::fs::read(&file).unwrap(), b"gopher");

    let link = dir.join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let (_, err) = h.run(&format!("dump-bytes payload {} -f", link.display()));
    assert!(err.contains("it is a symbolic link to "), "{err}");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read(&file).unwrap(), b"gopher");
    let (_, err) = h.run(&format!("dump-bytes ch {f} -f"));
    assert!(err.contains("needs a string, []byte or [N]byte"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    let addr = h.print("&payload[0]").expect("&payload[0]");
    let addr = addr
        .strip_prefix("(*uint8)(")
        .and_then(|a| a.strip_suffix(')'))
        .unwrap_or_else(|| panic!("address: {addr}"));
    let (out, _) = h.run(&format!("x {addr} 17"));
    let hex: Vec<String> = PAYLOAD.iter().map(|b| format!("{b:02x}")).collect();
    assert!(out.contains(&hex[..16].join(" ")), "{out}");
    assert!(out.contains("PAYLOAD-...-byte"), "{out}");
}

/// `x` also takes an expression, as Delve's `examinemem` does: a slice or
/// string shows its bytes, a pointer its target, `&v` the variable itself.
pub fn check_examine_expressions(h: &Held) {
    let hex = |bytes: &[u8]| -> String {
        let v: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        v.join(" ")
    };
    let (out, err) = h.run("x payload 8");
    assert!(out.contains(&hex(&PAYLOAD[..8])), "{out}\n{err}");
    let (out, err) = h.run("x name 6");
    assert!(out.contains(&hex(b"gopher")), "{out}\n{err}");
    // *req begins with ID 7 (an int).
    let (out, err) = h.run("x req 8");
    assert!(out.contains("07 00 00 00 00 00 00 00"), "{out}\n{err}");
    // The string header of `name`: its pointer, then its length 6.
    let (out, err) = h.run("x &name 16");
    assert!(out.contains("06 00 00 00 00 00 00 00"), "{out}\n{err}");
    let (_, err) = h.run("x in");
    assert!(err.contains("give x an address"), "{err}");
}
