//! ELF, pclntab, DWARF and buildinfo views of a Go executable.
