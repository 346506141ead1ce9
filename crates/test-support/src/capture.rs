//! A `MakeWriter` that keeps what is written.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// Keeps everything written to it, for asserting on log lines. Clones share one buffer, so a
/// clone can be handed to a subscriber (`.with_writer(captured.clone())`) while the test keeps
/// the original to read it.
#[derive(Clone, Debug, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as text.
    ///
    /// # Panics
    /// If what was written is not UTF-8: log output always is.
    pub fn text(&self) -> String {
        String::from_utf8(self.buffer().clone()).expect("captured output is UTF-8")
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_string).collect()
    }

    /// Forgets what was written so far.
    pub fn clear(&self) {
        self.buffer().clear();
    }

    fn buffer(&self) -> MutexGuard<'_, Vec<u8>> {
        // A test that panicked while writing must not hide the output from the next reader.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Captured {
    type Writer = Captured;

    fn make_writer(&'w self) -> Captured {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_writes_into_every_clone() {
        let captured = Captured::new();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(answer = 42, "first");
            tracing::warn!("second");
        });
        let lines = captured.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("first") && lines[0].contains("answer=42"));
        assert!(lines[1].contains("WARN") && lines[1].contains("second"));
        captured.clear();
        assert_eq!(captured.text(), "");
    }
}
