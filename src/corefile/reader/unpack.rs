//! Compressed cores, as systemd-coredump keeps them (`.zst`, older setups
//! `.lz4` or `.xz`): recognised by their magic, whatever their name, and
//! unpacked once into a private temporary file that the reader then reads
//! like any core. The temporary is unlinked from the start (it vanishes
//! with goat, however goat ends) and sparse: a core's pages of zeros,
//! often most of it, take no disk.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// The compressed formats goat opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Zstd,
    Lz4,
    Xz,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Xz => "xz",
        }
    }

    /// The format whose magic `head` (a file's first bytes) starts with.
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        const MAGICS: [(&[u8], Compression); 3] = [
            (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
            (&[0x04, 0x22, 0x4d, 0x18], Compression::Lz4),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Compression::Xz),
        ];
        MAGICS
            .iter()
            .find(|(magic, _)| head.starts_with(magic))
            .map(|&(_, c)| c)
    }
}

/// No core is this large: a stream that unpacks past it is hostile (or
/// not a core), and is refused rather than filling the disk with holes.
const MAX_UNPACKED: u64 = 1 << 42;
/// The granule of zero detection: a page, as cores are made of pages.
const PAGE: usize = 4096;
/// Compressed inputs smaller than this unpack without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// Why a compressed core could not be unpacked.
#[derive(Debug)]
pub(super) enum UnpackError {
    /// The stream is corrupt or cut short (the decoder's words).
    Corrupt(String),
    /// Creating or writing the temporary failed (a full disk, mostly).
    Temporary { dir: PathBuf, cause: io::Error },
    /// The stream unpacks past [`MAX_UNPACKED`].
    TooLarge,
}

/// Unpacks `file` (compressed as `kind`, `len` bytes) into an unlinked
/// temporary file and returns it with its length.
pub(super) fn unpack(file: &File, len: u64, kind: Compression) -> Result<(File, u64), UnpackError> {
    // On disk where /tmp is memory: `$TMPDIR`, else /var/tmp.
    let dir = crate::process::temporary_dir();
    let temp_error = |cause| UnpackError::Temporary {
        dir: dir.clone(),
        cause,
    };
    let out = tempfile::tempfile_in(&dir).map_err(temp_error)?;
    let bar = progress_bar(len);
    let input = Progress {
        inner: BufReader::with_capacity(1 << 20, From0 { file, at: 0 }),
        bar: bar.as_ref(),
    };
    let mut sink = Sparse {
        file: &out,
        at: 0,
        pending: Vec::with_capacity(PAGE),
    };
    let result = decode(kind, input, &mut sink).and_then(|()| sink.finish());
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let unpacked_len = sink.at;
    match result {
        Ok(()) => Ok((out, unpacked_len)),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => Err(UnpackError::TooLarge),
        Err(e) => Err(sink_or_corrupt(e, temp_error)),
    }
}

/// A write error of the temporary, told apart from the decoder's errors
/// (both arrive as `io::Error`).
#[derive(Debug)]
struct Sink(io::Error);

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Sink {}

fn sink_or_corrupt(e: io::Error, temp_error: impl Fn(io::Error) -> UnpackError) -> UnpackError {
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => match inner.downcast::<Sink>() {
            Ok(sink) => temp_error(sink.0),
            Err(other) => UnpackError::Corrupt(other.to_string()),
        },
        // A bare kind: the decoder's (an unexpected end, mostly).
        None => UnpackError::Corrupt(io::Error::from(kind).to_string()),
    }
}

/// The most memory an .xz block's decoder may ask for: its header names
/// the dictionary size, up to 4 GiB, and a hostile one would have goat
/// allocate that. `xz -9` needs 64 MiB; xz's own largest is 1.5 GiB.
const XZ_MEMORY_KIB: u32 = 1600 * 1024;

/// Streams `input` through the decoder for `kind` into `sink`.
fn decode(kind: Compression, mut input: impl io::BufRead, sink: &mut Sparse) -> io::Result<()> {
    match kind {
        Compression::Zstd => {
            // A file may hold several frames, one after the other.
            let mut frames = 0u64;
            while !input.fill_buf()?.is_empty() {
                let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut input)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                io::copy(&mut frame, sink)?;
                // ruzstd leaves the content checksum to its caller.
                let sums = (
                    frame.decoder.get_checksum_from_data(),
                    frame.decoder.get_calculated_checksum(),
                );
                if let (Some(stored), Some(computed)) = sums {
                    if stored != computed {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "frame {frames}: checksum {computed:#010x}, the frame says {stored:#010x}"
                            ),
                        ));
                    }
                }
                frames += 1;
            }
            if frames == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "no zstd frame"));
            }
            Ok(())
        }
        Compression::Lz4 => {
            let mut frames = lz4_flex::frame::FrameDecoder::new(input);
            io::copy(&mut frames, sink).map(drop)
        }
        Compression::Xz => {
            // Concatenated streams are one file, as `xz -d` reads them.
            let mut xz = lzma_rust2::XzReader::new_mem_limit(input, true, XZ_MEMORY_KIB);
            io::copy(&mut xz, sink).map(drop)
        }
    }
}

/// Writes what it is given at increasing offsets of `file`, skipping whole
/// pages of zeros (they stay holes). Its own write errors are wrapped in
/// [`Sink`] so they are not taken for the decoder's.
struct Sparse<'a> {
    file: &'a File,
    /// Bytes taken so far.
    at: u64,
    /// The part of the current page taken so far.
    pending: Vec<u8>,
}

impl Sparse<'_> {
    fn flush_page(&mut self) -> io::Result<()> {
        let start = self.at - self.pending.len() as u64;
        if self.pending.iter().any(|&b| b != 0) {
            self.file
                .write_all_at(&self.pending, start)
                .map_err(|e| io::Error::other(Sink(e)))?;
        }
        self.pending.clear();
        Ok(())
    }

    /// Writes the last partial page and gives the file its full length
    /// (a trailing hole is not written).
    fn finish(&mut self) -> io::Result<()> {
        self.flush_page()?;
        self.file
            .set_len(self.at)
            .map_err(|e| io::Error::other(Sink(e)))
    }
}

impl Write for Sparse<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let take = (PAGE - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            self.at = self
                .at
                .checked_add(take as u64)
                .filter(|&n| n <= MAX_UNPACKED)
                .ok_or_else(|| io::Error::from(io::ErrorKind::FileTooLarge))?;
            rest = &rest[take..];
            if self.pending.len() == PAGE {
                self.flush_page()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `file` read from its start with `pread`, whatever its position (the
/// reader's other users read it at offsets too).
struct From0<'a> {
    file: &'a File,
    at: u64,
}

impl Read for From0<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// The compressed input, advancing a progress bar as it is read.
struct Progress<'a, R> {
    inner: R,
    bar: Option<&'a indicatif::ProgressBar>,
}

impl<R: io::BufRead> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.advance(n);
        Ok(n)
    }
}

impl<R: io::BufRead> io::BufRead for Progress<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.inner.consume(n);
        self.advance(n);
    }
}

impl<R> Progress<'_, R> {
    fn advance(&self, n: usize) {
        if let Some(b) = self.bar {
            b.inc(n as u64);
        }
    }
}

/// A progress bar on stderr for a large compressed core, when stderr is a
/// terminal (unpacking a few GiB takes seconds to minutes).
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    crate::corefile::progress::bar("unpacking core", total, PROGRESS_MIN_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpacked(kind: Compression, packed: &[u8]) -> Result<Vec<u8>, UnpackError> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(packed).unwrap();
        let (out, len) = unpack(&f, packed.len() as u64, kind)?;
        let mut v = vec![0u8; len as usize];
        out.read_exact_at(&mut v, 0).unwrap();
        Ok(v)
    }

    fn xz_compress(data: &[u8]) -> Vec<u8> {
        let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::default())
            .expect("an xz writer");
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    /// Pages of zeros between pages of data, and a tail that is not a
    /// whole page: what a core looks like.
    fn sample() -> Vec<u8> {
        let mut v = vec![0u8; 5 * PAGE + 123];
        v[PAGE..2 * PAGE].fill(7);
        v[3 * PAGE + 5] = 1;
        *v.last_mut().unwrap() = 9;
        v
    }

    #[test]
    fn every_format_round_trips_with_holes() {
        let data = sample();
        let xz = xz_compress(&data);
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&data).unwrap();
        let lz4 = lz4.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (kind, packed) in [
            (Compression::Xz, xz),
            (Compression::Lz4, lz4),
            (Compression::Zstd, zst),
        ] {
            assert_eq!(Compression::sniff(&packed), Some(kind));
            match unpacked(kind, &packed) {
                Ok(got) => assert!(got == data, "{kind:?}: other bytes"),
                Err(e) => panic!("{kind:?}: {e:?}"),
            }
        }
    }

    #[test]
    fn corrupt_and_cut_streams_are_errors() {
        let data = sample();
        let zst = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for bad in [
            &zst[..zst.len() / 2],
            &zst[..4],
            &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff][..],
        ] {
            assert!(matches!(
                unpacked(Compression::Zstd, bad),
                Err(UnpackError::Corrupt(_))
            ));
        }
        let xz = xz_compress(&data);
        let cut = &xz[..xz.len() - 10];
        assert!(matches!(
            unpacked(Compression::Xz, cut),
            Err(UnpackError::Corrupt(_))
        ));
    }

    /// Inputs `core_unpack` found (fuzz/regressions/core_unpack/); their
    /// first byte picks the format, as in the fuzz target.
    #[test]
    fn fuzz_findings_of_core_unpack_stay_fixed() {
        // An xz footer whose backward size is u32::MAX: lzma-rs computed
        // `(size + 1) << 2` and panicked on the overflow.
        let found = include_bytes!(
            "../../../fuzz/regressions/core_unpack/crash-fa12a0709ff31e1f31ac30f4da212a4989564e65"
        );
        assert!(matches!(
            unpacked(Compression::Xz, &found[1..]),
            Err(UnpackError::Corrupt(_))
        ));
    }

    /// A block header that asks for a 4 GiB dictionary is refused before
    /// anything is allocated.
    #[test]
    fn an_xz_dictionary_past_the_limit_is_refused() {
        let data = sample();
        let mut xz = xz_compress(&data);
        // Stream header (12 bytes), then the block header: size byte,
        // flags, filter id 0x21, properties size 1, the dictionary byte.
        assert_eq!(xz[12 + 2], 0x21, "an LZMA2 filter");
        // 4 GiB - 1.
        xz[12 + 4] = 40;
        // The block header's CRC32 follows its padding.
        let header_len = (usize::from(xz[12]) + 1) * 4;
        let crc = crc32fast::hash(&xz[12..12 + header_len - 4]);
        xz[12 + header_len - 4..12 + header_len].copy_from_slice(&crc.to_le_bytes());
        match unpacked(Compression::Xz, &xz) {
            Err(UnpackError::Corrupt(why)) => assert!(why.contains("memory"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sniffs_only_the_magics() {
        assert_eq!(Compression::sniff(b"\x7fELF\x02\x01"), None);
        assert_eq!(Compression::sniff(b""), None);
        assert_eq!(Compression::sniff(&[0x04, 0x22, 0x4d]), None);
    }
}
