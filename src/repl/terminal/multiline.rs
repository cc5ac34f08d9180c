//! `args -v` / `locals -v`: a value's one-line text laid out as Delve's
//! multi-line form, one struct field a line, indented by nesting:
//! `main.Inner {\n\tName: "inner",\n\tCount: 5,}`. The text is goat's own
//! formatter's, so only its brackets and separators are read; quoted
//! strings are copied as they are.

/// Nesting levels broken onto lines; deeper braces stay on one line (the
/// formatter's own depth limit keeps this small anyway).
const MAX_LEVELS: usize = 32;

/// `text` with each struct's (`{...}` with fields) fields on lines of their own.
pub(in crate::repl) fn layout(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    // One entry per open bracket: whether it was broken onto lines.
    let mut open: Vec<bool> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                // Copy the string literal, escapes included.
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        out.push(chars[i + 1]);
                        i += 1;
                    } else if chars[i] == '"' {
                        break;
                    }
                    i += 1;
                }
            }
            '{' | '[' | '(' => {
                let empty_or_cut = matches!(chars.get(i + 1), Some('}') | Some('.'));
                let broken = c == '{' && !empty_or_cut && open.len() < MAX_LEVELS;
                open.push(broken);
                out.push(c);
                if broken {
                    newline(&mut out, open.len());
                }
            }
            '}' | ']' | ')' => {
                if open.pop() == Some(true) {
                    out.push(',');
                }
                out.push(c);
            }
            ',' if open.last() == Some(&true) && chars.get(i + 1) == Some(&' ') => {
                out.push(',');
                newline(&mut out, open.len());
                i += 1; // the space
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push('\t');
    }
}

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    fn structs_break_onto_lines_and_strings_stay() {
        assert_eq!(
            layout(r#"main.Inner {Name: "a, {b}", Count: 5}"#),
            "main.Inner {\n\tName: \"a, {b}\",\n\tCount: 5,}"
        );
        assert_eq!(
            layout(r#"*main.R {ID: 7, In: main.Inner {N: 1}}"#),
            "*main.R {\n\tID: 7,\n\tIn: main.Inner {\n\t\tN: 1,},}"
        );
        assert_eq!(
            layout("[]int len: 2, cap: 2, [1,2]"),
            "[]int len: 2, cap: 2, [1,2]"
        );
        assert_eq!(layout("main.T {...}"), "main.T {...}");
        assert_eq!(layout("struct {} {}"), "struct {} {}");
        assert_eq!(layout("\"unterminated \\"), "\"unterminated \\");
        assert_eq!(layout("}}]) {"), "}}]) {\n\t");
    }
}
