//! Types files for tests: written to the temporary directory, removed when dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

static WRITTEN: AtomicUsize = AtomicUsize::new(0);

pub struct TypesFile(PathBuf);

impl TypesFile {
    pub fn write(text: &str) -> Self {
        let n = WRITTEN.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("dtp-it-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    /// The path, as `DTP_TASK_TYPES_FILE` takes it.
    pub fn path(&self) -> String {
        self.0.to_str().unwrap().to_owned()
    }
}

impl Drop for TypesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
