//! Loading never panics: arbitrary bytes and mutated real configs (characters
//! flipped, deleted, inserted in corpus files) give `Ok` or `Err`, nothing else.

use std::path::Path;

use proptest::prelude::*;
use week1_core::config::bootstrap::{Bootstrap, DiscoveryResponse};
use week1_core::config::load_str;

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envoy-configs");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    names.into_iter().map(|p| std::fs::read_to_string(p).expect("read corpus file")).collect()
}

/// Every entry point on the same text; the result is irrelevant, returning is the test.
fn load_all(text: &str) {
    let _ = load_str::<Bootstrap>(text);
    let _ = load_str::<DiscoveryResponse>(text);
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                ":",
                "- ",
                "\n",
                "  ",
                "{",
                "}",
                "[",
                "]",
                "\"",
                "'",
                "&a ",
                "*a",
                "~",
                "null",
                "-1",
                "99999999999999999999",
                "\"@type\": x",
                "0.5s",
                "-5s",
                "<<: *a",
                "\t",
                "#",
            ])
            .prop_map(str::to_string)
        )
            .prop_map(|(i, s)| Edit::Insert(i, s)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let len = bytes.len().max(1);
        match e {
            Edit::Flip(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = *b;
                }
            }
            Edit::Delete(i, n) => {
                let start = (i % len).min(bytes.len());
                let end = (start + n).min(bytes.len());
                bytes.drain(start..end);
            }
            Edit::Insert(i, s) => {
                let at = (i % len).min(bytes.len());
                bytes.splice(at..at, s.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_yamlish_text_never_panics(text in "[a-z_@:\\-\\[\\]{}\"' \n0-9.*&~#]{0,300}") {
        load_all(&text);
    }

    #[test]
    fn mutated_corpus_files_never_panic(file in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..6)) {
        let files = corpus();
        let text = &files[file.index(files.len())];
        load_all(&apply(text, &edits));
    }
}
