//! fntlnz's "Go Post-mortem" session: six goroutines, one of them a
//! producer blocked sending on a channel nobody reads; the user lists the
//! goroutines, switches to the producer, reads its stack, lists the source
//! of its frame and prints the channel and the package-level messages.

use super::golit::strings;
use super::{attach_session, frame_of, frames, last_lines, marked_line, printed, start, FLAVOURS};

fn replay(flavour: &str) {
    let Some((fx, values)) = start(flavour, "producer") else {
        return;
    };
    let pid = fx.pid();
    let gid = printed(&values, "producer.goid");
    // Where the producer's frame is in the real stack (the post's 4 is Go
    // 1.9's, with runtime.goparkunlock between gopark and chansend).
    let bt = attach_session(pid, &[format!("goroutine {gid} bt")]);
    let k = frame_of(&frames(&bt), "main.producer");

    let session: Vec<String> = [
        "goroutines".to_string(),
        format!("goroutine {gid}"),
        "bt".into(),
        format!("frame {k} list"),
        format!("frame {k} ls"),
        format!("frame {k} p ch"),
        format!("frame {k} p messages"),
        // The post's gdb half prints it by its full name.
        format!("frame {k} p main.messages"),
        // The runtime.hchan fields Delve's `p ch` shows in the post.
        format!("frame {k} p ch.qcount"),
        format!("frame {k} p ch.dataqsiz"),
        format!("frame {k} p ch.closed"),
        format!("frame {k} p ch.sendq.first.g.goid"),
        // What the blocked send hands over: the first message (i == 0).
        format!("frame {k} p *ch.sendq.first.elem"),
        format!("frame {k} p sent"),
    ]
    .into();
    let out = attach_session(pid, &session);
    let ctx = || format!("{flavour}:\n{}", out.join("\n"));

    // goroutines: the producer is listed, blocked in its send.
    let listed = out.iter().find(|l| {
        l.trim_start_matches(['*', ' '])
            .starts_with(&format!("Goroutine {gid} "))
    });
    let listed = listed.unwrap_or_else(|| panic!("goroutine {gid} not listed, {}", ctx()));
    assert!(
        listed.contains("chan send") && listed.contains("main.producer"),
        "{listed}, {}",
        ctx()
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with('[') && l.ends_with(" goroutines]")),
        "no goroutine count, {}",
        ctx()
    );
    // goroutine N, then bt: the stack of the send.
    assert!(
        out.iter()
            .any(|l| l.starts_with("Switched from ") && l.ends_with(&format!(" to {gid}"))),
        "{}",
        ctx()
    );
    let bt = frames(&out);
    let send_line = marked_line("producer.go", "send");
    let producer = &bt[k];
    assert_eq!(producer.1, "main.producer", "{}", ctx());
    assert!(
        producer.2.ends_with(&format!("/producer.go:{send_line}")),
        "{producer:?}, {}",
        ctx()
    );
    assert_eq!(bt[0].1, "runtime.gopark", "{}", ctx());
    assert!(
        bt[..k].iter().any(|f| f.1 == "runtime.chansend"),
        "{}",
        ctx()
    );
    // frame K list and frame K ls: the send's line, marked.
    let shown: Vec<&String> = out.iter().filter(|l| l.starts_with("Showing ")).collect();
    assert_eq!(shown.len(), 2, "{}", ctx());
    for s in shown {
        assert!(
            s.contains(&format!("/producer.go:{send_line} ")),
            "{s}, {}",
            ctx()
        );
    }
    let arrows: Vec<&String> = out.iter().filter(|l| l.starts_with("=>")).collect();
    assert_eq!(arrows.len(), 2, "{}", ctx());
    for a in arrows {
        assert!(
            a.contains(&format!("{send_line}:")) && a.contains("ch <- messages["),
            "{a}, {}",
            ctx()
        );
    }
    let printed_lines = last_lines(&out, 9);
    // p ch: what the program saw of its channel, and the producer waiting
    // in its send queue (Delve prints runtime.hchan's fields: qcount 0,
    // dataqsiz 0, closed 0, one sudog in sendq).
    let ch = &printed_lines[0];
    assert!(ch.starts_with("chan<- string {"), "p ch: {ch}, {}", ctx());
    for want in [
        format!("len: {}", printed(&values, "ch.len")),
        format!("cap: {}", printed(&values, "ch.cap")),
        "closed: false".to_string(),
        format!("sendq: [goroutine {gid}]"),
        "recvq: []".to_string(),
    ] {
        assert!(ch.contains(&want), "p ch lacks {want:?}: {ch}, {}", ctx());
    }
    // p messages, p main.messages: the six strings, whole.
    let want = strings(printed(&values, "messages"));
    assert_eq!(want.len(), 6, "{values:?}");
    for (i, w) in want.iter().enumerate() {
        let each = strings(printed(&values, &format!("messages[{i}]")));
        assert_eq!(each, vec![w.clone()], "messages[{i}] as %q and in %#v");
    }
    for m in &printed_lines[1..3] {
        assert!(m.starts_with("[6]string ["), "{m}, {}", ctx());
        assert_eq!(strings(m), want, "{m}, {}", ctx());
    }
    // The hchan's fields, the sudog of the send and what it sends.
    let hchan = [
        printed(&values, "ch.len"),
        printed(&values, "ch.cap"),
        "0",
        gid,
    ];
    for (got, want) in printed_lines[3..7].iter().zip(hchan) {
        assert_eq!(got, want, "{}", ctx());
    }
    let elem = &printed_lines[7];
    assert!(elem.starts_with('"'), "{elem}, {}", ctx());
    assert_eq!(strings(elem), want[..1], "{}", ctx());
    assert_eq!(printed_lines[8], printed(&values, "sent"), "{}", ctx());
}

#[test]
fn producer_blocked_on_a_channel() {
    for f in FLAVOURS {
        replay(f);
    }
}
