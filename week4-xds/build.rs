//! Compiles Envoy's vendored .proto files (proto/, see proto/README.md) into
//! one FileDescriptorSet, `$OUT_DIR/envoy_descriptors.bin`, which
//! `grpc::convert` loads into a prost-reflect descriptor pool.
//!
//! Each root of proto/roots.txt is compiled on its own, with only its imports
//! in scope, as Envoy's Bazel build does: Envoy's files rely on that for
//! relative names (`common.ratelimit.v3.X` inside `envoy.extensions.filters.http`
//! would otherwise resolve to `envoy.extensions.filters.common` once the fault
//! filter's files are in the same compilation). The sets are then merged.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed=proto");
    let roots = std::fs::read_to_string(root.join("roots.txt"))?;
    let mut merged = protox::prost_reflect::prost_types::FileDescriptorSet::default();
    let mut seen = BTreeSet::new();
    for file in roots.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        // Without source info (comments): a third of the size, nothing lost at run time.
        let set = protox::Compiler::new([root])?
            .include_imports(true)
            .include_source_info(false)
            .open_files([file])?
            .file_descriptor_set();
        // Each set lists a file after its imports; keeping first occurrences
        // in order keeps that property for the merged set.
        for f in set.file {
            if seen.insert(f.name().to_string()) {
                merged.file.push(f);
            }
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("envoy_descriptors.bin");
    std::fs::write(out, merged.encode_to_vec())?;
    Ok(())
}
