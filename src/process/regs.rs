//! x86-64 general registers, as `PTRACE_GETREGS` and `NT_PRSTATUS` hold them.

use serde::{Deserialize, Serialize};

/// Defines [`Regs`] and its conversions from one list of the fields in the
/// kernel's order, so the struct, the core note's words and the ptrace
/// struct cannot disagree.
macro_rules! user_regs {
    ($($field:ident),* $(,)?) => {
        /// The kernel's `struct user_regs_struct`, field for field (27 × u64), so a
        /// core writer can emit it unchanged.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct Regs {
            $(pub $field: u64,)*
        }

        impl Regs {
            /// The words of `user_regs_struct` (a core's `pr_reg`), in order.
            pub fn from_words(words: &[u64; USER_REGS_WORDS]) -> Regs {
                let [$($field),*] = *words;
                Regs { $($field),* }
            }

            /// The registers as `user_regs_struct`'s words, in order.
            pub fn to_words(&self) -> [u64; USER_REGS_WORDS] {
                [$(self.$field),*]
            }

            /// From what `PTRACE_GETREGS` filled in (the same fields by name).
            pub fn from_user_regs(r: &libc::user_regs_struct) -> Regs {
                Regs { $($field: r.$field),* }
            }
        }
    };
}

/// The number of u64 words in `user_regs_struct`.
pub const USER_REGS_WORDS: usize = 27;

user_regs!(
    r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs,
    eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs,
);

/// Where `struct sigcontext` starts in the x86-64 `struct ucontext`
/// (after uc_flags, uc_link and the 24-byte `stack_t`).
pub const UCONTEXT_SIGCONTEXT: u64 = 40;
/// The word of `struct sigcontext` holding `rsp`, and the one holding `rip`.
pub const SIGCONTEXT_RSP_WORD: u64 = 15;
pub const SIGCONTEXT_RIP_WORD: u64 = 16;

impl Regs {
    /// The first 18 words of the kernel's `struct sigcontext`, which a
    /// signal frame holds and `rt_sigreturn` restores: r8..r15, rdi, rsi,
    /// rbp, rbx, rdx, rax, rcx, rsp, rip, eflags (another order than
    /// `user_regs_struct`'s).
    pub fn sigcontext_gprs(&self) -> [u64; 18] {
        [
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.rdi,
            self.rsi,
            self.rbp,
            self.rbx,
            self.rdx,
            self.rax,
            self.rcx,
            self.rsp,
            self.rip,
            self.eflags,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigcontext_words_name_rsp_and_rip() {
        let r = Regs {
            rsp: 0x5a,
            rip: 0xa5,
            ..Regs::default()
        };
        let w = r.sigcontext_gprs();
        assert_eq!(w[SIGCONTEXT_RSP_WORD as usize], 0x5a);
        assert_eq!(w[SIGCONTEXT_RIP_WORD as usize], 0xa5);
    }

    #[test]
    fn words_follow_the_kernel_order() {
        let words: [u64; USER_REGS_WORDS] = std::array::from_fn(|i| i as u64);
        let r = Regs::from_words(&words);
        assert_eq!((r.r15, r.rbp, r.orig_rax, r.rip, r.rsp), (0, 4, 15, 16, 19));
        assert_eq!((r.fs_base, r.gs), (21, 26));
        assert_eq!(r.to_words(), words);
        assert_eq!(
            std::mem::size_of::<libc::user_regs_struct>(),
            USER_REGS_WORDS * 8
        );
    }
}
