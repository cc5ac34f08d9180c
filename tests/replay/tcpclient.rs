//! Michael Stapelberg's "Tips to debug hanging Go programs": a client hung
//! reading a header with `io.ReadFull` from a peer that never writes. The
//! user lists the goroutines (`grs`), switches to the reader (`gr N`),
//! reads the stack, and asks which peer the `net.Conn` talks to, in the
//! long form and the shorter ones Delve accepts (fields of the dynamic
//! value of an interface, fields promoted from embedded structs).

use super::golit::{byte_list, int_after, strings};
use super::{attach_session, frame_of, frames, last_lines, printed, start, FLAVOURS};

/// The `p` commands of the session, in frame `read` (main.readHeader, whose
/// `conn` is the net.Conn) and `full` (io.ReadFull, whose `r` is the same
/// connection as an io.Reader): (command, what it prints).
fn prints(read: usize, full: usize) -> Vec<(String, Want)> {
    let mut v: Vec<(String, Want)> = [
        "conn.(*net.TCPConn).conn.fd.raddr",
        "conn.(*net.TCPConn).fd.raddr",
        "conn.conn.fd.raddr",
        "conn.fd.raddr",
        "*conn.fd.raddr.(*net.TCPAddr)",
    ]
    .iter()
    .map(|e| (format!("frame {read} p {e}"), Want::Raddr))
    .collect();
    v.push((format!("frame {read} p conn.fd.raddr.Port"), Want::Port));
    v.push((format!("frame {read} p conn.fd.raddr.IP"), Want::Ip));
    v.push((
        format!("frame {read} p conn.fd.laddr.(*net.TCPAddr).Port"),
        Want::LocalPort,
    ));
    for e in ["r.(*net.TCPConn).conn.fd.raddr", "r.fd.raddr"] {
        v.push((format!("frame {full} p {e}"), Want::Raddr));
    }
    v
}

#[derive(Clone, Copy, Debug)]
enum Want {
    /// The remote *net.TCPAddr (through the net.Addr, or dereferenced).
    Raddr,
    Port,
    Ip,
    LocalPort,
}

fn replay(flavour: &str) {
    let Some((fx, values)) = start(flavour, "tcpclient") else {
        return;
    };
    let pid = fx.pid();
    let gid = printed(&values, "client.goid");
    let bt = frames(&attach_session(pid, &[format!("gr {gid} bt")]));
    let (read, full) = (
        frame_of(&bt, "main.readHeader"),
        frame_of(&bt, "io.ReadFull"),
    );
    let prints = prints(read, full);
    let mut session = vec!["grs".to_string(), format!("gr {gid}"), "bt".to_string()];
    session.extend(prints.iter().map(|p| p.0.clone()));
    let out = attach_session(pid, &session);
    let ctx = || format!("{flavour}:\n{}", out.join("\n"));

    let listed = out
        .iter()
        .find(|l| {
            l.trim_start_matches(['*', ' '])
                .starts_with(&format!("Goroutine {gid} "))
        })
        .unwrap_or_else(|| panic!("goroutine {gid} not listed, {}", ctx()));
    assert!(listed.contains("IO wait"), "{listed}, {}", ctx());
    let stack = frames(&out);
    assert_eq!(stack, bt, "bt after gr {gid}, {}", ctx());
    assert!(
        stack[..full]
            .iter()
            .any(|f| f.1 == "internal/poll.(*FD).Read"),
        "{}",
        ctx()
    );

    let raddr = printed(&values, "raddr");
    let ip = byte_list(printed(&values, "raddr.IP"), "net.IP");
    assert_eq!(byte_list(raddr, "IP:"), ip, "{values:?}");
    let port: u64 = printed(&values, "raddr.Port").parse().expect("a port");
    let local: u64 = printed(&values, "laddr.Port").parse().expect("a port");
    let zone = strings(&raddr[raddr.find("Zone:").expect("Zone in %#v")..]);
    for ((cmd, want), got) in prints.iter().zip(last_lines(&out, prints.len())) {
        let bad = || format!("{cmd}: {got}, {}", ctx());
        match want {
            Want::Raddr => {
                assert!(got.contains("net.TCPAddr {"), "{}", bad());
                assert_eq!(byte_list(got, "IP:"), ip, "{}", bad());
                assert_eq!(int_after(got, "Port:"), port, "{}", bad());
                let at = got.find("Zone:").unwrap_or_else(|| panic!("{}", bad()));
                assert_eq!(strings(&got[at..]), zone, "{}", bad());
            }
            Want::Port => assert_eq!(got.parse::<u64>().ok(), Some(port), "{}", bad()),
            Want::LocalPort => assert_eq!(got.parse::<u64>().ok(), Some(local), "{}", bad()),
            Want::Ip => {
                assert!(got.starts_with("net.IP "), "{}", bad());
                assert_eq!(byte_list(got, "cap:"), ip, "{}", bad());
            }
        }
    }
}

#[test]
fn client_hung_in_read_full() {
    for f in FLAVOURS {
        replay(f);
    }
}
