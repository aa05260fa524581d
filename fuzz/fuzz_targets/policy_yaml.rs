//! Fuzz the policy loader: any input either loads or is rejected with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(policy) = gait::policy::Policy::from_yaml_str(text) {
            // A loaded policy always has a sha256 digest.
            assert_eq!(policy.digest().len(), 64);
        }
    }
});
