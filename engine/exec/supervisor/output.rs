//! What a step prints: its pipes read, cut into lines, masked, written to its log and
//! reported to the engine.

use std::os::fd::AsFd;

use nix::errno::Errno;

use super::{Event, Supervisor};

/// The longest line a step's log holds: a longer one is cut there and goes on in the next, so
/// that binary output or a progress bar with no line end is handled in pieces of this size.
pub(super) const MAX_LINE: usize = 64 * 1024;

impl Supervisor {
    /// Reads what a step printed; complete lines are masked, logged and reported. A line ends
    /// at `\n`, `\r\n` or a lone `\r` (a progress bar's update), and one longer than
    /// [`MAX_LINE`] is cut and continued, so that what is kept between reads stays small and
    /// only new bytes are looked at: output that never ends a line costs what any other does.
    pub(super) fn read_pipe(&mut self, pid: i32, i: usize) {
        let Some(s) = self.steps.get_mut(&pid) else {
            return;
        };
        let Some((Some(fd), kept)) = s.pipes.get_mut(i) else {
            return;
        };
        let n = match nix::unistd::read(fd.as_fd(), &mut self.buf) {
            Ok(n) => n,
            Err(Errno::EINTR | Errno::EAGAIN) => return,
            Err(_) => 0,
        };
        let end = n == 0;
        let mut pending = std::mem::take(kept);
        if end {
            s.pipes[i].0 = None;
        }
        // What was kept ends no line, but for a last `\r` that may be the start of a `\r\n`.
        let scan = pending.len() - usize::from(pending.last() == Some(&b'\r'));
        pending.extend_from_slice(&self.buf[..n]);
        let mut from = 0;
        // The next `\n` and the next `\r`, each looked for again only once passed: every byte
        // is looked at once for each.
        let mut nl = find(&pending, scan, b'\n');
        let mut cr = find(&pending, scan, b'\r');
        while let Some(at) = [nl, cr].into_iter().flatten().min() {
            let next = match (pending[at], pending.get(at + 1)) {
                (b'\r', Some(b'\n')) => at + 2,
                (b'\r', None) if !end => break,
                _ => at + 1,
            };
            // A `\r` right after a line end (a progress bar's first) ends nothing to show.
            if at > from || next > at + 1 || pending[at] == b'\n' {
                let cut = self.cut_long(pid, &pending[from..at], true);
                self.line(pid, &pending[from + cut..at]);
            }
            from = next;
            if nl.is_some_and(|p| p < next) {
                nl = find(&pending, next, b'\n');
            }
            if cr.is_some_and(|p| p < next) {
                cr = find(&pending, next, b'\r');
            }
        }
        // A `\r` left last is a line end to come: a line of MAX_LINE before it is not cut.
        let unended = pending.len() - usize::from(!end && pending.last() == Some(&b'\r'));
        from += self.cut_long(pid, &pending[from..unended], end);
        if end && from < pending.len() {
            // End of the stream: an unfinished last line is a line.
            self.line(pid, &pending[from..]);
            from = pending.len();
        }
        pending.drain(..from);
        if let Some(s) = self.steps.get_mut(&pid) {
            s.pipes[i].1 = pending;
        }
    }

    /// Sends on the first pieces of a line longer than [`MAX_LINE`], each cut at that length
    /// or before (see [`Masker::cut`](super::Masker::cut)); returns how many bytes went. What
    /// is left is at most `MAX_LINE` long, or, when the line goes on (`complete` false),
    /// shorter than what a cut needs in view: the longest secret past it.
    fn cut_long(&mut self, pid: i32, line: &[u8], complete: bool) -> usize {
        let look = self.mask.lookahead();
        let mut from = 0;
        while line.len() - from > MAX_LINE && (complete || line.len() - from >= MAX_LINE + look) {
            let cut = self.mask.cut(&line[from..], MAX_LINE);
            self.line(pid, &line[from..from + cut]);
            from += cut;
        }
        from
    }

    /// One line a step printed: masked, into its log, to the engine.
    pub(super) fn line(&mut self, pid: i32, raw: &[u8]) {
        let Some(s) = self.steps.get_mut(&pid) else {
            return;
        };
        let text = String::from_utf8_lossy(raw);
        let line = self.mask.mask(text.trim_end_matches('\r'));
        let failed = s.log.line(&line);
        let step = s.step;
        self.emit(&Event::Line { step, text: line });
        if let Some(text) = failed {
            self.emit(&Event::Line { step, text });
        }
    }
}

/// Where `byte` next occurs in `bytes` from `from` on: found by the C library's `memchr`
/// (through std's `BufRead` for a slice) rather than a loop over bytes of ours, which is slow
/// in a debug build (the tests').
fn find(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    use std::io::BufRead;
    let hay = bytes.get(from..)?;
    let mut rest = hay;
    let n = rest.skip_until(byte).ok()?;
    (n > 0 && hay[n - 1] == byte).then(|| from + n - 1)
}
