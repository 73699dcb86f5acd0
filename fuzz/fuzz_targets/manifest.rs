//! Any text as config/plugin.yaml: a Manifest or located errors, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match interpose_manifest::Manifest::parse(std::path::Path::new("config/plugin.yaml"), &text) {
        Ok(m) => {
            for api in &m.apis {
                let _ = api.url.shape();
            }
        }
        Err(d) => assert!(!d.0.is_empty()),
    }
});
